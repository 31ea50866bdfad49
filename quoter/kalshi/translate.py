"""Translate decoded wire frames into domain events, with exact money.

Current frames carry ``*_dollars`` / ``*_fp`` strings; legacy frames (docs scraped 2025-11,
``/work/shared/seed``) carry integer cents, whole contracts and centi-cents. Both map to the
same domain values; where a frame carries both, the exact current field wins (a legacy cent
field truncates sub-cent prices, kalshi-api.md §4.1 ``balance``).

Control frames (``subscribed``, ``ok``, ``error`` ...) and frames the engine does not use
(batch RFQs, ``event_lifecycle``) translate to no events: the feed handles them itself.
Any money, quantity or timestamp that cannot be read exactly raises ``DecodeError``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from quoter.domain.checks import check_fill, check_settlement_value
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
from quoter.domain.grid import Band
from quoter.domain.money import (
    MAX_PRICE_MICROS,
    MoneyError,
    check_bid,
    check_price,
    contracts_to_centi,
    micros_from_cents,
    parse_dollars,
    parse_fp,
)
from quoter.domain.types import BookSide, ComboLeg, Side
from quoter.errors import DecodeError
from quoter.kalshi.schemas import (
    FillFrame,
    MarketLifecycleFrame,
    MarketPositionFrame,
    Message,
    MultivariateLifecycleFrame,
    OrderbookDeltaFrame,
    OrderbookSnapshotFrame,
    QuoteAcceptedFrame,
    QuoteCreatedFrame,
    QuoteExecutedFrame,
    RfqCreatedFrame,
    RfqDeletedFrame,
    TickerFrame,
    TradeFrame,
    decode_frame,
    frame_type,
)

__all__ = ["decode_events", "micros_from_centicents", "rfc3339_to_ms", "to_events"]

# Legacy ``target_cost: 3500`` arrives beside ``target_cost_dollars: "0.35"`` in the seed
# example (kalshi-api.md §8 source 2, 2025-11 copy): 3500 x $0.0001 = $0.35, so the integer
# amount is in centi-cents ($0.0001), the unit Kalshi also uses for transfers (§4.1).
MICROS_PER_CENTICENT: Final = 100
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
# Integer timestamps at or above this are taken as milliseconds, below as seconds (year 2286
# in seconds is 10**10, while any ms timestamp after 1970-04-26 exceeds 10**10).
_MS_THRESHOLD: Final = 10**11


def micros_from_centicents(centicents: int) -> int:
    """Convert a legacy centi-cent amount (``target_cost: 3500``) to micro-dollars."""
    if isinstance(centicents, bool) or not isinstance(centicents, int):
        raise MoneyError(f"centi-cent amount must be an integer, got {centicents!r}")
    return centicents * MICROS_PER_CENTICENT


def rfc3339_to_ms(text: str) -> int:
    """Convert an RFC 3339 timestamp with an offset (``...Z``) to Unix milliseconds, exactly."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise DecodeError(f"bad timestamp {text!r}") from None
    if dt.tzinfo is None:
        raise DecodeError(f"timestamp {text!r} has no UTC offset")
    return (dt - _EPOCH) // _MS


def _ts_ms(value: str | int | None) -> int | None:
    """Read an RFC 3339 string or a Unix integer (seconds or ms) as Unix ms."""
    if value is None:
        return None
    if isinstance(value, str):
        return rfc3339_to_ms(value)
    return value if value >= _MS_THRESHOLD else value * 1000


def _money(dollars: str | None, cents: int | None = None) -> int | None:
    if dollars is not None:
        return parse_dollars(dollars)
    if cents is not None:
        return micros_from_cents(cents)
    return None


def _cost(dollars: str | None, centicents: int | None) -> int | None:
    if dollars is not None:
        return parse_dollars(dollars)
    if centicents is not None:
        return micros_from_centicents(centicents)
    return None


def _qty(fp: str | None, contracts: int | None) -> int | None:
    if fp is not None:
        return parse_fp(fp)
    if contracts is not None:
        return contracts_to_centi(contracts)
    return None


def _need(value: int | None, what: str) -> int:
    if value is None:
        raise MoneyError(f"{what} is missing")
    return value


def _bid(dollars: str | None, cents: int | None, what: str) -> int:
    return check_bid(_need(_money(dollars, cents), what))


def _optional_bid(dollars: str | None, cents: int | None) -> int | None:
    # An accept may omit the quote's bids: our quote record has them.
    value = _money(dollars, cents)
    return None if value is None else check_bid(value)


