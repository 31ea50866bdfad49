"""Booking is all or nothing; values Kalshi never sends are refused at the edge (item 3)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from engine_fixtures import Harness, T, of
from hypothesis import given, settings
from hypothesis import strategies as st

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.money import MoneyError
from quoter.domain.types import BookSide, Side
from quoter.engine.positions import PositionLedger
from quoter.errors import DecodeError
from quoter.kalshi.decode import decode
from quoter.kalshi.rest_models import Fill
from quoter.service.reconcile import fill_event

GOOD = E.FillReceived("t1", "o1", T, Side.YES, BookSide.BID, 480_000, 300, 0, False, 1)


def _ledger_with_a_position() -> PositionLedger:
    ledger = PositionLedger()
    ledger.book_fill(dataclasses.replace(GOOD, trade_id="t0", count_centi=500))
    return ledger


@pytest.mark.parametrize("bad", [
    # Off the $0.0001 grid: 0.123457 x 1.01 is not exact in micro-dollars (the case).
    {"yes_price_micros": 123_457, "count_centi": 101, "outcome_side": Side.NO},
    # Closing part of a position at an off-grid price: the split is what was inexact.
    {"yes_price_micros": 123_457, "count_centi": 700, "outcome_side": Side.NO},
    {"count_centi": 0}, {"count_centi": -100}, {"fee_micros": -1},
    {"yes_price_micros": 0}, {"yes_price_micros": 1_000_000}, {"ts_ms": -5},
    {"trade_id": ""},
])
def test_a_fill_kalshi_never_sends_changes_nothing(bad: dict[str, object]) -> None:
    ledger = _ledger_with_a_position()
    before = ledger.snapshot()
    fill = dataclasses.replace(GOOD, **bad)  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        ledger.book_fill(fill)
    assert ledger.snapshot() == before
    # The trade id was not taken: a good copy of the same trade (REST) still books.
    if fill.trade_id:
        assert ledger.book_fill(dataclasses.replace(GOOD, trade_id=fill.trade_id))


def test_settlement_above_a_dollar_is_refused_and_changes_nothing() -> None:
    ledger = _ledger_with_a_position()
    before = ledger.snapshot()
    for value in (1_000_001, -1):
        with pytest.raises(MoneyError):
            ledger.settle(T, value)
    assert ledger.snapshot() == before
    assert ledger.settle(T, 1_000_000) == 500 * 1_000_000 // 100 - 2_400_000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Side.YES, Side.NO]),
                          st.integers(1, 9_999).map(lambda p: p * 100),
                          st.integers(1, 2_000), st.integers(0, 50_000)), max_size=12),
       st.integers(1, 999_999), st.integers(1, 2_000))
def test_any_rejected_fill_leaves_the_ledger_as_it_was(
    fills: list[tuple[Side, int, int, int]], bad_price: int, count: int
) -> None:
    ledger = PositionLedger()
    for i, (side, price, qty, fee) in enumerate(fills):
        ledger.book_fill(E.FillReceived(f"t{i}", "o", T, side, BookSide.BID, price, qty, fee,
                                        False, 1))
    before = ledger.snapshot()
    fill = dataclasses.replace(GOOD, trade_id="x", yes_price_micros=bad_price,
                               count_centi=count, outcome_side=Side.NO)
    try:
        ledger.book_fill(fill)
    except MoneyError:
        assert ledger.snapshot() == before
        assert bad_price % 100


# --- at the edge: the decoders refuse them with a typed error --------------------------------


def _fill_frame(**msg: object) -> str:
    body = {"trade_id": "t9", "order_id": "o9", "market_ticker": T, "side": "yes",
            "action": "buy", "outcome_side": "yes", "book_side": "bid",
            "yes_price_dollars": "0.4800", "count_fp": "1.00", "fee_cost": "0.0000",
            "is_taker": False, "ts": 1_700_000_000, **msg}
    return json.dumps({"type": "fill", "sid": 2, "seq": 1, "msg": body})


@pytest.mark.parametrize("msg", [
    {"yes_price_dollars": "0.123457", "count_fp": "1.01"}, {"count_fp": "0.00"},
    {"count_fp": "-1.00"}, {"fee_cost": "-0.0100"}, {"ts": -1},
])
def test_the_fill_decoder_refuses_impossible_values(msg: dict[str, object]) -> None:
    assert [type(e).__name__ for e in decode(_fill_frame(), 1)[1]] == ["FillReceived"]
    with pytest.raises(DecodeError) as info:
        decode(_fill_frame(**msg), 1)
    assert (info.value.reason, info.value.msg_type) == ("bad_value", "fill")


def test_a_settlement_above_a_dollar_is_refused_by_the_decoder() -> None:
    frame = {"type": "market_lifecycle_v2", "sid": 4, "seq": 1, "msg": {
        "market_ticker": T, "event_type": "settled", "result": "yes",
        "settlement_value": "1.5000"}}
    with pytest.raises(DecodeError) as info:
        decode(json.dumps(frame), 1)
    assert info.value.reason == "bad_value"


def test_a_rest_fill_with_a_negative_fee_is_refused() -> None:
    fill = Fill(order_id="o1", count_centi=100, yes_price_micros=480_000, trade_id="t1",
                market_ticker=T, outcome_side=Side.YES, fee_cost_micros=-10_000)
    with pytest.raises(DecodeError) as info:
        fill_event(fill, 1)
    assert info.value.reason == "bad_value"


# --- reconciliation compares the money, not only the position ----------------------------------


def test_a_fee_or_cost_mismatch_is_recorded_and_counted_but_does_not_halt() -> None:
    h = Harness()
    h.ready()
    h.fill("t1", "o1", Side.YES, 480_000, 300, fee=1_700)
    # Position and money agree: quiet.
    assert h.send(E.PositionReported(T, 300, h.now, position_cost_micros=1_440_000,
                                     fees_paid_micros=1_700)) == []
    out = h.send(E.PositionReported(T, 300, h.now, position_cost_micros=1_440_000,
                                    fees_paid_micros=1_800))
    assert of(out, C.Halt) == []
    [d] = of(out, C.RecordDecision)
    assert (d.decision, d.reason) == ("reconcile_mismatch", "fees_mismatch")
    assert d.detail == "ours=1700 exchange=1800 (micro-dollars)"
    out = h.send(E.PositionReported(T, 300, h.now, position_cost_micros=1_500_000,
                                    fees_paid_micros=1_700))
    [d] = of(out, C.RecordDecision)
    assert (d.decision, d.reason) == ("reconcile_mismatch", "cost_mismatch")
    assert not h.engine.halted
    # A position mismatch still halts.
    [halt] = of(h.send(E.PositionReported(T, 400, h.now)), C.Halt)
    assert halt.reason.startswith(f"position_mismatch {T}: ours=300 exchange=400")


def test_a_position_report_received_before_a_fill_we_booked_does_not_halt() -> None:
    """Found by the chaos soak: a ``market_position`` received before a fill (the fill came
    over REST, or overtook it in the engine's inbox) but stepped after it described the
    exchange before that fill. It was taken for a mismatch and halted quoting."""
    h = Harness()
    h.ready()
    report_recv_ns = h.now
    h.now += 1_000_000  # the fill is received 1 ms after the report...
    h.fill("t1", "o1", Side.YES, 480_000, 300)
    # ...and booked first: the report (position 0) is older than what we know.
    out = h.send(E.PositionReported(T, 0, report_recv_ns))
    assert of(out, C.Halt) == []
    [d] = of(out, C.RecordDecision)
    assert (d.decision, d.reason) == ("reconcile_deferred", "report_older_than_fills")
    assert not h.engine.halted
    # A report received after the fill is compared, and a real difference still halts.
    h.now += 1_000_000
    assert h.send(E.PositionReported(T, 300, h.now)) == []
    [halt] = of(h.send(E.PositionReported(T, 100, h.now)), C.Halt)
    assert halt.reason.startswith(f"position_mismatch {T}: ours=300 exchange=100")
