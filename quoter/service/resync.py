"""Startup checks and REST backfill after a (re)connect or a communications gap.

The ``communications`` channel has no replay (kalshi-api.md §2.4): what we missed while
disconnected is read back over REST and turned into the same domain events the feed would
have produced, so the engine needs no special "resync mode":

* open RFQs we do not know yet -> ``RfqReceived``; RFQs we knew that are no longer open ->
  ``RfqDeleted`` (our uncommitted quotes on them are dead);
* our quotes (``GET /communications/quotes?user_filter=self``, bounded by ``min_ts``):

  - ``accepted`` -> ``QuoteAccepted`` whose ``ts_recv_ns`` is **back-dated** by the time
    since ``accepted_ts`` (``wall_now - accepted_ts``), so the engine computes the same
    confirm deadline it would have from the live frame: an accept missed while disconnected
    is still confirmed if its window is open, and is recorded as lapsed otherwise. A quote
    whose window lapsed still reads ``accepted`` for a while (§0a), which the back-dating
    handles. The engine only confirms quotes it placed itself (after a restart it ignores
    them as ``unknown_quote``);
  - ``confirmed`` -> ``QuoteConfirmed`` (settles a confirm whose 204 we never saw);
  - ``executed`` -> ``QuoteExecuted`` with ``order_id = creator_order_id`` (joins fills);
  - ``cancelled`` -> ``QuoteCancelled`` (e.g. an open quote lost in a server roll, §3.1),
    with its ``accepted_ts`` if it was accepted first: an accept whose frame never reached us
    (the feed was down) and whose window closed before a backfill saw it. The engine records
    that as a ``missed`` / ``accept_missed`` decision, so no accept goes unaccounted for.

While a communications feed is dark (disconnected, or its subscription lost until the
resubscribe is acked), :meth:`NoticeHandler.poll_outages` backfills every ``outage_poll_s``:
the confirm window does not wait for a reconnect's backoff.

  The engine ignores each of these when it already knows; even so a replay is not sent: see
  below.

**Only since the gap, never twice** (issue 12 item 7: every gap used to replay the last ten
minutes of our quotes, ~100,000 cancels in a 4.5-minute run, and counters went wrong). The
first backfill of a feed reads the whole lookback (after a restart we know nothing). After
that, :class:`NoticeHandler` remembers per feed when the connection's last frame arrived and
reads only quotes updated since then (``min_ts``, less ``gap_margin_s`` for clock skew and the
exchange's whole-second timestamps); a sequence gap without a frame time reads since the last
backfill. Open RFQs created before that point were delivered live and are not re-sent. Every
quote fact is then passed through a :class:`ReplayFilter`: it is sent only if the engine's
state of that quote does not already imply it, and never twice.

Fills and positions are the reconciler's job (``quoter.service.reconcile``); run both after a
reconnect. Events are returned in a stable order (new RFQs, then quotes by update time, then
closed RFQs).

:class:`NoticeHandler` wires it to the feeds (``quoter.kalshi.source``): a (re)connect, a
gap or a lost subscription on ``communications`` backfills; on ``fill`` /
``market_positions`` it reconciles; when the data connection drops or its book subscription
breaks, every subscribed book gets a ``SequenceGap`` (the engine pulls quotes on it and
re-snapshots) because deltas were lost. Plain orderbook seq gaps are not forwarded: the engine
sees the ``seq`` of every book frame and detects those itself.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import structlog

from quoter.clock import Clock
from quoter.domain import events as ev
from quoter.errors import (
    DecodeError,
    ExchangeRejectedError,
    FatalError,
    PagingLimitError,
    TransientError,
)
from quoter.kalshi.rest import DEFAULT_MAX_PAGES, KalshiRest
from quoter.kalshi.rest_models import Quote, Rfq
from quoter.kalshi.ws_types import (
    FeedConnected,
    FeedDisconnected,
    FeedNotice,
    SubscriptionLost,
    SubscriptionRestored,
)
from quoter.service.reconcile import Reconciler

__all__ = [
    "Backfill",
    "ExchangeClosedError",
    "NoticeHandler",
    "ReplayFilter",
    "Resync",
    "StartupFailedError",
    "StartupInfo",
    "accepted_event",
    "quote_events",
    "rfq_event",
]

log = structlog.get_logger("quoter.service.resync")

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
#: Quotes updated this long before a gap's start are read too: clock skew between us and the
#: exchange, and ``min_ts`` is in whole seconds (kalshi-api.md §5.2).
DEFAULT_GAP_MARGIN_S = 5
#: Facts remembered by the replay filter (the oldest are forgotten first).
_MAX_REMEMBERED = 100_000
#: How far back (by last update) to list our quotes: accepts matter for 30 s, executions for
#: the 15 s timer after that; anything older is already settled or reconciled from fills.
DEFAULT_QUOTE_LOOKBACK_S = 600


class ExchangeClosedError(TransientError):
    """The exchange (or trading) is not active: wait and try again (kalshi-api.md §4.1)."""


class StartupFailedError(FatalError):
    """Startup reads kept failing for the whole retry budget."""


@dataclass(frozen=True, slots=True)
class StartupInfo:
    """What startup learned about the exchange and our account."""

    communications_id: str
    exchange_active: bool
    trading_active: bool
    usage_tier: str | None
    limiter_levels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Backfill:
    """The events a backfill produced, with counts for logs and tests."""

    events: tuple[ev.Event, ...]
    open_rfqs: int
    quotes: int
    accepted_open: int
    accepted_lapsed: int
    #: Facts left out because the engine already had them or they were sent before.
    replays_skipped: int = 0


def rfq_event(rfq: Rfq, ts_recv_ns: int) -> ev.RfqReceived:
    """Turn a REST RFQ into the ``RfqReceived`` the feed would have delivered."""
    return ev.RfqReceived(
        rfq_id=rfq.id,
        market_ticker=rfq.market_ticker,
        ts_recv_ns=ts_recv_ns,
        creator_id=rfq.creator_id,
        contracts_centi=rfq.contracts_centi,
        target_cost_micros=rfq.target_cost_micros,
        created_ts_ms=rfq.created_ts_ms,
        mve_collection_ticker=rfq.mve_collection_ticker,
        legs=tuple(leg.to_domain() for leg in rfq.mve_selected_legs or ()),
    )


def accepted_event(quote: Quote, now_ns: int, wall_now_ns: int) -> ev.QuoteAccepted | None:
    """Synthesize ``QuoteAccepted`` back-dated to when the accept happened; None if undatable.

    ``ts_recv_ns = now_ns - (wall_now_ns - accepted_ts)``: engine time of the accept. The
    age compares our wall clock with the exchange's (keep NTP sync, §1.2); a clock running
    behind makes the deadline late, and a late confirm only earns a 400 ``expired`` (§0a).
    """
    accepted_ms = quote.accepted_ts_ms
    if accepted_ms is None:
        return None
    age_ns = max(0, wall_now_ns - accepted_ms * NS_PER_MS)
    return ev.QuoteAccepted(
        quote_id=quote.id,
        rfq_id=quote.rfq_id,
        market_ticker=quote.market_ticker,
        yes_bid_micros=quote.yes_bid_micros,
        no_bid_micros=quote.no_bid_micros,
        accepted_side=quote.accepted_side,
        ts_recv_ns=now_ns - age_ns,
        # The quote's contracts_fp; whether Kalshi reports the accepted or the offered size
        # there after a partial accept is undocumented (§5.3): larger is the safe side.
        contracts_accepted_centi=quote.contracts_centi,
        yes_contracts_offered_centi=quote.yes_contracts_centi,
        no_contracts_offered_centi=quote.no_contracts_centi,
        quote_creator_id=quote.creator_id,
        rfq_creator_id=quote.rfq_creator_id,
    )


def quote_events(quote: Quote, now_ns: int, wall_now_ns: int) -> list[ev.Event]:
    """The events that bring the engine up to date with one of our quotes."""
    match quote.status:
        case "accepted":
            accepted = accepted_event(quote, now_ns, wall_now_ns)
            if accepted is None:
                log.warning("resync_accept_undated", quote_id=quote.id, rfq_id=quote.rfq_id)
                return []
            return [accepted]
        case "confirmed":
            return [ev.QuoteConfirmed(quote.rfq_id, quote.id, now_ns)]
        case "executed":
            if not quote.creator_order_id:
                # Without the order id fills cannot be joined; they still book by trade_id.
                log.warning("resync_execution_without_order", quote_id=quote.id)
                return []
            return [ev.QuoteExecuted(
                quote_id=quote.id, rfq_id=quote.rfq_id, market_ticker=quote.market_ticker,
                order_id=quote.creator_order_id, ts_recv_ns=now_ns,
                executed_ts_ms=quote.executed_ts_ms,
            )]
        case "cancelled":
            return [ev.QuoteCancelled(quote.rfq_id, quote.id, now_ns,
                                      accepted_ts_ms=quote.accepted_ts_ms)]
        case _:
            return []


# The engine states in which a quote's REST status is news (anything else already implies it).
_LIVE: Final = frozenset({"open", "replaced", "cancelling"})
#: A quote the exchange cancelled after an accept we may never have heard of.
ACCEPTED_THEN_CANCELLED: Final = "accepted_then_cancelled"
_NEWS_IN: Final[dict[str, frozenset[str]]] = {
    "accepted": _LIVE,
    "cancelled": _LIVE,
    # Even once the engine has it cancelled: the accept before the cancel is still news.
    ACCEPTED_THEN_CANCELLED: _LIVE | {"cancelled"},
    "confirmed": frozenset({"accepted", "confirming"}),
    "executed": frozenset({"accepted", "confirming", "confirmed"}),
}


class ReplayFilter:
    """Decide which backfilled facts the engine has not seen: each is sent at most once.

    ``quote_state`` reads the engine's state of a quote (``QuoteState`` value, None if the
    engine does not track it). A fact about a quote the engine does not know is sent once
    (its create response may be in flight: the engine holds such an accept), then never again.
    """

    def __init__(self, quote_state: Callable[[str], str | None] = lambda _q: None) -> None:
        self._state = quote_state
        self._sent: dict[tuple[str, str], None] = {}

    def quote_is_news(self, quote_id: str, status: str) -> bool:
        """True (and remembered) if the engine has not seen ``status`` of ``quote_id``."""
        key = (quote_id, status)
        if key in self._sent:
            return False
        state = self._state(quote_id)
        news = status in _NEWS_IN and (state is None or state in _NEWS_IN[status])
        if news:
            self._remember(key)
        return news

    def rfq_is_news(self, rfq_id: str, kind: str) -> bool:
        """True (and remembered) the first time an RFQ is sent as ``kind`` (new / deleted)."""
        key = (rfq_id, "rfq:" + kind)
        if key in self._sent:
            return False
        self._remember(key)
        return True

    def _remember(self, key: tuple[str, str]) -> None:
        self._sent[key] = None
        if len(self._sent) > _MAX_REMEMBERED:
            del self._sent[next(iter(self._sent))]


class Resync:
    """Startup checks and communications backfill over REST."""

    def __init__(
        self,
        rest: KalshiRest,
        clock: Clock,
        *,
        quote_lookback_s: int = DEFAULT_QUOTE_LOOKBACK_S,
        max_pages: int = DEFAULT_MAX_PAGES,
        confirm_window_ms: int = 30_000,
    ) -> None:
        """``confirm_window_ms`` only classifies accepts as open/lapsed in counts and logs."""
        self._rest = rest
        self._clock = clock
        self._lookback_s = quote_lookback_s
        self._max_pages = max_pages
        self._window_ns = confirm_window_ms * NS_PER_MS
        self.communications_id = ""

    async def startup(self, *, require_trading: bool = True) -> StartupInfo:
        """Check the exchange, size the rate limiter from our limits, learn our comms id.

        Raises ``ExchangeClosedError`` if the exchange or trading is inactive (unless
        ``require_trading`` is False), ``AuthError`` on bad credentials.
        """
        status = await self._rest.get_exchange_status()
        if require_trading and not (status.exchange_active and status.trading_active):
            raise ExchangeClosedError(
                f"exchange_active={status.exchange_active} trading_active={status.trading_active}"
                f" resume_ms={status.exchange_estimated_resume_time_ms}"
            )
        limits = await self._rest.get_account_limits()
        costs = await self._rest.get_endpoint_costs()
        self._rest.limiter.configure_from(limits, costs)
        self.communications_id = await self._rest.get_communications_id()
        levels = self._rest.limiter.levels()
        log.info(
            "resync_startup_checked",
            exchange_active=status.exchange_active,
            trading_active=status.trading_active,
            usage_tier=limits.usage_tier,
            **levels,
        )
        return StartupInfo(
            communications_id=self.communications_id,
            exchange_active=status.exchange_active,
            trading_active=status.trading_active,
            usage_tier=limits.usage_tier,
            limiter_levels=levels,
        )

    async def startup_retrying(
        self, *, require_trading: bool = True, retry_for_s: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None, base_delay_s: float = 0.5, max_delay_s: float = 10.0,
    ) -> StartupInfo:
        """:meth:`startup`, retried with jittered backoff for up to ``retry_for_s``.

        Transient failures (5xx, 429, timeouts, a closed exchange, an unreadable body) are
        retried; credentials and other fatal errors are not. When the time is up this
        raises :class:`StartupFailedError`, one line naming the last failure: a supervisor
        (systemd ``Restart=on-failure``, Docker ``restart: unless-stopped``) takes it from
        there.
        """
        rng = rng or random.Random()  # jitter only
        started_ns = self._clock.now_ns()
        budget_ns = int(retry_for_s * 1e9)
        attempt = 0
        while True:
            try:
                return await self.startup(require_trading=require_trading)
            except (TransientError, DecodeError) as exc:
                attempt += 1
                delay_s = rng.uniform(0.0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1)))
                elapsed_ns = self._clock.now_ns() - started_ns
                if elapsed_ns + int(delay_s * 1e9) > budget_ns:
                    raise StartupFailedError(
                        f"startup reads failed for {elapsed_ns / 1e9:.1f} s ({attempt} attempts);"
                        f" last: {exc}"
                    ) from exc
                log.warning("startup_retrying", attempt=attempt, error=str(exc),
                            error_type=type(exc).__name__, delay_ms=int(delay_s * 1000))
                await sleep(delay_s)

    async def backfill(
        self, known_rfqs: Mapping[str, str] | Iterable[str] = (), *,
        since_wall_ns: int | None = None, replays: ReplayFilter | None = None,
    ) -> Backfill:
        """Read open RFQs and our recent quotes; return the events the engine missed.

        ``known_rfqs``: RFQs the engine tracks (ids, or id -> market ticker), sampled
        *before* this call so that an RFQ arriving meanwhile is not taken for a closed one.
        ``since_wall_ns``: the gap's start (wall time); quotes updated before it (less the
        margin the caller allowed) and RFQs created before it are not read back. ``replays``
        leaves out what the engine has already seen (every fact passes it otherwise).
        """
        known: dict[str, str] = (
            dict(known_rfqs) if isinstance(known_rfqs, Mapping)
            else dict.fromkeys(known_rfqs, "")
        )
        wall_now_ns = self._clock.wall_ns()
        min_ts_s = wall_now_ns // NS_PER_S - self._lookback_s
        if since_wall_ns is not None:
            min_ts_s = max(min_ts_s, since_wall_ns // NS_PER_S)
        rfqs = await self._rest.list_rfqs(max_pages=self._max_pages, status="open")
        quotes = await self._rest.list_quotes(
            max_pages=self._max_pages, user_filter="self", min_ts=min_ts_s
        )
        # Stamp after the reads: back-dating is relative to when we learned the facts.
        now_ns = self._clock.now_ns()
        wall_now_ns = self._clock.wall_ns()
        events: list[ev.Event] = []
        open_ids: set[str] = set()
        skipped = 0
        for rfq in rfqs:
            open_ids.add(rfq.id)
            if rfq.id in known or rfq.status != "open":
                continue
            if self.communications_id and rfq.creator_id == self.communications_id:
                continue  # our own RFQ (demo testing): never quote it
            if (since_wall_ns is not None and rfq.created_ts_ms is not None
                    and rfq.created_ts_ms * NS_PER_MS < since_wall_ns):
                skipped += 1  # delivered live before the gap (the engine let it go)
                continue
            if replays is not None and not replays.rfq_is_news(rfq.id, "new"):
                skipped += 1
                continue
            events.append(rfq_event(rfq, now_ns))
        mine = [q for q in quotes if not self.communications_id
                or not q.creator_id or q.creator_id == self.communications_id]
        mine.sort(key=lambda q: (q.updated_ts_ms or 0, q.id))
        accepted_open = accepted_lapsed = 0
        for quote in mine:
            fact = quote.status
            if fact == "cancelled" and quote.accepted_ts_ms is not None:
                fact = ACCEPTED_THEN_CANCELLED
            if replays is not None and not replays.quote_is_news(quote.id, fact):
                skipped += 1
                continue
            produced = quote_events(quote, now_ns, wall_now_ns)
            for event in produced:
                if isinstance(event, ev.QuoteAccepted):
                    if now_ns - event.ts_recv_ns < self._window_ns:
                        accepted_open += 1
                    else:
                        accepted_lapsed += 1
            events.extend(produced)
        # Closed RFQs last: their quotes' fates (an accept, a cancel) happened before the close,
        # and the engine forgets an RFQ's unconfirmed quotes when it hears of the close.
        for rfq_id, ticker in known.items():
            if rfq_id not in open_ids:
                if replays is not None and not replays.rfq_is_news(rfq_id, "deleted"):
                    skipped += 1
                    continue
                events.append(ev.RfqDeleted(rfq_id, ticker, now_ns))
        log.info(
            "resync_backfilled",
            open_rfqs=len(rfqs),
            quotes=len(mine),
            events=len(events),
            accepted_open=accepted_open,
            accepted_lapsed=accepted_lapsed,
            replays_skipped=skipped,
            min_ts_s=min_ts_s,
        )
        return Backfill(tuple(events), len(rfqs), len(mine), accepted_open, accepted_lapsed,
                        skipped)

    async def backfill_into(
        self, post: Callable[[ev.Event], None],
        known_rfqs: Mapping[str, str] | Iterable[str] = (), *,
        since_wall_ns: int | None = None, replays: ReplayFilter | None = None,
    ) -> Backfill:
        """Backfill and hand every event to ``post`` (e.g. ``Runtime.post``), in order."""
        result = await self.backfill(known_rfqs, since_wall_ns=since_wall_ns, replays=replays)
        for event in result.events:
            post(event)
        return result


#: How often a dark communications feed is polled over REST (2 reads a poll).
DEFAULT_OUTAGE_POLL_S: Final = 0.5
_COMMS: Final = "communications"
_PORTFOLIO: Final = frozenset({"fill", "market_positions"})
_BOOK: Final = "orderbook_delta"
#: Errors after which a resync is skipped and retried at the next notice; fatal ones propagate.
_RETRYABLE: Final = (TransientError, DecodeError, PagingLimitError, ExchangeRejectedError)


class NoticeHandler:
    """Turn feed notices into REST backfills, reconciliations and engine events.

    ``post`` queues an event for the engine (``Runtime.post``); ``known_rfqs`` and ``ours``
    read the engine's RFQs and positions (sampled before each REST read);
    ``book_tickers`` lists the subscribed books (``BookSubscriptions.tickers``);
    ``data_feed`` names the connection that carries books; ``quote_state`` reads the engine's
    state of a quote (for the :class:`ReplayFilter`).

    Per feed it keeps the start of the current gap (when the connection's last frame
    arrived) and backfills since then when the feed is back; ``synced_wall_ns`` is when the
    last backfill read the exchange, the start for a gap whose frames are not dated.
    """

    def __init__(
        self,
        *,
        post: Callable[[ev.Event], None],
        resync: Resync,
        known_rfqs: Callable[[], Mapping[str, str] | Iterable[str]],
        reconciler: Reconciler | None = None,
        ours: Callable[[], Mapping[str, int]] | None = None,
        book_tickers: Callable[[], Iterable[str]] = tuple,
        book_sid: Callable[[], int | None] = lambda: None,
        data_feed: str = "data",
        quote_state: Callable[[str], str | None] = lambda _q: None,
        clock: Clock | None = None,
        gap_margin_s: int = DEFAULT_GAP_MARGIN_S,
        outage_poll_s: float = DEFAULT_OUTAGE_POLL_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._post = post
        self._resync = resync
        self._known = known_rfqs
        self._reconciler = reconciler
        self._ours = ours
        self._book_tickers = book_tickers
        self._book_sid = book_sid
        self._data_feed = data_feed
        self._clock = clock
        self._margin_ns = gap_margin_s * NS_PER_S
        self.replays = ReplayFilter(quote_state)
        #: Per feed: wall time the current gap started at (a frame time less the margin).
        self._gap_since: dict[str, int] = {}
        self._connected_once: set[str] = set()
        self.synced_wall_ns: int | None = None
        self.backfills = 0
        self.reconciles = 0
        self._outage_poll_s = outage_poll_s
        self._sleep = sleep
        #: Feeds that carry communications, and those of them not delivering it now.
        self._comms_feeds: set[str] = set()
        self._dark: set[str] = set()
        self._dark_changed = asyncio.Event()
        self._backfilling = asyncio.Lock()
        self.outage_polls = 0

    async def __call__(self, notice: FeedNotice) -> None:
        """Handle one notice (the feed source awaits it before the next)."""
        match notice:
            case FeedConnected(feed=feed, subscriptions=subs):
                channels = {s.channel for s in subs}
                if _COMMS in channels:
                    # The first connection of a feed reads the whole lookback (a restart);
                    # a reconnection reads since its gap.
                    first = feed not in self._connected_once
                    self._connected_once.add(feed)
                    self._comms_feeds.add(feed)
                    self._lit(feed)
                    since = self._gap_since.pop(feed, None)
                    await self.backfill(since_wall_ns=None if first else since)
                if channels & _PORTFOLIO:
                    await self.reconcile()
            case FeedDisconnected(feed=feed):
                self._mark_gap(feed, notice.last_frame_ns)
                if feed in self._comms_feeds:
                    self._went_dark(feed)
                if feed == self._data_feed:
                    self._book_gaps(self._book_sid(), self._book_tickers(), notice.ts_recv_ns)
            case SubscriptionLost(channel=channel):
                if channel == _COMMS:
                    self._went_dark(notice.feed)
                await self._channel_broken(channel, notice)
            case SubscriptionRestored(feed=feed, channel=channel):
                # Frames sent while the subscription was broken are gone: read them back.
                if channel == _COMMS:
                    self._lit(feed)
                    lost, synced = self._wall_of(notice.lost_frame_ns), self._since_synced()
                    await self.backfill(since_wall_ns=min(lost, synced) if lost and synced
                                        else lost or synced)
                elif channel in _PORTFOLIO:
                    await self.reconcile()
            case ev.SequenceGap(channel=channel) if channel != _BOOK:
                await self._channel_broken(channel, notice)
            case _:
                pass

    # --- communications outages: poll REST until the feed delivers again ------------------

    def _went_dark(self, feed: str) -> None:
        if feed not in self._dark:
            self._dark.add(feed)
            log.info("resync_outage_started", feed=feed)
        self._dark_changed.set()

    def _lit(self, feed: str) -> None:
        if feed in self._dark:
            self._dark.discard(feed)
            log.info("resync_outage_ended", feed=feed, polls=self.outage_polls)

    @property
    def dark_feeds(self) -> tuple[str, ...]:
        """The communications feeds not delivering now (disconnected or subscription lost)."""
        return tuple(self._dark)

    async def poll_outages(self) -> None:
        """Run for the service's life: while any communications feed is dark, backfill every
        ``outage_poll_s`` (``0`` disables).

        An accept that arrives while our subscription is broken or the connection is down
        never reaches us as a frame; the confirm window (30 s, 3 s for HVM) does not wait for
        the reconnect (backoff) or the resubscribe. The backfill back-dates it, so the engine
        confirms it if its window is still open.
        """
        if self._outage_poll_s <= 0:
            return
        while True:
            await self._dark_changed.wait()
            self._dark_changed.clear()
            while self._dark:
                await self._sleep(self._outage_poll_s)
                if not self._dark:
                    break
                self.outage_polls += 1
                # Since the last read (less the margin): each poll reads only what is new.
                await self.backfill(since_wall_ns=self._since_synced())

    def _wall_of(self, ts_ns: int) -> int | None:
        """The wall time of engine time ``ts_ns`` less the margin; None if not known."""
        if self._clock is None or ts_ns <= 0:
            return None
        return self._clock.wall_ns() - (self._clock.now_ns() - ts_ns) - self._margin_ns

    def _since_synced(self) -> int | None:
        return None if self.synced_wall_ns is None else self.synced_wall_ns - self._margin_ns

    def _mark_gap(self, feed: str, last_frame_ns: int) -> None:
        # Keep the earliest start if the feed drops again before it was backfilled.
        since = self._wall_of(last_frame_ns)
        if since is None:
            since = self._since_synced()
        if since is None:
            self._gap_since.pop(feed, None)
            self._connected_once.discard(feed)  # no start known: read the whole lookback
            return
        prev = self._gap_since.get(feed)
        self._gap_since[feed] = since if prev is None else min(prev, since)

    async def _channel_broken(self, channel: str, notice: FeedNotice) -> None:
        if channel == _COMMS:
            since = (self._wall_of(notice.last_frame_ns)
                     if isinstance(notice, SubscriptionLost) else None)
            await self.backfill(since_wall_ns=since if since is not None
                                else self._since_synced())
        elif channel in _PORTFOLIO:
            await self.reconcile()
        elif channel == _BOOK and isinstance(notice, SubscriptionLost):
            tickers = notice.market_tickers or tuple(self._book_tickers())
            self._book_gaps(notice.sid, tickers, notice.ts_recv_ns)

    def _book_gaps(self, sid: int | None, tickers: Iterable[str], ts_ns: int) -> None:
        # Deltas were lost: distrust each book until its next snapshot (the resubscription
        # sends one; the engine also asks for a REST snapshot).
        for ticker in tickers:
            self._post(ev.SequenceGap(_BOOK, sid if sid is not None else -1, 0, 0, ts_ns,
                                      market_ticker=ticker))

    async def backfill(self, *, since_wall_ns: int | None = None) -> Backfill | None:
        """Backfill communications now (since ``since_wall_ns``, else the whole lookback);
        None if the REST reads failed (retried at the next notice)."""
        async with self._backfilling:  # one at a time: the outage poller runs beside notices
            return await self._backfill_once(since_wall_ns)

    async def _backfill_once(self, since_wall_ns: int | None) -> Backfill | None:
        started = self._clock.wall_ns() if self._clock is not None else None
        try:
            result = await self._resync.backfill_into(
                self._post, self._known(), since_wall_ns=since_wall_ns, replays=self.replays)
        except _RETRYABLE as exc:
            log.warning("resync_backfill_failed", error=str(exc), error_type=type(exc).__name__)
            return None
        if started is not None:
            self.synced_wall_ns = started
        self.backfills += 1
        return result

    async def reconcile(self) -> None:
        """Reconcile positions and backfill fills now (if a reconciler is configured)."""
        if self._reconciler is None or self._ours is None:
            return
        try:
            await self._reconciler.reconcile_into(self._post, self._ours)
        except _RETRYABLE as exc:
            log.warning("resync_reconcile_failed", error=str(exc), error_type=type(exc).__name__)
            return
        self.reconciles += 1
