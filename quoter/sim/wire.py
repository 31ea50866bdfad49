"""JSON shapes the simulator sends: Kalshi's exact field names and units.

See kalshi-api.md §2.6, §3 and §4.

Prices go out as ``*_dollars`` strings with 4 decimals, quantities as 2-decimal ``*_fp``
strings, timestamps as RFC 3339 (UTC, microseconds) or integer seconds/ms where Kalshi uses
them. The REST shapes validate against the official SDK's pydantic models
(tests/sim/test_conformance.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from quoter.domain.money import (
    MAX_PRICE_MICROS,
    MICROS_PER_CENT,
    format_dollars,
    format_fp,
    notional_micros,
)
from quoter.domain.types import Side
from quoter.sim.books import MarketBook
from quoter.sim.history import Candle, OrderRecord, TradeRecord
from quoter.sim.models import (
    Fill,
    MarketStats,
    Position,
    SeriesFeeChange,
    Settlement,
    SimMarket,
    SimQuote,
    SimRfq,
    SimSeries,
)

__all__ = [
    "candle_json",
    "cash",
    "collection_json",
    "dollars",
    "event_json",
    "event_position_json",
    "fee_change_json",
    "fee_multiplier_json",
    "fill_json",
    "fill_msg",
    "lifecycle_msg",
    "market_json",
    "market_position_msg",
    "order_json",
    "orderbook_delta_msg",
    "orderbook_json",
    "orderbook_snapshot_msg",
    "position_json",
    "quote_accepted_msg",
    "quote_created_msg",
    "quote_executed_msg",
    "quote_json",
    "rfc3339",
    "rfq_created_msg",
    "rfq_deleted_msg",
    "rfq_json",
    "series_json",
    "settlement_json",
    "ticker_msg",
    "trade_json",
    "trade_msg",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Markets without a close time close "far away" (Kalshi's Market requires close_time).
_FAR_CLOSE_NS = 365 * 24 * 3600 * 10**9


def rfc3339(wall_ns: int) -> str:
    """Format Unix nanoseconds as RFC 3339 UTC with microseconds (``...T12:00:00.000000Z``)."""
    return (_EPOCH + timedelta(microseconds=wall_ns // 1000)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dollars(micros: int) -> str:
    """Format micro-dollars with 4 decimals, or 6 when that is needed to stay exact."""
    return format_dollars(micros, 4 if micros % 100 == 0 else 6)


def cash(micros: int) -> str:
    """Format a cash amount (balance, cost, exposure, P&L, fees) with 6 decimals, as the
    real exchange sends them (``"0.480000"``); prices keep :func:`dollars`."""
    return format_dollars(micros, 6)


def _opt(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _legs(legs: Any) -> list[dict[str, Any]] | None:
    if not legs:
        return None
    return [{"event_ticker": leg.event_ticker, "market_ticker": leg.market_ticker,
             "side": leg.side.value} for leg in legs]


# --- communications ---------------------------------------------------------------------


def rfq_json(rfq: SimRfq, creator_comm_id: str, viewer: str | None = None) -> dict[str, Any]:
    """REST RFQ object (§3.1); private fields only for the RFQ's creator."""
    mine = viewer == rfq.user_id
    return _opt({
        "id": rfq.id,
        "creator_id": creator_comm_id,
        "market_ticker": rfq.market_ticker,
        "contracts_fp": format_fp(rfq.contracts_centi or 0),
        "target_cost_dollars": (None if rfq.target_cost_micros is None
                                else dollars(rfq.target_cost_micros)),
        "target_cost_excludes_fees": (rfq.target_cost_excludes_fees
                                      if rfq.target_cost_micros is not None else None),
        "status": rfq.status.value,
        "created_ts": rfc3339(rfq.created_wall_ns),
        "mve_collection_ticker": rfq.mve_collection_ticker,
        "mve_selected_legs": _legs(rfq.legs),
        "rest_remainder": rfq.rest_remainder if mine else None,
        "cancellation_reason": rfq.cancellation_reason,
        "creator_user_id": rfq.user_id if mine else None,
        "cancelled_ts": None if rfq.cancelled_wall_ns is None else rfc3339(rfq.cancelled_wall_ns),
        "updated_ts": rfc3339(rfq.updated_wall_ns),
    })


