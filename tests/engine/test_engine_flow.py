"""Engine behaviour, path by path, on explicit engine time with real config and real pricers."""

from __future__ import annotations

from typing import ClassVar

import pytest
from engine_fixtures import (
    BOOK_MID,
    MS,
    T2,
    Harness,
    T,
    config,
    decisions,
    market,
    of,
)

from quoter.config import ModuleRef
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import ComboLeg, MarketStatus, Side
from quoter.engine.lifecycle import QuoteState
from strategies import registry
from strategies.base import Decline, Overlay, Pricer, Pricing, PricingInput

# --- RFQ -> quote ---------------------------------------------------------------------------


def test_rfq_on_a_known_market_is_quoted_at_once() -> None:
    h = Harness()
    h.ready()
    out = h.rfq()
    (sub,) = of(out, C.SubmitQuote)
    assert (sub.yes_bid_micros, sub.no_bid_micros) == (480_000, 480_000)
    assert sub.fair_yes_micros == 500_000
    assert sub.strategy == "main"
    assert sub.rest_remainder is False
    assert decisions(out) == [("quoted", "quoted")]
    # A quiet book is not stale by default: no age timer is armed.
    assert not [c for c in out if isinstance(c, C.ScheduleTimer) and c.key.startswith("stale")]


def test_rfq_on_an_unknown_market_is_parked_then_quoted_when_book_arrives() -> None:
    h = Harness()
    out = h.rfq()
    assert out == [
        C.FetchMarket(T), C.SubscribeMarkets((T,)), C.ScheduleTimer("pending:r1", h.now + 2000 * MS)
    ]
    assert h.load() == []  # metadata alone is not enough: no book yet
    out = h.snapshot()
    assert C.CancelTimer("pending:r1") in out
    assert len(of(out, C.SubmitQuote)) == 1
    assert decisions(out) == [("quoted", "quoted")]


def test_parked_rfq_times_out_with_no_market_or_no_book() -> None:
    h = Harness()
    h.rfq("r1")
    h.advance_ms(2000)
    assert decisions(h.send(E.TimerFired("pending:r1", h.now))) == [("not_quoted", "no_market")]
    h.load()
    h.rfq("r2")
    assert decisions(h.send(E.TimerFired("pending:r2", h.now))) == [("not_quoted", "no_book")]
    # A late timer for an RFQ no longer waiting does nothing.
    assert h.send(E.TimerFired("pending:r2", h.now)) == []


def test_market_load_failure_drops_parked_rfqs() -> None:
    h = Harness()
    h.rfq()
    out = h.send(E.MarketLoadFailed(T, "404", h.now))
    assert decisions(out) == [("not_quoted", "no_market")]
    assert C.CancelTimer("pending:r1") in out


def test_parking_is_bounded() -> None:
    h = Harness(max_pending=1)
    h.rfq("r1")
    assert decisions(h.rfq("r2")) == [("not_quoted", "rate_budget")]


def test_routing_reason_codes() -> None:
    h = Harness(config(match="{series: [KXTEST], max_contracts: 50}"))
    h.ready()
    h.ready("OTHER-1-A")
    assert decisions(h.rfq("r1", "OTHER-1-A")) == [("not_quoted", "no_route")]
    assert decisions(h.rfq("r2", T, 10_000)) == [("not_quoted", "filtered:contracts")]
    assert decisions(h.rfq("r3", T, 5_000)) == [("quoted", "quoted")]


def test_market_status_filter_applies_once_metadata_is_known() -> None:
    h = Harness()
    h.ready(m=market(status=MarketStatus.CLOSED))
    assert decisions(h.rfq()) == [("not_quoted", "filtered:market_status")]


