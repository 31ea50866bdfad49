"""The runtime kernel: the rules every world runs by, pure and synchronous.

The engine decides; the kernel is what stands between its commands and the world, and it is
the same object under every shell: the async driver of the service
(:mod:`quoter.runtime.driver`), the synchronous replay loop (``backtests.replay``) and the
backtester. Given an inbound event and ``now_ns`` it

* steps the engine under **the one error policy**: a ``QuoterError`` (bad input the engine
  refused) is counted and the step yields no commands; any other exception is a bug, so it is
  counted and quoting halts, while the engine keeps seeing fills and results;
* **tracks open quotes** (ours that may rest on the exchange) from events and REST results, so
  a halt or a shutdown can cancel every one of them;
* applies the **command gates**: a halt (from the engine's ``Halt``, the operator, or a bug)
  cancels every open quote, a cancel goes out once per quote, and at the moment a request is
  released to the wire: no quote or confirm while halted or in shadow mode, no confirm past
  its deadline, and none that the :class:`~quoter.ports.ConfirmJournal` has seen before;
* returns **actions** for the shell, in order: requests to send (``SubmitQuote``,
  ``CancelQuote``, ``ConfirmQuote``), timers to arm (``ScheduleTimer`` / ``CancelTimer``, for a
  :class:`~quoter.clock.TimerQueue`), I/O jobs (``FetchMarket``, ``RequestBookSnapshot``,
  ``SubscribeMarkets`` / ``UnsubscribeMarkets``, ``PriceInPool``), events to feed back
  (:class:`Post`) and records to write (:class:`InputTaken`, :class:`EngineStepped`,
  :class:`EngineFailed`, :class:`Halted`, ``RecordDecision``).

It reads no clock and does no I/O; time arrives as ``now_ns`` and results of requests come back
through :meth:`Kernel.submitted` and its siblings, which turn them into the events the engine
sees. A shell therefore adds only queues, tasks and sockets (cf. python-websockets' sans-I/O
protocol objects, NautilusTrader's kernel under its backtest engine and live node).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.errors import ExchangeRejectedError, QuoterError
from quoter.ports import ConfirmJournal, InboundFrame, MemoryConfirmJournal

__all__ = [
    "Action",
    "EngineFailed",
    "EngineLike",
    "EngineStepped",
    "Halted",
    "InputTaken",
    "Kernel",
    "Post",
    "Release",
    "RuntimeStats",
    "StepTape",
    "engine_commands",
]


class StepTape(Protocol):
    """A pricer clock that keeps each step's readings (``quoter.recording.format.PerfTape``)."""

    def start_step(self) -> None:
        """Forget the previous step's readings."""
        ...


class EngineLike(Protocol):
    """What the kernel needs of the engine."""

    def on_event(self, event: ev.Event, now_ns: int) -> list[cmd.Command]:
        """Handle one event; return the commands to execute."""
        ...


@dataclass
class RuntimeStats:
    """Counters of the runtime (exported as metrics by the service).

    The kernel keeps the decision, request and error counts; the driver the ingest ones
    (frames, decode errors, shed and pre-filtered frames).
    """

    frames: int = 0
    events: int = 0
    decode_errors: int = 0
    shed_frames: int = 0
    #: New quotes not sent because the exec queue was full (cancels and confirms never are).
    shed_submits: int = 0
    prefiltered: int = 0
    quotes_sent: int = 0
    quotes_rejected: int = 0
    confirms_sent: int = 0
    confirms_skipped: int = 0
    cancels_sent: int = 0
    engine_errors: int = 0
    #: Unexpected exceptions in the shell's tasks (each one stops the run in order).
    task_crashes: int = 0
    decisions: dict[str, int] = field(default_factory=dict)


# --- actions that are not engine commands -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputTaken:
    """Record: the engine is about to run ``event`` at ``now_ns`` (a recording's step line)."""

    event: ev.Event
    now_ns: int
    #: (frame, index among the frame's decoded events), for frame-borne events.
    origin: tuple[InboundFrame, int] | None


