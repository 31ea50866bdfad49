"""Typed wire models of every server->client WebSocket frame (kalshi-api.md §2.2, §2.6).

Each frame is one frozen msgspec Struct, tagged on ``"type"``, so one C-level decode turns raw
bytes into the right class without a dict in between. Unknown fields are ignored (Kalshi adds
fields weekly); declared fields are strict (a string where an int belongs is an error).

Two field sets coexist and both are declared, so :mod:`quoter.kalshi.translate` can map either
to the same domain values:

* current: ``*_dollars`` price strings and ``*_fp`` quantity strings (kalshi-api.md §5.1);
* legacy (docs scraped 2025-11, ``/work/shared/seed``): integer-cent prices (``yes_bid: 35``),
  whole contracts (``contracts: 100``) and centi-cent amounts (``target_cost: 3500``).

Public API: :func:`decode_frame` (bytes -> one :data:`Message`) and :func:`peek_type`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Final

import msgspec

from quoter.domain.types import BookSide, Side
from quoter.errors import DecodeError
from quoter.kalshi.bounds import MAX_FRAME_BYTES, check_json_bounds

__all__ = [
    "KNOWN_TYPES",
    "BatchQuoteAcceptedFrame",
    "BatchQuoteCreatedFrame",
    "BatchQuoteExecutedFrame",
    "ErrorCode",
    "ErrorFrame",
    "ErrorMsg",
    "EventLifecycleFrame",
    "EventLifecycleMsg",
    "FillFrame",
    "FillMsg",
    "Frame",
    "KnownFrame",
    "MarketLifecycleFrame",
    "MarketLifecycleMsg",
    "MarketPositionFrame",
    "MarketPositionMsg",
    "Message",
    "MultivariateLifecycleFrame",
    "MveLeg",
    "OkFrame",
    "OkMsg",
    "OrderbookDeltaFrame",
    "OrderbookDeltaMsg",
    "OrderbookSnapshotFrame",
    "OrderbookSnapshotMsg",
    "PriceRange",
    "QuoteAcceptedFrame",
    "QuoteAcceptedMsg",
    "QuoteCreatedFrame",
    "QuoteCreatedMsg",
    "QuoteExecutedFrame",
    "QuoteExecutedMsg",
    "RfqBatchBestQuotesFrame",
    "RfqBatchCreatedFrame",
    "RfqCreatedFrame",
    "RfqCreatedMsg",
    "RfqDeletedFrame",
    "RfqDeletedMsg",
    "SubscribedFrame",
    "SubscribedMsg",
    "SubscriptionInfo",
    "TickerFrame",
    "TickerMsg",
    "TradeFrame",
    "TradeMsg",
    "UnknownMessage",
    "UnsubscribedFrame",
    "decode_frame",
    "frame_type",
    "peek_type",
]


class _Model(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False, omit_defaults=True
):
    """Base of every payload model: immutable, keyword-only, unknown fields ignored.

    ``omit_defaults`` only affects encoding: re-encoded frames list the fields that were sent.
    """


class Frame(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    """Envelope fields every frame may carry; subclasses add ``msg`` and their ``type`` tag."""

    sid: int | None = None
    seq: int | None = None
    id: int | None = None
    # Newer (Sept 2026) schemas: ms when Kalshi queued the message (kalshi-api.md §2.2).
    sending_ts_ms: int | None = None


# --- control (kalshi-api.md §2.2, §2.3) -----------------------------------------------------


class ErrorCode(IntEnum):
    """WebSocket error codes (kalshi-api.md §2.3). Unknown codes are kept as plain ints."""

    UNABLE_TO_PROCESS = 1
    PARAMS_REQUIRED = 2
    CHANNELS_REQUIRED = 3
    SIDS_REQUIRED = 4
    UNKNOWN_COMMAND = 5
    ALREADY_SUBSCRIBED = 6
    UNKNOWN_SID = 7
    UNKNOWN_CHANNEL = 8
    AUTH_REQUIRED = 9
    CHANNEL_ERROR = 10
    INVALID_PARAMETER = 11
    ONE_SID_REQUIRED = 12
    UNSUPPORTED_ACTION = 13
    MARKET_TICKER_REQUIRED = 14
    ACTION_REQUIRED = 15
    MARKET_NOT_FOUND = 16
    INTERNAL_ERROR = 17
    COMMAND_TIMEOUT = 18
    SHARD_FACTOR_NOT_POSITIVE = 19
    SHARD_FACTOR_REQUIRED = 20
    SHARD_KEY_OUT_OF_RANGE = 21
    SHARD_FACTOR_TOO_LARGE = 22
    MATCH_IDS_REQUIRED = 23
    INDEX_IDS_REQUIRED = 24
    BUFFER_OVERFLOW = 25
    MARKET_LIMIT_EXCEEDED = 26
    TOO_MANY_REQUESTS = 27
    UNDERLYING_TICKERS_REQUIRED = 28


class SubscribedMsg(_Model, frozen=True):
    """Payload of ``subscribed``: the server's id for one channel subscription."""

    channel: str
    sid: int