def test_stale_book_and_missing_fair_value_are_declined_with_reasons() -> None:
    h = Harness(config(lifecycle="{book_stale_after_ms: 30000}"))  # the opt-in age limit
    h.ready()
    h.advance_ms(30_000)
    assert decisions(h.rfq("r1")) == [("not_quoted", "stale_book")]
    h.ready(T2)
    h.ready("KXTEST-26JAN01-C")
    assert decisions(h.rfq("r2", "KXTEST-26JAN01-C")) == [
        ("not_quoted", "pricer_declined:no_fair_value")
    ]


class _Boom:
    """A pricer that always raises."""

    name: ClassVar[str] = "boom"

    def price(self, inp: PricingInput) -> Pricing | Decline:
        raise ZeroDivisionError("bad model")


def _factory(pricer: Pricer) -> object:
    def build(ref: ModuleRef) -> Pricer | Overlay:
        return pricer if ref.name == "fixed" else registry.build(ref.name, ref.params)

    return build


def test_pricer_exception_becomes_pricer_error() -> None:
    h = Harness(pricers=_factory(_Boom()))
    h.ready()
    out = h.rfq()
    assert decisions(out) == [("not_quoted", "pricer_error")]
    assert "bad model" in of(out, C.RecordDecision)[0].detail


def test_pricer_over_budget_becomes_pricer_timeout() -> None:
    ticks = iter(range(0, 10**9, 3_000_000))  # every perf_ns() read is 3 ms later
    h = Harness(perf_ns=lambda: next(ticks))
    h.ready()
    assert decisions(h.rfq()) == [("not_quoted", "pricer_timeout")]


def test_risk_limit_stops_a_quote() -> None:
    h = Harness(config(risk="{max_position_contracts_per_market: 50}"))
    h.ready()
    assert decisions(h.rfq()) == [("not_quoted", "risk:max_position_per_market")]


def test_max_open_quotes() -> None:
    h = Harness(config(risk="{max_open_quotes: 1}"))
    h.ready()
    h.ready(T2)
    assert decisions(h.rfq("r1")) == [("quoted", "quoted")]
    assert decisions(h.rfq("r2", T2)) == [("not_quoted", "risk:max_open_quotes")]


def test_duplicate_rfq_is_ignored() -> None:
    h = Harness()
    h.ready()
    h.rfq()
    assert decisions(h.rfq()) == [("ignored", "duplicate_rfq")]


# --- quotes: placement, replacement, cancellation ---------------------------------------------


def test_replace_needs_tolerance_and_interval() -> None:
    h = Harness(config(pricer=BOOK_MID, lifecycle="{min_replace_interval_ms: 250}"))
    h.ready(bid=480_000, ask=520_000)
    h.quote()
    # Mid moves 0.5 cent: below the 1 cent tolerance.
    h.advance_ms(300)
    assert of(h.snapshot(bid=490_000, ask=520_000), C.SubmitQuote) == []
    # Mid moves 2 cents but only 100 ms after... the last submit was 300 ms ago, so it goes.
    out = h.snapshot(bid=520_000, ask=540_000)
    (sub,) = of(out, C.SubmitQuote)
    assert sub.fair_yes_micros == 530_000
    assert sub.yes_bid_micros == 510_000
    assert decisions(out) == [("requoted", "fair_moved")]
    # Another big move within 250 ms of that submit: held back, and a timer looks again later.
    h.advance_ms(100)
    out = h.snapshot(bid=440_000, ask=460_000)
    assert of(out, C.SubmitQuote) == []
    assert out == [C.ScheduleTimer("replace:r1", h.now + 150 * MS)]
    h.placed("r1", "q2")
    assert h.engine.quotes["q1"].state is QuoteState.REPLACED
    assert h.engine.quotes["q2"].state is QuoteState.OPEN
    h.advance_ms(150)
    (sub,) = of(h.send(E.TimerFired("replace:r1", h.now)), C.SubmitQuote)
    assert sub.fair_yes_micros == 450_000


