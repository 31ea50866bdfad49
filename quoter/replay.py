"""Replay a service recording: rebuild the engine's exact input sequence and re-run an engine.

A service recording (``docs/recording-format.md``, "Engine inputs") holds, besides the raw
frames, one ``event`` line of kind ``step`` per engine step, in the order the engine ran them:

* ``{"now_ns": N, "in": n, "i": i}`` — the step's event is the ``i``-th event the production
  decoder (:func:`quoter.app.decode`) makes of inbound frame number ``n`` (its ``in`` line);
  the frame is decoded again here, so a replay exercises the real parsers;
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
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import msgspec

from quoter.config import QuoterConfig, config_hash, parse_config
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.engine.engine import Engine
from quoter.engine.positions import PositionLedger
from quoter.errors import ConfigError, DecodeError, QuoterError
from quoter.recorder import EventLine, InLine, read_recordings

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
    "new_engine",
    "replay",
    "replay_decisions",
    "replay_steps",
]

STEP_KIND: Final = "step"
ENGINE_START_KIND: Final = "engine_start"
CONFIG_KIND: Final = "config"
PRICER_TIMEOUT_KIND: Final = "pricer_timeout"
PERF_KIND: Final = "perf"
#: The recorder's own note that lines were dropped (``docs/recording-format.md``).
GAP_KIND: Final = "gap"
#: Most recent frames kept for the steps that use them. A step follows its frame closely
#: (the runtime's inbox holds at most 10,000 market-data events), so this is ample.
MAX_PENDING_FRAMES: Final = 200_000

Decoder = Callable[[bytes | str, int], tuple[str | None, list[ev.Event]]]

_EVENT_TYPES: Final[dict[str, type[Any]]] = {
    name: getattr(ev, name) for name in ev.__all__ if name != "Event"
}


class ReplayError(QuoterError):
    """A recording cannot be replayed (not a service recording, a missing frame, ...)."""


# --- event codec ---------------------------------------------------------------------------


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Fraction):
        return str(value)  # exact: "1", "1/4"
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _dec_hook(tp: type[Any], value: Any) -> Any:
    if tp is Fraction and isinstance(value, str | int):
        return Fraction(value)
    raise NotImplementedError(f"cannot decode {tp}")


def encode_event(event: ev.Event) -> dict[str, Any]:
    """Encode a domain event as plain JSON values with its type name (exact integers)."""
    if isinstance(event, ev.ConfigReloaded):
        # The config itself travels once, as text, in a ``config`` line keyed by this hash.
        return {"type": "ConfigReloaded", "config_hash": config_hash(event.config),
                "ts_recv_ns": event.ts_recv_ns}
    body = {
        f.name: msgspec.to_builtins(getattr(event, f.name), enc_hook=_enc_hook)
        for f in fields(event)
    }
    return {"type": type(event).__name__, **body}


def decode_event(
    payload: Mapping[str, Any], configs: Callable[[str], QuoterConfig] | None = None
) -> ev.Event:
    """Rebuild an event from :func:`encode_event` output (``configs`` maps a hash to a config)."""
    data = dict(payload)
    name = data.pop("type", None)
    cls = _EVENT_TYPES.get(str(name))
    if cls is None:
        raise ReplayError(f"unknown recorded event type {name!r}")
    if cls is ev.ConfigReloaded:
        if configs is None:
            raise ReplayError("a ConfigReloaded step needs the recorded configs")
        return ev.ConfigReloaded(configs(str(data["config_hash"])), int(data["ts_recv_ns"]))
    try:
        event: ev.Event = msgspec.convert(data, cls, dec_hook=_dec_hook)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ReplayError(f"bad recorded {name}: {exc}") from exc
    return event


# --- pricer clock -----------------------------------------------------------------------------


class PerfTape:
    """The engine's ``perf_ns`` in a recorded run: a clock that remembers this step's readings."""

    def __init__(self, source: Callable[[], int]) -> None:
        self._source = source
        self.readings: list[int] = []

    def __call__(self) -> int:
        """Read the clock and remember the reading."""
        value = self._source()
        self.readings.append(value)
        return value

    def start_step(self) -> None:
        """Forget the previous step's readings."""
        self.readings.clear()


class _PerfPlayer:
    """The replay engine's ``perf_ns``: the recorded readings of the current step, in order."""

    def __init__(self) -> None:
        self._readings: tuple[int, ...] = ()
        self._at = 0

    def load(self, readings: tuple[int, ...]) -> None:
        self._readings, self._at = readings, 0

    def __call__(self) -> int:
        if self._at < len(self._readings):
            self._at += 1
            return self._readings[self._at - 1]
        # No (more) recorded readings: time stands still, so no budget can fire.
        return self._readings[-1] if self._readings else 0


# --- reading the engine inputs ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineStart:
    """A service run began: build a fresh engine like this."""

    config: QuoterConfig
    config_hash: str
    wall_offset_ns: int
    ledger: Mapping[str, Any]
    max_pending: int


