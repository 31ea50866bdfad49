"""The live frame source: Kalshi WebSocket feeds as one ``FrameSource`` for the runtime.

Connections (kalshi-api.md §2, §7):

* ``communications`` on ``shards`` connections, one per ``shard_key`` (RFQs are split by market
  ticker across keys, §2.6), built by ``sharded_feeds``;
* one **data** connection with ``fill``, ``market_positions``, ``market_lifecycle_v2`` and
  ``multivariate_market_lifecycle`` (no market filter), and ``orderbook_delta`` with
  ``use_yes_price: true`` for the markets the engine prices (:class:`BookSubscriptions`).

All feeds share one bounded output queue (frames carry their ``conn_id``) and one control queue
of notices. :meth:`FeedSource.run` runs the feeds' reconnect loops and hands every notice to
``on_notice`` (``quoter.service.resync.NoticeHandler`` turns them into backfills and engine events);
:meth:`FeedSource.frames` is what the runtime ingests. Run both in the same TaskGroup::

    tg.create_task(source.run(), name="feeds")
    tg.create_task(runtime.run([source]), name="runtime")

Book frames arrive YES-priced: decode them with ``decode_events(..., yes_priced=True)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final

import structlog

from quoter.errors import FatalError, QuoterError, TransportError
from quoter.kalshi.auth import Signer
from quoter.kalshi.ws import KalshiFeed, sharded_feeds
from quoter.kalshi.ws_types import (
    FeedConnected,
    FeedNotice,
    RawFrame,
    SubscriptionView,
    WsCommandError,
)
from quoter.ports import FrameSource, InboundFrame

__all__ = [
    "BOOK_CHANNEL",
    "DATA_CHANNELS",
    "BookSubscriptions",
    "FeedSource",
    "build_feed_source",
]

log = structlog.get_logger("quoter.kalshi.source")

BOOK_CHANNEL: Final = "orderbook_delta"
#: Private and lifecycle channels on the data connection (no market filter).
DATA_CHANNELS: Final = (
    "fill", "market_positions", "market_lifecycle_v2", "multivariate_market_lifecycle",
)

NoticeCallback = Callable[[FeedNotice], Awaitable[None]]


class BookSubscriptions:
    """Keep the ``orderbook_delta`` subscription's markets equal to what the engine wants.

    The runtime calls :meth:`subscribe_markets` / :meth:`unsubscribe_markets` (through
    ``RuntimeHooks``); the wanted set is the truth and :meth:`sync` moves the exchange's list
    toward it with ``update_subscription`` ``add_markets`` / ``delete_markets`` (§2.1). The
    first market creates the subscription (Kalshi requires tickers on it, §2.3 code 14). A
    change that cannot be sent now (disconnected, subscription being re-sent) is applied by
    the next :meth:`sync`, which the source runs on every ``FeedConnected`` of the feed.
    A ticker the exchange refuses (e.g. code 16, market not found) is dropped and logged.

    Deletes are batched: ``delete_markets`` is sent once ``delete_batch`` unwanted markets
    have piled up (1 = at once). Why: the ``ok`` reply to ``update_subscription`` takes a
    number from the subscription's ``seq`` counter (§2.2) and is consumed by the feed, so
    whoever checks ``seq`` on the book frames alone sees a gap on that ``sid`` after every
    ``delete_markets`` (an ``add_markets`` is followed by a snapshot, which resets the
    count). Until book seq checks account for that, each delete costs one false gap on every
    book of the subscription; batching makes that rare.
    """

    def __init__(
        self, feed: KalshiFeed, *, ack_timeout_s: float = 5.0, delete_batch: int = 50
    ) -> None:
        if delete_batch < 1:
            raise ValueError(f"delete_batch must be >= 1, got {delete_batch}")
        self.feed = feed
        self._ack_timeout_s = ack_timeout_s
        self._delete_batch = delete_batch
        self._wanted: dict[str, None] = {}
        self._lock = asyncio.Lock()
        self.last_sid: int | None = None

    def tickers(self) -> tuple[str, ...]:
        """The markets we want book data for, in the order they were asked for."""
        return tuple(self._wanted)

    def subscribed(self) -> tuple[str, ...]:
        """The markets on the subscription now (wanted or awaiting a batched delete)."""
        view = self._view()
        return view.market_tickers if view is not None else ()

    async def subscribe_markets(self, tickers: Sequence[str]) -> None:
        """Start book data for these markets."""
        new = [t for t in tickers if t not in self._wanted]
        if not new:
            return
        self._wanted.update(dict.fromkeys(new))
        await self.sync()

    async def unsubscribe_markets(self, tickers: Sequence[str]) -> None:
        """Stop book data for these markets."""
        gone = [t for t in tickers if t in self._wanted]
        if not gone:
            return
        for t in gone:
            del self._wanted[t]
        await self.sync()

    def _view(self) -> SubscriptionView | None:
        for view in self.feed.subscriptions():
            if view.channel == BOOK_CHANNEL:
                return view
        return None

    async def sync(self) -> None:
        """Send what differs between the wanted markets and the subscription's markets."""
        async with self._lock:
            try:
                await self._sync()
            except (TransportError, TimeoutError) as exc:
                # Applied by the sync after the next FeedConnected.
                log.info("book_subscription_deferred", feed=self.feed.name, error=str(exc))
            except WsCommandError as exc:
                # e.g. a delete refused: the next sync tries again.
                log.warning("book_subscription_failed", feed=self.feed.name,
                            code=exc.ws_code, error=exc.error_message)

    async def _sync(self) -> None:
        view = self._view()
        if view is None:
            if not self._wanted:
                return
            if not self.feed.connected:
                # Only a wish: sent with these markets when the connection comes up.
                self.feed.add_subscription([BOOK_CHANNEL], market_tickers=list(self._wanted),
                                           use_yes_price=True)
                return
            views = await self._subscribe(list(self._wanted))
            self.last_sid = views[0].sid if views else None
            return
        if view.sid is None:
            return  # being (re)sent with the markets it had; FeedConnected syncs the rest
        self.last_sid = view.sid
        have = set(view.market_tickers)
        add = [t for t in self._wanted if t not in have]
        remove = [t for t in view.market_tickers if t not in self._wanted]
        if add:
            await self._add(view.sid, add)
        if len(remove) >= self._delete_batch:
            await self.feed.update_subscription(view.sid, "delete_markets", remove)
            log.info("book_markets_removed", feed=self.feed.name, tickers=remove)

    async def _subscribe(self, tickers: list[str]) -> list[SubscriptionView]:
        try:
            views = await self.feed.subscribe(
                [BOOK_CHANNEL], market_tickers=tickers, use_yes_price=True,
                timeout_s=self._ack_timeout_s,
            )
        except WsCommandError as exc:
            if len(tickers) == 1:
                self._refused(tickers[0], exc)
                return []
            # One bad ticker fails the whole command: find it by subscribing the first alone.
            views = await self._subscribe(tickers[:1])
            if views and views[0].sid is not None:
                await self._add(views[0].sid, tickers[1:])
            elif not views:
                return await self._subscribe(tickers[1:])
            return views
        log.info("book_subscribed", feed=self.feed.name, tickers=tickers)
        return views

    async def _add(self, sid: int, tickers: list[str]) -> None:
        try:
            await self.feed.update_subscription(sid, "add_markets", tickers)
        except WsCommandError as exc:
            if len(tickers) == 1:
                self._refused(tickers[0], exc)
                return
            for t in tickers:
                await self._add(sid, [t])
            return
        log.info("book_markets_added", feed=self.feed.name, tickers=tickers)

    def _refused(self, ticker: str, exc: WsCommandError) -> None:
        self._wanted.pop(ticker, None)
        log.warning("book_subscription_refused", feed=self.feed.name, market_ticker=ticker,
                    code=exc.ws_code, error=exc.error_message)


