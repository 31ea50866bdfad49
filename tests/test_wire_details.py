"""Wire details Kalshi sends that a kind simulator does not: accepts without the quote's bids,
and legacy fill frames with no fee whose REST copy (with the fee) must not be lost."""

from __future__ import annotations

import json
from pathlib import Path

from quoter.domain.events import FillReceived, QuoteAccepted
from quoter.domain.types import BookSide, Side
from quoter.engine.positions import PositionLedger
from quoter.kalshi.translate import decode_events
from quoter.service.store import Store

TS = 1_000_000_007


def test_an_accept_without_the_quotes_bids_decodes() -> None:
    raw = json.dumps({"type": "quote_accepted", "sid": 1, "seq": 2, "msg": {
        "quote_id": "q1", "rfq_id": "r1", "market_ticker": "KXA-26-B", "accepted_side": "yes",
        "contracts_accepted_fp": "3.00"}})
    [event] = decode_events(raw, TS)
    assert isinstance(event, QuoteAccepted)
    assert (event.yes_bid_micros, event.no_bid_micros) == (None, None)
    assert (event.accepted_side, event.contracts_accepted_centi) == (Side.YES, 300)


def _legacy_fill() -> FillReceived:
    raw = json.dumps({"type": "fill", "msg": {
        "trade_id": "t1", "order_id": "o1", "market_ticker": "KXA-26-B", "is_taker": False,
        "side": "yes", "action": "buy", "yes_price": 48, "count": 3}})
    [event] = decode_events(raw, TS)
    assert isinstance(event, FillReceived)
    return event


def _rest_copy(fee_micros: int) -> FillReceived:
    return FillReceived("t1", "o1", "KXA-26-B", Side.YES, BookSide.BID, 480_000, 300,
                        fee_micros, False, TS)


def test_a_legacy_fill_frame_says_its_fee_is_unknown() -> None:
    fill = _legacy_fill()
    assert (fill.fee_micros, fill.fee_known) == (0, False)
    assert _rest_copy(1_300).fee_known


def test_the_rest_copy_of_a_legacy_fill_adds_its_fee_once() -> None:
    ledger = PositionLedger()
    assert ledger.book_fill(_legacy_fill())
    assert ledger.market("KXA-26-B").fees_micros == 0
    # The REST copy is the same trade: not booked again, but its fee is merged in.
    assert not ledger.book_fill(_rest_copy(1_300))
    assert ledger.merge_fee(_rest_copy(1_300))
    m = ledger.market("KXA-26-B")
    assert (m.position_centi, m.fees_micros) == (300, 1_300)
    assert ledger.realized_pnl_micros() == -1_300
    assert not ledger.merge_fee(_rest_copy(1_300))  # once
    # The merge survives a snapshot round trip.
    again = PositionLedger.restore(ledger.snapshot())
    assert not again.merge_fee(_rest_copy(1_300))
    assert again.market("KXA-26-B").fees_micros == 1_300


def test_a_ledger_snapshot_remembers_which_fees_are_still_unknown() -> None:
    ledger = PositionLedger()
    ledger.book_fill(_legacy_fill())
    restored = PositionLedger.restore(ledger.snapshot())
    assert restored.merge_fee(_rest_copy(1_300))
    assert restored.market("KXA-26-B").fees_micros == 1_300


def test_the_store_keeps_the_fee_the_rest_copy_brought(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as db:
        assert db.record_fill(_legacy_fill(), 1)
        assert not db.record_fill(_rest_copy(1_300), 2)  # not a second fill ...
        [row] = db.fills("KXA-26-B")
        assert row.fee_micros == 1_300  # ... but its fee is kept
        assert row.fee_known
        assert not db.record_fill(_legacy_fill(), 3)  # a late legacy copy changes nothing
        [row] = db.fills("KXA-26-B")
        assert row.fee_micros == 1_300