def quote_json(q: SimQuote, maker_comm: str, rfq_comm: str, viewer: str | None = None,
               ) -> dict[str, Any]:
    """REST Quote object (§3.1, §0a); private fields per viewer role."""
    maker, requester = viewer == q.user_id, viewer == q.rfq_user_id
    contracts = q.accepted_contracts_centi or max(q.yes_contracts_centi, q.no_contracts_centi)

    def ts(ns: int | None) -> str | None:
        return None if ns is None else rfc3339(ns)

    return _opt({
        "id": q.id,
        "rfq_id": q.rfq_id,
        "creator_id": maker_comm,
        "rfq_creator_id": rfq_comm,
        "market_ticker": q.market_ticker,
        "contracts_fp": format_fp(contracts),
        "yes_bid_dollars": dollars(q.yes_bid_micros),
        "no_bid_dollars": dollars(q.no_bid_micros),
        "created_ts": rfc3339(q.created_wall_ns),
        "updated_ts": rfc3339(q.updated_wall_ns),
        "status": q.status.value,
        "accepted_side": q.accepted_side.value if q.accepted_side else None,
        "accepted_ts": ts(q.accepted_wall_ns),
        "confirmed_ts": ts(q.confirmed_wall_ns),
        "executed_ts": ts(q.executed_wall_ns),
        "cancelled_ts": ts(q.cancelled_wall_ns),
        "rest_remainder": q.rest_remainder if maker else None,
        "post_only": q.post_only if maker else None,
        "cancellation_reason": q.cancellation_reason,
        "creator_user_id": q.user_id if maker else None,
        "rfq_creator_user_id": q.rfq_user_id if requester else None,
        "rfq_target_cost_dollars": (None if q.rfq_target_cost_micros is None
                                    else dollars(q.rfq_target_cost_micros)),
        "target_cost_excludes_fees": q.target_cost_excludes_fees,
        "rfq_creator_order_id": q.rfq_creator_order_id if requester else None,
        "creator_order_id": q.creator_order_id if maker else None,
        "yes_contracts_fp": format_fp(q.yes_contracts_centi),
        "no_contracts_fp": format_fp(q.no_contracts_centi),
    })


def rfq_created_msg(rfq: SimRfq, creator_comm_id: str) -> dict[str, Any]:
    """WS ``rfq_created`` msg."""
    return _opt({
        "id": rfq.id,
        "creator_id": creator_comm_id,
        "market_ticker": rfq.market_ticker,
        "event_ticker": rfq.event_ticker,
        "contracts_fp": None if rfq.contracts_centi is None else format_fp(rfq.contracts_centi),
        "target_cost_dollars": (None if rfq.target_cost_micros is None
                                else dollars(rfq.target_cost_micros)),
        "created_ts": rfc3339(rfq.created_wall_ns),
        "mve_collection_ticker": rfq.mve_collection_ticker,
        "mve_selected_legs": _legs(rfq.legs),
    })


def rfq_deleted_msg(rfq: SimRfq, creator_comm_id: str, wall_ns: int) -> dict[str, Any]:
    """WS ``rfq_deleted`` msg."""
    return _opt({
        "id": rfq.id,
        "creator_id": creator_comm_id,
        "market_ticker": rfq.market_ticker,
        "event_ticker": rfq.event_ticker,
        "contracts_fp": None if rfq.contracts_centi is None else format_fp(rfq.contracts_centi),
        "target_cost_dollars": (None if rfq.target_cost_micros is None
                                else dollars(rfq.target_cost_micros)),
        "deleted_ts": rfc3339(wall_ns),
    })


