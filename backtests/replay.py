"""Replay a service recording: rebuild the kernel's exact input sequence and step a fresh kernel.

The synchronous shell of the runtime kernel (:mod:`quoter.runtime.kernel`): the very kernel
type the service's async driver runs, stepped here one recorded input at a time, so the
engine-step error policy (a ``QuoterError`` yields nothing; a bug halts quoting), the kill
switch and the gates are the production ones, not a copy. Inputs that did not come from a
frame (REST results, timers, the kill-switch notice the kernel posts after a halt) are in the
recording as the live run saw them, so the kernel's own ``Post``/request actions are not fed
back here: that is the backtester's job, with a modelled exchange.

A service recording (``docs/recording-format.md``, "Engine inputs") holds, besides the raw
frames, one ``event`` line of kind ``step`` per engine step, in the order the engine ran them:

* ``{"now_ns": N, "in": n, "i": i}`` — the step's event is the ``i``-th event the production
  decoder (:func:`quoter.kalshi.decode.decode`) makes of inbound frame number ``n`` (its
  ``in`` line); the frame is decoded again here, so a replay exercises the real parsers;
* ``{"now_ns": N, "event": {"type": "QuotePlaced", ...}}`` — an event that did not come from a
  frame (REST results, timers, market metadata, book snapshots, kill switch, config reloads,
  resync/reconcile backfills), encoded by :func:`encode_event`.

``engine_start`` (config hash, ``wall_offset_ns``, the restored positions ledger) begins each
service run and ``config`` lines carry the text of every config the run used (initial and each
reload), so a replay needs nothing but the recording.

Pricer time budgets: the live engine measures them with ``perf_counter_ns`` through a
:class:`PerfTape`, and after every step that read it the service records the readings (a
``perf`` line right after the ``step`` line). The replay engine reads the same values back, so
a ``pricer_timeout`` decline (and its detail text) is reproduced exactly; a step without
readings gets a constant clock, so no budget fires in it. This holds as long as the engine
asks for the time in the same order as the recorded run (same engine code). A recording
without ``perf`` lines (or ``replay(..., budgets=False)``) runs with ``perf_ns=None``: budgets
never fire, and a live ``pricer_timeout`` decision (recorded as a ``pricer_timeout`` line,
listed in ``ReplayReport.live_pricer_timeouts``) can then decide differently in the replay.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from quoter.config import QuoterConfig, config_hash, parse_config
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.engine.engine import Engine
from quoter.engine.positions import PositionLedger
from quoter.errors import ConfigError, DecodeError
from quoter.kalshi.decode import Decoder
from quoter.kalshi.decode import decode as production_decode
from quoter.ports import MemoryConfirmJournal
from quoter.recording.format import (
    CONFIG_KIND,
    ENGINE_START_KIND,
    GAP_KIND,
    PERF_KIND,
    PRICER_TIMEOUT_KIND,
    STEP_KIND,
    EventLine,
    InLine,
    PerfPlayer,
    PerfTape,
    RecordingError,
    decode_event,
    encode_event,
    read_recordings,
)
from quoter.runtime.kernel import Action, Kernel, engine_commands

__all__ = [
    "CONFIG_KIND",
    "ENGINE_START_KIND",
    "PRICER_TIMEOUT_KIND",
    "STEP_KIND",
    "EngineInput",
    "EngineStart",
    "PerfTape",
    "ReplayError",
    "ReplayReport",
    "decode_event",
    "encode_event",
    "iter_engine_inputs",
    "iter_engine_inputs_and_frames",
    "new_engine",
    "new_kernel",
    "replay",
    "replay_decisions",
    "replay_kernel",
    "replay_steps",
]

#: Most recent frames kept for the steps that use them. A step follows its frame closely
#: (the runtime's inbox holds at most 10,000 market-data events), so this is ample.
MAX_PENDING_FRAMES: Final = 200_000

#: Codec and line errors of a recording are replay errors too.
ReplayError = RecordingError


# --- reading the engine inputs ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineStart:
    """A service run began: build a fresh engine like this."""

    config: QuoterConfig
    config_hash: str
    wall_offset_ns: int
    ledger: Mapping[str, Any]
    max_pending: int
    #: The daily loss stop's day carried over a restart: ``(day_key, start_realized_micros)``.
    risk_day: tuple[int, int] | None = None
    #: The per-requester statistics restored at start (``quoter.engine.requesters``).
    requesters: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EngineInput:
    """One engine step: ``engine.on_event(event, now_ns)``; ``in_seq`` names its frame, if any."""

    event: ev.Event
    now_ns: int
    in_seq: int | None
    #: The pricer clock readings the live engine took during this step, in order.
    perf_readings: tuple[int, ...] = ()
    #: Which of its frame's decoded events this is (None: not from a frame).
    index: int | None = None


class _Configs:
    """The configs a recording names, parsed lazily from their recorded text."""

    def __init__(self, given: QuoterConfig | None, known: Iterable[QuoterConfig] = ()) -> None:
        self._parsed: dict[str, QuoterConfig] = {}
        self._texts: dict[str, tuple[str, str | None]] = {}
        for cfg in (*known, *([given] if given is not None else [])):
            self._parsed[config_hash(cfg)] = cfg

    def add_text(self, payload: Mapping[str, Any]) -> None:
        self._texts[str(payload["config_hash"])] = (str(payload["text"]), payload.get("path"))

    def __call__(self, digest: str) -> QuoterConfig:
        found = self._parsed.get(digest)
        if found is not None:
            return found
        if digest not in self._texts:
            raise ReplayError(f"the recording has no config text for hash {digest[:12]}")
        text, path = self._texts[digest]
        base = Path(path).parent if path else None
        if base is not None and not base.is_dir():
            base = None
        try:
            cfg = parse_config(text, path or "<recorded config>", base_dir=base)
        except ConfigError as exc:
            raise ReplayError(f"recorded config {digest[:12]} no longer validates: {exc}") from exc
        if config_hash(cfg) != digest:
            # The file changed between the load and the read that recorded it, or it refers
            # to files (modules) that changed since.
            raise ReplayError(f"recorded config text does not hash to {digest[:12]}; pass config=")
        self._parsed[digest] = cfg
        return cfg


def iter_engine_inputs(
    paths: Iterable[Path | str],
    *,
    config: QuoterConfig | None = None,
    decode: Decoder | None = None,
    known: Iterable[QuoterConfig] = (),
) -> Iterator[EngineStart | EngineInput]:
    """Yield each run's start and then its engine inputs, in the order the engine ran them.

    ``config`` replaces the recorded initial config (a what-if replay); by default the
    recorded config text is used, or one of the ``known`` configs with the recorded hash (a
    recording without config text). Frames are decoded with ``decode`` (the production decoder
    :func:`quoter.kalshi.decode.decode` by default).
    """
    for item in _engine_inputs(paths, config, decode, known, frames=False):
        assert not isinstance(item, InLine)
        yield item


def iter_engine_inputs_and_frames(
    paths: Iterable[Path | str],
    *,
    config: QuoterConfig | None = None,
    known: Iterable[QuoterConfig] = (),
) -> Iterator[EngineStart | EngineInput | InLine]:
    """:func:`iter_engine_inputs`, with every recorded frame (``in`` line) in file order too.

    A frame comes after the step written before it; the steps that use it come later.
    """
    yield from _engine_inputs(paths, config, None, known, frames=True)


def _engine_inputs(
    paths: Iterable[Path | str], config: QuoterConfig | None, decode: Decoder | None,
    known: Iterable[QuoterConfig], *, frames: bool,
) -> Iterator[EngineStart | EngineInput | InLine]:
    if decode is None:
        decode = production_decode
    pending: EngineInput | None = None  # held until we know whether a ``perf`` line follows
    held: list[InLine] = []  # frames seen while a step is pending: they come after it
    for item in _inputs(paths, config, decode, known, frames=frames):
        if isinstance(item, tuple):
            if pending is not None:
                pending = replace(pending, perf_readings=item)
            continue
        if isinstance(item, InLine):
            if pending is not None:
                held.append(item)
            else:
                yield item
            continue
        if pending is not None:
            yield pending
            pending = None
        yield from held
        held.clear()
        if isinstance(item, EngineInput):
            pending = item
        else:
            yield item
    if pending is not None:
        yield pending
    yield from held


def _inputs(
    paths: Iterable[Path | str], config: QuoterConfig | None, decode: Decoder,
    known: Iterable[QuoterConfig] = (), *, frames: bool = False,
) -> Iterator[EngineStart | EngineInput | InLine | tuple[int, ...]]:
    configs = _Configs(config, known)
    recent: OrderedDict[int, InLine] = OrderedDict()
    decoded: tuple[int, list[ev.Event]] | None = None
    started = False
    for line in read_recordings(paths):
        if isinstance(line, InLine):
            if line.n is not None:
                recent[line.n] = line
                if len(recent) > MAX_PENDING_FRAMES:
                    recent.popitem(last=False)
            if frames:
                yield line
            continue
        if not isinstance(line, EventLine):
            continue
        payload = line.payload
        if line.kind == PERF_KIND:
            yield tuple(int(v) for v in payload["readings"])
        elif line.kind == CONFIG_KIND:
            configs.add_text(payload)
        elif line.kind == ENGINE_START_KIND:
            started = True
            recent.clear()  # frame numbers restart with each recorder run
            decoded = None
            digest = str(payload["config_hash"])
            cfg = config if config is not None else configs(digest)
            day = payload.get("risk_day")
            yield EngineStart(cfg, digest, int(payload["wall_offset_ns"]),
                              payload["ledger"], int(payload.get("max_pending", 1000)),
                              None if day is None else (int(day[0]), int(day[1])),
                              payload.get("requesters"))
        elif line.kind == GAP_KIND:
            # The writer dropped lines (disk too slow): steps are missing from here on.
            raise ReplayError(f"the recording lost {payload.get('dropped_lines')} lines here; "
                              "decisions after this point cannot be reproduced")
        elif line.kind == STEP_KIND:
            if not started:
                raise ReplayError("engine steps before any engine_start: files missing?")
            now_ns = int(payload["now_ns"])
            if "event" in payload:
                yield EngineInput(decode_event(payload["event"], configs), now_ns, None)
                continue
            n, index = int(payload["in"]), int(payload["i"])
            if decoded is None or decoded[0] != n:
                frame = recent.get(n)
                if frame is None:
                    raise ReplayError(f"step refers to frame #{n}, which is not in the files")
                try:
                    _, events = decode(frame.frame.encode("utf-8"), frame.ts_recv_ns)
                except DecodeError as exc:
                    raise ReplayError(f"frame #{n} no longer decodes: {exc}") from exc
                decoded = (n, events)
            events = decoded[1]
            if index >= len(events):
                raise ReplayError(
                    f"frame #{n} decodes to {len(events)} events, the step wants #{index}"
                )
            yield EngineInput(events[index], now_ns, n, index=index)


# --- re-running the engine -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay produced."""

    commands: tuple[cmd.Command, ...]
    steps: int
    runs: int
    #: (rfq_id, market_ticker) of every live ``pricer_timeout`` decision: the only decisions a
    #: replay may legitimately not reproduce (no time budgets in replay).
    live_pricer_timeouts: tuple[tuple[str, str], ...]
    #: Whether the last run's kernel ended halted (its gates would refuse quotes and confirms).
    halted: bool = False