class SubscribedFrame(Frame, frozen=True, tag="subscribed"):
    """A subscription is live."""

    msg: SubscribedMsg


class UnsubscribedFrame(Frame, frozen=True, tag="unsubscribed"):
    """A subscription ended (``sid`` is on the envelope)."""

    msg: Any = None


class SubscriptionInfo(_Model, frozen=True):
    """One row of a ``list_subscriptions`` reply."""

    channel: str
    sid: int


class OkMsg(_Model, frozen=True):
    """Payload of an ``update_subscription`` ack: the full ticker list after the update."""

    market_tickers: list[str] | None = None
    market_ids: list[str] | None = None


class OkFrame(Frame, frozen=True, tag="ok"):
    """Command ack: an object after ``update_subscription``, a list after ``list_subscriptions``."""

    msg: OkMsg | list[SubscriptionInfo] | None = None


class ErrorMsg(_Model, frozen=True):
    """Payload of ``error``."""

    code: int
    msg: str = ""
    market_ticker: str | None = None
    market_id: str | None = None

    @property
    def error_code(self) -> ErrorCode | None:
        """The documented code, or None for a code newer than kalshi-api.md §2.3."""
        try:
            return ErrorCode(self.code)
        except ValueError:
            return None


class ErrorFrame(Frame, frozen=True, tag="error"):
    """A command failed (``id`` names the command)."""

    msg: ErrorMsg


# --- communications (kalshi-api.md §2.6) ----------------------------------------------------


class MveLeg(_Model, frozen=True):
    """One selected leg of a combo RFQ."""

    event_ticker: str
    market_ticker: str
    side: Side
    yes_settlement_value_dollars: str | None = None


class RfqCreatedMsg(_Model, frozen=True):
    """Payload of ``rfq_created``; size is ``contracts_fp`` and/or a target cost."""

    id: str
    market_ticker: str
    creator_id: str = ""
    event_ticker: str | None = None
    contracts_fp: str | None = None
    target_cost_dollars: str | None = None
    created_ts: str | int | None = None
    mve_collection_ticker: str | None = None
    mve_selected_legs: list[MveLeg] | None = None
    # legacy: whole contracts, and the target in centi-cents ($0.0001 units).
    contracts: int | None = None
    target_cost: int | None = None


class RfqCreatedFrame(Frame, frozen=True, tag="rfq_created"):
    """An RFQ was broadcast."""

    msg: RfqCreatedMsg


class RfqDeletedMsg(_Model, frozen=True):
    """Payload of ``rfq_deleted``."""

    id: str
    market_ticker: str
    creator_id: str = ""
    event_ticker: str | None = None
    contracts_fp: str | None = None
    target_cost_dollars: str | None = None
    deleted_ts: str | int | None = None
    contracts: int | None = None
    target_cost: int | None = None


class RfqDeletedFrame(Frame, frozen=True, tag="rfq_deleted"):
    """An RFQ closed."""

    msg: RfqDeletedMsg