def _quote_common(q: SimQuote, maker_comm: str, rfq_comm: str, rfq: SimRfq) -> dict[str, Any]:
    return {
        "quote_id": q.id,
        "rfq_id": q.rfq_id,
        "quote_creator_id": maker_comm,
        "rfq_creator_id": rfq_comm,
        "market_ticker": q.market_ticker,
        "event_ticker": rfq.event_ticker,
        "yes_bid_dollars": dollars(q.yes_bid_micros),
        "no_bid_dollars": dollars(q.no_bid_micros),
        "yes_contracts_offered_fp": format_fp(q.yes_contracts_centi),
        "no_contracts_offered_fp": format_fp(q.no_contracts_centi),
        "rfq_target_cost_dollars": (None if q.rfq_target_cost_micros is None
                                    else dollars(q.rfq_target_cost_micros)),
    }


def quote_created_msg(q: SimQuote, maker_comm: str, rfq_comm: str, rfq: SimRfq,
                      wall_ns: int) -> dict[str, Any]:
    """WS ``quote_created`` msg."""
    return _opt({**_quote_common(q, maker_comm, rfq_comm, rfq), "created_ts": rfc3339(wall_ns)})


def quote_accepted_msg(q: SimQuote, maker_comm: str, rfq_comm: str, rfq: SimRfq,
                       ) -> dict[str, Any]:
    """WS ``quote_accepted`` msg: the maker's last-look trigger."""
    return _opt({
        **_quote_common(q, maker_comm, rfq_comm, rfq),
        "accepted_side": q.accepted_side.value if q.accepted_side else None,
        "contracts_accepted_fp": (None if q.accepted_contracts_centi is None
                                  else format_fp(q.accepted_contracts_centi)),
    })


def quote_executed_msg(q: SimQuote, maker_comm: str, rfq_comm: str, order_id: str,
                       client_order_id: str, wall_ns: int) -> dict[str, Any]:
    """WS ``quote_executed`` msg, carrying the recipient's own order ids."""
    return {
        "quote_id": q.id,
        "rfq_id": q.rfq_id,
        "quote_creator_id": maker_comm,
        "rfq_creator_id": rfq_comm,
        "order_id": order_id,
        "client_order_id": client_order_id,
        "market_ticker": q.market_ticker,
        "executed_ts": rfc3339(wall_ns),
    }


# --- fills, positions, settlements ------------------------------------------------------


def _legacy_side_action(f: Fill) -> dict[str, str]:
    """The deprecated ``side``/``action`` pair: a fill that closes a held position is a
    *sell* of the held side (buying NO against YES held = selling YES), as the real exchange
    reported the requester's closing taker fill; anything else is a buy of ``outcome_side``."""
    sign = 1 if f.outcome_side == Side.YES else -1
    before = f.post_position_centi - sign * f.qty_centi
    if before != 0 and (before > 0) != (sign > 0):
        held = Side.YES if before > 0 else Side.NO
        return {"side": held.value, "action": "sell"}
    return {"side": f.outcome_side.value, "action": "buy"}


def fill_msg(f: Fill) -> dict[str, Any]:
    """WS ``fill`` msg (§2.6)."""
    return {
        "trade_id": f.trade_id,
        "order_id": f.order_id,
        "client_order_id": f.client_order_id,
        "market_ticker": f.market_ticker,
        "exchange_index": f.exchange_index,
        "is_taker": f.is_taker,
        **_legacy_side_action(f),
        "outcome_side": f.outcome_side.value,
        "book_side": f.book_side.value,
        "purchased_side": f.outcome_side.value,
        "yes_price_dollars": dollars(f.yes_price_micros),
        "no_price_dollars": dollars(MAX_PRICE_MICROS - f.yes_price_micros),
        "count_fp": format_fp(f.qty_centi),
        "fee_cost": format_dollars(f.fee_micros, 6),
        "post_position_fp": format_fp(f.post_position_centi),
        "ts": f.wall_ns // 10**9,
        "ts_ms": f.wall_ns // 10**6,
    }