def test_replace_racing_an_accept_uses_the_accepted_quotes_prices() -> None:
    h = Harness(config(pricer=BOOK_MID))
    h.ready(bid=480_000, ask=520_000)
    h.quote()  # q1: fair 0.50, yes 0.48, no 0.48
    h.advance_ms(300)
    (sub,) = of(h.snapshot(bid=440_000, ask=460_000), C.SubmitQuote)  # fair 0.45
    assert (sub.yes_bid_micros, sub.no_bid_micros) == (430_000, 530_000)
    h.placed("r1", "q2")
    # The requester had hit q1's YES side before our replace landed: at fair 0.45 buying YES at
    # 0.48 is a loss, so we decline even though q2 would have been fine.
    out = h.accept("q1", Side.YES)
    assert of(out, C.ConfirmQuote) == []
    assert decisions(out) == [("declined", "edge")]
    assert "bid=480000" in of(out, C.RecordDecision)[0].detail


def test_replace_race_accept_on_other_side_confirms_at_old_price() -> None:
    h = Harness(config(pricer=BOOK_MID))
    h.ready(bid=480_000, ask=520_000)
    h.quote()
    h.advance_ms(300)
    h.snapshot(bid=440_000, ask=460_000)
    h.placed("r1", "q2")
    out = h.accept("q1", Side.NO, size=5_000)  # buy NO at q1's 0.48; fair NO is now 0.55
    assert of(out, C.ConfirmQuote) == [C.ConfirmQuote("r1", "q1", h.now + 29_800 * MS)]
    assert h.engine.ledger.provisional_centi(T) == -5_000
    q1 = h.engine.quotes["q1"]
    assert (q1.state, q1.no_bid_micros, q1.size_centi) == (QuoteState.CONFIRMING, 480_000, 5_000)


def test_quote_rejected_is_recorded() -> None:
    h = Harness()
    h.ready()
    h.rfq()
    out = h.send(E.QuoteRejected("r1", "invalid_parameters", "off grid", h.now))
    assert decisions(out) == [("rejected", "invalid_parameters")]


