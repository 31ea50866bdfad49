"""Typed models of Kalshi REST responses (kalshi-api.md §3, §4), decoded exactly.

Decoding is two steps, both strict:

1. the body is parsed as JSON with every JSON number that has a fraction read as ``Decimal``
   (a float never exists), then one walk (:func:`normalize`) converts Kalshi's unit-suffixed
   strings into our integer units and renames the key so the unit stays in the name:
   ``*_dollars`` -> ``*_micros`` (:func:`parse_dollars`), ``*_fp`` -> ``*_centi``
   (:func:`parse_fp`), ``fee_cost`` -> ``fee_cost_micros``, and RFC 3339 ``*_ts`` / ``*_time``
   strings -> ``*_ts_ms`` / ``*_time_ms`` (Unix ms). A value that does not parse is kept as
   the original string, so a model that declares the field rejects it (with the field path)
   while an ignored field cannot break the response;
2. ``msgspec.convert`` builds the frozen Struct; unknown fields are ignored (Kalshi adds
   fields weekly), missing required ones raise.

Everything raises :class:`quoter.errors.DecodeError` on failure, keeping the raw body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final, TypeVar

import msgspec

from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import PriceGrid, grid_for_structure
from quoter.domain.money import MICROS_PER_CENT, MoneyError, parse_dollars, parse_fp
from quoter.domain.types import BookSide, ComboLeg, MarketInfo, MarketStatus, Side
from quoter.errors import DecodeError
from quoter.kalshi.bounds import MAX_BODY_BYTES, check_json_bounds

__all__ = [
    "AccountLimits",
    "Balance",
    "BucketLimit",
    "CommunicationsId",
    "CreatedId",
    "EndpointCost",
    "EndpointCosts",
    "Event",
    "EventPosition",
    "EventResponse",
    "ExchangeIndexStatus",
    "ExchangeStatus",
    "Fill",
    "FillsPage",
    "Market",
    "MarketPosition",
    "MarketResponse",
    "MarketsPage",
    "MveLeg",
    "Orderbook",
    "PositionsPage",
    "PriceRange",
    "Quote",
    "QuoteResponse",
    "QuotesPage",
    "Rfq",
    "RfqResponse",
    "RfqsPage",
    "Settlement",
    "SettlementsPage",
    "decode_orderbook",
    "decode_response",
    "normalize",
    "parse_ts_ms",
]

T = TypeVar("T")

_JSON: Final = msgspec.json.Decoder(float_hook=Decimal)
_RFC3339: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class _Model(msgspec.Struct, frozen=True, kw_only=True):
    """Base: frozen, keyword-only, unknown fields ignored."""


# --- communications ------------------------------------------------------------------------


class CommunicationsId(_Model, frozen=True):
    """``GET /communications/id``."""

    communications_id: str


class CreatedId(_Model, frozen=True):
    """``201 {"id": ...}`` from create quote / create RFQ."""

    id: str


class MveLeg(_Model, frozen=True):
    """One selected leg of a combo RFQ or market."""

    event_ticker: str
    market_ticker: str
    side: Side
    yes_settlement_value_micros: int | None = None

    def to_domain(self) -> ComboLeg:
        """Return the domain leg (with its settlement value once the leg is determined)."""
        return ComboLeg(self.event_ticker, self.market_ticker, self.side,
                        self.yes_settlement_value_micros)


class Quote(_Model, frozen=True):
    """A quote (kalshi-api.md §3.1 Quote object); prices in micros, sizes in centi."""

    id: str
    rfq_id: str
    market_ticker: str
    status: str
    yes_bid_micros: int
    no_bid_micros: int
    creator_id: str = ""
    rfq_creator_id: str = ""
    contracts_centi: int | None = None
    created_ts_ms: int | None = None
    updated_ts_ms: int | None = None
    accepted_side: Side | None = None
    accepted_ts_ms: int | None = None
    confirmed_ts_ms: int | None = None
    executed_ts_ms: int | None = None
    cancelled_ts_ms: int | None = None
    rest_remainder: bool | None = None
    post_only: bool | None = None
    cancellation_reason: str | None = None
    rfq_target_cost_micros: int | None = None
    target_cost_excludes_fees: bool | None = None
    rfq_creator_order_id: str | None = None
    creator_order_id: str | None = None
    creator_subaccount: int | None = None
    rfq_creator_subaccount: int | None = None
    yes_contracts_centi: int | None = None
    no_contracts_centi: int | None = None


class QuoteResponse(_Model, frozen=True):
    """``GET /communications/rfqs/{rfq_id}/quotes/{quote_id}``."""

    quote: Quote


class QuotesPage(_Model, frozen=True):
    """One page of ``GET /communications/quotes``."""

    quotes: tuple[Quote, ...] = ()
    cursor: str | None = None


class Rfq(_Model, frozen=True):
    """An RFQ (kalshi-api.md §3.1 RFQ object)."""

    id: str
    market_ticker: str
    status: str
    creator_id: str = ""
    contracts_centi: int | None = None
    created_ts_ms: int | None = None
    updated_ts_ms: int | None = None
    cancelled_ts_ms: int | None = None
    target_cost_micros: int | None = None
    target_cost_excludes_fees: bool | None = None
    mve_collection_ticker: str | None = None
    mve_selected_legs: tuple[MveLeg, ...] | None = None
    rest_remainder: bool | None = None
    cancellation_reason: str | None = None
    creator_user_id: str | None = None
    creator_subaccount: int | None = None


class RfqResponse(_Model, frozen=True):
    """``GET /communications/rfqs/{rfq_id}``."""

    rfq: Rfq


class RfqsPage(_Model, frozen=True):
    """One page of ``GET /communications/rfqs``."""

    rfqs: tuple[Rfq, ...] = ()
    cursor: str | None = None


# --- markets -------------------------------------------------------------------------------


class PriceRange(_Model, frozen=True):
    """One ``price_ranges`` band as sent (dollar strings; see :meth:`Market.grid`)."""

    start: str
    end: str
    step: str


#: Statuses in which a market's result is known (its ``settlement_value`` is its payout).
_PAID_OUT: Final = (MarketStatus.DETERMINED, MarketStatus.DISPUTED, MarketStatus.AMENDED,
                    MarketStatus.FINALIZED, MarketStatus.SETTLED)


class Market(_Model, frozen=True):
    """A market (kalshi-api.md §4.1)."""

    ticker: str
    status: str
    event_ticker: str = ""
    series_ticker: str | None = None
    title: str | None = None
    market_type: str | None = None
    open_time_ms: int | None = None
    close_time_ms: int | None = None
    expected_expiration_time_ms: int | None = None
    latest_expiration_time_ms: int | None = None
    can_close_early: bool | None = None
    yes_bid_micros: int | None = None
    yes_ask_micros: int | None = None
    no_bid_micros: int | None = None
    no_ask_micros: int | None = None
    yes_bid_size_centi: int | None = None
    yes_ask_size_centi: int | None = None
    last_price_micros: int | None = None
    volume_centi: int | None = None
    volume_24h_centi: int | None = None
    open_interest_centi: int | None = None
    notional_value_micros: int | None = None
    price_level_structure: str | None = None
    price_ranges: tuple[PriceRange, ...] | None = None
    mve_collection_ticker: str | None = None
    mve_selected_legs: tuple[MveLeg, ...] | None = None
    exchange_index: int = 0
    result: str | None = None
    settlement_value_micros: int | None = None
    fee_type: str | None = None
    fee_multiplier: str | None = None
    is_hvm: bool | None = None
    strike_type: str | None = None
    floor_strike: Decimal | None = None
    cap_strike: Decimal | None = None

    def grid(self) -> PriceGrid:
        """The price grid: ``price_ranges`` if sent, else the structure's documented grid."""
        if self.price_ranges:
            return PriceGrid.from_price_ranges(
                {"start": r.start, "end": r.end, "step": r.step} for r in self.price_ranges
            )
        if self.price_level_structure:
            return grid_for_structure(self.price_level_structure)
        raise MoneyError(f"market {self.ticker} has neither price_ranges nor a structure")

    def to_market_info(
        self, *, series_ticker: str | None = None, fees: FeeSchedule | None = None
    ) -> MarketInfo:
        """Convert to the engine's :class:`MarketInfo`; raises ``DecodeError`` if unusable.

        The series ticker is not on the market object: by Kalshi's naming it is the event
        ticker up to the first ``-`` unless given. Fees come from the market's
        ``fee_type``/``fee_multiplier`` if it carries them (they live on the series), else
        ``fees`` or the default schedule. Every combo is HVM (kalshi-api.md §6).
        """
        try:
            status = MarketStatus(self.status)
            grid = self.grid()
            legs = tuple(leg.to_domain() for leg in self.mve_selected_legs or ())
            schedule = fees or FeeSchedule()
            if self.fee_type is not None:
                schedule = FeeSchedule(
                    FeeType(self.fee_type),
                    Fraction(self.fee_multiplier) if self.fee_multiplier else Fraction(1),
                )
        except (ValueError, ZeroDivisionError) as exc:
            raise DecodeError(f"market {self.ticker}: {exc}", msg_type="market") from exc
        is_combo = bool(legs) or self.mve_collection_ticker is not None
        return MarketInfo(
            ticker=self.ticker,
            event_ticker=self.event_ticker,
            series_ticker=series_ticker or self.series_ticker or self.event_ticker.split("-", 1)[0],
            status=status,
            grid=grid,
            close_ts_ms=self.close_time_ms,
            fees=schedule,
            is_hvm=bool(self.is_hvm) or is_combo,
            mve_collection_ticker=self.mve_collection_ticker,
            legs=legs,
            exchange_index=self.exchange_index,
            # Only a determined (or later) market has a payout; before that it is a leftover.
            settlement_value_micros=(
                self.settlement_value_micros if status in _PAID_OUT else None
            ),
            strike_type=self.strike_type or None,
            floor_strike=None if self.floor_strike is None else Fraction(self.floor_strike),
            cap_strike=None if self.cap_strike is None else Fraction(self.cap_strike),
        )


