"""Domain events: facts the engine reacts to, named in the past tense.

Every event carries ``ts_recv_ns``: when the runtime received it, on the injected clock. Wire
frames are decoded into these at the edge (``quoter.kalshi.translate``); execution results
(REST responses) are turned into them by the runtime; timers and control actions too. Money and
quantities use the integer units of ``quoter.domain.money``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quoter.domain.types import BookSide, ComboLeg, MarketInfo, Side

__all__ = [
    "BalanceReported",
    "BookDeltaReceived",
    "BookSnapshotReceived",
    "ConfigReloaded",
    "ConfirmFailed",
    "Event",
    "FillReceived",
    "KillSwitchChanged",
    "MarketLifecycleChanged",
    "MarketLoadFailed",
    "MarketLoaded",
    "PositionReported",
    "PricingCompleted",
    "QuoteAccepted",
    "QuoteCancelFailed",
    "QuoteCancelled",
    "QuoteConfirmed",
    "QuoteCreated",
    "QuoteExecuted",
    "QuotePlaced",
    "QuoteRejected",
    "RfqDeleted",
    "RfqReceived",
    "SequenceGap",
    "TickerUpdated",
    "TimerFired",
    "TradeReported",
]


# --- communications channel -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RfqReceived:
    """An RFQ was broadcast (``rfq_created``). Exactly one of contracts/target cost is set."""

    rfq_id: str
    market_ticker: str
    ts_recv_ns: int
    creator_id: str = ""
    event_ticker: str | None = None
    contracts_centi: int | None = None
    target_cost_micros: int | None = None
    created_ts_ms: int | None = None
    mve_collection_ticker: str | None = None
    legs: tuple[ComboLeg, ...] = ()


@dataclass(frozen=True, slots=True)
class RfqDeleted:
    """An RFQ closed (``rfq_deleted``): any quote on it is dead."""

    rfq_id: str
    market_ticker: str
    ts_recv_ns: int
    deleted_ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class QuoteCreated:
    """A quote was created (``quote_created``); ours or one on our RFQ."""

    quote_id: str
    rfq_id: str
    market_ticker: str
    yes_bid_micros: int
    no_bid_micros: int
    ts_recv_ns: int
    quote_creator_id: str = ""
    rfq_creator_id: str = ""
    created_ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class QuoteAccepted:
    """A requester accepted one side of a quote: the last-look clock starts at ``ts_recv_ns``.

    ``accepted_side`` names the side of the maker's quote that was hit; the maker buys that side
    at that side's bid (kalshi-api.md §0a).
    """

    quote_id: str
    rfq_id: str
    market_ticker: str
    # The accepted quote's bids as the frame states them (None when it does not): the engine
    # uses its own quote record's prices.
    yes_bid_micros: int | None
    no_bid_micros: int | None
    accepted_side: Side | None
    ts_recv_ns: int
    contracts_accepted_centi: int | None = None
    yes_contracts_offered_centi: int | None = None
    no_contracts_offered_centi: int | None = None
    quote_creator_id: str = ""
    rfq_creator_id: str = ""


@dataclass(frozen=True, slots=True)
class QuoteExecuted:
    """A confirmed quote executed: ``order_id`` joins it to our fills."""

    quote_id: str
    rfq_id: str
    market_ticker: str
    order_id: str
    ts_recv_ns: int
    client_order_id: str = ""
    executed_ts_ms: int | None = None


# --- portfolio / market data channels ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class FillReceived:
    """One of our fills: the authoritative source of positions."""

    trade_id: str
    order_id: str
    market_ticker: str
    outcome_side: Side
    book_side: BookSide
    yes_price_micros: int
    count_centi: int
    fee_micros: int
    is_taker: bool
    ts_recv_ns: int
    post_position_centi: int | None = None
    client_order_id: str = ""
    ts_ms: int | None = None
    #: False when the frame carried no fee (legacy fill frames): ``fee_micros`` is then 0 and
    #: the REST copy of the fill brings the fee (``PositionLedger.merge_fee``).
    fee_known: bool = True


@dataclass(frozen=True, slots=True)
class BalanceReported:
    """The exchange's cash balance for us (``GET /portfolio/balance``): what quotes and
    confirms may spend (collateral)."""

    balance_micros: int
    ts_recv_ns: int


@dataclass(frozen=True, slots=True)
class PositionReported:
    """The exchange's view of our position in a market (``market_position``)."""

    market_ticker: str
    position_centi: int
    ts_recv_ns: int
    position_cost_micros: int | None = None
    realized_pnl_micros: int | None = None
    fees_paid_micros: int | None = None
    #: Pushed on the ``market_positions`` feed (may be stale, duplicated or reordered on the
    #: wire), rather than read over REST by the reconciler (two reads, stable markets only).
    from_feed: bool = False


@dataclass(frozen=True, slots=True)
class BookSnapshotReceived:
    """A full order book. Both sides are bids: ``(price_micros, qty_centi)``.

    ``no_levels`` prices are NO prices unless ``yes_priced`` (``use_yes_price: true``).
    """

    market_ticker: str
    yes_levels: tuple[tuple[int, int], ...]
    no_levels: tuple[tuple[int, int], ...]
    ts_recv_ns: int
    seq: int | None = None
    sid: int | None = None
    yes_priced: bool = False