class FeedSource:
    """Several Kalshi feeds as one ``FrameSource``, plus their notices."""

    def __init__(
        self,
        feeds: Sequence[KalshiFeed],
        *,
        out: asyncio.Queue[RawFrame],
        control: asyncio.Queue[FeedNotice],
        priority_out: asyncio.Queue[RawFrame] | None = None,
        books: BookSubscriptions | None = None,
        on_notice: NoticeCallback | None = None,
    ) -> None:
        """``feeds`` must write into ``out``, ``priority_out`` and ``control``."""
        self.feeds = tuple(feeds)
        self.books = books
        self.on_notice = on_notice
        self._out = out
        self._priority = priority_out
        self._control = control

    def frames(self) -> AsyncIterator[InboundFrame]:
        """Yield every feed's data frames in arrival order (needs :meth:`run` running)."""
        return _drain(self._out)

    def lanes(self) -> list[FrameSource]:
        """The sources to read, priority lane first: each gets its own reader task."""
        if self._priority is None:
            return [self]
        return [_QueueSource(self._priority), self]

    async def run(self) -> None:
        """Run every feed's reconnect loop and the notice handler until cancelled.

        ``AuthError`` (or any ``FatalError`` from ``on_notice``) ends the group: the service
        must stop.
        """
        async with asyncio.TaskGroup() as tg:
            for feed in self.feeds:
                tg.create_task(feed.run(), name=f"feed-{feed.name}")
            tg.create_task(self._notices(), name="feed-notices")

    async def _notices(self) -> None:
        while True:
            notice = await self._control.get()
            await self.handle(notice)

    async def handle(self, notice: FeedNotice) -> None:
        """Resync book subscriptions after a connect, then pass the notice on."""
        if (isinstance(notice, FeedConnected) and self.books is not None
                and notice.feed == self.books.feed.name):
            await self.books.sync()
        if self.on_notice is None:
            return
        try:
            await self.on_notice(notice)
        except FatalError:
            raise
        except QuoterError as exc:
            log.warning("feed_notice_failed", notice=type(notice).__name__, error=str(exc))