def new_engine(start: EngineStart, perf_ns: Callable[[], int] | None = None) -> Engine:
    """Build the engine a run started with (``perf_ns=None``: pricer budgets off)."""
    engine = Engine(start.config, perf_ns=perf_ns, wall_offset_ns=start.wall_offset_ns,
                    max_pending=start.max_pending)
    engine.ledger = PositionLedger.restore(start.ledger)
    if start.risk_day is not None:
        engine.risk.restore_day(*start.risk_day)
    if start.requesters:
        engine.requesters.restore(start.requesters)  # the overlays price with them
    return engine


def new_kernel(start: EngineStart, perf_ns: Callable[[], int] | None = None) -> Kernel:
    """The kernel a run started with, around a fresh engine (confirms journaled in memory)."""
    return Kernel(new_engine(start, perf_ns), journal=MemoryConfirmJournal())


def replay_steps(
    paths: Iterable[Path | str],
    *,
    config: QuoterConfig | None = None,
    decode: Decoder | None = None,
    budgets: bool = True,
) -> Iterator[tuple[EngineInput, list[cmd.Command]]]:
    """Yield every recorded input with the commands a fresh kernel's engine returns for it.

    ``budgets`` replays the recorded pricer clock (see the module docstring); False runs the
    engine with ``perf_ns=None``.
    """
    for _, item, actions in replay_kernel(paths, config=config, decode=decode, budgets=budgets):
        yield item, list(engine_commands(actions))


