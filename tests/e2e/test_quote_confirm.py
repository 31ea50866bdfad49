"""RFQ -> quote -> accept -> confirm -> execution -> fills; the books agree to the micro-dollar."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from e2e_helpers import BOT, REQ, T1, T2, bot_quotes, confirm_posts, running_service, sim_env, until

from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import Side
from quoter.kalshi.lean_http import LeanTransport
from quoter.recording.recorder import RecordingTransport
from quoter.service.app import HaltGate, Service
from quoter.service.demo import compare_with_exchange
from quoter.service.store import ConfirmState, Store
from quoter.sim.config import FaultConfig
from quoter.sim.exchange import QuoteStatus, SimMarket
from quoter.sim.models import SimSeries


async def test_quote_accept_confirm_fill_matches_the_exchange(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            rfq_id = env.rfq(T1, contracts_centi=300)
            await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="the bot's quote")
            [quote] = bot_quotes(env.exchange, rfq_id)
            # Fixed fair $0.50 minus the $0.02 edge, on both sides.
            assert (quote.yes_bid_micros, quote.no_bid_micros) == (480_000, 480_000)
            await until(lambda: quote.id in svc.runtime.open_quotes, what="QuotePlaced")

            env.exchange.accept_quote(REQ, rfq_id, quote.id, Side.YES)
            await until(lambda: env.exchange.get_quote(quote.id).status
                        == QuoteStatus.EXECUTED, what="execution")
            await until(lambda: svc.hooks.counts["fills"] >= 1
                        and not svc.engine.ledger.provisional_keys(T1), what="the fill booked")

            assert confirm_posts(env.faults, quote.id) == 1
            # The maker bought YES at its bid: +3 contracts; the requester holds the NO side.
            assert env.positions(BOT) == {T1: 300}
            assert env.positions(REQ) == {T1: -300}
            assert svc.positions_centi() == {T1: 300}
            assert compare_with_exchange(svc, env.exchange, BOT, env.start_balance_micros) == []
            counts = svc.snapshot().counts
            assert (counts["rfqs_seen"], counts["quoted"], counts["accepted"],
                    counts["confirmed"], counts["fills"]) == (1, 1, 1, 1, 1)
    # The service closed its store; read what it left on disk.
    with Store(tmp_path / "quoter.db") as db:
        assert [(d.decision, d.reason) for d in db.decisions(rfq_id)] == [
            ("quoted", "quoted"), ("confirmed", "edge_ok")]
        row = db.quote(quote.id)
        assert row is not None
        assert (row.rfq_id, row.market_ticker, row.yes_bid_micros, row.no_bid_micros,
                row.state) == (rfq_id, T1, 480_000, 480_000, "executed")
        assert [s for s, _, _ in db.quote_transitions(quote.id)] == [
            "open", "accepted", "confirmed", "executed"]
        assert db.confirm_state(quote.id) == ConfirmState.CONFIRMED
        assert db.claim_confirm(quote.id, 0) is False  # never twice, even from a new process
        [fill] = db.fills(T1)
        [exchange_fill] = env.exchange.fills(BOT)
        assert (fill.trade_id, fill.count_centi, fill.yes_price_micros, fill.fee_micros,
                fill.outcome_side, fill.is_taker) == (
            exchange_fill.trade_id, 300, 480_000, exchange_fill.fee_micros, "yes", False)


async def test_an_accept_that_beats_our_create_response_is_still_confirmed(
        tmp_path: Path) -> None:
    # The simulator holds each create-quote response until the quote is accepted, so the
    # accept notice reaches the service before the id of the quote it accepts (Kalshi §0a).
    async with sim_env(tmp_path) as env:
        env.faults.injector.apply(FaultConfig(quote_response_hold_ms=10_000))
        svc = env.service()
        async with running_service(svc):
            rfq_id = env.rfq(T1, contracts_centi=200)
            await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="the bot's quote")
            [quote] = bot_quotes(env.exchange, rfq_id)
            assert quote.id not in svc.runtime.open_quotes  # its create response is held
            env.exchange.accept_quote(REQ, rfq_id, quote.id, Side.YES)
            await until(lambda: env.exchange.get_quote(quote.id).status
                        == QuoteStatus.EXECUTED, what="the confirm and execution")
            await until(lambda: svc.hooks.counts["fills"] >= 1
                        and not svc.engine.ledger.provisional_keys(T1), what="the fill booked")
            assert confirm_posts(env.faults, quote.id) == 1
            assert svc.positions_centi() == {T1: 200}
            assert compare_with_exchange(svc, env.exchange, BOT, env.start_balance_micros) == []
            counts = svc.snapshot().counts
            assert (counts["quoted"], counts["accepted"], counts["confirmed"]) == (1, 1, 1)


FEE_SERIES_YAML = """
version: 1
strategies:
  - name: thin
    match: {series: [KXFEE, KXFREE]}
    pricer:
      name: fixed
      params:
        edge_dollars: "0.01"
        fair_yes_dollars: {KXFEE-26DEC31-A: "0.50", KXFREE-26DEC31-A: "0.50"}
