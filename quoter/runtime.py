"""The async driver: one TaskGroup runs the feed readers, the engine loop and the executors.

Shared by live, simulated and replay runs; only the clock, the frame sources and the ports
change. Ordering rules that matter for money:

* **Priority lane.** Our own quote events, fills, command results and timers overtake an
  ``rfq_created`` flood: the inbound queue is a priority queue keyed ``(lane, seq)``.
* **Confirms never wait behind quotes.** Confirms have their own worker; a confirm is sent only
  if the deadline has not passed, we are not halted, and the store has not seen it before
  (``claim_confirm``), so a restart can never confirm twice.
* **Load shedding.** When the inbound queue is full, new low-priority frames are dropped and
  counted; priority frames wait (backpressure) instead.
* **Pool pricing.** ``PriceInPool`` goes to a bounded queue served by one task per pool worker
  (``quoter.pricing_pool``); each answer comes back as a priority ``PricingCompleted``. With no
  pool, the request is priced inline at once (replays, tests).
* **Shutdown order.** Stop quoting, cancel every open quote over REST, flush the store, close
  the sockets (by cancelling the task group).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from quoter.clock import Clock
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.engine.pricing import PRICER_BUSY, PRICER_ERROR, PRICER_TIMEOUT, pricing_completed
from quoter.errors import DecodeError, ExchangeRejectedError, QuoterError
from quoter.ports import ExecutionPort, FrameSource, InboundFrame, MarketDataPort
from quoter.pricing_pool import InlinePricing, PricingPool
from strategies.base import Decline, Pricing

__all__ = ["EngineLike", "Runtime", "RuntimeHooks", "RuntimeStats"]

log = structlog.get_logger("quoter.runtime")

PRIORITY, NORMAL = 0, 1
#: Frame types that belong to the priority lane (ours, or about money we may owe).
PRIORITY_TYPES = frozenset(
    {"quote_accepted", "quote_executed", "quote_created", "fill", "market_position", "error"}
)


class EngineLike(Protocol):
    """What the runtime needs of the engine."""

    def on_event(self, event: ev.Event, now_ns: int) -> list[cmd.Command]:
        """Handle one event; return the commands to execute."""
        ...


@dataclass
class RuntimeStats:
    """Counters the runtime keeps (exported as metrics by the service)."""

    frames: int = 0
    events: int = 0
    decode_errors: int = 0
    shed_frames: int = 0
    prefiltered: int = 0
    quotes_sent: int = 0
    quotes_rejected: int = 0
    confirms_sent: int = 0
    confirms_skipped: int = 0
    cancels_sent: int = 0
    engine_errors: int = 0
    decisions: dict[str, int] = field(default_factory=dict)


class RuntimeHooks:
    """Side channels the service plugs in (store, recorder, metrics, book subscriptions).

    Every method is a no-op here; the service subclasses it. Keeping these out of the engine is
    what keeps the engine pure.
    """

    def on_frame(self, frame: InboundFrame, msg_type: str | None) -> None:
        """Observe an inbound frame (recorder, metrics)."""

    def on_decode_error(self, frame: InboundFrame, error: DecodeError) -> None:
        """Observe a frame that failed to decode."""

    def on_decision(self, decision: cmd.RecordDecision, now_ns: int) -> None:
        """Persist/count an engine decision."""

    def claim_confirm(self, quote_id: str, now_ns: int) -> bool:
        """Return False if this quote was already confirmed (e.g. before a restart)."""
        return True

    def on_command_result(self, name: str, latency_ns: int, ok: bool) -> None:
        """Observe a REST round trip."""

    def on_engine_input(
        self, event: ev.Event, now_ns: int, origin: tuple[InboundFrame, int] | None
    ) -> None:
        """Observe one engine input just before it runs, with the ``now_ns`` it is given."""
        # ``origin`` is (frame, index) when the event is the index-th decoded from that frame;
        # the recorder writes these so a replay rebuilds the engine's exact input sequence.

    def on_engine_step(self, event: ev.Event, commands: list[cmd.Command], now_ns: int) -> None:
        """Observe what the engine made of one event (latency, persistence)."""

    def on_request_sent(self, command: cmd.Command, queued_ns: int, now_ns: int) -> None:
        """Observe a quote/cancel/confirm leaving for the exchange."""

    def on_engine_error(self, event: ev.Event, error: BaseException) -> None:
        """Count an event the engine failed on."""

    def on_halt(self, reason: str) -> None:
        """Persist/announce a halt."""

    async def subscribe_markets(self, tickers: Sequence[str]) -> None:
        """Start book data for these markets."""

    async def unsubscribe_markets(self, tickers: Sequence[str]) -> None:
        """Stop book data for these markets."""


@dataclass(order=True)
class _Item:
    lane: int
    seq: int
    event: Any = field(compare=False)
    # (frame, index of the event among the frame's decoded events), for frame-borne events.
    origin: tuple[InboundFrame, int] | None = field(default=None, compare=False)


class Runtime:
    """Drive an engine from frame sources, executing its commands through the ports."""

    def __init__(
        self,
        *,
        clock: Clock,
        engine: EngineLike,
        decode: Callable[[bytes | str, int], tuple[str | None, list[ev.Event]]],
        execution: ExecutionPort,
        market_data: MarketDataPort,
        hooks: RuntimeHooks | None = None,
        prefilter: Callable[[bytes | str], bool] | None = None,
        queue_size: int = 10_000,
        exec_workers: int = 4,
        send: bool = True,
        pricing_pool: PricingPool | None = None,
    ) -> None:
        self.clock = clock
        self.engine = engine
        self._decode = decode
        self.execution = execution
        self.market_data = market_data
        self.hooks = hooks or RuntimeHooks()
        self._prefilter = prefilter
        self._inbox: asyncio.PriorityQueue[_Item] = asyncio.PriorityQueue()
        self._queue_size = queue_size
        self._normal_pending = 0
        # Commands travel with the engine time they were queued at (decision -> send latency).
        self._exec: asyncio.Queue[tuple[cmd.SubmitQuote | cmd.CancelQuote, int]] = asyncio.Queue(
            queue_size
        )
        self._confirms: asyncio.Queue[tuple[cmd.ConfirmQuote, int]] = asyncio.Queue(1_000)
        # IO jobs the engine asked for (market metadata, book snapshots, subscriptions).
        self._jobs: asyncio.Queue[tuple[str, Callable[[], Awaitable[None]]]] = asyncio.Queue()
        self._exec_workers = exec_workers
        # Process-isolated pricing (quoter.pricing_pool); inline when there is no pool.
        self._pool = pricing_pool
        self._inline_pricing = InlinePricing()
        self._pricing: asyncio.Queue[cmd.PriceInPool] = asyncio.Queue(queue_size)
        self._seq = itertools.count()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # Quotes of ours that may rest on the exchange: quote_id -> rfq_id, and the live quote
        # of each RFQ (a new quote on an RFQ replaces the old one at the exchange, §3.1).
        self._open_quotes: dict[str, str] = {}
        self._rfq_quote: dict[str, str] = {}
        self._cancelling: set[str] = set()
        self._send = send  # shadow mode: decide, send nothing
        self.halted = False
        self.halt_reason = ""
        self.stats = RuntimeStats()
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self.last_frame_ns = 0

    # -- public control --------------------------------------------------------------------

    def halt(self, reason: str) -> None:
        """Halt at once: no quote or confirm leaves after this call; open quotes get cancelled."""
        if not self.halted:
            self.halted, self.halt_reason = True, reason
            self.hooks.on_halt(reason)
            log.warning("quoting_halted", reason=reason)
        self.post(ev.KillSwitchChanged(True, reason, self.clock.now_ns()))

    def resume(self) -> None:
        """Resume quoting after a halt."""
        self.halted, self.halt_reason = False, ""
        log.info("quoting_resumed")
        self.post(ev.KillSwitchChanged(False, "resumed", self.clock.now_ns()))

    def cancel_all(self) -> list[tuple[str, str]]:
        """Queue a cancel for every open quote we placed; returns them."""
        quotes = [(q, r) for q, r in self._open_quotes.items() if q not in self._cancelling]
        for quote_id, rfq_id in quotes:
            self._put_exec(cmd.CancelQuote(rfq_id, quote_id, "cancel_all"))
        return [(rfq, q) for q, rfq in quotes]

    @property
    def open_quotes(self) -> dict[str, str]:
        """Quotes we placed and have not seen end: quote_id -> rfq_id."""
        return dict(self._open_quotes)

    @property
    def inbox_depth(self) -> int:
        """Events waiting for the engine."""
        return self._inbox.qsize()

    def post(
        self, event: ev.Event, *, priority: bool = True,
        origin: tuple[InboundFrame, int] | None = None,
    ) -> None:
        """Queue an event for the engine (from control paths, timers, command results)."""
        if not priority:
            if self._normal_pending >= self._queue_size:
                self.stats.shed_frames += 1
                return
            self._normal_pending += 1
        # The heap itself is unbounded: our own results are never dropped; the bound above
        # sheds only market-wide traffic.
        self._inbox.put_nowait(
            _Item(PRIORITY if priority else NORMAL, next(self._seq), event, origin)
        )

    def set_prefilter(self, prefilter: Callable[[bytes | str], bool] | None) -> None:
        """Replace the raw-frame pre-filter (e.g. after a config reload)."""
        self._prefilter = prefilter

    def stop(self) -> None:
        """Begin an orderly shutdown."""
        self._stopping.set()

    # -- main ------------------------------------------------------------------------------

    async def run(
        self, sources: Iterable[FrameSource], *, until: asyncio.Event | None = None
    ) -> None:
        """Run until ``stop()`` (or ``until`` is set), then shut down in order."""
        stop = until or self._stopping
        try:
            async with asyncio.TaskGroup() as tg:
                workers = [
                    tg.create_task(self._engine_loop(), name="engine"),
                    tg.create_task(self._confirm_worker(), name="confirms"),
                    tg.create_task(self._job_worker(), name="io-jobs"),
                ]
                workers += [
                    tg.create_task(self._exec_worker(), name=f"exec-{i}")
                    for i in range(self._exec_workers)
                ]
                if self._pool is not None:
                    if self._pool.eager:
                        self._pool.start()
                    workers += [
                        tg.create_task(self._pricing_worker(self._pool), name=f"pricing-{i}")
                        for i in range(self._pool.workers)
                    ]
                readers = [
                    tg.create_task(self._ingest(src), name=f"ingest-{i}")
                    for i, src in enumerate(sources)
                ]
                await stop.wait()
                for task in readers:
                    task.cancel()
                await self._shutdown()
                for task in workers:
                    task.cancel()
        finally:
            for handle in self._timers.values():
                handle.cancel()
            self._timers.clear()
            if self._pool is not None:
                self._pool.close()

    async def _shutdown(self) -> None:
        """Stop quoting, then cancel open quotes and wait (bounded) for the cancels to go."""
        self.halted, self.halt_reason = True, self.halt_reason or "shutdown"
        log.info("shutdown_started", open_quotes=len(self._open_quotes))
        self._drain_engine(ev.KillSwitchChanged(True, "shutdown", self.clock.now_ns()))
        self.cancel_all()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self._exec.join()
        log.info("shutdown_quotes_cancelled", remaining=len(self._open_quotes))

    # -- ingest ----------------------------------------------------------------------------

    async def _ingest(self, source: FrameSource) -> None:
        async for frame in source.frames():
            self.stats.frames += 1
            self.last_frame_ns = frame.ts_recv_ns
            if self._prefilter is not None and not self._prefilter(frame.data):
                self.stats.prefiltered += 1
                self.hooks.on_frame(frame, None)
                continue
            try:
                msg_type, events = self._decode(frame.data, frame.ts_recv_ns)
            except DecodeError as exc:
                self.stats.decode_errors += 1
                self.hooks.on_frame(frame, exc.msg_type)
                self.hooks.on_decode_error(frame, exc)
                log.warning("frame_decode_failed", error=str(exc), msg_type=exc.msg_type)
                continue
            self.hooks.on_frame(frame, msg_type)
            priority = msg_type in PRIORITY_TYPES
            for index, event in enumerate(events):
                self.post(event, priority=priority, origin=(frame, index))
            # Yield so a flood on one connection cannot starve the engine.
            await asyncio.sleep(0)

    # -- engine ----------------------------------------------------------------------------

    async def _engine_loop(self) -> None:
        while True:
            item = await self._inbox.get()
            if item.lane == NORMAL:
                self._normal_pending -= 1
            try:
                self._drain_engine(item.event, item.origin)
            finally:
                self._inbox.task_done()

    def _drain_engine(
        self, event: ev.Event, origin: tuple[InboundFrame, int] | None = None
    ) -> None:
        self.stats.events += 1
        if isinstance(event, ev.TimerFired):
            self._timers.pop(event.key, None)
        self._track(event)
        now_ns = self.clock.now_ns()
        self.hooks.on_engine_input(event, now_ns, origin)
        try:
            commands = self.engine.on_event(event, now_ns)
        except QuoterError as exc:
            self.stats.engine_errors += 1
            self.hooks.on_engine_error(event, exc)
            log.error("engine_event_failed", event_type=type(event).__name__, error=str(exc))
            return
        except Exception as exc:
            # A bug, not bad input: the engine's state can no longer be trusted to quote, but
            # it must keep seeing fills and results, so halt (cancels go out) and carry on.
            self.stats.engine_errors += 1
            self.hooks.on_engine_error(event, exc)
            log.exception("engine_event_crashed", event_type=type(event).__name__)
            if not self.halted:
                self.halt(f"engine error on {type(event).__name__}")
            return
        self.hooks.on_engine_step(event, commands, self.clock.now_ns())
        for command in commands:
            self._dispatch(command)

    def _track(self, event: ev.Event) -> None:
        """Keep the set of our quotes that could still rest on the exchange."""
        match event:
            case ev.QuotePlaced(rfq_id=rfq_id, quote_id=quote_id):
                old = self._rfq_quote.get(rfq_id)
                if old is not None and old != quote_id:
                    self._forget_quote(old)
                self._rfq_quote[rfq_id] = quote_id
                self._open_quotes[quote_id] = rfq_id
            case ev.RfqDeleted(rfq_id=rfq_id):
                old = self._rfq_quote.pop(rfq_id, None)
                if old is not None:
                    self._forget_quote(old)
            case (ev.QuoteAccepted(quote_id=quote_id) | ev.QuoteCancelled(quote_id=quote_id)
                  | ev.QuoteConfirmed(quote_id=quote_id)):
                self._forget_quote(quote_id)
            case _:
                pass

    def _forget_quote(self, quote_id: str) -> None:
        rfq_id = self._open_quotes.pop(quote_id, None)
        self._cancelling.discard(quote_id)
        if rfq_id is not None and self._rfq_quote.get(rfq_id) == quote_id:
            del self._rfq_quote[rfq_id]

    def _dispatch(self, command: cmd.Command) -> None:
        match command:
            case cmd.SubmitQuote() | cmd.CancelQuote():
                self._put_exec(command)
            case cmd.ConfirmQuote():
                self._confirms.put_nowait((command, self.clock.now_ns()))
            case cmd.ScheduleTimer(key=key, fire_at_ns=at):
                self._schedule(key, at)
            case cmd.CancelTimer(key=key):
                handle = self._timers.pop(key, None)
                if handle is not None:
                    handle.cancel()
            case cmd.RecordDecision():
                self.stats.decisions[command.decision] = (
                    self.stats.decisions.get(command.decision, 0) + 1
                )
                self.hooks.on_decision(command, self.clock.now_ns())
            case cmd.FetchMarket(market_ticker=ticker):
                self._jobs.put_nowait((ticker, lambda: self._fetch_market(ticker)))
            case cmd.RequestBookSnapshot(market_ticker=ticker):
                self._jobs.put_nowait((ticker, lambda: self._fetch_book(ticker)))
            case cmd.SubscribeMarkets(market_tickers=tickers):
                self._jobs.put_nowait(("subscribe", lambda: self.hooks.subscribe_markets(tickers)))
            case cmd.UnsubscribeMarkets(market_tickers=tickers):
                self._jobs.put_nowait(
                    ("unsubscribe", lambda: self.hooks.unsubscribe_markets(tickers))
                )
            case cmd.PriceInPool():
                self._put_pricing(command)
            case cmd.Halt(reason=reason):
                if not self.halted:
                    self.halted, self.halt_reason = True, reason
                    self.hooks.on_halt(reason)
                    log.error("engine_halted", reason=reason)
                self.cancel_all()

    def _put_exec(self, command: cmd.SubmitQuote | cmd.CancelQuote) -> None:
        if isinstance(command, cmd.CancelQuote):
            if command.quote_id in self._cancelling:
                return
            self._cancelling.add(command.quote_id)
        try:
            self._exec.put_nowait((command, self.clock.now_ns()))
        except asyncio.QueueFull:
            log.error("exec_queue_full", command=type(command).__name__)
            if isinstance(command, cmd.SubmitQuote):
                self.post(ev.QuoteRejected(command.rfq_id, "queue_full", "exec queue full",
                                           self.clock.now_ns()))

    def _put_pricing(self, command: cmd.PriceInPool) -> None:
        if self._pool is None:
            result = self._inline_pricing.price(command)
            self.post(pricing_completed(command.rfq_id, command.request_id, result,
                                        self.clock.now_ns()))
            return
        try:
            self._pricing.put_nowait(command)
        except asyncio.QueueFull:
            log.error("pricing_queue_full", rfq_id=command.rfq_id)
            self.post(pricing_completed(command.rfq_id, command.request_id,
                                        Decline(PRICER_BUSY, "pricing queue full"),
                                        self.clock.now_ns()))

    async def _pricing_worker(self, pool: PricingPool) -> None:
        """Price one request at a time, so the pool never queues (a timeout means stuck)."""
        while True:
            command = await self._pricing.get()
            try:
                left_ns = command.deadline_ns - self.clock.now_ns()
                result: Pricing | Decline
                try:
                    result = (
                        await pool.price(command, left_ns / 1e9) if left_ns > 0
                        else Decline(PRICER_TIMEOUT, "deadline passed in the pricing queue")
                    )
                except Exception as exc:  # e.g. workers cannot be spawned: decline, go on
                    log.exception("pricing_pool_failed", rfq_id=command.rfq_id)
                    result = Decline(PRICER_ERROR, f"pricing pool: {type(exc).__name__}")
                self.post(pricing_completed(command.rfq_id, command.request_id, result,
                                            self.clock.now_ns()))
            finally:
                self._pricing.task_done()

    def _schedule(self, key: str, fire_at_ns: int) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        delay_s = max(0.0, (fire_at_ns - self.clock.now_ns()) / 1e9)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(
            delay_s, lambda: self.post(ev.TimerFired(key, self.clock.now_ns()))
        )

    # -- executors -------------------------------------------------------------------------

    async def _exec_worker(self) -> None:
        while True:
            command, queued_ns = await self._exec.get()
            try:
                await self._execute(command, queued_ns)
            finally:
                self._exec.task_done()

    async def _execute(self, command: cmd.SubmitQuote | cmd.CancelQuote, queued_ns: int) -> None:
        sent_ns = self.clock.now_ns()
        if isinstance(command, cmd.SubmitQuote):
            if self.halted or not self._send:
                reason = "halted" if self.halted else "shadow"
                self.post(ev.QuoteRejected(command.rfq_id, reason, "not sent", sent_ns))
                return
            self.hooks.on_request_sent(command, queued_ns, sent_ns)
            try:
                quote_id = await self.execution.submit_quote(
                    command.rfq_id, command.yes_bid_micros, command.no_bid_micros,
                    rest_remainder=command.rest_remainder, post_only=command.post_only,
                    subaccount=command.subaccount,
                )
            except QuoterError as exc:
                self.stats.quotes_rejected += 1
                self.hooks.on_command_result("submit_quote", self.clock.now_ns() - sent_ns, False)
                code = getattr(exc, "code", type(exc).__name__)
                self.post(ev.QuoteRejected(command.rfq_id, str(code), str(exc),
                                           self.clock.now_ns()))
                return
            self.stats.quotes_sent += 1
            self.hooks.on_command_result("submit_quote", self.clock.now_ns() - sent_ns, True)
            # Track now, not when the engine sees QuotePlaced: a shutdown in between must
            # still cancel it.
            self._open_quotes[quote_id] = command.rfq_id
            self.post(ev.QuotePlaced(command.rfq_id, quote_id, self.clock.now_ns()))
            return
        if not self._send:
            return
        try:
            await self.execution.cancel_quote(command.rfq_id, command.quote_id)
        except QuoterError as exc:
            self.hooks.on_command_result("cancel_quote", self.clock.now_ns() - sent_ns, False)
            code = getattr(exc, "code", type(exc).__name__)
            self._cancelling.discard(command.quote_id)
            if isinstance(exc, ExchangeRejectedError) and exc.status_code == 404:
                # Gone already (RFQ closed, or accepted: Kalshi 404s a DELETE after accept).
                self._forget_quote(command.quote_id)
            self.post(ev.QuoteCancelFailed(command.rfq_id, command.quote_id, str(code), str(exc),
                                           self.clock.now_ns()))
            return
        self.stats.cancels_sent += 1
        self.hooks.on_command_result("cancel_quote", self.clock.now_ns() - sent_ns, True)
        self._forget_quote(command.quote_id)
        self.post(ev.QuoteCancelled(command.rfq_id, command.quote_id, self.clock.now_ns()))

    async def _confirm_worker(self) -> None:
        while True:
            command, queued_ns = await self._confirms.get()
            now = self.clock.now_ns()
            if self.halted or not self._send or now >= command.deadline_ns:
                self.stats.confirms_skipped += 1
                reason = "halted" if self.halted else ("shadow" if not self._send else "deadline")
                log.warning("confirm_skipped", quote_id=command.quote_id, reason=reason)
                self.post(ev.ConfirmFailed(command.rfq_id, command.quote_id, reason,
                                           "confirm not sent", now))
                continue
            if not self.hooks.claim_confirm(command.quote_id, now):
                self.stats.confirms_skipped += 1
                log.warning("confirm_duplicate_refused", quote_id=command.quote_id)
                continue
            self.stats.confirms_sent += 1
            self.hooks.on_request_sent(command, queued_ns, now)
            try:
                await self.execution.confirm_quote(command.rfq_id, command.quote_id)
            except QuoterError as exc:
                self.hooks.on_command_result("confirm_quote", self.clock.now_ns() - now, False)
                code = getattr(exc, "code", type(exc).__name__)
                self.post(ev.ConfirmFailed(command.rfq_id, command.quote_id, str(code), str(exc),
                                           self.clock.now_ns()))
                continue
            self.hooks.on_command_result("confirm_quote", self.clock.now_ns() - now, True)
            self.post(ev.QuoteConfirmed(command.rfq_id, command.quote_id, self.clock.now_ns()))

    async def _job_worker(self) -> None:
        while True:
            what, job = await self._jobs.get()
            try:
                await job()
            except QuoterError as exc:
                log.warning("io_job_failed", what=what, error=str(exc))

    async def _fetch_market(self, ticker: str) -> None:
        try:
            market = await self.market_data.fetch_market(ticker)
        except QuoterError as exc:
            self.post(ev.MarketLoadFailed(ticker, str(exc), self.clock.now_ns()))
            raise
        self.post(ev.MarketLoaded(market, self.clock.now_ns()))

    async def _fetch_book(self, ticker: str) -> None:
        self.post(await self.market_data.fetch_book(ticker, self.clock.now_ns()))