class QuoteCreatedMsg(_Model, frozen=True):
    """Payload of ``quote_created``."""

    quote_id: str
    rfq_id: str
    market_ticker: str
    quote_creator_id: str = ""
    rfq_creator_id: str = ""
    event_ticker: str | None = None
    yes_bid_dollars: str | None = None
    no_bid_dollars: str | None = None
    yes_contracts_offered_fp: str | None = None
    no_contracts_offered_fp: str | None = None
    rfq_target_cost_dollars: str | None = None
    created_ts: str | int | None = None
    subaccount: int | None = None
    # legacy: integer cents, whole contracts, centi-cents.
    yes_bid: int | None = None
    no_bid: int | None = None
    yes_contracts_offered: int | None = None
    no_contracts_offered: int | None = None
    rfq_target_cost: int | None = None


class QuoteCreatedFrame(Frame, frozen=True, tag="quote_created"):
    """A quote was created (ours, or one on our RFQ)."""

    msg: QuoteCreatedMsg


class QuoteAcceptedMsg(_Model, frozen=True):
    """Payload of ``quote_accepted``: the last-look trigger."""

    quote_id: str
    rfq_id: str
    market_ticker: str
    quote_creator_id: str = ""
    rfq_creator_id: str = ""
    event_ticker: str | None = None
    yes_bid_dollars: str | None = None
    no_bid_dollars: str | None = None
    accepted_side: Side | None = None
    contracts_accepted_fp: str | None = None
    yes_contracts_offered_fp: str | None = None
    no_contracts_offered_fp: str | None = None
    rfq_target_cost_dollars: str | None = None
    subaccount: int | None = None
    yes_bid: int | None = None
    no_bid: int | None = None
    contracts_accepted: int | None = None
    yes_contracts_offered: int | None = None
    no_contracts_offered: int | None = None
    rfq_target_cost: int | None = None


class QuoteAcceptedFrame(Frame, frozen=True, tag="quote_accepted"):
    """A requester accepted one side of a quote."""

    msg: QuoteAcceptedMsg


class QuoteExecutedMsg(_Model, frozen=True):
    """Payload of ``quote_executed``."""

    quote_id: str
    rfq_id: str
    order_id: str
    market_ticker: str
    quote_creator_id: str = ""
    rfq_creator_id: str = ""
    client_order_id: str = ""
    executed_ts: str | int | None = None
    subaccount: int | None = None


class QuoteExecutedFrame(Frame, frozen=True, tag="quote_executed"):
    """A confirmed quote executed."""

    msg: QuoteExecutedMsg


# Batch-RFQ messages are not documented field by field: decode the payload loosely so that a
# recording of them can be counted and replayed, and never fail on their contents.


class RfqBatchCreatedFrame(Frame, frozen=True, tag="rfq_batch_created"):
    """A batch RFQ was created (payload kept as JSON builtins)."""

    msg: Any = None


class BatchQuoteCreatedFrame(Frame, frozen=True, tag="batch_quote_created"):
    """A batch quote was created (payload kept as JSON builtins)."""

    msg: Any = None


class RfqBatchBestQuotesFrame(Frame, frozen=True, tag="rfq_batch_best_quotes"):
    """Best quotes on a batch RFQ (payload kept as JSON builtins)."""

    msg: Any = None


class BatchQuoteAcceptedFrame(Frame, frozen=True, tag="batch_quote_accepted"):
    """A batch quote was accepted (payload kept as JSON builtins)."""

    msg: Any = None


class BatchQuoteExecutedFrame(Frame, frozen=True, tag="batch_quote_executed"):
    """A batch quote executed (payload kept as JSON builtins)."""

    msg: Any = None


# --- market data and portfolio (kalshi-api.md §2.6) -----------------------------------------


class OrderbookSnapshotMsg(_Model, frozen=True):
    """Payload of ``orderbook_snapshot``: bids on both sides; a side is omitted when empty."""

    market_ticker: str
    market_id: str | None = None
    # current: [price_dollars, count_fp]
    yes_dollars_fp: list[tuple[str, str]] | None = None
    no_dollars_fp: list[tuple[str, str]] | None = None
    # transitional: [price_dollars, whole contracts]
    yes_dollars: list[tuple[str, int]] | None = None
    no_dollars: list[tuple[str, int]] | None = None
    # legacy: [price_cents, whole contracts]
    yes: list[tuple[int, int]] | None = None
    no: list[tuple[int, int]] | None = None


