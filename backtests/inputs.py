"""Backtest inputs, streamed in constant memory and merged by receive time.

Three kinds of file are read, one frame at a time (generators all the way down, so memory
does not grow with the length of a recording):

* **service recordings** (``quoter run`` / ``quoter demo``, ``docs/recording-format.md``): the
  raw ``in`` frames, plus the facts a backtest can use: market metadata (``MarketLoaded``
  steps, or ``market`` event lines), REST book snapshots (``BookSnapshotReceived`` steps, or
  ``book`` event lines) and the measured REST round trips (``out`` lines, for the latency
  model);
* **``quoter record`` captures**: the same file format with frames only;
* the **interchange form** (``quoter.kalshi.frames``): one Kalshi frame per line, bare or
  wrapped as ``{"ts_recv_ns": ..., "frame": ...}``, optionally gzip-compressed. A bare frame has
  no receive time: it takes the time of the frame before it in its file (0 at the start), so a
  file of bare frames replays in file order.

Several files are merged by receive time with :func:`heapq.merge` over the per-file generators
(ties: the file named first, then file order), so a mix of captures of one period is one
ordered stream. A recording is recognised by its first line (the ``header``).
"""

from __future__ import annotations

import gzip
import heapq
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from quoter.domain import events as ev
from quoter.kalshi.frames import iter_frame_lines, unwrap
from quoter.recording.format import (
    STEP_KIND,
    EventLine,
    InLine,
    OutLine,
    RecordingError,
    decode_event,
    read_recording,
)

__all__ = [
    "BOOK_KIND",
    "MARKET_KIND",
    "Fact",
    "Frame",
    "FrameScan",
    "RoundTrip",
    "is_recording",
    "iter_file",
    "merged",
    "round_trips",
]

#: Event-line kinds a backtest-world recording adds (``backtests.world``): the market metadata
#: and REST book snapshots the recorded run was given, as encoded events.
MARKET_KIND: Final = "market"
BOOK_KIND: Final = "book"


