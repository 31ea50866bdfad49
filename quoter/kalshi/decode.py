"""The production decoder: one raw frame in, its wire type and domain events out.

Every world uses this one function: the service's runtime, a replay of its recording and the
backtester, so a recorded frame decodes the same way wherever it is read again.

``orderbook_delta`` is most of a book-heavy feed, so :func:`decode` has a fast path for it:
the same bounds, the same Struct and the same money parsers as the general path, without the
tagged-union dispatch, the handler table and the error wrapping. It only ever answers for a
frame the general path would accept, with an equal event; anything it is not sure of (a bound
near its limit, a decode or money error, a legacy field, a ``str`` frame) goes to the general
path (:func:`decode_general`), which then produces the result or the error: errors are the
general path's by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from quoter.domain import events as ev
from quoter.domain.money import MAX_PRICE_MICROS, parse_dollars, parse_fp
from quoter.kalshi.bounds import MAX_FRAME_BYTES, MAX_JSON_DEPTH
from quoter.kalshi.schemas import OrderbookDeltaFrame, decode_frame, frame_type
from quoter.kalshi.translate import to_events

__all__ = ["Decoder", "decode", "decode_general"]

#: What a frame decoder looks like (``decode`` below, or a test's own).
Decoder = Callable[[bytes | str, int], tuple[str | None, list[ev.Event]]]

# Kalshi writes "type" first; the prefix makes the test one C-level comparison.
_DELTA_PREFIX: Final = b'{"type":"orderbook_delta",'
_DELTA_TYPE: Final = "orderbook_delta"
# A decoder of the one Struct the union would pick for this tag (it checks the tag too).
_DELTA_DECODER: Final = msgspec.json.Decoder(OrderbookDeltaFrame)

# The event's slots are filled through their descriptors: a frozen dataclass's ``__init__``
# goes through ``object.__setattr__`` once a field and cost ~1 µs of a ~4 µs frame (B4).
# Same class, same field values: equality, hashing, pickling and the recording codec see no
# difference.
_new = object.__new__
_Delta = ev.BookDeltaReceived


def _slot_setter(name: str) -> Callable[[ev.BookDeltaReceived, Any], None]:
    descriptor: Any = getattr(_Delta, name)  # the slot's member descriptor
    setter: Callable[[ev.BookDeltaReceived, Any], None] = descriptor.__set__
    return setter


_set_ticker = _slot_setter("market_ticker")
_set_side = _slot_setter("side")
_set_price = _slot_setter("price_micros")
_set_delta = _slot_setter("delta_centi")
_set_ts = _slot_setter("ts_recv_ns")
_set_seq = _slot_setter("seq")
_set_sid = _slot_setter("sid")
_set_yes_priced = _slot_setter("yes_priced")


#: Wire price / size strings already read, each with its value (prices: only those in (0, 1)).
#: A book feed repeats a few hundred of them; a dict lookup is a third of the cost of the
#: money module's cached parsers behind their wrappers. Bounded: when full it starts again.
_PRICES: Final[dict[str | None, int]] = {}
_SIZES: Final[dict[str | None, int]] = {}
_CACHE_MAX: Final = 8192


def _price_of(text: str | None) -> int | None:
    if text is None:
        return None  # legacy integer cents only, or no price: the general path
    value = parse_dollars(text)
    if not 0 < value < MAX_PRICE_MICROS:
        return None
    if len(_PRICES) >= _CACHE_MAX:
        _PRICES.clear()
    _PRICES[text] = value
    return value


def _size_of(text: str | None) -> int | None:
    if text is None:
        return None
    value = parse_fp(text)
    if len(_SIZES) >= _CACHE_MAX:
        _SIZES.clear()
    _SIZES[text] = value
    return value


def decode(data: bytes | str, ts_recv_ns: int) -> tuple[str | None, list[ev.Event]]:
    """Decode one frame into its wire type and domain events (books are YES-priced)."""
    # The orderbook_delta fast path, inline: a call is ~5% of a frame here.
    if (type(data) is bytes and data.startswith(_DELTA_PREFIX) and len(data) <= MAX_FRAME_BYTES
            # Below this bracket count ``check_json_bounds`` passes without a scan.
            and data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH):
        try:
            frame = _DELTA_DECODER.decode(data)
            m = frame.msg
            price = _PRICES.get(m.price_dollars) or _price_of(m.price_dollars)
            delta = _SIZES.get(m.delta_fp)
            if delta is None:
                delta = _size_of(m.delta_fp)
        except Exception:  # the general path reports every failure
            price = None
        if price is not None and delta is not None:
            event = _new(_Delta)
            _set_ticker(event, m.market_ticker)
            _set_side(event, m.side)
            _set_price(event, price)
            _set_delta(event, delta)
            _set_ts(event, ts_recv_ns)
            _set_seq(event, frame.seq)
            _set_sid(event, frame.sid)
            _set_yes_priced(event, True)
            return _DELTA_TYPE, [event]
    return decode_general(data, ts_recv_ns)


def decode_general(data: bytes | str, ts_recv_ns: int) -> tuple[str | None, list[ev.Event]]:
    """:func:`decode` without the ``orderbook_delta`` fast path (its reference in tests)."""
    msg = decode_frame(data, ts_recv_ns)
    # We subscribe to order books with use_yes_price: true (kalshi-api.md §2.6).
    return frame_type(msg), to_events(msg, ts_recv_ns, yes_priced=True)