class OrderbookSnapshotFrame(Frame, frozen=True, tag="orderbook_snapshot"):
    """A full order book."""

    msg: OrderbookSnapshotMsg


class OrderbookDeltaMsg(_Model, frozen=True):
    """Payload of ``orderbook_delta``: a signed size change at one level."""

    market_ticker: str
    side: Side
    market_id: str | None = None
    price_dollars: str | None = None
    delta_fp: str | None = None
    client_order_id: str | None = None
    subaccount: int | None = None
    ts_ms: int | None = None
    # deprecated `ts` has been both Unix seconds and RFC 3339 text in published examples.
    ts: int | str | None = None
    price: int | None = None
    delta: int | None = None


class OrderbookDeltaFrame(Frame, frozen=True, tag="orderbook_delta"):
    """A change of size at one level."""

    msg: OrderbookDeltaMsg


class TickerMsg(_Model, frozen=True):
    """Payload of ``ticker``."""

    market_ticker: str
    market_id: str | None = None
    price_dollars: str | None = None
    yes_bid_dollars: str | None = None
    yes_ask_dollars: str | None = None
    yes_bid_size_fp: str | None = None
    yes_ask_size_fp: str | None = None
    last_trade_size_fp: str | None = None
    volume_fp: str | None = None
    open_interest_fp: str | None = None
    ts: int | None = None
    ts_ms: int | None = None
    time: str | None = None
    price: int | None = None
    yes_bid: int | None = None
    yes_ask: int | None = None


class TickerFrame(Frame, frozen=True, tag="ticker"):
    """Top of book and last trade."""

    msg: TickerMsg


class TradeMsg(_Model, frozen=True):
    """Payload of ``trade``."""

    market_ticker: str
    trade_id: str = ""
    yes_price_dollars: str | None = None
    no_price_dollars: str | None = None
    count_fp: str | None = None
    taker_side: str | None = None
    taker_outcome_side: Side | None = None
    taker_book_side: BookSide | None = None
    is_block_trade: bool | None = None
    ts: int | None = None
    ts_ms: int | None = None
    yes_price: int | None = None
    no_price: int | None = None
    count: int | None = None


class TradeFrame(Frame, frozen=True, tag="trade"):
    """A public trade."""

    msg: TradeMsg


class FillMsg(_Model, frozen=True):
    """Payload of ``fill``: one of our fills."""

    trade_id: str
    order_id: str
    market_ticker: str
    is_taker: bool
    exchange_index: int | None = None
    outcome_side: Side | None = None
    book_side: BookSide | None = None
    yes_price_dollars: str | None = None
    no_price_dollars: str | None = None
    count_fp: str | None = None
    fee_cost: str | None = None
    post_position_fp: str | None = None
    client_order_id: str | None = None
    subaccount: int | None = None
    ts: int | None = None
    ts_ms: int | None = None
    # deprecated / legacy
    side: Side | None = None
    action: str | None = None
    purchased_side: str | None = None
    yes_price: int | None = None
    no_price: int | None = None
    count: int | None = None
    post_position: int | None = None


class FillFrame(Frame, frozen=True, tag="fill"):
    """One of our fills."""

    msg: FillMsg


class MarketPositionMsg(_Model, frozen=True):
    """Payload of ``market_position`` (channel ``market_positions``)."""

    market_ticker: str
    user_id: str = ""
    position_fp: str | None = None
    position_cost_dollars: str | None = None
    realized_pnl_dollars: str | None = None
    fees_paid_dollars: str | None = None
    position_fee_cost_dollars: str | None = None
    volume_fp: str | None = None
    subaccount: int | None = None
    # legacy: whole contracts; money in centi-cents ($0.0001 units).
    position: int | None = None
    position_cost: int | None = None
    realized_pnl: int | None = None
    fees_paid: int | None = None


