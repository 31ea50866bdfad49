"""A position that changes on the exchange behind the service's back halts quoting, precisely."""

from __future__ import annotations

from pathlib import Path

from e2e_helpers import (
    BOT,
    REQ,
    T1,
    T2,
    T3,
    SimEnv,
    bot_quotes,
    running_service,
    sim_env,
    until,
)
from rich.console import Console

from quoter.domain.types import MarketStatus, Side
from quoter.observability.logging import format_wall_ns
from quoter.service.app import Service
from quoter.service.demo import compare_with_exchange
from quoter.service.live_view import render
from quoter.service.store import Store
from quoter.sim.exchange import Position, QuoteStatus


def _adjust_behind_our_back(env: SimEnv, ticker: str, delta_centi: int) -> None:
    """Change the bot's position with no fill: no exchange API does this, an operator might.

    A manual adjustment (or a fill lost from both the feed and REST) is exactly what
    reconciliation exists to catch, so the test edits the simulator's ledger directly.
    """
    account = env.exchange._accounts[BOT]  # deliberate: see docstring
    pos = account.positions.setdefault(ticker, Position(ticker))
    pos.position_centi += delta_centi
    pos.total_traded_micros += 1  # listed by GET /portfolio/positions


async def _trade(env: SimEnv, svc: Service, ticker: str, side: Side) -> None:
    rfq_id = env.rfq(ticker, contracts_centi=100)
    await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="the bot's quote")
    [quote] = bot_quotes(env.exchange, rfq_id)
    await until(lambda: quote.id in svc.runtime.open_quotes, what="QuotePlaced")
    env.exchange.accept_quote(REQ, rfq_id, quote.id, side)
    await until(lambda: env.exchange.get_quote(quote.id).status == QuoteStatus.EXECUTED,
                what="execution")
    await until(lambda: svc.positions_centi().get(ticker) == env.positions().get(ticker)
                and not svc.engine.ledger.provisional_keys(ticker), what="the fill booked")


async def test_position_changed_behind_our_back_halts_with_the_difference(
    tmp_path: Path,
) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            await _trade(env, svc, T1, Side.YES)
            assert svc.positions_centi() == {T1: 100}
            open_rfq = env.rfq(T2)
            await until(lambda: bool(bot_quotes(env.exchange, open_rfq)), what="a live quote")
            [live] = bot_quotes(env.exchange, open_rfq)
            await until(lambda: live.id in svc.runtime.open_quotes, what="QuotePlaced")

            _adjust_behind_our_back(env, T1, 500)
            await svc.notices.reconcile()
            await until(lambda: svc.runtime.halted, what="the halt")

            reason = f"position_mismatch {T1}: ours=100 exchange=600 (hundredths of a contract)"
            assert svc.runtime.halt_reason == reason
            status = svc.status()
            assert (status["halted"], status["halt_reason"]) == (True, reason)
            assert svc.health().reasons == ("halted",)
            # Halting pulls our quotes and stops new ones.
            await until(lambda: env.exchange.get_quote(live.id).status == QuoteStatus.CANCELLED,
                        what="the live quote cancelled")
            after = env.rfq(T3)
            await until(lambda: svc.hooks.counts["rfqs_seen"] == 3, what="the new RFQ seen")
            assert bot_quotes(env.exchange, after) == []
            assert svc.positions_centi() == {T1: 100}  # the ledger is not "fixed" by a report
    with Store(tmp_path / "quoter.db") as db:
        assert [(h.halted, h.reason) for h in db.halts()][:1] == [(True, reason)]


async def test_position_appearing_in_an_untraded_market_halts(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            assert not svc.runtime.halted
            _adjust_behind_our_back(env, T3, -250)
            await svc.notices.reconcile()
            await until(lambda: svc.runtime.halted, what="the halt")
            assert svc.runtime.halt_reason == (
                f"position_mismatch {T3}: ours=0 exchange=-250 (hundredths of a contract)")


async def test_the_view_shows_the_exchange_position_and_when_it_was_read(
    tmp_path: Path,
) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            await _trade(env, svc, T1, Side.NO)
            [before] = svc.snapshot().positions
            assert (before.exchange_position_centi, before.exchange_read_wall_ns) == (None, None)
            t0 = env.clock.wall_ns()
            await svc.notices.reconcile()
            [pos] = svc.snapshot().positions
            assert pos.market_ticker == T1
            assert pos.exchange_position_centi == pos.position_centi == -100
            assert pos.exchange_read_wall_ns is not None
            assert t0 <= pos.exchange_read_wall_ns <= env.clock.wall_ns()
            console = Console(record=True, width=160, color_system=None)
            console.print(render(svc.snapshot()))
            row = next(line for line in console.export_text().splitlines()
                       if line.lstrip("│ ").startswith(T1) and "-1.00" in line)
            assert row.count("-1.00") == 2  # ours and the exchange's
            assert format_wall_ns(pos.exchange_read_wall_ns)[11:19] in row
            # The fill is shown at the price of the side bought (NO at our 0.48 bid) ...
            [fill] = svc.snapshot().recent_fills
            assert (fill.side, fill.price_micros) == ("no", 480_000)
            # ... and measured 1 s later; these markets have no resting book, so no mid:
            # the markout is counted as unmarked, not guessed.
            await until(lambda: svc.hooks.markouts.unmarked >= 1, what="the 1 s markout")
            assert svc.snapshot().markouts[0].fills == 0
            assert svc.snapshot().unmarked_positions == 1


async def test_a_determined_market_awaiting_settlement_reconciles_without_a_halt(
    tmp_path: Path,
) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            await _trade(env, svc, T1, Side.YES)
            # Kalshi determines the result, then pays out when its settlement timer ends; the
            # position stays listed meanwhile.
            env.exchange.determine_market(T1, Side.YES)
            await until(lambda: svc.engine.md.markets[T1].status is MarketStatus.DETERMINED,
                        what="the determined notice")
            assert svc.positions_centi() == {T1: 100} == env.positions()
            # Marked at its settlement value ($1 a YES contract), not the mid: PnL at settlement.
            cost = svc.engine.ledger.market(T1).cost_micros
            assert svc.marked_pnl_micros() == (
                svc.engine.ledger.realized_pnl_micros() + 1_000_000 - cost)
            await svc.notices.reconcile()
            # Still quoting: a new RFQ (queued behind the reconciliation's reports) is quoted.
            rfq_id = env.rfq(T2)
            await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="a new quote")
            assert not svc.runtime.halted
            env.exchange.finalize_market(T1)
            await until(lambda: svc.positions_centi().get(T1, 0) == 0, what="the settlement")
            assert compare_with_exchange(svc, env.exchange, BOT, env.start_balance_micros) == []
            await svc.notices.reconcile()
            rfq_id = env.rfq(T3)
            await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="a quote after")
            assert not svc.runtime.halted
