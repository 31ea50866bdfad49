"""The recording format: line types, the reader, engine-step kinds, the event codec, PerfTape.

The file format is specified in ``docs/recording-format.md``. In short: gzip-compressed JSON
lines, one self-contained file per rotation period, each starting with a header line. This
module is what both sides agree on: the writer (:mod:`quoter.recording.recorder`) and every
reader (``backtests.replay``, ``quoter decode``, the backtester).

Engine steps (``docs/recording-format.md``, "Engine inputs") are ``event`` lines of kind
``step``: either ``{"now_ns": N, "in": n, "i": i}`` (the ``i``-th event the production
decoder makes of inbound frame ``n``) or ``{"now_ns": N, "event": {...}}`` (an event that did
not come from a frame, encoded by :func:`encode_event`). ``engine_start`` and ``config`` lines
say how to rebuild the engine; ``perf`` lines carry the pricer clock readings of a step.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import msgspec

from quoter.config import QuoterConfig, config_hash
from quoter.domain import events as ev
from quoter.errors import DecodeError, QuoterError

__all__ = [
    "CONFIG_KIND",
    "CONFIRM_CLAIM_KIND",
    "ENGINE_START_KIND",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GAP_KIND",
    "PERF_KIND",
    "PRICER_TIMEOUT_KIND",
    "STEP_KIND",
    "EventLine",
    "HeaderLine",
    "InLine",
    "OutLine",
    "PerfPlayer",
    "PerfTape",
    "RecordLine",
    "RecordingError",
    "WsOutLine",
    "decode_event",
    "encode_event",
    "read_recording",
    "read_recordings",
    "recording_files",
]

FORMAT_NAME: Final = "quoter-recording"
FORMAT_VERSION: Final = 1
SUFFIX: Final = ".jsonl.gz"
# Lines that are not inbound frames carry a top-level "type" that no Kalshi frame uses, so a
# bare-frame reader (quoter.kalshi.frames) sees a well-formed frame of an unknown type and
# skips it, instead of failing on it.
TYPE_PREFIX: Final = "quoter_recording_"

#: Event-line kinds that describe engine steps (see the module docstring).
STEP_KIND: Final = "step"
ENGINE_START_KIND: Final = "engine_start"
CONFIG_KIND: Final = "config"
#: A confirm was claimed (written and synced before it leaves); replays skip it.
CONFIRM_CLAIM_KIND: Final = "confirm_claimed"
PRICER_TIMEOUT_KIND: Final = "pricer_timeout"
PERF_KIND: Final = "perf"
#: The recorder's own note that lines were dropped (``docs/recording-format.md``).
GAP_KIND: Final = "gap"

_EVENT_TYPES: Final[dict[str, type[Any]]] = {
    name: getattr(ev, name) for name in ev.__all__ if name != "Event"
}


class RecordingError(QuoterError):
    """A recording cannot be read or replayed (not a service recording, a missing frame, ...)."""


# --- line types -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderLine:
    """The first line of every file: what was recorded, by what, when."""

    format_version: int
    quoter_version: str
    python_version: str
    start_wall_ns: int
    start_ns: int
    file_seq: int
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class InLine:
    """One inbound WebSocket frame, exactly as received."""

    ts_recv_ns: int
    wall_ns: int
    conn: str
    frame: str
    #: Number of the frame within the recorder run (engine steps refer to it); not part of
    #: equality, which compares what was received.
    n: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class WsOutLine:
    """One outbound WebSocket command (subscribe, ...)."""

    ts_ns: int
    wall_ns: int
    conn: str
    frame: str


@dataclass(frozen=True, slots=True)
class OutLine:
    """One REST request and its response (bodies only, never headers)."""

    method: str
    path: str
    body: str | None
    status: int | None
    response_body: str | None
    sent_ns: int
    recv_ns: int
    wall_ns: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class EventLine:
    """A decision, timer or other fact needed to reproduce the run."""

    kind: str
    ts_ns: int
    wall_ns: int
    payload: Mapping[str, Any]


RecordLine = HeaderLine | InLine | WsOutLine | OutLine | EventLine



# --- reading --------------------------------------------------------------------------------


def recording_files(directory: Path | str) -> list[Path]:
    """Return a directory's recording files in recording order."""
    return sorted(Path(directory).glob(f"rec-*{SUFFIX}"), key=_file_order)


def _file_order(path: Path) -> tuple[float, int, str]:
    parts = path.name.removesuffix(SUFFIX).split("-")
    try:
        return float(parts[1]), int(parts[2]), path.name
    except (IndexError, ValueError):
        return float("inf"), 0, path.name