class MarketPositionFrame(Frame, frozen=True, tag="market_position"):
    """The exchange's view of our position."""

    msg: MarketPositionMsg


class PriceRange(_Model, frozen=True):
    """One band of a market's price grid."""

    start: str
    end: str
    step: str


class MarketLifecycleMsg(_Model, frozen=True):
    """Payload of ``market_lifecycle_v2`` and ``multivariate_market_lifecycle``."""

    event_type: str
    market_ticker: str
    exchange_index: int | None = None
    open_ts: int | None = None
    close_ts: int | None = None
    determination_ts: int | None = None
    settled_ts: int | None = None
    result: str | None = None
    # A dollar string in current schemas; an integer (cents) in older copies.
    settlement_value: str | int | None = None
    is_deactivated: bool | None = None
    price_level_structure: str | None = None
    price_ranges: list[PriceRange] | None = None
    additional_metadata: Any = None


class MarketLifecycleFrame(Frame, frozen=True, tag="market_lifecycle_v2"):
    """A market lifecycle event (never for ``KXMVE`` combos)."""

    msg: MarketLifecycleMsg


class MultivariateLifecycleFrame(Frame, frozen=True, tag="multivariate_market_lifecycle"):
    """A combo market lifecycle event."""

    msg: MarketLifecycleMsg


class EventLifecycleMsg(_Model, frozen=True):
    """Payload of ``event_lifecycle`` (on the ``market_lifecycle_v2`` channel)."""

    event_ticker: str
    series_ticker: str | None = None
    title: str | None = None
    subtitle: str | None = None
    collateral_return_type: str | None = None
    strike_date: int | str | None = None
    strike_period: str | None = None


class EventLifecycleFrame(Frame, frozen=True, tag="event_lifecycle"):
    """An event was created or changed."""

    msg: EventLifecycleMsg


class UnknownMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A well-formed frame whose ``type`` we do not model: count it and skip it."""

    type: str
    raw: bytes
    ts_recv_ns: int = 0


_FRAMES = (
    SubscribedFrame,
    UnsubscribedFrame,
    OkFrame,
    ErrorFrame,
    RfqCreatedFrame,
    RfqDeletedFrame,
    QuoteCreatedFrame,
    QuoteAcceptedFrame,
    QuoteExecutedFrame,
    RfqBatchCreatedFrame,
    BatchQuoteCreatedFrame,
    RfqBatchBestQuotesFrame,
    BatchQuoteAcceptedFrame,
    BatchQuoteExecutedFrame,
    OrderbookSnapshotFrame,
    OrderbookDeltaFrame,
    TickerFrame,
    TradeFrame,
    FillFrame,
    MarketPositionFrame,
    MarketLifecycleFrame,
    MultivariateLifecycleFrame,
    EventLifecycleFrame,
)

KnownFrame = (
    SubscribedFrame
    | UnsubscribedFrame
    | OkFrame
    | ErrorFrame
    | RfqCreatedFrame
    | RfqDeletedFrame
    | QuoteCreatedFrame
    | QuoteAcceptedFrame
    | QuoteExecutedFrame
    | RfqBatchCreatedFrame
    | BatchQuoteCreatedFrame
    | RfqBatchBestQuotesFrame
    | BatchQuoteAcceptedFrame
    | BatchQuoteExecutedFrame
    | OrderbookSnapshotFrame
    | OrderbookDeltaFrame
    | TickerFrame
    | TradeFrame
    | FillFrame
    | MarketPositionFrame
    | MarketLifecycleFrame
    | MultivariateLifecycleFrame
    | EventLifecycleFrame
)

Message = KnownFrame | UnknownMessage
"""What :func:`decode_frame` returns."""

KNOWN_TYPES: Final[frozenset[str]] = frozenset(
    str(cls.__struct_config__.tag) for cls in _FRAMES
)


def frame_type(message: Message) -> str:
    """Return the wire ``type`` of a decoded message (``unknown:<type>`` for unknown ones)."""
    if isinstance(message, UnknownMessage):
        return f"unknown:{message.type}"
    return str(message.__struct_config__.tag)


class _TypeProbe(msgspec.Struct):
    type: Any = None


# One decoder for the whole tagged union: msgspec reads "type" and builds the right Struct in
# a single pass over the bytes.
_DECODER: Final = msgspec.json.Decoder(KnownFrame)
_PROBE: Final = msgspec.json.Decoder(_TypeProbe)


def decode_frame(raw: bytes | str, ts_recv_ns: int) -> Message:
    """Decode one WebSocket text frame; unknown ``type`` -> UnknownMessage, bad -> DecodeError.

    ``ts_recv_ns`` is only recorded on :class:`UnknownMessage`; domain events get it from
    :func:`quoter.kalshi.translate.to_events`.
    """
    # Bounded before any parser runs: msgspec raises RecursionError (not DecodeError) on deep
    # nesting, even inside a field no Struct declares (quoter.kalshi.bounds).
    try:
        check_json_bounds(raw, max_bytes=MAX_FRAME_BYTES)
    except DecodeError as exc:
        head = raw[:4096]
        exc.msg_type = peek_type(head.encode("utf-8", "replace") if isinstance(head, str)
                                 else head)
        raise
    try:
        frame: KnownFrame = _DECODER.decode(raw)
    except RecursionError:
        raise DecodeError("frame nests too deep", raw=raw, reason="too_deep") from None
    except UnicodeEncodeError:
        # A ``str`` holding lone surrogates: it was never valid UTF-8 on the wire.
        raise DecodeError("frame is not valid UTF-8 text", raw=raw) from None
    except msgspec.DecodeError as exc:  # includes ValidationError
        # Slow path only: find out whether the type is simply one we do not model.
        try:
            probed = _PROBE.decode(raw).type
        except (msgspec.DecodeError, UnicodeEncodeError, RecursionError):
            # Not even JSON: name the type for the error report only, if it can be seen.
            data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
            raise DecodeError(
                f"malformed frame: {exc}", raw=raw, msg_type=peek_type(data)
            ) from None
        msg_type = probed if isinstance(probed, str) else None
        if msg_type is not None and msg_type not in KNOWN_TYPES:
            data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
            return UnknownMessage(type=msg_type, raw=bytes(data), ts_recv_ns=ts_recv_ns)
        what = msg_type or "frame"
        raise DecodeError(f"malformed {what}: {exc}", raw=raw, msg_type=msg_type) from None
    return frame


_TYPE_KEY: Final = b'"type"'
_WS: Final = b" \t\r\n"
_FAST_PREFIX: Final = b'{"type":"'


def peek_type(raw: bytes) -> str | None:
    """Return the top-level ``type`` string of a frame without parsing it, or None if unsure.

    A hint for pre-filters: it finds a ``"type"`` key at object depth 1 (counting braces
    before it, which a brace inside an earlier string value can fool) whose value is a plain
    string without escapes. Anything it cannot read cheaply gives None; decode fully then.
    """
    if raw.startswith(_FAST_PREFIX):
        # Kalshi writes "type" first: the common case needs no scanning at all.
        end = raw.find(b'"', len(_FAST_PREFIX))
        value = raw[len(_FAST_PREFIX) : end]
        if end > 0 and b"\\" not in value:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return None
    start = 0
    while True:
        idx = raw.find(_TYPE_KEY, start)
        if idx < 0:
            return None
        start = idx + len(_TYPE_KEY)
        if raw.count(b"{", 0, idx) - raw.count(b"}", 0, idx) != 1:
            continue
        pos = start
        n = len(raw)
        while pos < n and raw[pos] in _WS:
            pos += 1
        if pos >= n or raw[pos] != 0x3A:  # ':'; otherwise "type" was a value, not a key
            continue
        pos += 1
        while pos < n and raw[pos] in _WS:
            pos += 1
        if pos >= n or raw[pos] != 0x22:  # '"'
            return None
        end = raw.find(b'"', pos + 1)
        if end < 0:
            return None
        value = raw[pos + 1 : end]
        if b"\\" in value:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
