"""Value types of the WebSocket feed: raw frames, notices, counters, backoff, command errors.

The feed (``quoter.kalshi.ws``) moves raw frames; decoding them is the job of
``quoter.kalshi.schemas``. What the feed itself learns about its connection and subscriptions
(connected, disconnected, a sequence gap, a subscription the exchange dropped) is reported as
a *notice* on a separate control queue so that the runtime can resync.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

from quoter.domain.events import SequenceGap
from quoter.errors import ExchangeRejectedError

__all__ = [
    "ALREADY_SUBSCRIBED",
    "RESYNC_ERROR_CODES",
    "Backoff",
    "FeedConnected",
    "FeedDisconnected",
    "FeedNotice",
    "FeedStats",
    "RawFrame",
    "SubscriptionLost",
    "SubscriptionRestored",
    "SubscriptionView",
    "WsCommandError",
]

#: Error codes on a live subscription after which we resubscribe it and the runtime resyncs:
#: 10 channel error, 17 internal error, 25 subscription buffer overflow (kalshi-api.md §2.3).
RESYNC_ERROR_CODES: Final = frozenset({10, 17, 25})
#: Error 6 "already subscribed" is tolerated: the channel is active in this session (§2.3).
ALREADY_SUBSCRIBED: Final = 6


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One WebSocket message as it crossed the wire, stamped on the injected clock."""

    data: bytes | str
    ts_recv_ns: int
    conn_id: str


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """A subscription the feed keeps alive; ``sid`` belongs to the current connection."""

    key: int
    channel: str
    sid: int | None
    market_tickers: tuple[str, ...] = ()
    shard_key: int | None = None


@dataclass(frozen=True, slots=True)
class FeedConnected:
    """A connection is up and every wanted subscription was (re)sent: resync from REST now."""

    feed: str
    conn_id: str
    ts_recv_ns: int
    subscriptions: tuple[SubscriptionView, ...]


@dataclass(frozen=True, slots=True)
class FeedDisconnected:
    """A connection ended; frames may have been lost until the next ``FeedConnected``."""

    feed: str
    conn_id: str
    reason: str
    ts_recv_ns: int
    #: When the connection's last frame arrived (0: none): frames lost to the drop are later.
    last_frame_ns: int = 0


@dataclass(frozen=True, slots=True)
class SubscriptionLost:
    """The exchange broke a subscription (error 10/17/25); it is being resubscribed.

    Like a sequence gap: whatever depends on the channel must be resynced (books re-snapshot,
    RFQs and quotes reconciled over REST, kalshi-api.md §2.4).
    """

    feed: str
    conn_id: str
    channel: str
    sid: int
    code: int
    message: str
    ts_recv_ns: int
    market_tickers: tuple[str, ...] = ()
    #: When the subscription's previous sequenced frame arrived (0: unknown): lost frames are later.
    last_frame_ns: int = 0


@dataclass(frozen=True, slots=True)
class SubscriptionRestored:
    """A subscription broken on a live connection (``SubscriptionLost``) is acked again.

    Frames sent between the loss and now are gone: resync what depends on the channel since
    ``lost_frame_ns`` (the broken subscription's last frame; 0: unknown).
    """

    feed: str
    conn_id: str
    channel: str
    sid: int
    ts_recv_ns: int
    lost_frame_ns: int = 0


FeedNotice = (
    FeedConnected | FeedDisconnected | SubscriptionLost | SubscriptionRestored | SequenceGap
)


@dataclass(slots=True)
class FeedStats:
    """Counters the runtime reads for metrics (monotonic, never reset)."""

    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    frames: int = 0
    commands: int = 0
    gaps: int = 0
    errors: int = 0
    #: Frames refused before the envelope was read (nested beyond quoter.kalshi.bounds).
    rejected: int = 0
    stale_reconnects: int = 0
    #: Pings sent because the connection was silent for ``stale_after_s`` (answered or not).
    silence_pings: int = 0
    resubscribes: int = 0
    #: Unsubscribes of a broken sid whose reply never came (the resubscribe went ahead).
    unanswered_unsubscribes: int = 0
    #: Data frames sent down the priority lane at the socket (accepts, fills: ours).
    priority_frames: int = 0
    #: Frames dropped at the socket because the data queue was full (``shed_types`` only).
    shed_frames: int = 0


@dataclass(slots=True)
class Backoff:
    """Exponential reconnect delays with multiplicative jitter; ``reset`` after a good connect."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)
    _next_s: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.factor < 1:
            raise ValueError("backoff needs 0 <= initial_s <= max_s and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be within [0, 1]")

    def next_delay_s(self) -> float:
        """Return the delay before the next attempt and grow the following one."""
        base = self.initial_s if self._next_s is None else self._next_s
        self._next_s = min(self.max_s, base * self.factor if base else self.initial_s)
        # Jitter only shortens the delay so max_s stays a hard cap; it spreads N shards apart.
        return base * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        """Start again from ``initial_s``."""
        self._next_s = None


class WsCommandError(ExchangeRejectedError):
    """The exchange answered a WebSocket command with an error frame (codes in §2.3)."""

    def __init__(self, cmd: str, ws_code: int, message: str) -> None:
        super().__init__("WS", cmd, 0, str(ws_code), message)
        self.ws_code = ws_code
