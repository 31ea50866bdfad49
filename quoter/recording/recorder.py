"""Raw recording of a run: every inbound frame, every REST exchange, and decision events.

The file format is specified in ``docs/recording-format.md``. In short: gzip-compressed JSON
lines, one self-contained file per rotation period, each starting with a header line.
Inbound frames keep their exact received text (``"frame"``), so a replay decodes the same
bytes the live run decoded. Headers of HTTP requests are never written: the recorder never
sees them (``RecordingTransport`` records method, path and bodies only), and every outbound
body and event payload also goes through the log redactor.

Writing never blocks the event loop for long: ``record_*`` encodes one line and appends it to
an in-memory buffer (microseconds). When the buffer reaches ``flush_bytes`` or is older than
``flush_interval_s``, the whole batch is handed to a writer thread that compresses it, writes
it and ``Z_SYNC_FLUSH``-es the gzip stream (so a reader, or a crash, sees every handed-off
batch). :meth:`sync` hands off at once and waits for the write: the service calls it after
the header and before acting on money (a confirm claim, a fill), so a ``kill -9`` loses none
of those lines (issue 12 item 11; the OS keeps what was written, no fsync needed for a killed
process). The hand-off queue is bounded (``max_pending_batches``): if the disk cannot keep up,
whole batches are dropped and counted (``dropped_lines``) and a ``gap`` event line records
the loss, rather than stalling trading. ``flush()`` waits for the writer (shutdown, tests).

A sync waits for the compression of everything buffered, which under a firehose is hundreds of
lines: gzip level 1 by default (about 3x faster than level 5 for ~25% larger files) and one
gzip write per chunk of lines keep that off a confirm's critical path (docs/performance.md).
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import queue
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Final, Protocol

import httpx
import msgspec
import structlog

from quoter import __version__
from quoter.clock import Clock
from quoter.observability.logging import Redactor
from quoter.recording.format import FORMAT_NAME, FORMAT_VERSION, SUFFIX, TYPE_PREFIX

__all__ = ["Recorder", "RecordingTransport"]

_NS_PER_S: Final = 1_000_000_000
#: Lines per gzip write (see ``_write_batch``).
_CHUNK_LINES: Final = 64
#: How many tapped frames wait (at most) to be linked to an engine step by ``frame_seq``;
#: frames the feed consumes itself (acks) are never linked and age out of this window.
_MAX_LINKS: Final = 100_000

_log = structlog.get_logger("quoter.recording")


class _RawFrameLike(Protocol):
    # Read-only members, so frozen dataclasses (ws_types.RawFrame) match.
    @property
    def data(self) -> bytes | str: ...
    @property
    def ts_recv_ns(self) -> int: ...
    @property
    def conn_id(self) -> str: ...


def _text(raw: bytes | str) -> str:
    # Kalshi sends text frames (UTF-8); a byte that is not UTF-8 is kept as U+FFFD rather than
    # crashing the recorder, and the replay will then report the frame as malformed.
    return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


def _builtins(value: Any) -> Any:
    """Turn dataclasses, enums, tuples and sets (e.g. domain events) into plain JSON values."""
    return msgspec.to_builtins(value, str_keys=True, order="deterministic")


def _open_exclusive(path: Path) -> IO[bytes]:
    # 0600: a recording holds our quotes, fills and positions (never keys, but private).
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Recorder:
    """Append-only, rotating, gzip JSON-lines recorder (see the module docstring)."""

    def __init__(
        self,
        directory: Path | str,
        *,
        clock: Clock,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float = 3600.0,
        header: Mapping[str, Any] | None = None,
        redactor: Redactor | None = None,
        flush_bytes: int = 256 * 1024,
        flush_interval_s: float = 1.0,
        max_pending_batches: int = 64,
        compresslevel: int = 1,
        threaded: bool = True,
        opener: Callable[[Path], IO[bytes]] | None = None,
    ) -> None:
        if max_bytes <= 0 or max_age_s <= 0:
            raise ValueError("max_bytes and max_age_s must be positive")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._max_bytes = max_bytes
        self._max_age_ns = int(max_age_s * _NS_PER_S)
        self._header_fields = dict(header or {})
        self._redactor = redactor if redactor is not None else Redactor()
        self._flush_bytes = flush_bytes
        self._flush_interval_ns = int(flush_interval_s * _NS_PER_S)
        self._compresslevel = compresslevel
        self._opener = opener if opener is not None else _open_exclusive
        self._buf: list[str] = []
        self._buf_bytes = 0
        self._buf_since_ns = clock.now_ns()
        self._closed = False
        self._handed_off = False
        self.syncs = 0
        self.dropped_lines = 0
        self._unreported_drops = 0
        self.lines_written = 0
        self.files: list[Path] = []
        self._in_seq = 0
        # (conn, ts_recv_ns) -> [(n, hash of the data)] of tapped frames not yet linked to an
        # engine step. Hashes, not the frames: nothing is kept alive (bytes cache their hash).
        self._links: dict[tuple[str, int], list[tuple[int, int]]] = {}
        # Writer state (touched only by the writer: the thread, or the caller if unthreaded).
        self._raw: IO[bytes] | None = None
        self._gz: gzip.GzipFile | None = None
        self._file_start_ns = 0
        self._file_seq = 0
        self._writer_error: BaseException | None = None
        self._queue: queue.Queue[tuple[list[str], int, int] | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=max_pending_batches)
            self._thread = threading.Thread(
                target=self._writer_loop, name="quoter-recorder", daemon=True
            )
            self._thread.start()

    # --- recording (called on the event loop) -----------------------------------------

    def record_in(self, conn: str, raw: bytes | str, ts_recv_ns: int, wall_ns: int) -> int:
        """Record one inbound frame verbatim with its receive times; return its number ``n``."""
        n = self._in_seq
        self._in_seq += 1
        self._append(
            _dumps(
                {"k": "in", "ts_recv_ns": ts_recv_ns, "wall_ns": wall_ns, "conn": conn,
                 "frame": _text(raw), "n": n}
            )
        )
        return n

    def frame_seq(self, conn: str, ts_recv_ns: int, data: bytes | str) -> int | None:
        """Return (once) the number ``n`` under which the feed tap recorded this frame."""
        entries = self._links.get((conn, ts_recv_ns))
        if not entries:
            return None
        digest = hash(data)
        at = next((i for i, (_, h) in enumerate(entries) if h == digest), None)
        if at is None:
            return None
        n = entries.pop(at)[0]
        if not entries:
            del self._links[(conn, ts_recv_ns)]
        return n

    def record_ws_out(self, conn: str, raw: bytes | str, ts_ns: int, wall_ns: int) -> None:
        """Record one outbound WebSocket command (subscriptions are part of the run)."""
        self._append(
            _dumps(
                {"k": "ws_out", "type": TYPE_PREFIX + "ws_out", "ts_ns": ts_ns,
                 "wall_ns": wall_ns, "conn": conn,
                 "text": self._redactor.redact_text(_text(raw))}
            )
        )

    def record_out(
        self,
        method: str,
        path: str,
        body: bytes | str | None,
        status: int | None,
        response_body: bytes | str | None,
        sent_ns: int,
        recv_ns: int,
        *,
        error: str | None = None,
    ) -> None:
        """Record one REST request/response: method, path, bodies and times (never headers)."""
        self._append(
            _dumps(
                {
                    "k": "out",
                    "type": TYPE_PREFIX + "out",
                    "method": method,
                    "path": self._redactor.redact_text(path),
                    "body": None if body is None else self._redactor.redact_text(_text(body)),
                    "status": status,
                    "response_body": (
                        None
                        if response_body is None
                        else self._redactor.redact_text(_text(response_body))
                    ),
                    "sent_ns": sent_ns,
                    "recv_ns": recv_ns,
                    "wall_ns": self._clock.wall_ns(),
                    "error": error,
                }
            )
        )

    def record_event(self, kind: str, payload: Any) -> None:
        """Record a decision, timer or other fact: a mapping or a dataclass (e.g. an event)."""
        self._append(
            _dumps(
                {
                    "k": "event",
                    "type": TYPE_PREFIX + "event",
                    "kind": kind,
                    "ts_ns": self._clock.now_ns(),
                    "wall_ns": self._clock.wall_ns(),
                    "payload": self._redactor.redact(_builtins(payload)),
                }
            )
        )

    def record_step(self, now_ns: int, n: int, index: int) -> None:
        """Record an engine step on the ``index``-th event of frame ``n`` (a fast ``step`` event).

        The same line ``record_event("step", {"now_ns": ..., "in": n, "i": index})`` would
        write, built without the generic encoder: this runs once per frame-borne engine step.
        """
        now_ns, n, index = int(now_ns), int(n), int(index)
        self._append(
            f'{{"k":"event","type":"{TYPE_PREFIX}event","kind":"step","ts_ns":{now_ns},'
            f'"wall_ns":{self._clock.wall_ns()},"payload":{{"now_ns":{now_ns},"in":{n},'
            f'"i":{index}}}}}'
        )

    def record_perf(self, readings: Iterable[int]) -> None:
        """Record the pricer clock readings of the engine step just recorded (a ``perf`` event)."""
        values = ",".join(str(int(v)) for v in readings)
        now_ns = self._clock.now_ns()
        self._append(
            f'{{"k":"event","type":"{TYPE_PREFIX}event","kind":"perf","ts_ns":{now_ns},'
            f'"wall_ns":{self._clock.wall_ns()},"payload":{{"readings":[{values}]}}}}'
        )

    def tap(self, frame: _RawFrameLike) -> None:
        """Feed tap for inbound frames (``KalshiFeed(tap=recorder.tap)``)."""
        n = self.record_in(frame.conn_id, frame.data, frame.ts_recv_ns, self._clock.wall_ns())
        self._links.setdefault((frame.conn_id, frame.ts_recv_ns), []).append(
            (n, hash(frame.data))
        )
        if len(self._links) > _MAX_LINKS:
            del self._links[next(iter(self._links))]

    def tap_out(self, frame: _RawFrameLike) -> None:
        """Feed tap for outbound commands (``KalshiFeed(tap_out=recorder.tap_out)``)."""
        self.record_ws_out(frame.conn_id, frame.data, frame.ts_recv_ns, self._clock.wall_ns())

    def _append(self, line: str) -> None:
        if self._closed:
            raise RuntimeError("recorder is closed")
        self._buf.append(line)
        self._buf_bytes += len(line) + 1
        if (
            self._buf_bytes >= self._flush_bytes
            or self._clock.now_ns() - self._buf_since_ns >= self._flush_interval_ns
        ):
            self._hand_off()

    def poll(self) -> None:
        """Hand off the buffer if it is due by time (call from a periodic timer)."""
        if self._buf and self._clock.now_ns() - self._buf_since_ns >= self._flush_interval_ns:
            self._hand_off()

    def sync(self) -> None:
        """Write every line so far now (opening the file with its header if none is open yet)
        and wait for it: a ``kill -9`` after this keeps them. Blocks for one small write."""
        if not self._buf and not self._unreported_drops and self._handed_off:
            return
        self.syncs += 1
        self._hand_off(block=True, force=True)
        if self._queue is not None:
            self._queue.join()

    def _hand_off(self, *, block: bool = False, force: bool = False) -> None:
        if not self._buf and not self._unreported_drops and not force:
            return
        self._handed_off = True
        now_ns, wall_ns = self._clock.now_ns(), self._clock.wall_ns()
        lines, self._buf, self._buf_bytes = self._buf, [], 0
        self._buf_since_ns = now_ns
        if self._queue is None:
            self._write_batch(lines, now_ns, wall_ns)
            return
        if self._writer_error is not None:
            # The disk failed: keep trading, count the loss; flush()/close() will raise.
            self.dropped_lines += len(lines)
            return
        if self._unreported_drops:
            # Say in-band where lines are missing, just before the first batch that made it.
            gap = _dumps(
                {"k": "event", "type": TYPE_PREFIX + "event", "kind": "gap",
                 "ts_ns": now_ns, "wall_ns": wall_ns,
                 "payload": {"dropped_lines": self._unreported_drops}}
            )
            batch = [gap, *lines]
        else:
            batch = lines
        try:
            self._queue.put((batch, now_ns, wall_ns), block=block)
        except queue.Full:
            # Never stall trading on a slow disk: drop this batch and count it.
            self.dropped_lines += len(lines)
            self._unreported_drops += len(lines)
            _log.warning("recorder_dropped_lines", lines=len(lines))
            return
        self._unreported_drops = 0

    @property
    def healthy(self) -> bool:
        """False once the writer failed or lines were dropped (report it on /healthz)."""
        return self._writer_error is None and self.dropped_lines == 0

    def flush(self) -> None:
        """Hand off the buffer and wait until everything handed off is written."""
        self._hand_off(block=True)
        if self._queue is not None:
            self._queue.join()
            if self._writer_error is not None:
                raise RuntimeError("recorder writer failed") from self._writer_error

    def close(self) -> None:
        """Write everything, stop the writer thread and close the current file."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            if self._queue is not None and self._thread is not None:
                self._queue.put(None)
                self._thread.join()
            else:
                self._close_file()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing (writer thread, or inline when unthreaded) ------------------------------

    def _writer_loop(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    self._close_file()
                    return
                if self._writer_error is None:
                    self._write_batch(*item)
            except Exception as exc:  # reported by flush()/close() and `healthy`
                self._writer_error = exc
                _log.error("recorder_write_failed", error=type(exc).__name__)
            finally:
                self._queue.task_done()

    def _write_batch(self, lines: list[str], now_ns: int, wall_ns: int) -> None:
        if self._gz is None:
            self._rotate(now_ns, wall_ns)  # an empty batch from sync(): the header at least
        # Lines go to gzip in chunks: one write per line cost ~5 µs each, and a confirm's
        # sync() waits for the whole buffered batch (benchmark B2, under a flood). Rotation is
        # checked between chunks, so a file may pass max_bytes by one chunk.
        for start in range(0, len(lines), _CHUNK_LINES):
            if self._gz is None or self._due_for_rotation(now_ns):
                self._rotate(now_ns, wall_ns)
            assert self._gz is not None
            chunk = lines[start:start + _CHUNK_LINES]
            self._gz.write("".join([line + "\n" for line in chunk]).encode("utf-8"))
            self.lines_written += len(chunk)
        if self._gz is not None:
            # A sync flush ends a deflate block: a reader (or a crash) sees every line so far.
            self._gz.flush(zlib.Z_SYNC_FLUSH)
            assert self._raw is not None
            self._raw.flush()

    def _due_for_rotation(self, now_ns: int) -> bool:
        assert self._raw is not None
        return (
            self._raw.tell() >= self._max_bytes
            or now_ns - self._file_start_ns >= self._max_age_ns
        )

    def _rotate(self, now_ns: int, wall_ns: int) -> None:
        self._close_file()
        seconds = wall_ns // _NS_PER_S
        stamp = f"{seconds}.{(wall_ns % _NS_PER_S) // 1_000_000:03d}"
        path = self.directory / f"rec-{stamp}-{self._file_seq:05d}-{os.getpid()}{SUFFIX}"
        self._raw = self._opener(path)
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, compresslevel=self._compresslevel,
            mtime=0,
        )
        self._file_start_ns = now_ns
        header = {
            **self._header_fields,
            "k": "header",
            "type": TYPE_PREFIX + "header",
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "quoter_version": __version__,
            "python_version": platform.python_version(),
            "start_wall_ns": wall_ns,
            "start_ns": now_ns,
            "file_seq": self._file_seq,
        }
        self._gz.write(_dumps(self._redactor.redact(_builtins(header))).encode("utf-8") + b"\n")
        self._file_seq += 1
        self.files.append(path)
        _log.info("recording_file_opened", path=str(path))

    def _close_file(self) -> None:
        if self._gz is not None:
            self._gz.close()
            self._gz = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None


class RecordingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that records each request/response (bodies only) to a Recorder."""

    def __init__(
        self, recorder: Recorder, clock: Clock, inner: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._recorder = recorder
        self._clock = clock
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward the request, record it, and return an equivalent response."""
        body = request.content if request.content else None
        path = request.url.raw_path.decode("ascii", "replace")
        sent_ns = self._clock.now_ns()
        try:
            response = await self._inner.handle_async_request(request)
            try:
                # The raw (still content-encoded) bytes, read straight off the stream: a
                # response built in memory (MockTransport) is pre-read yet its stream replays.
                stream = response.stream
                if not isinstance(stream, httpx.AsyncByteStream):
                    raise TypeError("RecordingTransport needs an async inner transport")
                raw = b"".join([chunk async for chunk in stream])
            finally:
                await response.aclose()
        except Exception as exc:
            self._recorder.record_out(
                request.method, path, body, None, None, sent_ns, self._clock.now_ns(),
                error=type(exc).__name__,
            )
            raise
        recv_ns = self._clock.now_ns()
        decoded = httpx.Response(
            response.status_code, headers=response.headers, stream=httpx.ByteStream(raw)
        )
        await decoded.aread()  # undo any content-encoding for the record only
        self._recorder.record_out(
            request.method, path, body, response.status_code, decoded.content, sent_ns, recv_ns
        )
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(raw),
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()