"""


async def test_last_look_uses_each_series_fee_terms(tmp_path: Path) -> None:
    # Two series, one 1-cent edge: a x3 maker fee ($0.0131 a contract at $0.49) eats it, a
    # series with no maker fee does not. The fee terms are only on GET /series/{ticker}.
    async with sim_env(tmp_path, config_yaml=FEE_SERIES_YAML) as env:
        env.exchange.add_series(SimSeries(
            "KXFEE", fees=FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES, Fraction(3))))
        env.exchange.add_series(SimSeries("KXFREE", fees=FeeSchedule(FeeType.QUADRATIC)))
        close_ms = env.clock.wall_ns() // 1_000_000 + 24 * 3600 * 1000
        for series in ("KXFEE", "KXFREE"):
            t = f"{series}-26DEC31-A"
            env.exchange.add_market(SimMarket(t, f"{series}-26DEC31", series, t,
                                              grid_for_structure("linear_cent"),
                                              close_ts_ms=close_ms))
        svc = env.service()
        async with running_service(svc):
            outcome: dict[str, tuple[str, str, str]] = {}
            for series in ("KXFEE", "KXFREE"):
                t = f"{series}-26DEC31-A"
                rfq_id = env.rfq(t, contracts_centi=100)
                await until(lambda r=rfq_id: bool(bot_quotes(env.exchange, r)), what="a quote")  # type: ignore[misc]
                [quote] = bot_quotes(env.exchange, rfq_id)
                assert (quote.yes_bid_micros, quote.no_bid_micros) == (490_000, 490_000)
                await until(lambda q=quote: q.id in svc.runtime.open_quotes, what="QuotePlaced")  # type: ignore[misc]
                env.exchange.accept_quote(REQ, rfq_id, quote.id, Side.YES)
                await until(lambda r=rfq_id: any(  # type: ignore[misc]
                    d.rfq_id == r and d.decision in ("confirmed", "declined")
                    for d in svc.hooks.recent_decisions), what="the last look")
                [d] = [d for d in svc.hooks.recent_decisions
                       if d.rfq_id == rfq_id and d.decision in ("confirmed", "declined")]
                outcome[series] = (d.decision, d.reason, quote.id)
            assert {s: o[:2] for s, o in outcome.items()} == {
                "KXFEE": ("declined", "edge"), "KXFREE": ("confirmed", "edge_ok")}
            free, fee = outcome["KXFREE"][2], outcome["KXFEE"][2]
            await until(lambda: env.exchange.get_quote(free).status != QuoteStatus.ACCEPTED,
                        what="the confirm")
            assert confirm_posts(env.faults, free) == 1
            assert confirm_posts(env.faults, fee) == 0
            assert env.exchange.get_quote(fee).status == QuoteStatus.ACCEPTED


async def test_quotes_we_could_not_pay_for_are_not_sent(tmp_path: Path) -> None:
    # $30 of cash: a 100-contract quote at $0.48 could take $48.44 if hit; 10 contracts fit.
    async with sim_env(tmp_path, bot_balance_micros=30_000_000) as env:
        svc = env.service()
        async with running_service(svc):
            await until(lambda: svc.engine.records.cash_micros == 30_000_000,
                        what="the balance read by the first reconciliation")
            big = env.rfq(T1, contracts_centi=10_000)
            await until(lambda: any(d.rfq_id == big for d in svc.hooks.recent_decisions),
                        what="the decision on the big RFQ")
            [d] = [d for d in svc.hooks.recent_decisions if d.rfq_id == big]
            assert (d.decision, d.reason) == ("not_quoted", "risk:insufficient_balance")
            small = env.rfq(T2, contracts_centi=1_000)
            await until(lambda: bool(bot_quotes(env.exchange, small)), what="the small quote")
            assert bot_quotes(env.exchange, big) == []


def _transport_chain(svc: Service) -> list[type[object]]:
    """The REST client's transport and every transport it wraps, outermost first."""
    chain: list[type[object]] = []
    transport: object = svc.rest._client._transport
    while transport is not None:
        chain.append(type(transport))
        transport = getattr(transport, "_inner", None)
    return chain


@pytest.mark.parametrize("lean", [True, False])
async def test_rest_goes_through_the_transport_the_lean_http_setting_picks(
    tmp_path: Path, lean: bool
) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service(env.settings(lean_http=lean))
        inner = LeanTransport if lean else httpx.AsyncHTTPTransport
        assert _transport_chain(svc) == [HaltGate, RecordingTransport, inner]
        async with running_service(svc):
            rfq_id = env.rfq(T1)
            await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="the bot's quote")