def _quote_or_none(value: int | None) -> int | None:
    # Ticker top of book uses $0 for "no bid" and $1 for "no ask": not prices.
    if value is None or not 0 < value < MAX_PRICE_MICROS:
        return None
    return value


# --- communications -------------------------------------------------------------------------


def _rfq_created(frame: RfqCreatedFrame, ts: int, _yp: bool) -> list[Event]:
    m = frame.msg
    legs = tuple(
        ComboLeg(
            event_ticker=leg.event_ticker, market_ticker=leg.market_ticker, side=leg.side,
            # Set once the leg is determined: the combo prices that leg at it (§6).
            yes_settlement_value_micros=(
                None if leg.yes_settlement_value_dollars is None
                else parse_dollars(leg.yes_settlement_value_dollars)
            ),
        )
        for leg in m.mve_selected_legs or ()
    )
    return [
        RfqReceived(
            rfq_id=m.id,
            market_ticker=m.market_ticker,
            ts_recv_ns=ts,
            creator_id=m.creator_id,
            event_ticker=m.event_ticker,
            contracts_centi=_qty(m.contracts_fp, m.contracts),
            target_cost_micros=_cost(m.target_cost_dollars, m.target_cost),
            created_ts_ms=_ts_ms(m.created_ts),
            mve_collection_ticker=m.mve_collection_ticker,
            legs=legs,
        )
    ]


def _rfq_deleted(frame: RfqDeletedFrame, ts: int, _yp: bool) -> list[Event]:
    m = frame.msg
    return [
        RfqDeleted(
            rfq_id=m.id,
            market_ticker=m.market_ticker,
            ts_recv_ns=ts,
            deleted_ts_ms=_ts_ms(m.deleted_ts),
        )
    ]


def _quote_created(frame: QuoteCreatedFrame, ts: int, _yp: bool) -> list[Event]:
    m = frame.msg
    return [
        QuoteCreated(
            quote_id=m.quote_id,
            rfq_id=m.rfq_id,
            market_ticker=m.market_ticker,
            yes_bid_micros=_bid(m.yes_bid_dollars, m.yes_bid, "yes_bid_dollars"),
            no_bid_micros=_bid(m.no_bid_dollars, m.no_bid, "no_bid_dollars"),
            ts_recv_ns=ts,
            quote_creator_id=m.quote_creator_id,
            rfq_creator_id=m.rfq_creator_id,
            created_ts_ms=_ts_ms(m.created_ts),
        )
    ]


def _quote_accepted(frame: QuoteAcceptedFrame, ts: int, _yp: bool) -> list[Event]:
    m = frame.msg
    return [
        QuoteAccepted(
            quote_id=m.quote_id,
            rfq_id=m.rfq_id,
            market_ticker=m.market_ticker,
            yes_bid_micros=_optional_bid(m.yes_bid_dollars, m.yes_bid),
            no_bid_micros=_optional_bid(m.no_bid_dollars, m.no_bid),
            accepted_side=m.accepted_side,
            ts_recv_ns=ts,
            contracts_accepted_centi=_qty(m.contracts_accepted_fp, m.contracts_accepted),
            yes_contracts_offered_centi=_qty(m.yes_contracts_offered_fp, m.yes_contracts_offered),
            no_contracts_offered_centi=_qty(m.no_contracts_offered_fp, m.no_contracts_offered),
            quote_creator_id=m.quote_creator_id,
            rfq_creator_id=m.rfq_creator_id,
        )
    ]


def _quote_executed(frame: QuoteExecutedFrame, ts: int, _yp: bool) -> list[Event]:
    m = frame.msg
    return [
        QuoteExecuted(
            quote_id=m.quote_id,
            rfq_id=m.rfq_id,
            market_ticker=m.market_ticker,
            order_id=m.order_id,
            ts_recv_ns=ts,
            client_order_id=m.client_order_id,
            executed_ts_ms=_ts_ms(m.executed_ts),
        )
    ]


# --- market data and portfolio --------------------------------------------------------------


def _levels(
    fp: list[tuple[str, str]] | None,
    dollars: list[tuple[str, int]] | None,
    cents: list[tuple[int, int]] | None,
) -> tuple[tuple[int, int], ...]:
    if fp is not None:
        return tuple((check_price(parse_dollars(p)), parse_fp(q)) for p, q in fp)
    if dollars is not None:
        return tuple((check_price(parse_dollars(p)), contracts_to_centi(q)) for p, q in dollars)
    if cents is not None:
        return tuple((check_price(micros_from_cents(p)), contracts_to_centi(q)) for p, q in cents)
    return ()