@dataclass(frozen=True, slots=True)
class BookDeltaReceived:
    """A change of size at one price level on one side of a book."""

    market_ticker: str
    side: Side
    price_micros: int
    delta_centi: int
    ts_recv_ns: int
    seq: int | None = None
    sid: int | None = None
    yes_priced: bool = False


@dataclass(frozen=True, slots=True)
class TickerUpdated:
    """Top of book and last trade for a market."""

    market_ticker: str
    ts_recv_ns: int
    yes_bid_micros: int | None = None
    yes_ask_micros: int | None = None
    last_price_micros: int | None = None


@dataclass(frozen=True, slots=True)
class TradeReported:
    """A public trade printed."""

    trade_id: str
    market_ticker: str
    yes_price_micros: int
    count_centi: int
    ts_recv_ns: int
    taker_outcome_side: Side | None = None


@dataclass(frozen=True, slots=True)
class MarketLifecycleChanged:
    """A market lifecycle event (``market_lifecycle_v2`` / ``multivariate_market_lifecycle``)."""

    market_ticker: str
    event_type: str
    ts_recv_ns: int
    close_ts_ms: int | None = None
    result: str | None = None
    settlement_value_micros: int | None = None
    price_ranges: tuple[tuple[int, int, int], ...] | None = None
    is_deactivated: bool | None = None


@dataclass(frozen=True, slots=True)
class SequenceGap:
    """Frames were lost on a subscription: what depends on it is no longer trustworthy."""

    channel: str
    sid: int
    expected_seq: int
    received_seq: int
    ts_recv_ns: int
    market_ticker: str | None = None


# --- results of our own commands (REST responses, turned into events by the runtime) ------


@dataclass(frozen=True, slots=True)
class QuotePlaced:
    """The exchange accepted our ``SubmitQuote`` (201) and assigned ``quote_id``."""

    rfq_id: str
    quote_id: str
    ts_recv_ns: int


@dataclass(frozen=True, slots=True)
class QuoteRejected:
    """The exchange refused our ``SubmitQuote`` (or it could not be sent)."""

    rfq_id: str
    code: str
    message: str
    ts_recv_ns: int


@dataclass(frozen=True, slots=True)
class QuoteConfirmed:
    """Our confirm returned 204: we are committed to the trade."""

    rfq_id: str
    quote_id: str
    ts_recv_ns: int


@dataclass(frozen=True, slots=True)
class ConfirmFailed:
    """Our confirm failed (e.g. 400 ``expired``)."""

    rfq_id: str
    quote_id: str
    code: str
    message: str
    ts_recv_ns: int


@dataclass(frozen=True, slots=True)
class QuoteCancelled:
    """Our quote was withdrawn (204), or was already gone.

    ``accepted_ts_ms``: a REST backfill found it cancelled *after* an accept (exchange time);
    if the engine never saw that accept, the trade was missed and is recorded as such.
    """

    rfq_id: str
    quote_id: str
    ts_recv_ns: int
    accepted_ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class QuoteCancelFailed:
    """Our cancel failed (e.g. 404 after an accept: the quote stays accepted)."""

    rfq_id: str
    quote_id: str
    code: str
    message: str
    ts_recv_ns: int


@dataclass(frozen=True, slots=True)
class MarketLoaded:
    """Market metadata arrived (``GET /markets/{ticker}``)."""

    market: MarketInfo
    ts_recv_ns: int


@dataclass(frozen=True, slots=True)
class MarketLoadFailed:
    """Market metadata could not be loaded."""

    market_ticker: str
    reason: str
    ts_recv_ns: int


@dataclass(frozen=True, slots=True)
class PricingCompleted:
    """A ``PriceInPool`` request was answered: a pricing, or a decline (``decline_reason``).

    Flat fields, not ``strategies.base.Pricing | Decline``: the domain does not import the
    strategies, and a recording encodes it like any other event. ``decline_reason`` empty means
    a pricing (``fair_yes_micros`` and both bids set).
    """

    rfq_id: str
    request_id: int
    ts_recv_ns: int
    fair_yes_micros: int = 0
    yes_bid_micros: int = 0
    no_bid_micros: int = 0
    decline_reason: str = ""
    decline_detail: str = ""
    fair_low_micros: int | None = None
    fair_high_micros: int | None = None


# --- time and control ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer scheduled with ``ScheduleTimer`` came due."""

    key: str
    ts_recv_ns: int


@dataclass(frozen=True, slots=True)
class KillSwitchChanged:
    """The operator (CLI, KILL file, signal) halted or resumed quoting."""

    halted: bool
    reason: str
    ts_recv_ns: int


@dataclass(frozen=True, slots=True)
class ConfigReloaded:
    """A new, fully validated strategy configuration replaces the old one."""

    config: Any
    ts_recv_ns: int


Event = (
    RfqReceived
    | RfqDeleted
    | QuoteCreated
    | QuoteAccepted
    | QuoteExecuted
    | FillReceived
    | PositionReported
    | BalanceReported
    | BookSnapshotReceived
    | BookDeltaReceived
    | TickerUpdated
    | TradeReported
    | MarketLifecycleChanged
    | SequenceGap
    | QuotePlaced
    | QuoteRejected
    | QuoteConfirmed
    | ConfirmFailed
    | QuoteCancelled
    | QuoteCancelFailed
    | MarketLoaded
    | MarketLoadFailed
    | PricingCompleted
    | TimerFired
    | KillSwitchChanged
    | ConfigReloaded
)
