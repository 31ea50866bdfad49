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

import contextlib
import gzip
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final, NamedTuple, cast

import msgspec

__all__ = ["FrameLine", "iter_frame_lines", "iter_frames", "unwrap", "wrap_frame"]


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
_FRAME_KEY: Final = b'"frame"'
_STR = msgspec.json.Decoder(str)


def unwrap(line: bytes) -> tuple[int | None, bytes]:
    """One line of :func:`iter_frame_lines` as :func:`iter_frames` reads it: receive time
    (None if not recorded) and frame bytes (the line itself unless it is a valid wrapper)."""
    # Cheap test first: a Kalshi frame never has a top-level "frame" key.
    if _FRAME_KEY not in line:
        return None, line
    try:
        wrapper = _WRAPPER.decode(line)
    except msgspec.DecodeError:
        return None, line
    frame = bytes(wrapper.frame)
    if frame[:1] == b'"':
        try:
            frame = _STR.decode(frame).encode("utf-8")
        except (msgspec.DecodeError, UnicodeEncodeError):
            return None, line
    return wrapper.ts_recv_ns, frame


#: Bytes read from a file at a time (memory stays a few hundred kB a stream). Splitting a chunk
#: in C costs less a line than ``GzipFile`` line iteration, which runs Python code each line.
_CHUNK_BYTES: Final = 1 << 16


def _lines_of(stream: IO[bytes], chunked: bool) -> Iterator[bytes]:
    if not chunked:
        # A pipe (``-``): lines as they come, never waiting for a chunk to fill.
        yield from stream
        return
    rest = b""
    while chunk := stream.read(_CHUNK_BYTES):
        lines = (rest + chunk if rest else chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def _iter_lines(stream: IO[bytes], *, chunked: bool = True) -> Iterator[FrameLine]:
    new_line = tuple.__new__  # FrameLine(...) goes through a Python-level __new__
    for line_no, line in enumerate(_lines_of(stream, chunked), start=1):
        text = line.strip()
        if not text or _RECORDING_META in text:
            # Recording header / REST / event lines (docs/recording-format.md) hold no frame.
            continue
        ts_recv_ns, raw = unwrap(text)
        yield new_line(FrameLine, (line_no, ts_recv_ns, raw))


@contextlib.contextmanager
def _opened(path: str | Path) -> Iterator[tuple[IO[bytes], bool]]:
    """The file's byte stream, and whether to read it in chunks (not a pipe)."""
    if str(path) == "-":
        yield sys.stdin.buffer, False
        return
    p = Path(path)
    if p.suffix == ".gz":
        with gzip.open(p, "rb") as gz:
            yield cast(IO[bytes], gz), True
    else:
        with p.open("rb") as f:
            yield f, True


def iter_frames(path: str | Path) -> Iterator[FrameLine]:
    """Yield every frame of a frame file (``-`` = stdin, ``*.gz`` = gzip)."""
    with _opened(path) as (stream, chunked):
        yield from _iter_lines(stream, chunked=chunked)


def iter_frame_lines(path: str | Path) -> Iterator[bytes]:
    """Yield the lines of a frame file that :func:`iter_frames` reads a frame from, still
    wrapped (stripped; :func:`unwrap` reads each), one to one with its frames."""
    with _opened(path) as (stream, chunked):
        if not chunked:
            for line in stream:
                text = line.strip()
                if text and _RECORDING_META not in text:
                    yield text
            return
        # _lines_of, inline: a generator less between the file and a backtest, each line.
        rest = b""
        while chunk := stream.read(_CHUNK_BYTES):
            buf = rest + chunk if rest else chunk
            lines = buf.split(b"\n")
            rest = lines.pop()
            # Searched once a chunk: in an interchange file no line is a recording's own.
            meta = _RECORDING_META in buf
            for line in lines:
                text = line.strip()
                if text and not (meta and _RECORDING_META in text):
                    yield text
        text = rest.strip()
        if text and _RECORDING_META not in text:
            yield text


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