def fill_json(f: Fill) -> dict[str, Any]:
    """REST Fill object (§4.1)."""
    return {
        "fill_id": f.fill_id,
        "trade_id": f.trade_id,
        "order_id": f.order_id,
        "ticker": f.market_ticker,
        "market_ticker": f.market_ticker,
        "exchange_index": f.exchange_index,
        **_legacy_side_action(f),
        "outcome_side": f.outcome_side.value,
        "book_side": f.book_side.value,
        "count_fp": format_fp(f.qty_centi),
        "yes_price_dollars": dollars(f.yes_price_micros),
        "no_price_dollars": dollars(MAX_PRICE_MICROS - f.yes_price_micros),
        "is_taker": f.is_taker,
        "created_time": rfc3339(f.wall_ns),
        "fee_cost": format_dollars(f.fee_micros, 6),
        "subaccount_number": 0,
        "ts": f.wall_ns // 10**9,
    }


def market_position_msg(user_id: str, p: Position) -> dict[str, Any]:
    """WS ``market_position`` msg (channel ``market_positions``)."""
    return {
        "user_id": user_id,
        "market_ticker": p.market_ticker,
        "position_fp": format_fp(p.position_centi),
        "position_cost_dollars": cash(p.cost_micros),
        "realized_pnl_dollars": cash(p.realized_pnl_micros),
        "fees_paid_dollars": cash(p.fees_paid_micros),
        "position_fee_cost_dollars": cash(p.fees_paid_micros),
        "volume_fp": format_fp(p.volume_centi),
    }


def position_json(p: Position, resting_orders_count: int = 0) -> dict[str, Any]:
    """REST MarketPosition object (``resting_orders_count``: the real exchange sends it,
    the 3.34 SDK model does not list it)."""
    return {
        "ticker": p.market_ticker,
        "exchange_index": p.exchange_index,
        "total_traded_dollars": cash(p.total_traded_micros),
        "position_fp": format_fp(p.position_centi),
        "market_exposure_dollars": cash(p.cost_micros),
        "realized_pnl_dollars": cash(p.realized_pnl_micros),
        "fees_paid_dollars": cash(p.fees_paid_micros),
        "resting_orders_count": resting_orders_count,
        "last_updated_ts": rfc3339(p.updated_wall_ns),
    }


def event_position_json(event_ticker: str, positions: list[Position]) -> dict[str, Any]:
    """REST EventPosition object: the event's market positions summed."""
    return {
        "event_ticker": event_ticker,
        "total_cost_dollars": cash(sum(p.total_traded_micros for p in positions)),
        "total_cost_shares_fp": format_fp(sum(p.volume_centi for p in positions)),
        "event_exposure_dollars": cash(sum(p.cost_micros for p in positions)),
        "realized_pnl_dollars": cash(sum(p.realized_pnl_micros for p in positions)),
        "fees_paid_dollars": cash(sum(p.fees_paid_micros for p in positions)),
    }


def settlement_json(s: Settlement) -> dict[str, Any]:
    """REST Settlement object (``revenue`` and ``value`` are integer cents, as Kalshi sends)."""
    return {
        "ticker": s.market_ticker,
        "exchange_index": s.exchange_index,
        "event_ticker": s.event_ticker,
        "market_result": s.result.value,
        "yes_count_fp": format_fp(s.yes_count_centi),
        "yes_total_cost_dollars": cash(s.yes_cost_micros),
        "no_count_fp": format_fp(s.no_count_centi),
        "no_total_cost_dollars": cash(s.no_cost_micros),
        "revenue": s.revenue_micros // MICROS_PER_CENT,
        "settled_time": rfc3339(s.wall_ns),
        "fee_cost": cash(s.fees_micros),
        "value": 100 if s.result == Side.YES else 0,
    }


# --- markets and books ------------------------------------------------------------------


def _yes_quote(book: MarketBook) -> tuple[int, int, int, int]:
    """(yes_bid, yes_bid_size, yes_ask, yes_ask_size); 0 where a side is empty."""
    yb, nb = book.best(Side.YES), book.best(Side.NO)
    return ((yb[0], yb[1]) if yb else (0, 0)) + (
        (MAX_PRICE_MICROS - nb[0], nb[1]) if nb else (0, 0))