@dataclass(frozen=True, slots=True)
class EngineStepped:
    """Record: what the engine made of one event (before its commands are applied)."""

    event: ev.Event
    commands: tuple[cmd.Command, ...]


@dataclass(frozen=True, slots=True)
class EngineFailed:
    """Record: the engine raised on ``event``; ``bug`` when it was not a ``QuoterError``."""

    event: ev.Event
    error: BaseException
    bug: bool


@dataclass(frozen=True, slots=True)
class Halted:
    """Record: quoting just halted (``by_engine``: the engine's own ``Halt`` command).

    ``source`` says who halted: ``engine`` (its ``Halt``, or a bug in it), ``operator`` (the
    default for :meth:`Kernel.halt`), or what the shell passed (e.g. ``kill_file``, ``fatal``).
    """

    reason: str
    by_engine: bool
    source: str = "engine"


@dataclass(frozen=True, slots=True)
class Post:
    """Feed this event back to the kernel as a priority input (e.g. the kill-switch notice)."""

    event: ev.Event


Action = (
    cmd.SubmitQuote | cmd.CancelQuote | cmd.ConfirmQuote | cmd.ScheduleTimer | cmd.CancelTimer
    | cmd.RecordDecision | cmd.FetchMarket | cmd.RequestBookSnapshot | cmd.SubscribeMarkets
    | cmd.UnsubscribeMarkets | cmd.PriceInPool | cmd.RequestReconcile
    | InputTaken | EngineStepped | EngineFailed | Halted | Post
)


@dataclass(frozen=True, slots=True)
class Release:
    """Whether a request may leave now: ``send``, or the event that answers it instead.

    ``event`` is None and ``send`` False for a confirm the journal refused (already sent
    before, e.g. by a previous process): nothing happens, and nothing is fed back.
    """

    send: bool
    event: ev.Event | None = None
    reason: str = ""


_SEND = Release(True)


def engine_commands(actions: Iterable[Action]) -> tuple[cmd.Command, ...]:
    """The engine's commands in a step's actions (empty if the engine failed on the event)."""
    for action in actions:
        if isinstance(action, EngineStepped):
            return action.commands
    return ()


def _code(exc: QuoterError) -> str:
    return str(getattr(exc, "code", type(exc).__name__))


#: The events :meth:`Kernel._track` follows.
_TRACKED = (ev.QuotePlaced, ev.RfqDeleted, ev.QuoteAccepted, ev.QuoteCancelled,
            ev.QuoteConfirmed, ev.KillSwitchChanged)