def _book_snapshot(frame: OrderbookSnapshotFrame, ts: int, yes_priced: bool) -> list[Event]:
    m = frame.msg
    return [
        BookSnapshotReceived(
            market_ticker=m.market_ticker,
            yes_levels=_levels(m.yes_dollars_fp, m.yes_dollars, m.yes),
            no_levels=_levels(m.no_dollars_fp, m.no_dollars, m.no),
            ts_recv_ns=ts,
            seq=frame.seq,
            sid=frame.sid,
            yes_priced=yes_priced,
        )
    ]


def _book_delta(frame: OrderbookDeltaFrame, ts: int, yes_priced: bool) -> list[Event]:
    m = frame.msg
    return [
        BookDeltaReceived(
            market_ticker=m.market_ticker,
            side=m.side,
            price_micros=check_price(_need(_money(m.price_dollars, m.price), "price_dollars")),
            delta_centi=_need(_qty(m.delta_fp, m.delta), "delta_fp"),
            ts_recv_ns=ts,
            seq=frame.seq,
            sid=frame.sid,
            yes_priced=yes_priced,
        )
    ]


def _ticker(frame: TickerFrame, ts: int, _yp: bool) -> list[Event]:
    m = frame.msg
    return [
        TickerUpdated(
            market_ticker=m.market_ticker,
            ts_recv_ns=ts,
            yes_bid_micros=_quote_or_none(_money(m.yes_bid_dollars, m.yes_bid)),
            yes_ask_micros=_quote_or_none(_money(m.yes_ask_dollars, m.yes_ask)),
            last_price_micros=_quote_or_none(_money(m.price_dollars, m.price)),
        )
    ]


def _trade(frame: TradeFrame, ts: int, _yp: bool) -> list[Event]:
    m = frame.msg
    yes_price = _money(m.yes_price_dollars, m.yes_price)
    if yes_price is None:
        no_price = _money(m.no_price_dollars, m.no_price)
        yes_price = None if no_price is None else MAX_PRICE_MICROS - check_price(no_price)
    return [
        TradeReported(
            trade_id=m.trade_id,
            market_ticker=m.market_ticker,
            yes_price_micros=check_price(_need(yes_price, "yes_price_dollars")),
            count_centi=_need(_qty(m.count_fp, m.count), "count_fp"),
            ts_recv_ns=ts,
            taker_outcome_side=m.taker_outcome_side,
        )
    ]


def _fill_sides(frame: FillFrame) -> tuple[Side, BookSide]:
    m = frame.msg
    if m.outcome_side is not None and m.book_side is not None:
        return m.outcome_side, m.book_side
    if m.outcome_side is not None:
        # Buying YES lifts the YES bid side; buying NO is the YES ask side (kalshi-api.md §0a).
        return m.outcome_side, BookSide.BID if m.outcome_side is Side.YES else BookSide.ASK
    if m.side is not None and m.action in {"buy", "sell"}:
        # Legacy fills: selling one side is buying the other.
        outcome = m.side if m.action == "buy" else m.side.other
        return outcome, BookSide.BID if outcome is Side.YES else BookSide.ASK
    raise MoneyError("fill has no outcome_side (nor legacy side/action)")


def _fill(frame: FillFrame, ts: int, _yp: bool) -> list[Event]:
    m = frame.msg
    outcome, book_side = _fill_sides(frame)
    yes_price = _money(m.yes_price_dollars, m.yes_price)
    if yes_price is None:
        no_price = _money(m.no_price_dollars, m.no_price)
        yes_price = None if no_price is None else MAX_PRICE_MICROS - check_price(no_price)
    # Legacy fill frames carried no fee: 0 and fee_known=False; the REST copy brings it.
    fee = parse_dollars(m.fee_cost) if m.fee_cost is not None else 0
    ts_ms = m.ts_ms if m.ts_ms is not None else (None if m.ts is None else m.ts * 1000)
    return [
        check_fill(FillReceived(
            trade_id=m.trade_id,
            order_id=m.order_id,
            market_ticker=m.market_ticker,
            outcome_side=outcome,
            book_side=book_side,
            yes_price_micros=check_price(_need(yes_price, "yes_price_dollars")),
            count_centi=_need(_qty(m.count_fp, m.count), "count_fp"),
            fee_micros=fee,
            fee_known=m.fee_cost is not None,
            is_taker=m.is_taker,
            ts_recv_ns=ts,
            post_position_centi=_qty(m.post_position_fp, m.post_position),
            client_order_id=m.client_order_id or "",
            ts_ms=ts_ms,
        ))
    ]