def market_json(m: SimMarket, book: MarketBook, stats: MarketStats,
                 created_wall_ns: int) -> dict[str, Any]:
    """REST Market object (§4.1)."""
    yes_bid, yes_bid_n, yes_ask, yes_ask_n = _yes_quote(book)
    created = rfc3339(created_wall_ns)
    close_ns = (m.close_ts_ms * 10**6 if m.close_ts_ms is not None
                else created_wall_ns + _FAR_CLOSE_NS)
    last = stats.last_price_micros or 0
    result = m.result.value if m.result else ""
    return _opt({
        "ticker": m.ticker,
        "event_ticker": m.event_ticker,
        "market_type": "binary",
        "title": m.title,
        "subtitle": "",
        "yes_sub_title": m.title,
        "no_sub_title": m.title,
        "created_time": created,
        "updated_time": created,
        "open_time": created,
        "close_time": rfc3339(close_ns),
        "expected_expiration_time": rfc3339(close_ns),
        "expiration_time": rfc3339(close_ns),
        "latest_expiration_time": rfc3339(close_ns),
        "settlement_timer_seconds": 0,
        "status": m.status.value,
        "yes_bid_dollars": dollars(yes_bid),
        "yes_bid_size_fp": format_fp(yes_bid_n),
        "yes_ask_dollars": dollars(yes_ask or MAX_PRICE_MICROS),
        "yes_ask_size_fp": format_fp(yes_ask_n),
        "no_bid_dollars": dollars(MAX_PRICE_MICROS - yes_ask if yes_ask else 0),
        "no_ask_dollars": dollars(MAX_PRICE_MICROS - yes_bid),
        "last_price_dollars": dollars(last),
        "volume_fp": format_fp(stats.volume_centi),
        "volume_24h_fp": format_fp(stats.volume_centi),
        "result": result,
        "can_close_early": True,
        "open_interest_fp": format_fp(stats.open_interest_centi),
        "notional_value_dollars": "1.0000",
        "previous_yes_bid_dollars": "0.0000",
        "previous_yes_ask_dollars": "0.0000",
        "previous_price_dollars": "0.0000",
        "settlement_value_dollars": (None if m.result is None
                                     else ("1.0000" if m.result == Side.YES else "0.0000")),
        "settlement_bounds_type": "default",
        "expiration_value": result,
        "rules_primary": f"Resolves YES if {m.title}.",
        "rules_secondary": "",
        "mve_collection_ticker": m.mve_collection_ticker,
        "mve_selected_legs": _legs(m.legs),
        "price_level_structure": m.price_level_structure,
        "price_ranges": m.grid.to_price_ranges(),
        "exchange_index": m.exchange_index,
        # Sent by the real exchange (the last three are not in the 3.34 SDK model).
        "occurrence_datetime": rfc3339(close_ns),
        "strike_type": m.strike_type,
        "floor_strike": m.floor_strike,
        "cap_strike": m.cap_strike,
        "custom_strike": {} if m.strike_type == "custom" else None,
        "early_close_condition": "",
        "fractional_trading_enabled": True,
        "liquidity_dollars": cash(_liquidity_micros(book)),
        "response_price_units": "usd_cent",
    })


def _liquidity_micros(book: MarketBook) -> int:
    """Resting value on the book: the sum of price x size over both sides' bids."""
    return sum(notional_micros(p, n) for side in (Side.YES, Side.NO) for p, n in book.levels(side))


def _levels_out(levels: list[tuple[int, int]], *, as_yes: bool = False) -> list[list[str]]:
    pts = [((MAX_PRICE_MICROS - p) if as_yes else p, n) for p, n in levels]
    return [[dollars(p), format_fp(n)] for p, n in sorted(pts)]


