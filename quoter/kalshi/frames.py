"""The frame-file format every quoter tool reads (decode, replay, backtest).

One frame per line, either

* bare: the Kalshi JSON frame exactly as received, or
* wrapped: ``{"ts_recv_ns": <int>, "frame": <frame object | frame JSON text>}``.

For a wrapped object frame the yielded bytes are the frame's **exact text span** in the line
(msgspec ``Raw``), never a re-encoding, so a replay decodes the bytes that were recorded. A
wrapped JSON-text frame yields that text, UTF-8 encoded. Blank lines are skipped; ``-`` reads
stdin; a path ending in ``.gz`` is read through gzip. A line that looks wrapped but is not a
valid wrapper is yielded whole, as a bare frame, so the decoder reports what is wrong with it.
Recordings (``quoter.recording``) are frame files too: their non-frame lines are skipped.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple, cast

import msgspec

__all__ = ["FrameLine", "iter_frames", "wrap_frame"]


class FrameLine(NamedTuple):
    """One frame read from a file: 1-based line number, receive time if recorded, raw bytes."""

    line_no: int
    ts_recv_ns: int | None
    raw: bytes


class _Wrapper(msgspec.Struct):
    frame: msgspec.Raw
    ts_recv_ns: int | None = None


_WRAPPER = msgspec.json.Decoder(_Wrapper)
_RECORDING_META = b'"type":"quoter_recording_'
_STR = msgspec.json.Decoder(str)


def _unwrap(line: bytes) -> tuple[int | None, bytes] | None:
    # Cheap test first: a Kalshi frame never has a top-level "frame" key.
    if b'"frame"' not in line:
        return None
    try:
        wrapper = _WRAPPER.decode(line)
    except msgspec.DecodeError:
        return None
    frame = bytes(wrapper.frame)
    if frame[:1] == b'"':
        try:
            frame = _STR.decode(frame).encode("utf-8")
        except (msgspec.DecodeError, UnicodeEncodeError):
            return None
    return wrapper.ts_recv_ns, frame


def _iter_lines(stream: IO[bytes]) -> Iterator[FrameLine]:
    for line_no, line in enumerate(stream, start=1):
        text = line.strip()
        if not text or _RECORDING_META in text:
            # Recording header / REST / event lines (docs/recording-format.md) hold no frame.
            continue
        unwrapped = _unwrap(text)
        if unwrapped is None:
            yield FrameLine(line_no, None, text)
        else:
            yield FrameLine(line_no, unwrapped[0], unwrapped[1])


def iter_frames(path: str | Path) -> Iterator[FrameLine]:
    """Yield every frame of a frame file (``-`` = stdin, ``*.gz`` = gzip)."""
    if str(path) == "-":
        yield from _iter_lines(sys.stdin.buffer)
        return
    p = Path(path)
    if p.suffix == ".gz":
        with gzip.open(p, "rb") as gz:
            yield from _iter_lines(cast(IO[bytes], gz))
    else:
        with p.open("rb") as f:
            yield from _iter_lines(f)


def wrap_frame(raw: bytes, ts_recv_ns: int) -> bytes:
    """Return one wrapped line (no newline): ``raw`` as an object, or as text if it must be.

    Text is used when ``raw`` is not JSON or spans lines, so the line format always holds.
    """
    as_text = b"\n" in raw or b"\r" in raw
    if not as_text:
        try:
            msgspec.json.decode(raw)
        except msgspec.DecodeError:
            as_text = True
    if as_text:
        return msgspec.json.encode({"ts_recv_ns": ts_recv_ns, "frame": raw.decode("utf-8")})
    return b'{"ts_recv_ns":%d,"frame":%s}' % (ts_recv_ns, raw)