class Series(_Model, frozen=True):
    """The fee terms of a series (``GET /series/{ticker}``; fees live here, §5.4)."""

    ticker: str
    fee_type: str
    fee_multiplier: str | None = None

    def fees(self) -> FeeSchedule:
        """The series' schedule; raises ``DecodeError`` for an unknown type or bad multiplier."""
        try:
            return FeeSchedule(
                FeeType(self.fee_type),
                Fraction(self.fee_multiplier) if self.fee_multiplier else Fraction(1),
            )
        except (ValueError, ZeroDivisionError, MoneyError) as exc:
            raise DecodeError(f"series {self.ticker}: {exc}", msg_type="series") from exc


class SeriesResponse(_Model, frozen=True):
    """``GET /series/{ticker}``."""

    series: Series

class Event(_Model, frozen=True):
    """An event (``GET /events/{ticker}``): what it says about its markets' joint outcomes."""

    event_ticker: str
    series_ticker: str = ""
    # At most one of the event's markets resolves YES.
    mutually_exclusive: bool = False


class EventResponse(_Model, frozen=True):
    """``GET /events/{ticker}``."""

    event: Event


class MarketResponse(_Model, frozen=True):
    """``GET /markets/{ticker}``."""

    market: Market


class MarketsPage(_Model, frozen=True):
    """One page of ``GET /markets``."""

    markets: tuple[Market, ...] = ()
    cursor: str | None = None


