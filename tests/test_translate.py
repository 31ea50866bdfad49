"""Wire frames -> domain events: exact values, and old and new field sets agree."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from quoter.domain.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    FillReceived,
    MarketLifecycleChanged,
    PositionReported,
    QuoteAccepted,
    QuoteCreated,
    QuoteExecuted,
    RfqDeleted,
    RfqReceived,
    TickerUpdated,
    TradeReported,
)
from quoter.domain.types import BookSide, ComboLeg, Side
from quoter.errors import DecodeError
from quoter.kalshi.schemas import decode_frame
from quoter.kalshi.translate import (
    decode_events,
    micros_from_centicents,
    rfc3339_to_ms,
    to_events,
)

FRAMES = Path(__file__).parent / "data" / "frames"
TS = 1_000_000_007


def _lines(name: str) -> list[bytes]:
    return [ln for ln in (FRAMES / name).read_bytes().splitlines() if ln.strip()]


def _one(raw: bytes | str, **kw: Any) -> Event:
    events = decode_events(raw, TS, **kw)
    assert len(events) == 1
    return events[0]


SEED = _lines("seed_communications.jsonl")
CURRENT = _lines("current_communications.jsonl")
MARKET = _lines("market_data.jsonl")


def _legacy_only(raw: bytes) -> bytes:
    """The seed frame with every current-style (``*_dollars``) field removed."""
    data = json.loads(raw)
    data["msg"] = {k: v for k, v in data["msg"].items() if not k.endswith("_dollars")}
    return json.dumps(data).encode()


def _without(event: Event, *names: str) -> Event:
    return dataclasses.replace(event, **dict.fromkeys(names))  # type: ignore[arg-type]


# --- old vs new field sets -----------------------------------------------------------------


@pytest.mark.parametrize("index", range(4))
def test_seed_legacy_and_current_frames_translate_equal(index: int) -> None:
    seed = _one(SEED[index])
    assert _one(_legacy_only(SEED[index])) == seed
    assert _one(CURRENT[index]) == seed


def test_legacy_only_frame_really_has_no_dollar_fields() -> None:
    # Guards the test above: it must exercise the cent / centi-cent paths.
    assert b"_dollars" not in _legacy_only(SEED[2])
    assert b'"yes_bid": 35' in _legacy_only(SEED[2])


def test_rfq_created_values() -> None:
    assert _one(SEED[0]) == RfqReceived(
        rfq_id="rfq_123",
        market_ticker="FED-23DEC-T3.00",
        ts_recv_ns=TS,
        creator_id="comm_abc123",
        event_ticker="FED-23DEC",
        contracts_centi=10_000,
        # target_cost 3500 centi-cents == "0.35" dollars
        target_cost_micros=350_000,
        created_ts_ms=1_733_047_200_000,
    )


def test_rfq_deleted_values() -> None:
    assert _one(SEED[1]) == RfqDeleted(
        rfq_id="rfq_123", market_ticker="FED-23DEC-T3.00", ts_recv_ns=TS,
        deleted_ts_ms=1_733_047_500_000,
    )


def test_quote_created_values() -> None:
    event = _one(SEED[2])
    assert isinstance(event, QuoteCreated)
    assert (event.yes_bid_micros, event.no_bid_micros) == (350_000, 650_000)
    assert (event.quote_creator_id, event.rfq_creator_id) == ("comm_def456", "comm_abc123")
    assert event.created_ts_ms == 1_733_047_320_000


def test_quote_accepted_values() -> None:
    event = _one(SEED[3])
    assert isinstance(event, QuoteAccepted)
    assert event.accepted_side is Side.YES
    assert (event.yes_contracts_offered_centi, event.no_contracts_offered_centi) == (
        10_000, 20_000,
    )
    assert event.contracts_accepted_centi is None


def test_doc_quote_accepted_example() -> None:
    event = _one(_lines("api_doc_examples.jsonl")[5])
    assert event == QuoteAccepted(
        quote_id="6f1c…", rfq_id="a2d9…", market_ticker="KXMVE…",
        yes_bid_micros=400_000, no_bid_micros=550_000, accepted_side=Side.YES,
        ts_recv_ns=TS, contracts_accepted_centi=10_000,
        quote_creator_id="…", rfq_creator_id="…",
    )


def test_combo_rfq_legs_and_fractional_size() -> None:
    event = _one(CURRENT[4])
    assert isinstance(event, RfqReceived)
    assert event.contracts_centi == 1250
    assert event.target_cost_micros is None
    assert event.created_ts_ms == 1_787_407_385_123
    assert event.mve_collection_ticker == "KXMVECROSSCATEGORY-SHARD1-R"
    assert event.legs == (
        ComboLeg("KXNFLGAME-26SEP10KCBAL", "KXNFLGAME-26SEP10KCBAL-KC", Side.YES),
        # Determined already: the combo prices this leg at its settlement value (issue 9).
        ComboLeg("KXMLBGAME-26SEP10NYYBOS", "KXMLBGAME-26SEP10NYYBOS-BOS", Side.NO,
                 yes_settlement_value_micros=1_000_000),
    )


def test_quote_executed_values() -> None:
    event = _one(CURRENT[5])
    assert isinstance(event, QuoteExecuted)
    assert event.order_id == "ee2b6f1a-0000-4000-8000-000000000003"
    assert event.client_order_id.startswith("quote:1a2b3c4d:")
    assert event.executed_ts_ms == 1_783_536_076_250


# --- market data ---------------------------------------------------------------------------


def test_book_snapshots_in_all_three_field_sets_agree() -> None:
    current, transitional, legacy = (_one(raw) for raw in MARKET[0:3])
    assert current == transitional == legacy
    assert current == BookSnapshotReceived(
        market_ticker="FED-23DEC-T3.00",
        yes_levels=((80_000, 30_000), (220_000, 33_300)),
        no_levels=((540_000, 2_000), (560_000, 14_600)),
        ts_recv_ns=TS, seq=1, sid=2,
    )


def test_yes_priced_flag_reaches_book_events() -> None:
    snap = _one(MARKET[0], yes_priced=True)
    delta = _one(MARKET[3], yes_priced=True)
    assert isinstance(snap, BookSnapshotReceived)
    assert isinstance(delta, BookDeltaReceived)
    assert snap.yes_priced
    assert delta.yes_priced


def test_book_deltas_agree() -> None:
    current, legacy = _one(MARKET[3]), _one(MARKET[4])
    assert current == legacy == BookDeltaReceived(
        market_ticker="FED-23DEC-T3.00", side=Side.YES, price_micros=960_000,
        delta_centi=-5_400, ts_recv_ns=TS, seq=2, sid=2,
    )


def test_tickers_agree() -> None:
    current, legacy = _one(MARKET[5]), _one(MARKET[6])
    assert current == legacy == TickerUpdated(
        market_ticker="FED-23DEC-T3.00", ts_recv_ns=TS,
        yes_bid_micros=450_000, yes_ask_micros=530_000, last_price_micros=480_000,
    )


def test_ticker_empty_book_sentinels_are_not_prices() -> None:
    raw = (
        '{"type": "ticker", "sid": 1, "msg": {"market_ticker": "M", "price_dollars": "0.5000", '
        '"yes_bid_dollars": "0.0000", "yes_ask_dollars": "1.0000"}}'
    )
    event = _one(raw)
    assert isinstance(event, TickerUpdated)
    assert (event.yes_bid_micros, event.yes_ask_micros, event.last_price_micros) == (
        None, None, 500_000,
    )


def test_trades_agree() -> None:
    current, legacy = _one(MARKET[7]), _one(MARKET[8])
    assert isinstance(current, TradeReported)
    assert current.taker_outcome_side is Side.NO
    # the legacy frame has no taker_outcome_side (its taker_side is deprecated, not mapped)
    assert _without(current, "taker_outcome_side") == legacy
    assert (current.yes_price_micros, current.count_centi) == (360_000, 13_600)


def test_fills_agree_and_match_demo_ground_truth() -> None:
    current, legacy = _one(MARKET[9]), _one(MARKET[10])
    assert isinstance(current, FillReceived)
    # kalshi-api.md §0a: maker YES fill at 0.48, 1 contract, no fee, position +1
    assert (current.outcome_side, current.book_side) == (Side.YES, BookSide.BID)
    assert (current.yes_price_micros, current.count_centi, current.fee_micros) == (
        480_000, 100, 0,
    )
    assert current.post_position_centi == 100
    assert current.ts_ms == 1_783_536_076_000
    assert not current.is_taker
    # The legacy frame states no fee: the same fill, with its fee marked unknown.
    assert current.fee_known
    assert not legacy.fee_known
    assert dataclasses.replace(current, client_order_id="", fee_known=False) == legacy


def test_no_side_fill() -> None:
    event = _one(MARKET[11])
    assert isinstance(event, FillReceived)
    assert (event.outcome_side, event.book_side) == (Side.NO, BookSide.ASK)
    assert event.yes_price_micros == 520_000
    assert event.post_position_centi == -100


@pytest.mark.parametrize(
    ("side", "action", "outcome", "book_side"),
    [
        ("yes", "buy", Side.YES, BookSide.BID),
        ("no", "buy", Side.NO, BookSide.ASK),
        ("yes", "sell", Side.NO, BookSide.ASK),
        ("no", "sell", Side.YES, BookSide.BID),
    ],
)
def test_legacy_fill_side_action(
    side: str, action: str, outcome: Side, book_side: BookSide
) -> None:
    raw = json.dumps({"type": "fill", "msg": {
        "trade_id": "t", "order_id": "o", "market_ticker": "M", "is_taker": True,
        "side": side, "action": action, "yes_price": 40, "count": 3,
    }})
    event = _one(raw)
    assert isinstance(event, FillReceived)
    assert (event.outcome_side, event.book_side) == (outcome, book_side)
    assert (event.yes_price_micros, event.count_centi) == (400_000, 300)


def test_fill_fee_is_exact() -> None:
    raw = json.dumps({"type": "fill", "msg": {
        "trade_id": "t", "order_id": "o", "market_ticker": "M", "is_taker": True,
        "outcome_side": "no", "book_side": "ask", "yes_price_dollars": "0.4800",
        "count_fp": "1.00", "fee_cost": "0.017500",
    }})
    event = _one(raw)
    assert isinstance(event, FillReceived)
    assert event.fee_micros == 17_500


def test_positions_agree() -> None:
    current, legacy = _one(MARKET[12]), _one(MARKET[13])
    assert current == legacy == PositionReported(
        market_ticker="FED-23DEC-T3.00", position_centi=-10_000, ts_recv_ns=TS,
        position_cost_micros=55_000_000, realized_pnl_micros=0, fees_paid_micros=430_000,
        from_feed=True,
    )


def test_lifecycle_created_with_price_ranges() -> None:
    event = _one(MARKET[14])
    assert event == MarketLifecycleChanged(
        market_ticker="INXD-23SEP14-B4487", event_type="created", ts_recv_ns=TS,
        close_ts_ms=1_694_721_600_000,
        price_ranges=((0, 100_000, 1_000), (100_000, 900_000, 10_000), (900_000, 1_000_000, 1_000)),
    )


def test_lifecycle_settlement_value_string_and_cents_agree() -> None:
    current, legacy = _one(MARKET[15]), _one(MARKET[16])
    assert current == legacy
    assert isinstance(current, MarketLifecycleChanged)
    assert (current.result, current.settlement_value_micros) == ("yes", 1_000_000)


def test_lifecycle_deactivated_and_combo() -> None:
    deactivated = _one(MARKET[17])
    assert isinstance(deactivated, MarketLifecycleChanged)
    assert deactivated.is_deactivated is True
    combo = _one(MARKET[19])
    assert isinstance(combo, MarketLifecycleChanged)
    assert (combo.market_ticker, combo.event_type) == (
        "KXMVECROSSCATEGORY-S2026ABC-1A2B3C", "activated",
    )


def test_bad_price_band_is_a_decode_error() -> None:
    raw = json.dumps({"type": "market_lifecycle_v2", "msg": {
        "market_ticker": "M", "event_type": "price_level_structure_updated",
        "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.00005"}],
    }})
    with pytest.raises(DecodeError) as info:
        decode_events(raw, TS)
    assert info.value.msg_type == "market_lifecycle_v2"
    assert info.value.raw == raw


# --- frames that are not events ------------------------------------------------------------


@pytest.mark.parametrize("raw", _lines("api_doc_examples.jsonl")[:5])
def test_control_frames_make_no_events(raw: bytes) -> None:
    assert decode_events(raw, TS) == []


def test_event_lifecycle_and_batch_make_no_events() -> None:
    assert decode_events(MARKET[18], TS) == []
    for raw in _lines("batch_and_unknown.jsonl"):
        assert decode_events(raw, TS) == []


# --- errors --------------------------------------------------------------------------------


def test_money_error_becomes_decode_error_with_raw() -> None:
    raw = CURRENT[3].replace(b'"0.35"', b'"0.3.5"', 1)
    with pytest.raises(DecodeError) as info:
        decode_events(raw, TS)
    assert info.value.raw == raw
    assert info.value.msg_type == "quote_accepted"


def test_to_events_raises_decode_error_without_raw() -> None:
    msg = decode_frame(CURRENT[3].replace(b'"0.65"', b'"1.65"'), TS)
    with pytest.raises(DecodeError, match="outside"):
        to_events(msg, TS)


def test_absurdly_long_number_string_is_a_decode_error() -> None:
    raw = json.dumps({"type": "rfq_created", "msg": {
        "id": "r", "market_ticker": "M", "contracts_fp": "1" * 5000,
    }})
    with pytest.raises(DecodeError) as info:
        decode_events(raw, TS)
    assert info.value.msg_type == "rfq_created"


def test_delta_without_price_is_a_decode_error() -> None:
    raw = (
        b'{"type": "orderbook_delta", "msg": '
        b'{"market_ticker": "M", "side": "no", "delta_fp": "1"}}'
    )
    with pytest.raises(DecodeError, match="price_dollars"):
        decode_events(raw, TS)


def test_fill_without_any_side_is_a_decode_error() -> None:
    raw = json.dumps({"type": "fill", "msg": {
        "trade_id": "t", "order_id": "o", "market_ticker": "M", "is_taker": True,
        "yes_price_dollars": "0.40", "count_fp": "1.00",
    }})
    with pytest.raises(DecodeError, match="outcome_side"):
        decode_events(raw, TS)


def test_zero_bid_means_no_bid_on_that_side() -> None:
    raw = CURRENT[2].replace(b'"no_bid_dollars": "0.65"', b'"no_bid_dollars": "0"')
    event = _one(raw)
    assert isinstance(event, QuoteCreated)
    assert event.no_bid_micros == 0


# --- helpers -------------------------------------------------------------------------------


def test_rfc3339_to_ms() -> None:
    assert rfc3339_to_ms("1970-01-01T00:00:00Z") == 0
    assert rfc3339_to_ms("2024-12-01T10:00:00.123999Z") == 1_733_047_200_123
    assert rfc3339_to_ms("2024-12-01T12:00:00+02:00") == 1_733_047_200_000
    with pytest.raises(DecodeError, match="offset"):
        rfc3339_to_ms("2024-12-01T10:00:00")


def test_micros_from_centicents() -> None:
    assert micros_from_centicents(3500) == 350_000
    with pytest.raises(ValueError, match="integer"):
        micros_from_centicents(True)