@dataclass(frozen=True, slots=True)
class Frame:
    """One recorded inbound frame: its bytes and when it was received (engine clock)."""

    ts_recv_ns: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Fact:
    """A recorded non-frame input a backtest can use (market metadata, a REST book)."""

    ts_recv_ns: int
    event: ev.MarketLoaded | ev.BookSnapshotReceived


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One measured REST round trip of the recorded run."""

    ts_recv_ns: int
    method: str
    path: str
    rtt_ns: int


Item = Frame | Fact | RoundTrip


def is_recording(path: Path) -> bool:
    """True if ``path`` starts with a ``quoter-recording`` header (gzip JSON lines)."""
    try:
        with gzip.open(path, "rb") as f:
            first = f.readline(1 << 20)
    except (OSError, EOFError):
        return False
    try:
        return bool(json.loads(first).get("k") == "header")
    except (ValueError, AttributeError):
        return False


def _recording_items(path: Path) -> Iterator[Item]:
    for line in read_recording(path):
        if isinstance(line, InLine):
            yield Frame(line.ts_recv_ns, line.frame.encode("utf-8"))
        elif isinstance(line, OutLine):
            if line.status is not None:
                yield RoundTrip(line.recv_ns, line.method, line.path, line.recv_ns - line.sent_ns)
        elif isinstance(line, EventLine):
            fact = _fact(line)
            if fact is not None:
                yield fact


def _fact(line: EventLine) -> Fact | None:
    payload = line.payload
    if line.kind in (MARKET_KIND, BOOK_KIND):
        encoded = payload
    elif line.kind == STEP_KIND and isinstance(payload.get("event"), dict):
        encoded = payload["event"]
        if encoded.get("type") not in ("MarketLoaded", "BookSnapshotReceived"):
            return None
    else:
        return None
    event = decode_event(encoded)
    if not isinstance(event, ev.MarketLoaded | ev.BookSnapshotReceived):
        raise RecordingError(f"a {line.kind} line holds a {type(event).__name__}")
    return Fact(event.ts_recv_ns, event)


# A frozen dataclass's __init__ sets each field through object.__setattr__; filling the two
# slots directly builds the same Frame in ~60% of the time (B5 reads every frame twice).
_new: Final = object.__new__
_set_frame_ts: Final[Callable[[Frame, int], None]] = cast(Any, Frame).ts_recv_ns.__set__
_set_frame_data: Final[Callable[[Frame, bytes], None]] = cast(Any, Frame).data.__set__


def _interchange_items(path: Path) -> Iterator[Item]:
    last_ns = 0
    new, set_ts, set_data = _new, _set_frame_ts, _set_frame_data
    for line in iter_frame_lines(path):  # iter_frames without its line numbers
        ts_recv_ns, raw = unwrap(line)
        if ts_recv_ns is not None:
            last_ns = ts_recv_ns
        frame: Frame = new(Frame)
        set_ts(frame, last_ns)
        set_data(frame, raw)
        yield frame


class FrameScan:
    """The frames of one interchange file that may hold ``needle``, and a count of all frames.

    For a first pass that only needs a few frames of a long file (the prepass reads our
    quotes' frames): iterating yields the first frame and every frame whose line holds
    ``needle`` (or an escape, which the frame's text may decode into it), each as
    :func:`iter_file` would yield it (same bytes, same receive time), and leaves
    :attr:`frames` the number of frames :func:`iter_file` would yield. The other lines are
    counted, not unwrapped: a bare frame takes the receive time of the last wrapped one before
    it, so the lines that may carry that time are kept (a bounded few) until it is needed.
    """

    #: Lines kept that may carry the receive time; at this many, the newest that does is read.
    PENDING_MAX: Final = 256

    def __init__(self, path: Path | str, needle: bytes) -> None:
        self.path = Path(path)
        self.needle = needle
        self.frames = 0

    def __iter__(self) -> Iterator[Frame]:
        if not self.path.is_file():
            raise RecordingError(f"no such input file: {self.path}")
        needle = self.needle
        last_ns = 0
        # Lines since the last one read that may be wrapped: one of them may set the time.
        pending: list[bytes] = []

        def settle() -> None:
            nonlocal last_ns
            for line in reversed(pending):
                ts_recv_ns = unwrap(line)[0]
                if ts_recv_ns is not None:
                    last_ns = ts_recv_ns
                    break
            pending.clear()

        n = 0
        try:
            for n, line in enumerate(iter_frame_lines(self.path), start=1):
                if n > 1 and needle not in line and b"\\" not in line:
                    if b'"frame"' in line:
                        pending.append(line)
                        if len(pending) >= self.PENDING_MAX:
                            settle()
                    continue
                ts_recv_ns, raw = unwrap(line)
                if ts_recv_ns is None:
                    settle()
                else:
                    pending.clear()
                    last_ns = ts_recv_ns
                self.frames = n
                yield Frame(last_ns, raw)
        finally:
            self.frames = n


def iter_file(path: Path | str) -> Iterator[Item]:
    """Yield one file's frames, facts and round trips in file order."""
    p = Path(path)
    if not p.is_file():
        raise RecordingError(f"no such input file: {p}")
    if p.suffix == ".gz" and is_recording(p):
        yield from _recording_items(p)
    else:
        yield from _interchange_items(p)


def merged(paths: Iterable[Path | str]) -> Iterator[Item]:
    """Yield the items of every file, merged by receive time (then file, then file order)."""
    paths = list(paths)
    if len(paths) == 1:
        # One file is already in its own order: merging it would only cost a tuple an item.
        yield from iter_file(paths[0])
        return
    streams = [
        ((item.ts_recv_ns, index, seq, item) for seq, item in enumerate(iter_file(p)))
        for index, p in enumerate(paths)
    ]
    for _, _, _, item in heapq.merge(*streams, key=lambda t: (t[0], t[1], t[2])):
        yield item


def round_trips(paths: Iterable[Path | str]) -> Iterator[RoundTrip]:
    """Every measured REST round trip in the files (a pass of its own, for calibration)."""
    for p in paths:
        for item in iter_file(p):
            if isinstance(item, RoundTrip):
                yield item
