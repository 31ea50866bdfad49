"""The async driver: one TaskGroup runs the feed readers, the engine loop and the executors.

It is the service's shell around the runtime kernel (:mod:`quoter.runtime.kernel`), which
holds every rule: the engine-step error policy, open-quote tracking, the halt, shadow,
deadline and journal gates. The driver adds only what needs an event loop:

* **Priority lane.** Our own quote events, fills, command results and timers overtake an
  ``rfq_created`` flood: the inbound queue is a priority queue keyed ``(lane, seq)``.
* **Confirms never wait behind quotes.** Confirms have their own worker; each is released by
  the kernel at the moment it would leave (halt, shadow, deadline, journal).
* **Load shedding.** When the inbound queue is full, new low-priority frames are dropped and
  counted; priority frames wait (backpressure) instead. Out of the engine, only new quotes
  are ever shed (``shed_submits``): cancels overtake them in the exec queue and, like
  confirms, are never refused.
* **Timers.** The kernel's ``ScheduleTimer`` / ``CancelTimer`` go into a
  :class:`~quoter.clock.TimerQueue`; one loop timer waits for its earliest deadline.
* **Pool pricing.** ``PriceInPool`` goes to a bounded queue served by one task per pool worker
  (``quoter.runtime.pricing_pool``); each answer comes back as a priority
  ``PricingCompleted``. With no pool, the request is priced inline at once (tests).
* **Shutdown order.** Stop quoting, cancel every open quote over REST, flush the store, close
  the sockets (by cancelling the task group). Every task runs under one guard: an exception
  that is not a ``QuoterError`` (a bug, or a library error nobody mapped) is logged as
  ``runtime_task_crashed``, kept in ``Runtime.failure``, halts quoting and starts this same
  shutdown; the task group is never torn down around live quotes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from quoter.clock import Clock, TimerQueue
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.engine.pricing import PRICER_BUSY, PRICER_ERROR, PRICER_TIMEOUT, pricing_completed
from quoter.errors import DecodeError, QuoterError
from quoter.kalshi.decode import Decoder
from quoter.ports import (
    ConfirmJournal,
    ExecutionPort,
    FrameSource,
    InboundFrame,
    MarketDataPort,
    SubscriptionPort,
)
from quoter.runtime.kernel import (
    Action,
    EngineFailed,
    EngineLike,
    EngineStepped,
    Halted,
    InputTaken,
    Kernel,
    Post,
    RuntimeStats,
    StepTape,
)
from quoter.runtime.pricing_pool import InlinePricing, PricingPool
from strategies.base import Decline, Pricing

__all__ = ["EngineLike", "Runtime", "RuntimeHooks", "RuntimeStats"]

log = structlog.get_logger("quoter.runtime")

PRIORITY, NORMAL = 0, 1
#: Frame types that belong to the priority lane (ours, or about money we may owe).
PRIORITY_TYPES = frozenset(
    {"quote_accepted", "quote_executed", "quote_created", "fill", "market_position", "error"}
)


class RuntimeHooks:
    """Observers the service plugs in (store, recorder, metrics): they watch, never decide.

    Every method is a no-op here; the service subclasses it. Keeping these out of the engine is
    what keeps the engine pure; the decisions that need the outside world are ports
    (``ConfirmJournal``, ``SubscriptionPort``), not hooks.
    """

    def on_frame(self, frame: InboundFrame, msg_type: str | None) -> None:
        """Observe an inbound frame (recorder, metrics)."""

    def on_decode_error(self, frame: InboundFrame, error: DecodeError) -> None:
        """Observe a frame that failed to decode."""

    def on_decision(self, decision: cmd.RecordDecision, now_ns: int) -> None:
        """Persist/count an engine decision."""

    def on_command_result(self, name: str, latency_ns: int, ok: bool) -> None:
        """Observe a REST round trip."""

    def on_engine_input(
        self, event: ev.Event, now_ns: int, origin: tuple[InboundFrame, int] | None
    ) -> None:
        """Observe one engine input as it runs, with the ``now_ns`` it is given."""
        # ``origin`` is (frame, index) when the event is the index-th decoded from that frame;
        # the recorder writes these so a replay rebuilds the engine's exact input sequence.

    def on_engine_step(self, event: ev.Event, commands: list[cmd.Command], now_ns: int) -> None:
        """Observe what the engine made of one event (latency, persistence)."""

    def on_request_sent(self, command: cmd.Command, queued_ns: int, now_ns: int) -> None:
        """Observe a quote/cancel/confirm leaving for the exchange."""

    def on_engine_error(self, event: ev.Event, error: BaseException) -> None:
        """Count an event the engine failed on."""

    def on_halt(self, reason: str, source: str) -> None:
        """Persist/announce a halt."""


@dataclass(order=True)
class _Item:
    lane: int
    seq: int
    event: Any = field(compare=False)
    # (frame, index of the event among the frame's decoded events), for frame-borne events.
    origin: tuple[InboundFrame, int] | None = field(default=None, compare=False)


@dataclass(order=True)
class _ExecItem:
    lane: int  # PRIORITY for cancels, NORMAL for new quotes
    seq: int
    command: cmd.SubmitQuote | cmd.CancelQuote = field(compare=False)
    queued_ns: int = field(compare=False)


class Runtime:
    """Drive a runtime kernel from frame sources, executing its actions through the ports."""

    def __init__(
        self,
        *,
        clock: Clock,
        engine: EngineLike,
        decode: Decoder,
        execution: ExecutionPort,
        market_data: MarketDataPort,
        hooks: RuntimeHooks | None = None,
        subscriptions: SubscriptionPort | None = None,
        journal: ConfirmJournal | None = None,
        prefilter: Callable[[bytes | str], bool] | None = None,
        queue_size: int = 10_000,
        exec_workers: int = 4,
        confirm_workers: int = 4,
        send: bool = True,
        pricing_pool: PricingPool | None = None,
        perf: StepTape | None = None,
    ) -> None:
        self.clock = clock
        self.kernel = Kernel(engine, journal=journal, send=send, perf=perf)
        self.engine = engine
        self._decode = decode
        self.execution = execution
        self.market_data = market_data
        self.subscriptions = subscriptions
        #: Asks for a REST reconcile round now (the engine's ``RequestReconcile``); the
        #: service sets it to its reconciler's trigger. None: the request is dropped.
        self.reconcile: Callable[[str], None] | None = None
        self.hooks = hooks or RuntimeHooks()
        self._prefilter = prefilter
        self._inbox: asyncio.PriorityQueue[_Item] = asyncio.PriorityQueue()
        self._queue_size = queue_size
        self._normal_pending = 0
        # Commands travel with the engine time they were queued at (decision -> send latency).
        # Cancels overtake new quotes and are never refused: the kernel has marked the quote
        # cancelling already, so a cancel dropped here would never be sent again (a halt's
        # cancel_all skips it). Only new quotes are bounded (``queue_size``) and shed.
        self._exec: asyncio.PriorityQueue[_ExecItem] = asyncio.PriorityQueue()
        self._submits_pending = 0
        # Confirms are never refused either: the kernel's deadline gate bounds how stale one
        # may be when it leaves.
        self._confirms: asyncio.Queue[tuple[cmd.ConfirmQuote, int]] = asyncio.Queue()
        # IO jobs the engine asked for (market metadata, book snapshots, subscriptions).
        self._jobs: asyncio.Queue[tuple[str, Callable[[], Awaitable[None]]]] = asyncio.Queue()
        self._exec_workers = exec_workers
        # Several confirms in flight at once: one slow PUT must not hold the next accept's
        # confirm past its window (the claim is taken synchronously, so two workers can never
        # send the same quote's confirm).
        if confirm_workers < 1:
            raise ValueError(f"confirm_workers must be >= 1, got {confirm_workers}")
        self._confirm_workers = confirm_workers
        # Process-isolated pricing (quoter.runtime.pricing_pool); inline when there is no pool.
        self._pool = pricing_pool
        self._inline_pricing = InlinePricing()
        self._pricing: asyncio.Queue[cmd.PriceInPool] = asyncio.Queue(queue_size)
        self._seq = itertools.count()
        self.timers = TimerQueue()
        # The one loop timer, armed for the queue's earliest deadline.
        self._timer_handle: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._stopping = asyncio.Event()
        self.last_frame_ns = 0
        #: The first unexpected exception a task met (a bug); the run then stops in order.
        self.failure: BaseException | None = None

    # -- views ---------------------------------------------------------------------------

    @property
    def stats(self) -> RuntimeStats:
        """The kernel's and the driver's counters."""
        return self.kernel.stats

    @property
    def halted(self) -> bool:
        """True while no quote or confirm may leave."""
        return self.kernel.halted

    @property
    def halt_reason(self) -> str:
        """Why quoting is halted ("" when it is not)."""
        return self.kernel.halt_reason

    @property
    def open_quotes(self) -> dict[str, str]:
        """Quotes we placed and have not seen end: quote_id -> rfq_id."""
        return self.kernel.open_quotes

    @property
    def inbox_depth(self) -> int:
        """Events waiting for the engine."""
        return self._inbox.qsize()

    # -- public control --------------------------------------------------------------------

    def halt(self, reason: str, source: str = "operator") -> None:
        """Halt at once: no quote or confirm leaves after this call; open quotes get cancelled."""
        self._apply_all(self.kernel.halt(reason, self.clock.now_ns(), source=source))

    def resume(self) -> None:
        """Resume quoting after a halt."""
        log.info("quoting_resumed")
        self._apply_all(self.kernel.resume(self.clock.now_ns()))

    async def drained(self) -> None:
        """Wait until the engine, the workers and the I/O jobs have nothing queued or in hand:
        every event posted so far was stepped and every request it caused was sent (or refused)
        and answered. Work on one queue feeds the others, so this repeats until one pass finds
        them all empty. Tests use it instead of sleeping "long enough" for a wrong request."""
        queues = (self._inbox, self._exec, self._pricing, self._confirms, self._jobs)
        while True:
            for q in queues:
                await q.join()
            await asyncio.sleep(0)  # let a worker that was just handed an item take it
            if all(q.empty() for q in queues):
                for q in queues:
                    await q.join()
                if all(q.empty() for q in queues):
                    return

    def cancel_all(self) -> list[tuple[str, str]]:
        """Queue a cancel for every open quote we placed; returns them as (rfq_id, quote_id)."""
        actions = self.kernel.cancel_all()
        self._apply_all(actions)
        return [(a.rfq_id, a.quote_id) for a in actions if isinstance(a, cmd.CancelQuote)]

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
        """Run until ``stop()`` (or ``until`` is set), then shut down in order.

        Any exception in any task ends the same way (stop quoting, cancel every open quote,
        let the cancels go): it is logged, kept in :attr:`failure`, halts quoting and stops
        the run, and the worker that met it keeps serving so the shutdown's cancels can
        leave. ``run`` returns normally then; the caller reads ``failure``.
        """
        try:
            async with asyncio.TaskGroup() as tg:
                def start(name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
                    return tg.create_task(self._guard(name, coro), name=name)

                workers = [
                    start("engine", self._engine_loop()),
                    start("io-jobs", self._job_worker()),
                ]
                if until is not None:
                    workers.append(start("until", self._relay_stop(until)))
                workers += [start(f"exec-{i}", self._exec_worker())
                            for i in range(self._exec_workers)]
                workers += [start(f"confirms-{i}", self._confirm_worker())
                            for i in range(self._confirm_workers)]
                if self._pool is not None:
                    if self._pool.eager:
                        self._pool.start()
                    workers += [start(f"pricing-{i}", self._pricing_worker(self._pool))
                                for i in range(self._pool.workers)]
                readers = [start(f"ingest-{i}", self._ingest(src))
                           for i, src in enumerate(sources)]
                await self._stopping.wait()
                for task in readers:
                    task.cancel()
                try:
                    await self._shutdown()
                finally:
                    for task in workers:
                        task.cancel()
        finally:
            if self._timer_handle is not None:
                self._timer_handle.cancel()
                self._timer_handle = self._timer_at = None
            if self._pool is not None:
                self._pool.close()

    async def _relay_stop(self, until: asyncio.Event) -> None:
        await until.wait()
        self._stopping.set()

    async def _guard(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run a task; an exception it lets out (a bug) stops the run in order."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._crashed(name, exc)

    def _crashed(self, where: str, exc: BaseException) -> None:
        """An unexpected exception: record it, halt (cancels go out) and stop in order."""
        log.error("runtime_task_crashed", task=where, error_type=type(exc).__name__,
                  exc_info=exc)
        self.stats.task_crashes += 1
        if self.failure is None:
            self.failure = exc
        with contextlib.suppress(Exception):  # the halt must not be what fails the stop
            self.halt(f"task {where} crashed: {type(exc).__name__}")
        self._stopping.set()

    async def _shutdown(self) -> None:
        """Stop quoting, then cancel open quotes and wait (bounded) for the cancels to go."""
        log.info("shutdown_started", open_quotes=len(self.kernel.open_quotes))
        self._apply_all(self.kernel.stop_quoting(self.clock.now_ns()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self._exec.join()
        log.info("shutdown_quotes_cancelled", remaining=len(self.kernel.open_quotes))

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
                self._apply_all(self.kernel.step(item.event, self.clock.now_ns(), item.origin))
            except Exception as exc:  # an observer (store, recorder) failed: stop in order
                self._crashed("engine", exc)
            finally:
                self._inbox.task_done()

    def _apply_all(self, actions: Iterable[Action]) -> None:
        for action in actions:
            self._apply(action)
        self._arm_loop_timer()

    def _apply(self, action: Action) -> None:
        """Carry out one kernel action: queue it, arm it, or tell the observers."""
        match action:
            case InputTaken(event=event, now_ns=now_ns, origin=origin):
                self.hooks.on_engine_input(event, now_ns, origin)
            case EngineStepped(event=event, commands=commands):
                self.hooks.on_engine_step(event, list(commands), self.clock.now_ns())
            case EngineFailed(event=event, error=error, bug=bug):
                self.hooks.on_engine_error(event, error)
                name = type(event).__name__
                if bug:
                    log.error("engine_event_crashed", event_type=name, exc_info=error)
                else:
                    log.error("engine_event_failed", event_type=name, error=str(error))
            case Halted(reason=reason, by_engine=by_engine, source=source):
                self.hooks.on_halt(reason, source)
                if by_engine:
                    log.error("engine_halted", reason=reason)
                else:
                    log.warning("quoting_halted", reason=reason)
            case Post(event=event):
                self.post(event)
            case cmd.SubmitQuote() | cmd.CancelQuote():
                self._put_exec(action)
            case cmd.ConfirmQuote():
                self._confirms.put_nowait((action, self.clock.now_ns()))
            case cmd.ScheduleTimer(key=key, fire_at_ns=at):
                self.timers.arm(key, at)
            case cmd.CancelTimer(key=key):
                self.timers.cancel(key)
            case cmd.RecordDecision():
                self.hooks.on_decision(action, self.clock.now_ns())
            case cmd.FetchMarket(market_ticker=ticker):
                self._jobs.put_nowait((ticker, lambda: self._fetch_market(ticker)))
            case cmd.RequestBookSnapshot(market_ticker=ticker):
                self._jobs.put_nowait((ticker, lambda: self._fetch_book(ticker)))
            case cmd.SubscribeMarkets(market_tickers=tickers):
                if self.subscriptions is not None:
                    port = self.subscriptions
                    self._jobs.put_nowait(("subscribe", lambda: port.subscribe_markets(tickers)))
            case cmd.UnsubscribeMarkets(market_tickers=tickers):
                if self.subscriptions is not None:
                    port = self.subscriptions
                    self._jobs.put_nowait(
                        ("unsubscribe", lambda: port.unsubscribe_markets(tickers))
                    )
            case cmd.PriceInPool():
                self._put_pricing(action)
            case cmd.RequestReconcile(market_ticker=ticker):
                if self.reconcile is not None:
                    self.reconcile(ticker)

    # -- timers ------------------------------------------------------------------------------

    def _arm_loop_timer(self) -> None:
        """Keep the one loop timer on the queue's earliest deadline."""
        at = self.timers.next_at()
        if at == self._timer_at:
            return
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        self._timer_at = at
        if at is not None:
            delay_s = max(0.0, (at - self.clock.now_ns()) / 1e9)
            self._timer_handle = asyncio.get_running_loop().call_later(delay_s, self._fire_timers)

    def _fire_timers(self) -> None:
        """Post every timer due; the armed deadline counts as reached on any clock."""
        # max(): under a clock that does not follow the loop's time (a test's ReplayClock)
        # the deadline the loop waited for has passed in loop time all the same.
        due_ns = max(self.clock.now_ns(), self._timer_at or 0)
        self._timer_handle = self._timer_at = None
        for _, key in self.timers.pop_due(due_ns):
            self.post(ev.TimerFired(key, self.clock.now_ns()))
        self._arm_loop_timer()

    # -- executors -------------------------------------------------------------------------

    def _put_exec(self, command: cmd.SubmitQuote | cmd.CancelQuote) -> None:
        if isinstance(command, cmd.CancelQuote):
            self._exec.put_nowait(_ExecItem(PRIORITY, next(self._seq), command,
                                            self.clock.now_ns()))
            return
        if self._submits_pending >= self._queue_size:
            # Shed the new quote (the engine hears QuoteRejected "queue_full"), never a cancel.
            self.stats.shed_submits += 1
            log.error("exec_queue_full", command="SubmitQuote", rfq_id=command.rfq_id)
            self.post(self.kernel.not_queued(command, self.clock.now_ns()))
            return
        self._submits_pending += 1
        self._exec.put_nowait(_ExecItem(NORMAL, next(self._seq), command, self.clock.now_ns()))

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

    async def _exec_worker(self) -> None:
        while True:
            item = await self._exec.get()
            command = item.command
            if isinstance(command, cmd.SubmitQuote):
                self._submits_pending -= 1
            try:
                await self._execute(command, item.queued_ns)
            except Exception as exc:
                self._crashed(f"exec {type(command).__name__}", exc)
            finally:
                self._exec.task_done()

    async def _execute(self, command: cmd.SubmitQuote | cmd.CancelQuote, queued_ns: int) -> None:
        sent_ns = self.clock.now_ns()
        if isinstance(command, cmd.SubmitQuote):
            release = self.kernel.release_submit(command, sent_ns)
            if release.event is not None:
                self.post(release.event)
                return
            self.hooks.on_request_sent(command, queued_ns, sent_ns)
            try:
                quote_id = await self.execution.submit_quote(
                    command.rfq_id, command.yes_bid_micros, command.no_bid_micros,
                    rest_remainder=command.rest_remainder, post_only=command.post_only,
                    subaccount=command.subaccount,
                )
            except QuoterError as exc:
                self.hooks.on_command_result("submit_quote", self.clock.now_ns() - sent_ns, False)
                self.post(self.kernel.submit_failed(command, exc, self.clock.now_ns()))
                return
            self.hooks.on_command_result("submit_quote", self.clock.now_ns() - sent_ns, True)
            self.post(self.kernel.submitted(command, quote_id, self.clock.now_ns()))
            return
        if not self.kernel.release_cancel(command).send:
            return
        try:
            await self.execution.cancel_quote(command.rfq_id, command.quote_id)
        except QuoterError as exc:
            self.hooks.on_command_result("cancel_quote", self.clock.now_ns() - sent_ns, False)
            self.post(self.kernel.cancel_failed(command, exc, self.clock.now_ns()))
            return
        self.hooks.on_command_result("cancel_quote", self.clock.now_ns() - sent_ns, True)
        self.post(self.kernel.cancelled(command, self.clock.now_ns()))

    async def _confirm_worker(self) -> None:
        while True:
            command, queued_ns = await self._confirms.get()
            try:
                await self._confirm(command, queued_ns)
            except Exception as exc:
                self._crashed("confirm", exc)
            finally:
                self._confirms.task_done()

    async def _confirm(self, command: cmd.ConfirmQuote, queued_ns: int) -> None:
        now = self.clock.now_ns()
        release = self.kernel.release_confirm(command, now)
        if not release.send:
            if release.event is None:
                log.warning("confirm_duplicate_refused", quote_id=command.quote_id)
            else:
                log.warning("confirm_skipped", quote_id=command.quote_id, reason=release.reason)
                self.post(release.event)
            return
        self.hooks.on_request_sent(command, queued_ns, now)
        try:
            await self.execution.confirm_quote(command.rfq_id, command.quote_id,
                                               deadline_ns=command.deadline_ns)
        except QuoterError as exc:
            self.hooks.on_command_result("confirm_quote", self.clock.now_ns() - now, False)
            self.post(self.kernel.confirm_failed(command, exc, self.clock.now_ns()))
            return
        self.hooks.on_command_result("confirm_quote", self.clock.now_ns() - now, True)
        self.post(self.kernel.confirmed(command, self.clock.now_ns()))

    async def _job_worker(self) -> None:
        while True:
            what, job = await self._jobs.get()
            try:
                await job()
            except QuoterError as exc:
                log.warning("io_job_failed", what=what, error=str(exc))
            except Exception as exc:
                self._crashed(f"io job {what}", exc)
            finally:
                self._jobs.task_done()

    async def _fetch_market(self, ticker: str) -> None:
        try:
            market = await self.market_data.fetch_market(ticker)
        except QuoterError as exc:
            self.post(ev.MarketLoadFailed(ticker, str(exc), self.clock.now_ns()))
            raise
        self.post(ev.MarketLoaded(market, self.clock.now_ns()))

    async def _fetch_book(self, ticker: str) -> None:
        self.post(await self.market_data.fetch_book(ticker, self.clock.now_ns()))