class Orderbook(_Model, frozen=True):
    """``GET /markets/{ticker}/orderbook``: bids only, ``(price_micros, qty_centi)`` levels.

    YES levels in YES prices, NO levels in NO prices, as sent (ascending; best bid last).
    Feed them to ``OrderBook.apply_snapshot(yes, no, ts, yes_priced=False)``.
    """

    yes_levels: tuple[tuple[int, int], ...] = ()
    no_levels: tuple[tuple[int, int], ...] = ()


class _OrderbookFp(_Model, frozen=True):
    yes_dollars: tuple[tuple[str, str], ...] | None = None
    no_dollars: tuple[tuple[str, str], ...] | None = None


class _OrderbookResponse(_Model, frozen=True):
    orderbook_fp: _OrderbookFp


# --- portfolio -----------------------------------------------------------------------------


class MarketPosition(_Model, frozen=True):
    """One market's position: ``position_centi`` is + YES / − NO."""

    ticker: str
    position_centi: int
    exchange_index: int = 0
    market_exposure_micros: int | None = None
    total_traded_micros: int | None = None
    realized_pnl_micros: int | None = None
    fees_paid_micros: int | None = None
    last_updated_ts_ms: int | None = None


class EventPosition(_Model, frozen=True):
    """One event's aggregate position."""

    event_ticker: str
    event_exposure_micros: int | None = None
    total_cost_micros: int | None = None
    realized_pnl_micros: int | None = None
    fees_paid_micros: int | None = None


