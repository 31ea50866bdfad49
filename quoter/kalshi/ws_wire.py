"""The few wire shapes the feed reads itself: the frame envelope and control replies.

Full message decoding lives in ``quoter.kalshi.schemas``; the feed only needs ``type``, ``id``,
``sid`` and ``seq`` of every frame (kalshi-api.md §2.2) and the bodies of its own control
replies. ``msg`` is kept as ``msgspec.Raw`` so data frames are never decoded twice.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

__all__ = [
    "CONTROL_TYPES",
    "Envelope",
    "ErrorBody",
    "ListedSubscription",
    "SubscribedBody",
    "decode_envelope",
    "decode_error",
    "decode_listed",
    "decode_subscribed",
    "decode_tickers",
    "encode_command",
]

#: Reply types to our commands; they are consumed by the feed, never forwarded as data.
CONTROL_TYPES: Final = frozenset({"subscribed", "unsubscribed", "ok", "error"})


class Envelope(msgspec.Struct, frozen=True):
    """The top level of every frame; ``id`` only on replies, ``seq`` only on some channels."""

    type: str = ""
    id: int | None = None
    sid: int | None = None
    seq: int | None = None
    msg: msgspec.Raw = msgspec.Raw()  # empty when absent (Raw cannot sit in a union)


class SubscribedBody(msgspec.Struct, frozen=True):
    """``subscribed`` reply body: the channel and its new sid."""

    channel: str
    sid: int


class ErrorBody(msgspec.Struct, frozen=True):
    """``error`` body; ``sid``/``market_ticker`` appear when the error is specific."""

    code: int = 0
    msg: str = ""
    sid: int | None = None
    market_ticker: str | None = None


class ListedSubscription(msgspec.Struct, frozen=True):
    """One entry of a ``list_subscriptions`` reply."""

    channel: str
    sid: int


class _TickersBody(msgspec.Struct, frozen=True):
    market_tickers: list[str] = []


_envelope_decoder: Final = msgspec.json.Decoder(Envelope)
_encoder: Final = msgspec.json.Encoder()


def decode_envelope(data: bytes | str) -> Envelope:
    """Decode the envelope of a frame; raises ``msgspec.DecodeError`` on malformed JSON."""
    return _envelope_decoder.decode(data)


def _body(env: Envelope) -> bytes | None:
    raw = bytes(env.msg)
    return raw if raw and raw != b"null" else None


def decode_subscribed(env: Envelope) -> SubscribedBody:
    """Decode a ``subscribed`` reply body."""
    raw = _body(env)
    if raw is None:
        raise msgspec.DecodeError("subscribed reply without msg")
    return msgspec.json.decode(raw, type=SubscribedBody)


def decode_error(env: Envelope) -> ErrorBody:
    """Decode an ``error`` body (tolerating a missing one: code 0)."""
    raw = _body(env)
    if raw is None:
        return ErrorBody()
    try:
        return msgspec.json.decode(raw, type=ErrorBody)
    except msgspec.DecodeError:
        return ErrorBody(msg=raw.decode("utf-8", "replace")[:200])


def decode_listed(env: Envelope) -> list[ListedSubscription]:
    """Decode a ``list_subscriptions`` reply body."""
    raw = _body(env)
    if raw is None:
        return []
    return msgspec.json.decode(raw, type=list[ListedSubscription])


def decode_tickers(env: Envelope) -> tuple[str, ...] | None:
    """Market tickers of an ``update_subscription`` ``ok`` (absent with ``skip_ticker_ack``)."""
    raw = _body(env)
    if raw is None:
        return None
    try:
        return tuple(msgspec.json.decode(raw, type=_TickersBody).market_tickers)
    except msgspec.DecodeError:
        return None


def encode_command(cmd_id: int, cmd: str, params: dict[str, Any] | None) -> str:
    """Encode one command (§2.1) as text; ``params`` omitted when None."""
    body: dict[str, Any] = {"id": cmd_id, "cmd": cmd}
    if params is not None:
        body["params"] = params
    return _encoder.encode(body).decode("utf-8")