def replay_kernel(
    paths: Iterable[Path | str],
    *,
    config: QuoterConfig | None = None,
    decode: Decoder | None = None,
    budgets: bool = True,
) -> Iterator[tuple[Kernel, EngineInput, list[Action]]]:
    """Step a fresh kernel per recorded run; yield it with each input and the actions it gave."""
    kernel: Kernel | None = None
    player = PerfPlayer()
    for item in iter_engine_inputs(paths, config=config, decode=decode):
        if isinstance(item, EngineStart):
            kernel = new_kernel(item, player if budgets else None)
            continue
        assert kernel is not None  # iter_engine_inputs starts with an EngineStart
        player.load(item.perf_readings)
        yield kernel, item, kernel.step(item.event, item.now_ns)


def replay(
    paths: Iterable[Path | str],
    *,
    config: QuoterConfig | None = None,
    decode: Decoder | None = None,
    budgets: bool = True,
) -> ReplayReport:
    """Replay recordings through fresh engines; return every command and the run counts."""
    files = [Path(p) for p in paths]
    commands: list[cmd.Command] = []
    steps = 0
    halted = False
    for kernel, _, actions in replay_kernel(files, config=config, decode=decode,
                                            budgets=budgets):
        steps += 1
        commands.extend(engine_commands(actions))
        halted = kernel.halted
    runs, timeouts = 0, []
    for line in read_recordings(files):
        if isinstance(line, EventLine):
            if line.kind == ENGINE_START_KIND:
                runs += 1
            elif line.kind == PRICER_TIMEOUT_KIND:
                timeouts.append((str(line.payload.get("rfq_id", "")),
                                 str(line.payload.get("market_ticker", ""))))
    return ReplayReport(tuple(commands), steps, runs, tuple(timeouts), halted)


def replay_decisions(
    paths: Iterable[Path | str], config: QuoterConfig | None = None
) -> list[cmd.Command]:
    """Return the commands a fresh engine makes of a recording, in order (see :func:`replay`)."""
    return list(replay(paths, config=config).commands)