def orderbook_json(book: MarketBook, depth: int = 0) -> dict[str, Any]:
    """REST ``{"orderbook_fp": {yes_dollars, no_dollars}}``: bids, ascending, best last."""
    yes, no = book.levels(Side.YES), book.levels(Side.NO)
    if depth > 0:
        yes, no = yes[:depth], no[:depth]
    return {"orderbook_fp": {"yes_dollars": _levels_out(yes), "no_dollars": _levels_out(no)}}


def orderbook_snapshot_msg(m: SimMarket, book: MarketBook, *, use_yes_price: bool,
                           ) -> dict[str, Any]:
    """WS ``orderbook_snapshot`` msg; empty sides are omitted (§2.6)."""
    msg: dict[str, Any] = {"market_ticker": m.ticker, "market_id": m.ticker}
    yes, no = book.levels(Side.YES), book.levels(Side.NO)
    if yes:
        msg["yes_dollars_fp"] = _levels_out(yes)
    if no:
        msg["no_dollars_fp"] = _levels_out(no, as_yes=use_yes_price)
    return msg


def orderbook_delta_msg(m: SimMarket, side: Side, price_micros: int, delta_centi: int,
                        wall_ns: int) -> dict[str, Any]:
    """WS ``orderbook_delta`` msg in the side's own price (the server converts NO levels)."""
    return {
        "market_ticker": m.ticker,
        "market_id": m.ticker,
        "price_dollars": dollars(price_micros),
        "delta_fp": format_fp(delta_centi),
        "side": side.value,
        "ts": rfc3339(wall_ns),
        "ts_ms": wall_ns // 10**6,
    }


def ticker_msg(m: SimMarket, book: MarketBook, stats: MarketStats, wall_ns: int,
               ) -> dict[str, Any]:
    """WS ``ticker`` msg."""
    yes_bid, yes_bid_n, yes_ask, yes_ask_n = _yes_quote(book)
    return {
        "market_ticker": m.ticker,
        "market_id": m.ticker,
        "price_dollars": dollars(stats.last_price_micros or 0),
        "yes_bid_dollars": dollars(yes_bid),
        "yes_ask_dollars": dollars(yes_ask or MAX_PRICE_MICROS),
        "yes_bid_size_fp": format_fp(yes_bid_n),
        "yes_ask_size_fp": format_fp(yes_ask_n),
        "volume_fp": format_fp(stats.volume_centi),
        "open_interest_fp": format_fp(stats.open_interest_centi),
        "dollar_volume": stats.dollar_volume_micros // MICROS_PER_CENT,
        "dollar_open_interest": stats.open_interest_centi,
        "ts": wall_ns // 10**9,
        "ts_ms": wall_ns // 10**6,
        "time": rfc3339(wall_ns),
    }


def trade_msg(m: SimMarket, trade_id: str, yes_price: int, qty_centi: int, taker_side: Side,
              wall_ns: int) -> dict[str, Any]:
    """WS ``trade`` msg."""
    return {
        "trade_id": trade_id,
        "market_ticker": m.ticker,
        "yes_price_dollars": dollars(yes_price),
        "no_price_dollars": dollars(MAX_PRICE_MICROS - yes_price),
        "count_fp": format_fp(qty_centi),
        "taker_side": taker_side.value,
        "taker_outcome_side": taker_side.value,
        "taker_book_side": "bid" if taker_side == Side.YES else "ask",
        "is_block_trade": False,
        "ts": wall_ns // 10**9,
        "ts_ms": wall_ns // 10**6,
    }


def lifecycle_msg(m: SimMarket, event_type: str, wall_ns: int) -> dict[str, Any]:
    """WS ``market_lifecycle_v2`` / ``multivariate_market_lifecycle`` msg."""
    msg: dict[str, Any] = {"event_type": event_type, "market_ticker": m.ticker,
                           "exchange_index": m.exchange_index}
    secs = wall_ns // 10**9
    if event_type == "created":
        msg.update(open_ts=secs, price_level_structure=m.price_level_structure,
                   price_ranges=m.grid.to_price_ranges())
        if m.close_ts_ms is not None:
            msg["close_ts"] = m.close_ts_ms // 1000
    elif event_type == "close_date_updated":
        msg["close_ts"] = secs
    elif event_type in ("deactivated", "activated"):
        msg["is_deactivated"] = event_type == "deactivated"
    elif event_type == "determined":
        assert m.result is not None
        msg.update(result=m.result.value, determination_ts=secs,
                   settlement_value=("1.0000" if m.result == Side.YES else "0.0000"))
    elif event_type == "settled":
        msg["settled_ts"] = secs
    return msg