class PositionsPage(_Model, frozen=True):
    """One page of ``GET /portfolio/positions`` (or all pages, collected)."""

    market_positions: tuple[MarketPosition, ...] = ()
    event_positions: tuple[EventPosition, ...] = ()
    cursor: str | None = None


class _BalanceShard(_Model, frozen=True):
    exchange_index: int = 0
    # SDK 3.34 (IndexedBalance) sends a dollar string; older responses an integer in cents.
    balance: str | int | None = None

    @property
    def balance_micros(self) -> int | None:
        """This shard's balance in micro-dollars."""
        if isinstance(self.balance, str):
            return parse_dollars(self.balance)
        return None if self.balance is None else self.balance * MICROS_PER_CENT


class Balance(_Model, frozen=True):
    """``GET /portfolio/balance``. Prefer :attr:`cash_micros` (the cent field truncates)."""

    balance: int | None = None
    balance_micros: int | None = None
    portfolio_value: int | None = None
    updated_ts: int | None = None
    balance_breakdown: tuple[_BalanceShard, ...] | None = None

    @property
    def cash_micros(self) -> int:
        """Cash in micro-dollars, from ``balance_dollars`` if sent else integer cents."""
        if self.balance_micros is not None:
            return self.balance_micros
        if self.balance is not None:
            return self.balance * MICROS_PER_CENT
        raise DecodeError("balance response has neither balance_dollars nor balance")


class Fill(_Model, frozen=True):
    """A fill (kalshi-api.md §4.1); ``outcome_side`` carries direction."""

    order_id: str
    count_centi: int
    yes_price_micros: int
    fill_id: str | None = None
    trade_id: str | None = None
    ticker: str | None = None
    market_ticker: str | None = None
    exchange_index: int = 0
    outcome_side: Side | None = None
    book_side: BookSide | None = None
    no_price_micros: int | None = None
    is_taker: bool | None = None
    fee_cost_micros: int | None = None
    created_time_ms: int | None = None
    ts: int | None = None
    client_order_id: str | None = None
    subaccount_number: int | None = None

    @property
    def market(self) -> str:
        """The market ticker, whichever field carried it."""
        return self.market_ticker or self.ticker or ""


class FillsPage(_Model, frozen=True):
    """One page of ``GET /portfolio/fills``."""

    fills: tuple[Fill, ...] = ()
    cursor: str | None = None


class Settlement(_Model, frozen=True):
    """A settled market position (``GET /portfolio/settlements``)."""

    ticker: str
    event_ticker: str | None = None
    market_result: str | None = None
    yes_count_centi: int | None = None
    no_count_centi: int | None = None
    yes_total_cost_micros: int | None = None
    no_total_cost_micros: int | None = None
    revenue: int | None = None
    value: int | None = None
    fee_cost_micros: int | None = None
    settled_time_ms: int | None = None


class SettlementsPage(_Model, frozen=True):
    """One page of ``GET /portfolio/settlements``."""

    settlements: tuple[Settlement, ...] = ()
    cursor: str | None = None


# --- exchange / account --------------------------------------------------------------------


class ExchangeIndexStatus(_Model, frozen=True):
    """One shard's status (shape loosely documented: all fields optional)."""

    exchange_index: int = 0
    exchange_active: bool | None = None
    trading_active: bool | None = None