def _iter_complete_lines(path: Path) -> Iterator[bytes]:
    """Yield complete lines; a truncated tail (a file still being written, or a crash) ends it.

    ``gzip.open`` raises ``EOFError`` on a stream without its trailer and drops the data it
    already decompressed, so we drive ``zlib`` ourselves (``wbits=31``: gzip framing).
    """
    inflater = zlib.decompressobj(wbits=31)
    pending = b""
    with path.open("rb") as f:
        while not inflater.eof:
            chunk = f.read(65536)
            if not chunk:
                break
            try:
                pending += inflater.decompress(chunk)
            except zlib.error:
                break  # damaged data: keep what was complete before it
            *lines, pending = pending.split(b"\n")
            yield from lines
    if inflater.eof and pending:
        yield pending  # a final line without a newline in a complete file


def _parse(obj: dict[str, Any]) -> RecordLine | None:
    kind = obj.get("k")
    if kind == "in":
        return InLine(obj["ts_recv_ns"], obj["wall_ns"], obj["conn"], obj["frame"], obj.get("n"))
    if kind == "out":
        return OutLine(
            obj["method"], obj["path"], obj["body"], obj["status"], obj["response_body"],
            obj["sent_ns"], obj["recv_ns"], obj["wall_ns"], obj.get("error"),
        )
    if kind == "event":
        return EventLine(obj["kind"], obj["ts_ns"], obj["wall_ns"], obj["payload"])
    if kind == "ws_out":
        return WsOutLine(obj["ts_ns"], obj["wall_ns"], obj["conn"], obj["text"])
    if kind == "header":
        if obj.get("format") != FORMAT_NAME:
            raise ValueError(f"not a {FORMAT_NAME} file (format={obj.get('format')!r})")
        if obj["format_version"] > FORMAT_VERSION:
            raise ValueError(f"recording format v{obj['format_version']} is newer than this reader")
        reserved = {"k", "type", "format", "format_version", "quoter_version",
                    "python_version", "start_wall_ns", "start_ns", "file_seq"}
        return HeaderLine(
            obj["format_version"], obj["quoter_version"], obj["python_version"],
            obj["start_wall_ns"], obj["start_ns"], obj["file_seq"],
            {k: v for k, v in obj.items() if k not in reserved},
        )
    return None  # a kind from a newer minor version: skip it


def read_recording(path: Path | str) -> Iterator[RecordLine]:
    """Yield every line of one recording file (header first); tolerates a truncated tail.

    A line that is not a valid record (damaged, hand-edited, a newer major version) raises
    ``DecodeError`` naming the file and the line number, never a bare ``KeyError`` & co.
    """
    p = Path(path)
    first = True
    for number, raw in enumerate(_iter_complete_lines(p), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise TypeError(f"a record is a JSON object, not {type(obj).__name__}")
            if first and obj.get("k") != "header":
                raise ValueError("the file does not start with a recording header")
            first = False
            parsed = _parse(obj)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise DecodeError(f"{p}:{number}: not a recording line: {exc}", raw=raw[:200],
                              msg_type="recording") from exc
        if parsed is not None:
            yield parsed


def read_recordings(paths: Iterable[Path | str]) -> Iterator[RecordLine]:
    """Yield the lines of several recording files in the given order."""
    for path in paths:
        yield from read_recording(path)


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
        raise RecordingError(f"unknown recorded event type {name!r}")
    if cls is ev.ConfigReloaded:
        if configs is None:
            raise RecordingError("a ConfigReloaded step needs the recorded configs")
        return ev.ConfigReloaded(configs(str(data["config_hash"])), int(data["ts_recv_ns"]))
    try:
        event: ev.Event = msgspec.convert(data, cls, dec_hook=_dec_hook)
    except (msgspec.ValidationError, ValueError) as exc:
        raise RecordingError(f"bad recorded {name}: {exc}") from exc
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


class PerfPlayer:
    """A replayed ``perf_ns``: the recorded readings of the current step, in order."""

    def __init__(self) -> None:
        self._readings: tuple[int, ...] = ()
        self._at = 0

    def load(self, readings: tuple[int, ...]) -> None:
        """Play these readings for the next step."""
        self._readings, self._at = readings, 0

    def __call__(self) -> int:
        """The next recorded reading (the last one again when they run out)."""
        if self._at < len(self._readings):
            self._at += 1
            return self._readings[self._at - 1]
        # No (more) recorded readings: time stands still, so no budget can fire.
        return self._readings[-1] if self._readings else 0