class Kernel:
    """Step the engine, gate its commands and track our quotes; return actions for a shell."""

    def __init__(
        self,
        engine: EngineLike,
        *,
        journal: ConfirmJournal | None = None,
        send: bool = True,
        perf: StepTape | None = None,
    ) -> None:
        """``send=False`` is shadow mode: decide everything, release no quote or confirm.

        ``perf`` is the engine's pricer clock when it is taped: each step starts a new tape,
        so the readings a recorder writes after the step are that step's alone.
        """
        self.engine = engine
        self._perf = perf
        self.journal: ConfirmJournal = journal if journal is not None else MemoryConfirmJournal()
        self.send = send
        self.halted = False
        self.halt_reason = ""
        self.stats = RuntimeStats()
        # Quotes of ours that may rest on the exchange: quote_id -> rfq_id, and the live quote
        # of each RFQ (a new quote on an RFQ replaces the old one at the exchange, §3.1).
        self._open_quotes: dict[str, str] = {}
        self._rfq_quote: dict[str, str] = {}
        self._cancelling: set[str] = set()

    # -- views ---------------------------------------------------------------------------------

    @property
    def open_quotes(self) -> dict[str, str]:
        """Quotes we placed and have not seen end: quote_id -> rfq_id."""
        return dict(self._open_quotes)

    # -- stepping ------------------------------------------------------------------------------

    def step(
        self, event: ev.Event, now_ns: int, origin: tuple[InboundFrame, int] | None = None
    ) -> list[Action]:
        """Run one event through the engine at ``now_ns``; return what the shell must do."""
        self.stats.events += 1
        actions: list[Action] = []
        self._track(event)
        actions.append(InputTaken(event, now_ns, origin))
        if self._perf is not None:
            self._perf.start_step()
        try:
            commands = self.engine.on_event(event, now_ns)
        except QuoterError as exc:
            self.stats.engine_errors += 1
            actions.append(EngineFailed(event, exc, bug=False))
            return actions
        except Exception as exc:
            # A bug, not bad input: the engine's state can no longer be trusted to quote, but
            # it must keep seeing fills and results, so halt (cancels go out) and carry on.
            self.stats.engine_errors += 1
            actions.append(EngineFailed(event, exc, bug=True))
            if not self.halted:
                actions += self.halt(f"engine error on {type(event).__name__}", now_ns,
                                     source="engine")
            return actions
        actions.append(EngineStepped(event, tuple(commands)))
        for command in commands:
            self._apply(command, actions)
        return actions

    def _track(self, event: ev.Event) -> None:
        """Follow our quotes (and the kill switch) in what the engine is about to see."""
        if not isinstance(event, _TRACKED):
            return  # book deltas and the firehose: one check, not the pattern chain below
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
            case ev.KillSwitchChanged(halted=halted, reason=reason) if halted != self.halted:
                # The gates follow the engine's kill switch: live, ``halt``/``resume`` set this
                # already (so a halt blocks at once); in a replay the recorded switch sets it.
                self.halted, self.halt_reason = halted, reason if halted else ""
            case _:
                pass

    def _forget_quote(self, quote_id: str) -> None:
        rfq_id = self._open_quotes.pop(quote_id, None)
        self._cancelling.discard(quote_id)
        if rfq_id is not None and self._rfq_quote.get(rfq_id) == quote_id:
            del self._rfq_quote[rfq_id]

    def _apply(self, command: cmd.Command, actions: list[Action]) -> None:
        match command:
            case cmd.CancelQuote(quote_id=quote_id):
                if quote_id not in self._cancelling:
                    self._cancelling.add(quote_id)
                    actions.append(command)
            case cmd.RecordDecision(decision=decision):
                self.stats.decisions[decision] = self.stats.decisions.get(decision, 0) + 1
                actions.append(command)
            case cmd.Halt(reason=reason):
                if not self.halted:
                    self.halted, self.halt_reason = True, reason
                    actions.append(Halted(reason, by_engine=True))
                actions += self.cancel_all()
            case _:
                actions.append(command)

    # -- control -------------------------------------------------------------------------------

    def halt(self, reason: str, now_ns: int, *, source: str = "operator") -> list[Action]:
        """Halt at once: no quote or confirm is released after this; the engine is told."""
        actions: list[Action] = []
        if not self.halted:
            self.halted, self.halt_reason = True, reason
            actions.append(Halted(reason, by_engine=False, source=source))
        actions.append(Post(ev.KillSwitchChanged(True, reason, now_ns)))
        return actions

    def resume(self, now_ns: int) -> list[Action]:
        """Resume quoting after a halt; the engine is told."""
        self.halted, self.halt_reason = False, ""
        return [Post(ev.KillSwitchChanged(False, "resumed", now_ns))]

    def stop_quoting(self, now_ns: int) -> list[Action]:
        """Shutdown's first step: halt, step the engine's own halt at once, cancel everything."""
        self.halted, self.halt_reason = True, self.halt_reason or "shutdown"
        actions = self.step(ev.KillSwitchChanged(True, "shutdown", now_ns), now_ns)
        return actions + self.cancel_all()

    def cancel_all(self, reason: str = "cancel_all") -> list[Action]:
        """A cancel for every open quote not already being cancelled."""
        out: list[Action] = []
        for quote_id, rfq_id in list(self._open_quotes.items()):
            if quote_id not in self._cancelling:
                self._cancelling.add(quote_id)
                out.append(cmd.CancelQuote(rfq_id, quote_id, reason))
        return out

    # -- gates at the wire ---------------------------------------------------------------------

    def release_submit(self, command: cmd.SubmitQuote, now_ns: int) -> Release:
        """May this quote leave now? Not while halted, nor in shadow mode."""
        if self.halted or not self.send:
            reason = "halted" if self.halted else "shadow"
            return Release(False, ev.QuoteRejected(command.rfq_id, reason, "not sent", now_ns),
                           reason)
        return _SEND

    def release_cancel(self, command: cmd.CancelQuote) -> Release:
        """May this cancel leave now? Always, except in shadow mode (nothing rests there)."""
        return _SEND if self.send else Release(False, None, "shadow")

    def release_confirm(self, command: cmd.ConfirmQuote, now_ns: int) -> Release:
        """May this confirm leave now? Not halted, not shadow, in time, and never twice."""
        if self.halted or not self.send or now_ns >= command.deadline_ns:
            self.stats.confirms_skipped += 1
            reason = "halted" if self.halted else ("shadow" if not self.send else "deadline")
            return Release(False, ev.ConfirmFailed(command.rfq_id, command.quote_id, reason,
                                                   "confirm not sent", now_ns), reason)
        if not self.journal.claim(command.quote_id, now_ns):
            self.stats.confirms_skipped += 1
            return Release(False, None, "duplicate")
        self.stats.confirms_sent += 1
        return _SEND

    # -- results from the wire -----------------------------------------------------------------

    def submitted(self, command: cmd.SubmitQuote, quote_id: str, now_ns: int) -> ev.QuotePlaced:
        """The exchange took our quote: track it now (a shutdown before the engine sees it
        must still cancel it) and tell the engine."""
        self.stats.quotes_sent += 1
        self._open_quotes[quote_id] = command.rfq_id
        return ev.QuotePlaced(command.rfq_id, quote_id, now_ns)

    def submit_failed(
        self, command: cmd.SubmitQuote, exc: QuoterError, now_ns: int
    ) -> ev.QuoteRejected:
        """The exchange (or the way to it) refused our quote."""
        self.stats.quotes_rejected += 1
        return ev.QuoteRejected(command.rfq_id, _code(exc), str(exc), now_ns)

    def not_queued(self, command: cmd.SubmitQuote, now_ns: int) -> ev.QuoteRejected:
        """The shell had no room to send this quote."""
        return ev.QuoteRejected(command.rfq_id, "queue_full", "exec queue full", now_ns)

    def cancelled(self, command: cmd.CancelQuote, now_ns: int) -> ev.QuoteCancelled:
        """Our quote is withdrawn."""
        self.stats.cancels_sent += 1
        self._forget_quote(command.quote_id)
        return ev.QuoteCancelled(command.rfq_id, command.quote_id, now_ns)

    def cancel_failed(
        self, command: cmd.CancelQuote, exc: QuoterError, now_ns: int
    ) -> ev.QuoteCancelFailed:
        """A cancel failed; a 404 means the quote is gone already."""
        self._cancelling.discard(command.quote_id)
        if isinstance(exc, ExchangeRejectedError) and exc.status_code == 404:
            # Gone already (RFQ closed, or accepted: Kalshi 404s a DELETE after accept).
            self._forget_quote(command.quote_id)
        return ev.QuoteCancelFailed(command.rfq_id, command.quote_id, _code(exc), str(exc),
                                    now_ns)

    def confirmed(self, command: cmd.ConfirmQuote, now_ns: int) -> ev.QuoteConfirmed:
        """The exchange took our confirm."""
        return ev.QuoteConfirmed(command.rfq_id, command.quote_id, now_ns)

    def confirm_failed(
        self, command: cmd.ConfirmQuote, exc: QuoterError, now_ns: int
    ) -> ev.ConfirmFailed:
        """Our confirm failed (e.g. 400 ``expired``)."""
        return ev.ConfirmFailed(command.rfq_id, command.quote_id, _code(exc), str(exc), now_ns)
