"""An accept missed on the wire is recovered over REST and confirmed inside its window."""

from __future__ import annotations

from pathlib import Path

from e2e_helpers import (
    BOT,
    REQ,
    T1,
    T2,
    SimEnv,
    bot_quotes,
    confirm_posts,
    running_service,
    sim_env,
    until,
)
from prometheus_client.parser import text_string_to_metric_families

from quoter.domain.types import Side
from quoter.service.app import Service
from quoter.service.demo import compare_with_exchange
from quoter.sim.config import FaultConfig, FrameFaultRule
from quoter.sim.exchange import QuoteStatus


def _reconnects_total(svc: Service) -> float:
    for family in text_string_to_metric_families(svc.metrics.render().decode()):
        for sample in family.samples:
            if sample.name == "quoter_reconnects_total":
                return sample.value
    return 0.0


async def _quoted(env: SimEnv, svc: Service, ticker: str) -> tuple[str, str]:
    rfq_id = env.rfq(ticker, contracts_centi=200)
    await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="the bot's quote")
    [quote] = bot_quotes(env.exchange, rfq_id)
    await until(lambda: quote.id in svc.runtime.open_quotes, what="QuotePlaced")
    return rfq_id, quote.id


async def _executed_and_booked(env: SimEnv, svc: Service, quote_id: str, ticker: str) -> None:
    await until(lambda: env.exchange.get_quote(quote_id).status == QuoteStatus.EXECUTED,
                what="execution")
    await until(lambda: svc.positions_centi().get(ticker) == env.positions().get(ticker)
                and not svc.engine.ledger.provisional_keys(ticker), what="the fill booked")


async def test_dropped_accept_frame_is_backfilled_and_confirmed(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            rfq_id, quote_id = await _quoted(env, svc, T1)
            backfills = svc.notices.backfills
            env.faults.injector.apply(FaultConfig(
                frames=(FrameFaultRule(type="quote_accepted", drop_probability=1.0),)))
            env.exchange.accept_quote(REQ, rfq_id, quote_id, Side.NO)
            await until(lambda: env.faults.injector.stats.dropped == 1, what="the drop")
            env.faults.injector.apply(FaultConfig())
            assert env.exchange.get_quote(quote_id).status == QuoteStatus.ACCEPTED
            # The next communications frame shows the sequence gap -> REST backfill -> confirm.
            env.rfq(T2)
            await _executed_and_booked(env, svc, quote_id, T1)
            assert svc.notices.backfills > backfills
            assert confirm_posts(env.faults, quote_id) == 1
            assert env.positions() == {T1: -200}  # the maker's NO side was hit
            assert compare_with_exchange(svc, env.exchange, BOT, env.start_balance_micros) == []


async def test_accept_during_a_cut_connection_is_confirmed_after_reconnect(
    tmp_path: Path,
) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            rfq_id, quote_id = await _quoted(env, svc, T1)
            backfills = svc.notices.backfills
            reconnects = sum(f.stats.reconnects for f in svc.source.feeds)
            env.faults.injector.cut_connections()
            # The accept happens while the connections are dead: its frame never arrives.
            env.exchange.accept_quote(REQ, rfq_id, quote_id, Side.YES)
            accepted_ns = env.clock.now_ns()
            await _executed_and_booked(env, svc, quote_id, T1)
            assert env.faults.injector.stats.dropped >= 1
            assert sum(f.stats.reconnects for f in svc.source.feeds) > reconnects
            # ... and /metrics says so (exported by the housekeeping task).
            await until(lambda: _reconnects_total(svc) >= 1, what="reconnects_total")
            assert svc.notices.backfills > backfills
            confirmed = env.exchange.get_quote(quote_id).confirmed_wall_ns
            accepted = env.exchange.get_quote(quote_id).accepted_wall_ns
            assert confirmed is not None
            assert accepted is not None
            assert confirmed - accepted < 30 * 1_000_000_000  # inside the 30 s window
            assert env.clock.now_ns() - accepted_ns < 30 * 1_000_000_000
            assert confirm_posts(env.faults, quote_id) == 1
            assert env.positions() == {T1: 200}
            assert compare_with_exchange(svc, env.exchange, BOT, env.start_balance_micros) == []


async def test_fills_lost_in_a_disconnect_are_booked_from_rest(tmp_path: Path) -> None:
    async with sim_env(tmp_path, execution_timer_ms=400) as env:
        svc = env.service()
        async with running_service(svc):
            rfq_id, quote_id = await _quoted(env, svc, T1)
            reconciles = svc.notices.reconciles
            env.exchange.accept_quote(REQ, rfq_id, quote_id, Side.YES)
            await until(lambda: env.exchange.get_quote(quote_id).status == QuoteStatus.CONFIRMED,
                        what="the confirm")
            # Cut before the execution timer fires: the fill frames go to dead connections.
            env.faults.injector.cut_connections()
            await _executed_and_booked(env, svc, quote_id, T1)
            assert svc.notices.reconciles > reconciles
            assert svc.hooks.counts["fills"] == 1
            assert env.positions() == {T1: 200}
            assert compare_with_exchange(svc, env.exchange, BOT, env.start_balance_micros) == []
            assert not svc.runtime.halted