class ExchangeStatus(_Model, frozen=True):
    """``GET /exchange/status``."""

    exchange_active: bool
    trading_active: bool
    intra_exchange_transfers_active: bool | None = None
    exchange_estimated_resume_time_ms: int | None = None
    exchange_index_statuses: tuple[ExchangeIndexStatus, ...] | None = None


class BucketLimit(_Model, frozen=True):
    """One token bucket: ``bucket_capacity`` tokens, refilled at ``refill_rate`` tokens/s."""

    refill_rate: int
    bucket_capacity: int


class AccountLimits(_Model, frozen=True):
    """``GET /account/limits``."""

    read: BucketLimit
    write: BucketLimit
    usage_tier: str | None = None


class EndpointCost(_Model, frozen=True):
    """A non-default endpoint cost: ``method`` + full ``path`` (may contain ``{param}``)."""

    method: str
    path: str
    cost: int


class EndpointCosts(_Model, frozen=True):
    """``GET /account/endpoint_costs``."""

    default_cost: int
    endpoint_costs: tuple[EndpointCost, ...] = ()


# --- decoding ------------------------------------------------------------------------------


def parse_ts_ms(text: str) -> int:
    """Parse an RFC 3339 timestamp (any fraction length) into Unix milliseconds, exactly."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or "", m.group(8)
    base = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        base -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    delta = base - _EPOCH
    ms = (delta.days * 86_400 + delta.seconds) * 1000
    # Truncate sub-millisecond digits: timestamps are informational, never money.
    return ms + int((frac + "000")[:3])


_SUFFIXES: Final = (
    ("_dollars", "_micros", parse_dollars),
    ("_fp", "_centi", parse_fp),
    ("_ts", "_ts_ms", parse_ts_ms),
    ("_time", "_time_ms", parse_ts_ms),
)


def _convert_str(key: str, value: str) -> tuple[str, Any]:
    if key == "fee_cost":
        key = "fee_cost_dollars"
    for suffix, replacement, parse in _SUFFIXES:
        if key.endswith(suffix):
            new_key = key[: -len(suffix)] + replacement
            try:
                return new_key, parse(value)
            except ValueError:
                # Keep the text: a model declaring the field rejects it with the field path.
                return new_key, value
    return key, value


def normalize(obj: Any) -> Any:
    """Convert unit-suffixed string fields to integer units, recursively (module docstring)."""
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if isinstance(value, str):
                new_key, new_value = _convert_str(key, value)
                out[new_key] = new_value
            elif key == "fee_multiplier" and isinstance(value, int | Decimal):
                out[key] = str(value)
            else:
                out[key] = normalize(value)
        return out
    if isinstance(obj, list):
        return [normalize(v) for v in obj]
    return obj


def _load(body: bytes | str) -> Any:
    # Bounded first: deep nesting makes msgspec (and normalize's walk) raise RecursionError.
    check_json_bounds(body, max_bytes=MAX_BODY_BYTES, what="response body")
    try:
        return _JSON.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeEncodeError) as exc:
        raise DecodeError(f"response is not JSON: {exc}", raw=body) from exc


def decode_response(body: bytes | str, model: type[T]) -> T:
    """Decode a response body into ``model`` (see the module docstring)."""
    data = _load(body)
    try:
        return msgspec.convert(normalize(data), type=model)
    except (msgspec.ValidationError, RecursionError) as exc:
        raise DecodeError(f"{model.__name__}: {exc}", raw=body) from exc


def decode_orderbook(body: bytes | str) -> Orderbook:
    """Decode ``{"orderbook_fp": {"yes_dollars": [[price, count_fp]], "no_dollars": ...}}``."""
    data = _load(body)
    try:
        wire = msgspec.convert(data, type=_OrderbookResponse).orderbook_fp
        return Orderbook(
            yes_levels=tuple((parse_dollars(p), parse_fp(q)) for p, q in wire.yes_dollars or ()),
            no_levels=tuple((parse_dollars(p), parse_fp(q)) for p, q in wire.no_dollars or ()),
        )
    except (msgspec.ValidationError, MoneyError, RecursionError) as exc:
        raise DecodeError(f"Orderbook: {exc}", raw=body) from exc