async def _drain(queue: asyncio.Queue[RawFrame]) -> AsyncIterator[InboundFrame]:
    while True:
        raw = await queue.get()
        yield InboundFrame(raw.data, raw.ts_recv_ns, raw.conn_id)


class _QueueSource:
    """The priority lane's frames as a ``FrameSource``."""

    def __init__(self, queue: asyncio.Queue[RawFrame]) -> None:
        self._queue = queue

    def frames(self) -> AsyncIterator[InboundFrame]:
        """Yield the lane's frames in arrival order."""
        return _drain(self._queue)


def build_feed_source(
    url: str,
    signer: Signer,
    *,
    wall_ms: Callable[[], int],
    now_ns: Callable[[], int],
    shards: int = 1,
    data_channels: Sequence[str] = DATA_CHANNELS,
    on_notice: NoticeCallback | None = None,
    queue_size: int = 10_000,
    delete_batch: int = 50,
    priority_types: frozenset[str] = frozenset(),
    shed_types: frozenset[str] = frozenset(),
    **feed_kwargs: Any,
) -> FeedSource:
    """Build ``shards`` communications feeds and one data feed (named ``data``) on ``url``.

    ``priority_types``: frames of these types (on any feed) take the priority lane from the
    socket on (:meth:`FeedSource.lanes`); ``shed_types``: communications frames of these types
    are dropped at the socket while the data queue is full. ``feed_kwargs`` go to every
    ``KalshiFeed`` (backoff, sleep, taps, timeouts ...).
    """
    out: asyncio.Queue[RawFrame] = asyncio.Queue(queue_size)
    control: asyncio.Queue[FeedNotice] = asyncio.Queue()
    priority: asyncio.Queue[RawFrame] | None = (
        asyncio.Queue(queue_size) if priority_types else None)
    comms = sharded_feeds(shards, url, signer, wall_ms=wall_ms, now_ns=now_ns, out=out,
                          control=control, priority_out=priority,
                          priority_types=priority_types, shed_types=shed_types, **feed_kwargs)
    data = KalshiFeed(url, signer, wall_ms=wall_ms, now_ns=now_ns, name="data", out=out,
                      control=control, priority_out=priority, priority_types=priority_types,
                      **feed_kwargs)
    if data_channels:
        data.add_subscription(list(data_channels))
    books = BookSubscriptions(data, delete_batch=delete_batch)
    return FeedSource([*comms, data], out=out, control=control, priority_out=priority,
                      books=books, on_notice=on_notice)