@dataclass(frozen=True, slots=True)
class EngineInput:
    """One engine step: ``engine.on_event(event, now_ns)``; ``in_seq`` names its frame, if any."""

    event: ev.Event
    now_ns: int
    in_seq: int | None
    #: The pricer clock readings the live engine took during this step, in order.
    perf_readings: tuple[int, ...] = ()


class _Configs:
    """The configs a recording names, parsed lazily from their recorded text."""

    def __init__(self, given: QuoterConfig | None) -> None:
        self._parsed: dict[str, QuoterConfig] = {}
        self._texts: dict[str, tuple[str, str | None]] = {}
        if given is not None:
            self._parsed[config_hash(given)] = given

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
) -> Iterator[EngineStart | EngineInput]:
    """Yield each run's start and then its engine inputs, in the order the engine ran them.

    ``config`` replaces the recorded initial config (a what-if replay); by default the
    recorded config text is used. Frames are decoded with ``decode`` (the production decoder
    :func:`quoter.app.decode` by default).
    """
    if decode is None:
        from quoter.app import decode as app_decode  # lazy: quoter.app imports the hooks

        decode = app_decode
    pending: EngineInput | None = None  # held until we know whether a ``perf`` line follows
    for item in _inputs(paths, config, decode):
        if isinstance(item, tuple):
            if pending is not None:
                pending = replace(pending, perf_readings=item)
            continue
        if pending is not None:
            yield pending
            pending = None
        if isinstance(item, EngineInput):
            pending = item
        else:
            yield item
    if pending is not None:
        yield pending


def _inputs(
    paths: Iterable[Path | str], config: QuoterConfig | None, decode: Decoder
) -> Iterator[EngineStart | EngineInput | tuple[int, ...]]:
    configs = _Configs(config)
    frames: OrderedDict[int, InLine] = OrderedDict()
    decoded: tuple[int, list[ev.Event]] | None = None
    started = False
    for line in read_recordings(paths):
        if isinstance(line, InLine):
            if line.n is not None:
                frames[line.n] = line
                if len(frames) > MAX_PENDING_FRAMES:
                    frames.popitem(last=False)
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
            frames.clear()  # frame numbers restart with each recorder run
            decoded = None
            digest = str(payload["config_hash"])
            cfg = config if config is not None else configs(digest)
            yield EngineStart(cfg, digest, int(payload["wall_offset_ns"]),
                              payload["ledger"], int(payload.get("max_pending", 1000)))
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
                frame = frames.get(n)
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
            yield EngineInput(events[index], now_ns, n)


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


def new_engine(start: EngineStart, perf_ns: Callable[[], int] | None = None) -> Engine:
    """Build the engine a run started with (``perf_ns=None``: pricer budgets off)."""
    engine = Engine(start.config, perf_ns=perf_ns, wall_offset_ns=start.wall_offset_ns,
                    max_pending=start.max_pending)
    engine.ledger = PositionLedger.restore(start.ledger)
    return engine


def replay_steps(
    paths: Iterable[Path | str],
    *,
    config: QuoterConfig | None = None,
    decode: Decoder | None = None,
    budgets: bool = True,
) -> Iterator[tuple[EngineInput, list[cmd.Command]]]:
    """Yield every recorded engine input with the commands a fresh engine returns for it.

    ``budgets`` replays the recorded pricer clock (see the module docstring); False runs the
    engine with ``perf_ns=None``.
    """
    engine: Engine | None = None
    player = _PerfPlayer()
    for item in iter_engine_inputs(paths, config=config, decode=decode):
        if isinstance(item, EngineStart):
            engine = new_engine(item, player if budgets else None)
            continue
        assert engine is not None  # iter_engine_inputs starts with an EngineStart
        player.load(item.perf_readings)
        try:
            commands = engine.on_event(item.event, item.now_ns)
        except QuoterError:
            commands = []  # the runtime logs it and moves on (engine_event_failed)
        yield item, commands


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
    for _, out in replay_steps(files, config=config, decode=decode, budgets=budgets):
        steps += 1
        commands.extend(out)
    runs, timeouts = 0, []
    for line in read_recordings(files):
        if isinstance(line, EventLine):
            if line.kind == ENGINE_START_KIND:
                runs += 1
            elif line.kind == PRICER_TIMEOUT_KIND:
                timeouts.append((str(line.payload.get("rfq_id", "")),
                                 str(line.payload.get("market_ticker", ""))))
    return ReplayReport(tuple(commands), steps, runs, tuple(timeouts))


def replay_decisions(
    paths: Iterable[Path | str], config: QuoterConfig | None = None
) -> list[cmd.Command]:
    """Return the commands a fresh engine makes of a recording, in order (see :func:`replay`)."""
    return list(replay(paths, config=config).commands)