# --- series -----------------------------------------------------------------------------


def fee_multiplier_json(multiplier: Fraction) -> int | float:
    """``fee_multiplier`` as Kalshi sends it: a JSON number (int when whole).

    It scales a fee rate, it is not money; the JSON number is the only form the API has.
    """
    if multiplier.denominator == 1:
        return multiplier.numerator
    return float(multiplier)


def series_json(s: SimSeries, updated_wall_ns: int, *, volume_centi: int | None = None,
                product_metadata: bool = False) -> dict[str, Any]:
    """REST Series object (the SDK's ``Series``; fee terms live here, §5.4)."""
    out: dict[str, Any] = {
        "ticker": s.ticker,
        "frequency": s.frequency,
        "title": s.title or s.ticker,
        "category": s.category,
        "categories": [s.category],
        "tags": list(s.tags),
        "settlement_sources": [],
        "contract_url": "",
        "contract_terms_url": "",
        "fee_type": s.fees.fee_type.value,
        "fee_multiplier": fee_multiplier_json(s.fees.multiplier),
        "additional_prohibitions": [],
        "last_updated_ts": rfc3339(updated_wall_ns),
        "exchange_index": s.exchange_index,
    }
    if volume_centi is not None:
        out["volume_fp"] = format_fp(volume_centi)
    if product_metadata:
        out["product_metadata"] = {}
    return out


def fee_change_json(c: SeriesFeeChange) -> dict[str, Any]:
    """REST SeriesFeeChange object."""
    return {
        "id": c.id,
        "series_ticker": c.series_ticker,
        "fee_type": c.fees.fee_type.value,
        "fee_multiplier": fee_multiplier_json(c.fees.multiplier),
        "scheduled_ts": rfc3339(c.scheduled_wall_ns),
    }


def event_json(event_ticker: str, series_ticker: str, exchange_index: int,
               updated_wall_ns: int, markets: list[dict[str, Any]] | None,
               *, mutually_exclusive: bool = False) -> dict[str, Any]:
    """REST EventData object (markets only with ``with_nested_markets``)."""
    out: dict[str, Any] = {
        "event_ticker": event_ticker,
        "series_ticker": series_ticker,
        "sub_title": event_ticker,
        "title": f"Event {event_ticker}",
        # True for an event of exclusive outcomes (at most one market YES, quoter.sim.truth).
        "collateral_return_type": "MECNET" if mutually_exclusive else "DIRECNET",
        "mutually_exclusive": mutually_exclusive,
        "category": None,
        "strike_date": None,
        "strike_period": None,
        "settlement_sources": [],
        "last_updated_ts": rfc3339(updated_wall_ns),
        "exchange_index": exchange_index,
    }
    if markets is not None:
        out["markets"] = markets
    return out


# --- history: trades, orders, candlesticks, multivariate collections ----------------------


def trade_json(t: TradeRecord) -> dict[str, Any]:
    """REST Trade object (``GET /markets/trades``)."""
    return {
        "trade_id": t.trade_id,
        "ticker": t.ticker,
        "count_fp": format_fp(t.qty_centi),
        "yes_price_dollars": dollars(t.yes_price_micros),
        "no_price_dollars": dollars(MAX_PRICE_MICROS - t.yes_price_micros),
        "taker_side": t.taker_side.value,
        "taker_outcome_side": t.taker_side.value,
        "taker_book_side": "bid" if t.taker_side == Side.YES else "ask",
        "created_time": rfc3339(t.wall_ns),
        "is_block_trade": False,
    }