def _position(frame: MarketPositionFrame, ts: int, _yp: bool) -> list[Event]:
    m = frame.msg
    return [
        PositionReported(
            market_ticker=m.market_ticker,
            position_centi=_need(_qty(m.position_fp, m.position), "position_fp"),
            ts_recv_ns=ts,
            position_cost_micros=_cost(m.position_cost_dollars, m.position_cost),
            realized_pnl_micros=_cost(m.realized_pnl_dollars, m.realized_pnl),
            fees_paid_micros=_cost(m.fees_paid_dollars, m.fees_paid),
            from_feed=True,
        )
    ]


def _lifecycle(
    frame: MarketLifecycleFrame | MultivariateLifecycleFrame, ts: int, _yp: bool
) -> list[Event]:
    m = frame.msg
    ranges: tuple[tuple[int, int, int], ...] | None = None
    if m.price_ranges is not None:
        bands = [
            Band(parse_dollars(r.start), parse_dollars(r.end), parse_dollars(r.step))
            for r in m.price_ranges
        ]
        ranges = tuple((b.start_micros, b.end_micros, b.step_micros) for b in bands)
    if isinstance(m.settlement_value, str):
        settlement: int | None = parse_dollars(m.settlement_value)
    elif m.settlement_value is not None:
        settlement = micros_from_cents(m.settlement_value)
    else:
        settlement = None
    if settlement is not None:
        check_settlement_value(settlement)  # a YES contract settles at $0..$1, never above
    return [
        MarketLifecycleChanged(
            market_ticker=m.market_ticker,
            event_type=m.event_type,
            ts_recv_ns=ts,
            # Lifecycle timestamps are Unix seconds.
            close_ts_ms=_ts_ms(m.close_ts),
            result=m.result,
            settlement_value_micros=settlement,
            price_ranges=ranges,
            is_deactivated=m.is_deactivated,
        )
    ]


_Handler = Callable[[Any, int, bool], list[Event]]
_HANDLERS: Final[dict[type, _Handler]] = {
    RfqCreatedFrame: _rfq_created,
    RfqDeletedFrame: _rfq_deleted,
    QuoteCreatedFrame: _quote_created,
    QuoteAcceptedFrame: _quote_accepted,
    QuoteExecutedFrame: _quote_executed,
    OrderbookSnapshotFrame: _book_snapshot,
    OrderbookDeltaFrame: _book_delta,
    TickerFrame: _ticker,
    TradeFrame: _trade,
    FillFrame: _fill,
    MarketPositionFrame: _position,
    MarketLifecycleFrame: _lifecycle,
    MultivariateLifecycleFrame: _lifecycle,
}


def to_events(msg: Message, ts_recv_ns: int, *, yes_priced: bool = False) -> list[Event]:
    """Map one decoded frame to domain events ([] for control and unmodelled frames).

    ``yes_priced`` tells book events that the subscription used ``use_yes_price: true``
    (kalshi-api.md §2.6); the frame itself does not say.
    """
    handler = _HANDLERS.get(type(msg))
    if handler is None:
        return []
    try:
        return handler(msg, ts_recv_ns, yes_priced)
    except DecodeError as exc:
        raise DecodeError(
            f"{frame_type(msg)}: {exc}", raw=exc.raw, msg_type=frame_type(msg)
        ) from None
    except MoneyError as exc:
        # A value Kalshi never sends (zero quantity, negative fee, price off the $0.0001
        # grid, settlement above $1): refused before anything is booked, counted apart.
        raise DecodeError(f"{frame_type(msg)}: {exc}", msg_type=frame_type(msg),
                          reason="bad_value") from None
    except (ValueError, ArithmeticError) as exc:
        # A bare ValueError also comes from int() on a number string longer than Python's
        # digit limit, which is still just a bad frame.
        raise DecodeError(f"{frame_type(msg)}: {exc}", msg_type=frame_type(msg)) from None


def decode_events(
    raw: bytes | str, ts_recv_ns: int, *, yes_priced: bool = False
) -> list[Event]:
    """Decode one frame and translate it; raises DecodeError, [] for unknown types."""
    msg = decode_frame(raw, ts_recv_ns)
    try:
        return to_events(msg, ts_recv_ns, yes_priced=yes_priced)
    except DecodeError as exc:
        raise DecodeError(str(exc), raw=raw, msg_type=exc.msg_type) from None
