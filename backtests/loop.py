"""The backtest loop: recorded frames through the production decoder, pre-filter and kernel.

One synchronous shell of :class:`quoter.runtime.kernel.Kernel` (no second copy of its rules):

* a :class:`~quoter.clock.VirtualClock` advances to each input's receive time, and on the way
  fires, in time order, everything due before it: the kernel's timers (``TimerFired``), the
  answers of requests in flight, frames the venue sent us, the venue's own confirm-window and
  execution timers and the auction model's accepts;
* each frame goes through the production pre-filter and decoder
  (:func:`quoter.kalshi.decode.decode`), then every event to the venue (which replays RFQs) and
  the kernel; the kernel's actions are carried out as the service's driver does, with the
  release gates asked at the moment a request leaves and round trips from the latency model;
* pricing requests are answered inline (``InlinePricing``), as the replay does.

:func:`prepass` is the first pass over the inputs for what the modelled exchange must know in
advance (market metadata, REST books, our recorded quotes and their outcomes); the runs are
:func:`backtests.engine.run_backtest`. Memory is constant in the number of frames; it grows
with the number of markets and of our own recorded quotes.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from backtests.exchange import Venue
from backtests.features import FeatureBook, RfqFeatures
from backtests.inputs import Fact, Frame, FrameScan, Item, RoundTrip, is_recording, merged
from backtests.metrics import Metrics
from backtests.models import LatencyModel, RecordedQuote
from quoter.clock import VirtualClock
from quoter.config import QuoterConfig
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.domain.book import OrderBook
from quoter.domain.money import MoneyError
from quoter.domain.types import MarketInfo, Side
from quoter.engine.engine import Engine
from quoter.engine.pricing import pricing_completed
from quoter.errors import DecodeError, ExchangeRejectedError, QuoterError
from quoter.kalshi.decode import decode as production_decode
from quoter.ports import InboundFrame, MemoryConfirmJournal
from quoter.recording.format import EventLine, HeaderLine, read_recording
from quoter.runtime.kernel import (
    Action,
    EngineFailed,
    EngineStepped,
    Halted,
    InputTaken,
    Kernel,
    Post,
)
from quoter.runtime.prefilter import build_prefilter
from quoter.runtime.pricing_pool import InlinePricing
from quoter.sim.exchange import SimError

__all__ = ["DRAIN_NS", "BacktestLoop", "Prepass", "mirror_book", "prepass"]

_BookDelta: Final = ev.BookDeltaReceived
#: In every frame of our quotes' story (quote_created / _accepted / _executed).
_QUOTE_FRAME: Final = b"quote_"

#: After the last input, keep running this long so confirms, executions and markouts finish.
DRAIN_NS = 120 * 1_000_000_000


def mirror_book(books: dict[str, OrderBook], event: ev.Event) -> None:
    """Apply a book event to ``books`` (other events are ignored); never raises on bad data."""
    if not isinstance(event, ev.BookSnapshotReceived | ev.BookDeltaReceived):
        return
    book = books.get(event.market_ticker)
    if book is None:
        book = books[event.market_ticker] = OrderBook(event.market_ticker)
    try:
        if isinstance(event, ev.BookSnapshotReceived):
            book.apply_snapshot(event.yes_levels, event.no_levels, event.ts_recv_ns,
                                yes_priced=event.yes_priced)
        else:
            book.apply_delta(event.side is Side.YES, event.price_micros,
                             event.delta_centi, event.ts_recv_ns, yes_priced=event.yes_priced)
    except (QuoterError, MoneyError):
        # An inconsistent delta (e.g. two captures of one market merged): the engine's own
        # book handles it as a gap; the mirror starts again from the next snapshot.
        book.clear()


class BacktestLoop:
    """Step a kernel over inputs in virtual time against a venue."""

    def __init__(self, config: QuoterConfig, latency: LatencyModel, *, start_ns: int = 0,
                 wall_offset_ns: int = 0, metrics: Metrics | None = None) -> None:
        self.config = config
        self.clock = VirtualClock(start_ns, wall_offset_ns)
        self.start_ns = start_ns
        self.engine = Engine(config, perf_ns=None, wall_offset_ns=wall_offset_ns)
        self.kernel = Kernel(self.engine, journal=MemoryConfirmJournal())
        self.latency = latency
        self.metrics = metrics if metrics is not None else Metrics()
        self.venue: Venue | None = None
        self.mirror: dict[str, OrderBook] = {}
        self.keep = build_prefilter(config)
        self.commands: list[cmd.Command] = []
        self.frames = 0
        self.decode_errors = 0
        #: Called with each frame delivered to the engine.
        self.on_frame: Callable[[bytes, int], None] | None = None
        #: Called with each frame received, before the pre-filter (the world recorder's tap).
        self.on_receive: Callable[[bytes, int], None] | None = None
        #: Called with each kernel step's ``InputTaken`` (the world recorder's step lines).
        self.on_input: Callable[[InputTaken], None] | None = None
        #: Carries out one kernel action; a recorded-answers run (``backtests.tape``) wraps it.
        self.carry: Callable[[Action], None] = self.apply
        self._agenda: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._pricing = InlinePricing()
        #: Our fair of YES in the last quote sent per RFQ (auction models may read it).
        self.fair_of_rfq: dict[str, int | None] = {}
        #: Each RFQ's size, requester, series and time to close (auction models read it).
        self.features = FeatureBook()
        #: A recorded-answers run's threads (``backtests.tape.RecordedAnswers``), if any.
        self.answers: Any = None

    # -- scheduling --------------------------------------------------------------------------

    def at(self, due_ns: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` at ``due_ns`` (now, if that has passed)."""
        heapq.heappush(self._agenda, (max(due_ns, self.clock.now_ns()), next(self._seq), fn))

    def deliver(self, data: bytes) -> None:
        """A frame the venue sent us: it arrives after the feed delay."""
        sent = self.clock.now_ns()
        self.at(sent + self.latency.feed_delay_ns, lambda: self.frame(data, recorded=False))

    def run_until(self, ts_ns: int) -> None:
        """Fire everything due by ``ts_ns`` in time order (timers, answers, venue), then stop."""
        clock = self.clock
        agenda = self._agenda
        timers = clock.timers
        exchange = self.venue.exchange if self.venue else None
        while True:
            # The earliest of the three; on a tie the agenda, then timers, then the venue (the
            # order of ``min`` over ``(at, which)``), without building tuples every frame.
            which = -1
            at = 0
            if agenda:
                at, which = agenda[0][0], 0
            timer_at = timers.next_at()
            if timer_at is not None and (which < 0 or timer_at < at):
                at, which = timer_at, 1
            venue_at = exchange.next_deadline_ns() if exchange is not None else None
            if venue_at is not None and (which < 0 or venue_at < at):
                at, which = venue_at, 2
            if which < 0 or at > ts_ns:
                break
            clock.advance_to(max(at, clock.now_ns()))
            if which == 0:
                heapq.heappop(agenda)[2]()
            elif which == 1:
                for _, key in timers.pop_due(clock.now_ns()):
                    self.step(ev.TimerFired(key, clock.now_ns()))
            else:
                assert exchange is not None
                exchange.advance(clock.now_ns())
        clock.advance_to(max(ts_ns, clock.now_ns()))

    def drain(self, extra_ns: int = DRAIN_NS) -> None:
        """Let everything in flight finish (bounded: ``extra_ns`` past now)."""
        self.run_until(self.clock.now_ns() + extra_ns)

    # -- inputs ------------------------------------------------------------------------------

    def frame(self, data: bytes, *, recorded: bool = True) -> None:
        """One frame at the current time: pre-filter, production decoder, venue, kernel.

        A ``recorded`` frame is shown to the venue first (it replays RFQs, and keeps our
        recorded quotes' story from the engine); the venue's own frames go straight in.
        """
        now = self.clock.now_ns()
        self.frames += 1
        if self.on_receive is not None:
            self.on_receive(data, now)
        if not self.keep(data):
            self.metrics.prefiltered += 1
            return
        try:
            _, events = production_decode(data, now)
        except DecodeError:
            self.decode_errors += 1
            return
        frame = InboundFrame(data, now)
        delivered = False
        for i, event in enumerate(events):
            if type(event) is _BookDelta:
                # Most of a book-heavy recording. A delta is market data: the venue keeps it
                # and replays nothing from it (``Venue.observe``), the feature book ignores
                # it, and of the metrics only the inventory clock moves; so it goes to the
                # mirror, that clock and the kernel, without three dispatches on its type.
                book = self.mirror.get(event.market_ticker)
                if book is None:
                    mirror_book(self.mirror, event)
                else:
                    try:
                        book.apply_delta(event.side is Side.YES, event.price_micros,
                                         event.delta_centi, event.ts_recv_ns,
                                         yes_priced=event.yes_priced)
                    except (QuoterError, MoneyError):
                        book.clear()  # as mirror_book: the next snapshot starts it again
                delivered = True
                self.metrics.tick(now)
                self.step(event, (frame, i))
                continue
            self.mirror_event(event)
            if recorded and self.venue is not None and not self.venue.observe(event, now):
                continue
            delivered = True
            self.features.observe(event)
            self.metrics.observe(event, now, self)
            self.step(event, (frame, i))
        if delivered and self.on_frame is not None:
            self.on_frame(data, now)

    def features_of(self, rfq_id: str) -> RfqFeatures | None:
        """``rfq_id``'s features now (what a requester deciding now would know of it)."""
        return self.features.of(rfq_id, self.clock.wall_ns())

    def mirror_event(self, event: ev.Event) -> None:
        """Follow a frame's book event in the books the metrics and models read."""
        mirror_book(self.mirror, event)

    def post(self, event: ev.Event, at_ns: int | None = None) -> None:
        """Feed a non-frame event (a REST result) to the kernel at ``at_ns`` (default now)."""
        def run() -> None:
            self.features.observe(event)
            self.metrics.observe(event, self.clock.now_ns(), self)
            self.step(event)
        self.at(self.clock.now_ns() if at_ns is None else at_ns, run)

    def step(self, event: ev.Event, origin: tuple[InboundFrame, int] | None = None) -> None:
        """One kernel step at the current time; carry out its actions."""
        for action in self.kernel.step(event, self.clock.now_ns(), origin):
            self.carry(action)

    # -- actions -----------------------------------------------------------------------------

    def apply(self, action: Action) -> None:
        """Carry out one kernel action against the venue, the clock and the metrics."""
        # Every step starts with these two: by type first, not through the match below.
        if type(action) is InputTaken:
            if self.on_input is not None:
                self.on_input(action)
            return
        if type(action) is EngineStepped:
            self.commands.extend(action.commands)
            return
        now = self.clock.now_ns()
        match action:
            case InputTaken():
                if self.on_input is not None:
                    self.on_input(action)
            case EngineStepped(commands=commands):
                self.commands.extend(commands)
            case EngineFailed():
                self.metrics.engine_errors += 1
            case Halted():
                self.metrics.halts += 1
            case Post(event=event):
                self.post(event)
            case cmd.SubmitQuote():
                self._submit(action, now)
            case cmd.CancelQuote():
                self._cancel(action, now)
            case cmd.ConfirmQuote():
                self._confirm(action, now)
            case cmd.ScheduleTimer(key=key, fire_at_ns=at):
                self.clock.timers.arm(key, at)
            case cmd.CancelTimer(key=key):
                self.clock.timers.cancel(key)
            case cmd.RecordDecision():
                self.metrics.decision(action, now)
            case cmd.FetchMarket(market_ticker=ticker):
                self._fetch_market(ticker, now)
            case cmd.RequestBookSnapshot(market_ticker=ticker):
                rtt = self.rtt_ns("book")
                venue = self.venue
                if venue is not None:
                    self.at(now + rtt, lambda: self.post(venue.book(ticker, self.clock.now_ns())))
            case cmd.SubscribeMarkets(market_tickers=tickers):
                if self.venue is not None:
                    self.venue.subscribe(tickers)
            case cmd.PriceInPool():
                result = self._pricing.price(action)
                self.post(pricing_completed(action.rfq_id, action.request_id, result, now))
            case _:
                pass

    def _fetch_market(self, ticker: str, now: int) -> None:
        def answer() -> None:
            info = self.venue.market(ticker) if self.venue is not None else None
            t = self.clock.now_ns()
            self.post(ev.MarketLoaded(info, t) if info is not None
                      else ev.MarketLoadFailed(ticker, "unknown market in the recording", t))
        self.at(now + self.rtt_ns("market"), answer)

    def rtt_ns(self, kind: str) -> int:
        """One round trip of ``kind`` from the latency model, counted in the metrics."""
        rtt = self.latency.rtt_ns(kind)
        self.metrics.round_trip(kind, rtt)
        return rtt

    def _round_trip(self, kind: str, now: int, act: Callable[[], Any],
                    done: Callable[[Any, int], ev.Event],
                    failed: Callable[[QuoterError, int], ev.Event]) -> None:
        rtt = self.rtt_ns(kind)

        def at_exchange() -> None:
            try:
                result = act()
            except SimError as exc:
                err = ExchangeRejectedError("REST", kind, exc.status, exc.code, exc.message)
                self.at(now + rtt, lambda: self.post(failed(err, self.clock.now_ns())))
                return
            self.at(now + rtt, lambda: self.post(done(result, self.clock.now_ns())))

        self.at(now + rtt // 2, at_exchange)

    def _submit(self, command: cmd.SubmitQuote, now: int, *, count: bool = True) -> None:
        release = self.kernel.release_submit(command, now)
        if release.event is not None:
            self.post(release.event)
            return
        venue = self.venue
        assert venue is not None
        if count:
            self.metrics.submitted(command, now)
        self.fair_of_rfq[command.rfq_id] = command.fair_yes_micros
        self._round_trip(
            "submit", now,
            lambda: venue.submit(command.rfq_id, command.yes_bid_micros, command.no_bid_micros,
                                 rest_remainder=command.rest_remainder,
                                 post_only=command.post_only),
            lambda qid, t: self.kernel.submitted(command, qid, t),
            lambda exc, t: self.kernel.submit_failed(command, exc, t))

    def _cancel(self, command: cmd.CancelQuote, now: int) -> None:
        if not self.kernel.release_cancel(command).send:
            return
        venue = self.venue
        assert venue is not None
        self._round_trip("cancel", now, lambda: venue.cancel(command.rfq_id, command.quote_id),
                         lambda _, t: self.kernel.cancelled(command, t),
                         lambda exc, t: self.kernel.cancel_failed(command, exc, t))

    def _confirm(self, command: cmd.ConfirmQuote, now: int) -> None:
        release = self.kernel.release_confirm(command, now)
        if not release.send:
            if release.event is not None:
                self.post(release.event)
            return
        self.send_confirm(command, now)

    def send_request(self, command: Action) -> None:
        """Send a request the kernel already released (a recorded-answers run taking over)."""
        now = self.clock.now_ns()
        match command:
            case cmd.SubmitQuote():
                self._submit(command, now, count=False)
            case cmd.ConfirmQuote():
                self.send_confirm(command, now)
            case _:
                self.apply(command)

    def send_confirm(self, command: cmd.ConfirmQuote, now: int) -> None:
        """Send a released confirm to the venue."""
        venue = self.venue
        assert venue is not None
        self.metrics.confirm_sent(command, now)
        self._round_trip("confirm", now, lambda: venue.confirm(command.rfq_id, command.quote_id),
                         lambda _, t: self.kernel.confirmed(command, t),
                         lambda exc, t: self.kernel.confirm_failed(command, exc, t))


# --- the first pass ----------------------------------------------------------------------------


@dataclass
class Prepass:
    """What a backtest must know before the run: metadata, books, our quotes' outcomes."""

    markets: dict[str, MarketInfo] = field(default_factory=dict)
    books: dict[str, list[ev.BookSnapshotReceived]] = field(default_factory=dict)
    quotes: dict[str, list[RecordedQuote]] = field(default_factory=dict)
    #: The RFQ of each order our recorded quotes executed into (fills name only the order).
    order_rfq: dict[str, str] = field(default_factory=dict)
    round_trips: list[tuple[str, str, int]] = field(default_factory=list)
    first_ns: int | None = None
    wall_offset_ns: int = 0
    frames: int = 0


def prepass(paths: Iterable[Path | str]) -> Prepass:
    """Collect metadata, REST books, round trips and our recorded quotes (one streaming pass)."""
    files = [Path(p) for p in paths]
    out = Prepass()
    by_quote: dict[str, tuple[str, int]] = {}
    scan: FrameScan | None = None
    items: Iterable[Item] = merged(files)
    if len(files) == 1 and not (files[0].suffix == ".gz" and is_recording(files[0])):
        # One interchange file: only the first frame and our quotes' frames matter here, so
        # the rest are counted, not unwrapped (several files are merged by time: read all).
        items = scan = FrameScan(files[0], _QUOTE_FRAME)
    for item in items:
        if isinstance(item, RoundTrip):
            out.round_trips.append((item.method, item.path, item.rtt_ns))
            continue
        if out.first_ns is None:
            out.first_ns = item.ts_recv_ns
        if isinstance(item, Frame):
            out.frames += 1
        if isinstance(item, Fact):
            if isinstance(item.event, ev.MarketLoaded):
                out.markets[item.event.market.ticker] = item.event.market
            else:
                out.books.setdefault(item.event.market_ticker, []).append(item.event)
            continue
        if _QUOTE_FRAME not in item.data:
            continue
        try:
            _, events = production_decode(item.data, item.ts_recv_ns)
        except DecodeError:
            continue
        for event in events:
            if isinstance(event, ev.QuoteCreated):
                quotes = out.quotes.setdefault(event.rfq_id, [])
                by_quote[event.quote_id] = (event.rfq_id, len(quotes))
                quotes.append(RecordedQuote(event.yes_bid_micros, event.no_bid_micros,
                                            event.ts_recv_ns))
            elif isinstance(event, ev.QuoteExecuted):
                out.order_rfq[event.order_id] = event.rfq_id
            elif isinstance(event, ev.QuoteAccepted) and event.quote_id in by_quote:
                rfq_id, index = by_quote[event.quote_id]
                q = out.quotes[rfq_id][index]
                out.quotes[rfq_id][index] = RecordedQuote(
                    q.yes_bid_micros, q.no_bid_micros, q.created_ns, event.accepted_side,
                    event.ts_recv_ns)
    if scan is not None:
        out.frames = scan.frames
    for f in (f for f in files if f.suffix == ".gz" and is_recording(f)):
        for line in read_recording(f):
            if isinstance(line, HeaderLine) and "wall_offset_ns" in line.fields:
                out.wall_offset_ns = int(line.fields["wall_offset_ns"])
                break
            if isinstance(line, EventLine) and line.kind == "engine_start":
                out.wall_offset_ns = int(line.payload["wall_offset_ns"])
                break
        break
    return out