def order_json(o: OrderRecord, resting_centi: int | None) -> dict[str, Any]:
    """REST Order object (``GET /portfolio/orders``); ``resting_centi`` is what still rests
    on the book (None: off the book, so executed when fully filled, else canceled)."""
    if resting_centi is not None:
        status, remaining = "resting", resting_centi
    else:
        status, remaining = ("executed" if o.filled_centi >= o.initial_centi
                             else "canceled"), 0
    yes_price = o.price_micros if o.side == Side.YES else MAX_PRICE_MICROS - o.price_micros
    return {
        "order_id": o.order_id,
        "user_id": o.user_id,
        "client_order_id": o.client_order_id,
        "ticker": o.ticker,
        "side": o.side.value,
        "action": "buy",
        "outcome_side": o.side.value,
        "book_side": "bid" if o.side == Side.YES else "ask",
        "type": "limit",
        "status": status,
        "yes_price_dollars": dollars(yes_price),
        "no_price_dollars": dollars(MAX_PRICE_MICROS - yes_price),
        "fill_count_fp": format_fp(o.filled_centi),
        "remaining_count_fp": format_fp(remaining),
        "initial_count_fp": format_fp(o.initial_centi),
        "taker_fill_cost_dollars": cash(o.taker_cost_micros),
        "maker_fill_cost_dollars": cash(o.maker_cost_micros),
        "taker_fees_dollars": cash(o.taker_fees_micros),
        "maker_fees_dollars": cash(o.maker_fees_micros),
        "created_time": rfc3339(o.created_wall_ns),
        "last_update_time": rfc3339(o.updated_wall_ns),
        "exchange_index": o.exchange_index,
        "subaccount_number": 0,
    }


def _ohlc_json(o: Any, *, optional: bool = False) -> dict[str, Any]:
    if o is None:
        # A period without a price: Kalshi sends the price distribution with nulls.
        return {} if optional else {"open_dollars": "0.0000", "low_dollars": "0.0000",
                                    "high_dollars": "0.0000", "close_dollars": "0.0000"}
    return {"open_dollars": dollars(o.open), "low_dollars": dollars(o.low),
            "high_dollars": dollars(o.high), "close_dollars": dollars(o.close)}


def candle_json(c: Candle) -> dict[str, Any]:
    """REST MarketCandlestick object."""
    return {
        "end_period_ts": c.end_wall_ns // 10**9,
        "yes_bid": _ohlc_json(c.yes_bid),
        "yes_ask": _ohlc_json(c.yes_ask),
        "price": _ohlc_json(c.price, optional=True),
        "volume_fp": format_fp(c.volume_centi),
        "open_interest_fp": format_fp(c.open_interest_centi),
    }


def collection_json(collection_ticker: str, combos: list[SimMarket], open_wall_ns: int,
                    close_wall_ns: int) -> dict[str, Any]:
    """REST MultivariateEventCollection: what a collection's combos are built from (the
    events of their legs; combos pick one market per event, §6)."""
    events = sorted({leg.event_ticker for m in combos for leg in m.legs})
    sizes = [len(m.legs) for m in combos] or [2]
    first = combos[0]
    return {
        "collection_ticker": collection_ticker,
        "series_ticker": first.series_ticker,
        "exchange_index": first.exchange_index,
        "title": f"Simulated collection {collection_ticker}",
        "description": "Combos of the simulated world's single markets",
        "open_date": rfc3339(open_wall_ns),
        "close_date": rfc3339(close_wall_ns),
        "associated_events": [{"ticker": e, "is_yes_only": False, "active_quoters": []}
                              for e in events],
        "associated_event_tickers": events,
        "is_ordered": False,
        "is_single_market_per_event": True,
        "is_all_yes": False,
        "size_min": min(sizes),
        "size_max": max(sizes),
        "functional_description": "One market per associated event; each leg yes or no.",
        "price_level_structure": first.price_level_structure,
        "price_ranges": first.grid.to_price_ranges(),
    }