def test_cancel_before_close() -> None:
    h = Harness()
    close_ms = (h.now // MS) + 3_600_000
    h.ready(m=market(close_ts_ms=close_ms))
    out = h.rfq()
    fire = (close_ms - 60_000) * MS
    assert C.ScheduleTimer(f"close:{T}", fire) in out
    h.placed()
    h.now = fire
    out = h.send(E.TimerFired(f"close:{T}", h.now))
    assert of(out, C.CancelQuote) == [C.CancelQuote("r1", "q1", "market_closing")]
    # Closer than cancel_before_close: not quoted at all.
    assert decisions(h.rfq("r2")) == [("not_quoted", "filtered:time_to_close")]


def test_stale_book_pulls_quotes() -> None:
    h = Harness(config(lifecycle="{book_stale_after_ms: 30000}"))  # the opt-in age limit
    h.ready()
    h.quote()
    h.advance_ms(10_000)
    h.delta()  # book moves: not stale yet at the first timer
    h.advance_ms(20_000)
    out = h.send(E.TimerFired(f"stale:{T}", h.now))
    assert of(out, C.CancelQuote) == []
    assert of(out, C.ScheduleTimer) == [C.ScheduleTimer(f"stale:{T}", h.now + 10_000 * MS)]
    h.advance_ms(10_000)
    out = h.send(E.TimerFired(f"stale:{T}", h.now))
    assert of(out, C.CancelQuote) == [C.CancelQuote("r1", "q1", "stale_book")]
    h.send(E.QuoteCancelled("r1", "q1", h.now))
    assert h.engine.quotes["q1"].state is QuoteState.CANCELLED


def test_sequence_gap_clears_book_resnapshots_and_pulls_quotes() -> None:
    h = Harness()
    h.ready(seq=1, sid=7)
    h.quote()
    assert of(h.delta(seq=2, sid=7), C.CancelQuote) == []
    out = h.delta(seq=4, sid=7)
    assert C.RequestBookSnapshot(T) in out
    assert of(out, C.CancelQuote) == [C.CancelQuote("r1", "q1", "book_gap")]
    assert h.engine.md.books[T].is_empty
    # A new RFQ waits for the fresh snapshot we asked for, then is quoted (once the pulled
    # quote is gone: until then it could still be hit, and counts against the limits).
    assert of(h.rfq("r2"), C.ScheduleTimer) == [C.ScheduleTimer("pending:r2", h.now + 2000 * MS)]
    h.send(E.QuoteCancelled("r1", "q1", h.now))
    assert decisions(h.snapshot(seq=9, sid=7)) == [("quoted", "quoted")]


def test_quote_placed_after_a_pull_is_cancelled_at_once() -> None:
    h = Harness()
    h.ready(seq=1, sid=7)
    h.rfq()
    h.delta(seq=5, sid=7)  # gap while our SubmitQuote is in flight
    out = h.placed()
    assert out == [C.CancelQuote("r1", "q1", "book_gap")]


def test_rfq_deleted_kills_the_quote_silently() -> None:
    h = Harness()
    h.ready()
    h.quote()
    assert h.send(E.RfqDeleted("r1", T, h.now)) == []
    assert "r1" not in h.engine.rfqs
    assert "q1" not in h.engine.quotes
    assert decisions(h.accept("q1")) == [("ignored", "unknown_quote")]


# --- last look ------------------------------------------------------------------------------


def test_accept_confirms_with_deadline_and_timer() -> None:
    h = Harness()
    h.ready()
    h.quote()
    ts = h.now
    h.advance_ms(5)
    out = h.accept(ts_ns=ts)
    deadline = ts + (30_000 - 200) * MS
    assert out[:2] == [
        C.ConfirmQuote("r1", "q1", deadline), C.ScheduleTimer("confirm:q1", deadline)
    ]
    assert decisions(out) == [("confirmed", "edge_ok")]
    assert h.engine.ledger.provisional_centi(T) == 10_000


def test_hvm_market_uses_the_short_window() -> None:
    h = Harness()
    h.ready(m=market(is_hvm=True))
    h.quote()
    (conf,) = of(h.accept(), C.ConfirmQuote)
    assert conf.deadline_ns == h.now + (3_000 - 200) * MS


@pytest.mark.parametrize(("declared", "window_ms"), [
    ("[KXTEST-26JAN01-*]", 3_000), ('["*"]', 3_000), ("[KXOTHER*]", 30_000), ("[]", 30_000),
])
def test_a_market_the_operator_declares_hvm_uses_the_short_window(
    declared: str, window_ms: int
) -> None:
    # No documented field marks a single market HVM: ``lifecycle.hvm_markets`` does.
    h = Harness(config(lifecycle=f"{{hvm_markets: {declared}}}"))
    h.ready()
    h.quote()
    ts = h.now
    (conf,) = of(h.accept(ts_ns=ts), C.ConfirmQuote)
    assert conf.deadline_ns == ts + (window_ms - 200) * MS


def test_accept_past_the_deadline_is_never_confirmed() -> None:
    h = Harness()
    h.ready()
    h.quote()
    ts = h.now
    h.advance_ms(29_800)
    out = h.accept(ts_ns=ts)
    assert of(out, C.ConfirmQuote) == []
    assert decisions(out) == [("declined", "confirm_deadline_passed")]
    assert h.engine.ledger.provisional_centi(T) == 0


def test_accept_for_unknown_quote_only_records() -> None:
    h = Harness()
    h.ready()
    assert h.accept("nope") == [
        C.RecordDecision("r1", T, "ignored", "unknown_quote", quote_id="nope")
    ]


def test_accept_size_is_the_accepted_size_and_risk_applies() -> None:
    h = Harness(config(risk="{max_position_contracts_per_market: 150}"))
    h.ready()
    h.quote("r1", "q1")
    out = h.accept(size=6_000)
    assert len(of(out, C.ConfirmQuote)) == 1
    assert h.engine.quotes["q1"].size_centi == 6_000
    # 60 committed long: 100 more fits on the NO side only (160 > 150 on the YES side).
    (sub,) = of(h.rfq("r2"), C.SubmitQuote)
    assert sub.yes_bid_micros == 0
    assert sub.no_bid_micros > 0
    h.placed("r2", "q2")
    # 200 NO bought elsewhere since (a fill no quote of ours made): 60 - 200 = -140 committed,
    # and q2's NO side would take it to -240. Risk is checked again at last look.
    h.fill("x1", "o-elsewhere", Side.NO, 500_000, 20_000)
    out = h.accept("q2", Side.NO, rfq_id="r2")
    assert decisions(out) == [("declined", "risk:max_position_per_market")]


def test_last_look_min_edge() -> None:
    h = Harness(config(lifecycle='{last_look_min_edge_dollars: "0.03"}'))
    h.ready()
    h.quote()
    assert decisions(h.accept()) == [("declined", "edge")]


def test_confirm_timer_while_confirm_unanswered_keeps_exposure() -> None:
    h = Harness()
    h.ready()
    h.quote()
    (conf,) = of(h.accept(), C.ConfirmQuote)
    h.now = conf.deadline_ns
    out = h.send(E.TimerFired("confirm:q1", h.now))
    assert decisions(out) == [("confirm_unanswered", "confirm_deadline_passed")]
    assert h.engine.ledger.provisional_centi(T) == 10_000
    out = h.send(E.ConfirmFailed("r1", "q1", "expired", "too late", h.now))
    assert decisions(out) == [("confirm_failed", "expired")]
    assert h.engine.ledger.provisional_centi(T) == 0
    assert h.engine.quotes["q1"].state is QuoteState.EXPIRED


def test_full_path_confirm_execute_fill_reconcile() -> None:
    h = Harness()
    h.ready()
    h.quote()
    h.accept(side=Side.NO)
    assert h.send(E.QuoteConfirmed("r1", "q1", h.now)) == [C.CancelTimer("confirm:q1")]
    out = h.send(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
    assert C.ScheduleTimer("exec:q1", h.now + 10_000 * MS) in out
    # The exchange's position report can run ahead of our fills: no halt while in flight.
    out = h.send(E.PositionReported(T, -10_000, h.now))
    assert decisions(out) == [("reconcile_deferred", "fills_in_flight")]
    h.fill("t1", "o1", Side.NO, 520_000, 10_000)  # bought NO at 0.48 (yes price 0.52)
    assert h.engine.ledger.position_centi(T) == -10_000
    assert h.engine.ledger.provisional_centi(T) == 0
    assert h.engine.ledger.market(T).cost_micros == 48_000_000
    assert h.send(E.PositionReported(T, -10_000, h.now)) == []
    out = h.send(E.PositionReported(T, -9_000, h.now))
    (halt,) = of(out, C.Halt)
    assert "ours=-10000" in halt.reason
    assert "exchange=-9000" in halt.reason
    assert h.engine.halted


def test_fill_before_quote_executed_is_joined_later() -> None:
    h = Harness()
    h.ready()
    h.quote()
    h.accept(side=Side.YES)
    h.fill("t1", "o1", Side.YES, 480_000, 10_000)
    assert h.engine.ledger.provisional_centi(T) == 10_000  # not joined yet
    h.send(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
    assert h.engine.ledger.provisional_centi(T) == 0
    assert h.engine.ledger.position_centi(T) == 10_000


def test_partial_execution_residual_released_after_grace() -> None:
    h = Harness()
    h.ready()
    h.quote()
    h.accept(side=Side.YES)
    h.send(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
    h.fill("t1", "o1", Side.YES, 480_000, 4_000)
    assert h.engine.ledger.provisional_centi(T) == 6_000
    h.advance_ms(10_000)
    h.send(E.TimerFired("exec:q1", h.now))
    assert h.engine.ledger.provisional_centi(T) == 0


# --- halts ------------------------------------------------------------------------------------


def test_kill_switch_cancels_and_blocks_until_resumed() -> None:
    h = Harness()
    h.ready()
    h.ready(T2)
    h.quote("r1", "q1")
    h.quote("r2", "q2", T2)
    h.rfq("r3", "KXTEST-26JAN01-Z")  # parked
    out = h.send(E.KillSwitchChanged(True, "operator", h.now))
    assert of(out, C.CancelQuote) == [
        C.CancelQuote("r1", "q1", "halted"), C.CancelQuote("r2", "q2", "halted")
    ]
    assert ("not_quoted", "halted") in decisions(out)
    assert decisions(h.rfq("r4")) == [("not_quoted", "halted")]
    # The requester hit q1 before our cancel landed: no confirm while halted.
    out = h.accept("q1")
    assert of(out, C.ConfirmQuote) == []
    assert decisions(out) == [("declined", "halted")]
    h.send(E.KillSwitchChanged(False, "operator", h.now))
    assert decisions(h.rfq("r5")) == [("quoted", "quoted")]


def test_kill_switch_during_a_pending_confirm() -> None:
    h = Harness()
    h.ready()
    h.quote()
    assert len(of(h.accept(), C.ConfirmQuote)) == 1
    out = h.send(E.KillSwitchChanged(True, "operator", h.now))
    assert of(out, C.CancelQuote) == []  # nothing live: q1 is being confirmed
    # The runtime will not send a confirm while halted; it reports the confirm as failed.
    out = h.send(E.ConfirmFailed("r1", "q1", "halted", "not sent", h.now))
    assert decisions(out) == [("confirm_failed", "halted")]
    assert h.engine.ledger.provisional_centi(T) == 0


def test_daily_loss_stop_halts() -> None:
    h = Harness(config(risk='{daily_loss_stop_dollars: "10"}'))
    h.ready()
    h.fill("t1", "o9", Side.YES, 900_000, 10_000)   # buy 100 YES at 0.90
    out = h.fill("t2", "o9", Side.NO, 900_000, 10_000)  # buy 100 NO at 0.10: pair = $1
    assert of(out, C.Halt) == []  # realised 100 * (1 - 0.9 - 0.1) = 0
    h.fill("t3", "o9", Side.YES, 900_000, 10_000)
    out = h.fill("t4", "o9", Side.NO, 800_000, 10_000)  # NO at 0.20: lose 0.10 x 100 = $10
    (halt,) = of(out, C.Halt)
    assert halt.reason.startswith("daily_loss_stop")
    assert h.engine.halted


# --- config reload and combos ---------------------------------------------------------------------


def test_config_reload_applies_to_new_rfqs_only() -> None:
    h = Harness()
    h.ready()
    h.quote()
    new = config(
        pricer='fixed, params: {edge_dollars: "0.05", fair_yes_dollars: {KXTEST-26JAN01-A: "0.50"}}'
    )
    assert decisions(h.send(E.ConfigReloaded(new, h.now))) == [("config_applied", "reloaded")]
    (sub,) = of(h.rfq("r2"), C.SubmitQuote)
    assert sub.yes_bid_micros == 450_000
    assert h.engine.quotes["q1"].yes_bid_micros == 480_000
    out = h.send(E.ConfigReloaded("junk", h.now))
    assert decisions(out) == [("config_rejected", "not_a_config")]


def test_combo_rfq_waits_for_leg_books_and_uses_the_hvm_window() -> None:
    combo_t = "KXMVECOMBO-1-X"
    legs = (ComboLeg("KXTEST-26JAN01", T, Side.YES), ComboLeg("KXTEST-26JAN01", T2, Side.NO))
    h = Harness(config(pricer='combo, params: {edge_dollars: "0.01"}', match="{kind: combo}"))
    out = h.rfq("c1", combo_t, legs=legs, mve_collection_ticker="KXMVECOLL")
    assert of(out, C.FetchMarket) == [C.FetchMarket(combo_t), C.FetchMarket(T), C.FetchMarket(T2)]
    assert of(out, C.SubscribeMarkets) == [C.SubscribeMarkets((combo_t, T, T2))]
    h.load(market(combo_t, legs=legs))
    h.ready(T, bid=490_000, ask=510_000)
    assert of(h.log, C.SubmitQuote) == []
    h.ready(T2, bid=290_000, ask=310_000)
    (sub,) = of(h.log, C.SubmitQuote)
    assert sub.market_ticker == combo_t
    assert sub.fair_yes_micros > 0
    h.placed("c1", "cq1")
    (conf,) = of(h.accept("cq1", Side.NO, rfq_id="c1", ticker=combo_t), C.ConfirmQuote)
    assert conf.deadline_ns == h.now + 2_800 * MS


def test_halt_cancels_a_newer_quote_on_an_rfq_whose_older_quote_is_confirming() -> None:
    h = Harness(config(pricer=BOOK_MID))
    h.ready(bid=480_000, ask=520_000)
    h.quote()
    h.advance_ms(300)
    h.snapshot(bid=500_000, ask=540_000)  # fair 0.52: replace
    h.placed("r1", "q2")
    assert len(of(h.accept("q1", Side.YES), C.ConfirmQuote)) == 1  # edge 0.52 - 0.48
    out = h.send(E.KillSwitchChanged(True, "operator", h.now))
    assert of(out, C.CancelQuote) == [C.CancelQuote("r1", "q2", "halted")]
    assert h.engine.quotes["q1"].state is QuoteState.CONFIRMING


def test_market_closing_event_pulls_quotes_and_settlement_books_pnl() -> None:
    h = Harness()
    h.ready()
    h.quote()
    out = h.send(E.MarketLifecycleChanged(T, "deactivated", h.now, is_deactivated=True))
    assert of(out, C.CancelQuote) == [C.CancelQuote("r1", "q1", "market_paused")]
    assert decisions(h.rfq("r2")) == [("not_quoted", "filtered:market_status")]
    h.fill("t1", "o1", Side.YES, 400_000, 1_000)
    h.send(E.MarketLifecycleChanged(T, "settled", h.now, result="yes"))
    assert h.engine.ledger.position_centi(T) == 0
    assert h.engine.ledger.realized_pnl_micros() == 6_000_000


def _script(h: Harness) -> None:
    h.rfq("r0")
    h.ready(seq=1, sid=2)
    h.placed("r0", "q0")
    h.quote("r1", "q1")
    h.advance_ms(400)
    h.delta(seq=2, sid=2)
    h.accept("q1", Side.NO)
    h.delta(seq=5, sid=2)
    h.send(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
    h.fill("t1", "o1", Side.NO, 520_000, 10_000)
    h.send(E.PositionReported(T, -10_000, h.now))
    h.send(E.KillSwitchChanged(True, "stop", h.now))


def test_same_events_give_identical_commands() -> None:
    a, b = Harness(config(pricer=BOOK_MID)), Harness(config(pricer=BOOK_MID))
    _script(a)
    _script(b)
    assert a.log == b.log
    assert len(a.log) > 10


def test_parked_rfq_is_routed_again_when_metadata_arrives() -> None:
    h = Harness(config(match="{series: [KXTEST]}"))
    h.rfq("r1", "ODD-26-A")  # series unknown until the market loads
    out = h.load(market("ODD-26-A"))
    assert decisions(out) == [("not_quoted", "no_route")]
    assert C.CancelTimer("pending:r1") in out
