"""A lean HTTP/1.1 transport for httpx: keep-alive connections, one write per request.

Why: httpx's default transport (httpcore) costs a large share of the RFQ -> quote latency
(docs/performance.md B1): per-request pool bookkeeping, the h11 state machine, headers and
body written in separate awaits. Kalshi's REST calls are small JSON requests with small JSON
answers, so this transport does only what they need:

* persistent HTTP/1.1 connections per origin ``(scheme, host, port)`` on an asyncio
  ``Protocol``; a bounded pool per origin (idle connections reused LIFO, at most
  ``max_connections`` open, further requests wait up to the ``pool`` timeout); TCP_NODELAY;
* the whole request (request line, headers, body) leaves in ONE ``transport.write``;
* the response is read whole (Content-Length, chunked, or to close), bounded in size;
* failures map to the httpx exceptions ``KalshiRest`` already classifies (``ConnectError``,
  ``ConnectTimeout``, ``PoolTimeout`` mean nothing was sent; anything after the write may have
  reached the exchange), each carrying ``request=``. Messages never contain headers, so never
  the signature or key id.

Reuse rule (a POST must never be duplicated): an idle connection is reused only if the server
has not closed it (no EOF, no stray bytes, transport not closing) and it has been idle less
than ``keepalive_expiry_s`` (servers and load balancers close idle connections; a FIN still in
flight would otherwise eat our request). If a reused connection dies before any response byte
arrives, only GET/HEAD/OPTIONS are retried once on a fresh connection; any other method
surfaces ``RemoteProtocolError`` and the caller's retry policy decides.

Content-encoding is left to httpx: the raw body goes back in an ``httpx.ByteStream`` with the
server's headers, and the client decodes gzip/deflate exactly as with the default transport
(a corrupt body raises ``httpx.DecodingError`` at the client, as before).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Iterable
from typing import Final

import httpx

from quoter.kalshi.bounds import MAX_BODY_BYTES

__all__ = ["MAX_HEADER_BYTES", "LeanTransport"]

#: Largest response head (status line + headers) accepted.
MAX_HEADER_BYTES: Final = 64 * 1024
_MAX_CHUNK_LINE: Final = 4096
_RETRYABLE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([01]) (\d{3})(?: ([^\r\n]*))?")
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CLOSE_GRACE_S: Final = 1.0

Origin = tuple[str, str, int]


class _ConnectionDied(Exception):
    """The peer closed or reset the connection; ``got_bytes`` says if any response arrived."""

    def __init__(self, got_bytes: bool, reset: bool) -> None:
        super().__init__()
        self.got_bytes = got_bytes
        self.reset = reset


class _Connection(asyncio.Protocol):
    """One socket: a receive buffer, EOF/loss state and write flow control."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.received = 0  # response bytes seen since the request was written
        self.eof = False
        self.reset = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self.idle_since = 0.0

    # --- protocol callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # No Nagle delay: a request is one small write that must leave now.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.received += len(data)
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too: a half-closed HTTP connection is useless

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.reset = exc is not None
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- used by the transport -----------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """True if the server has neither closed nor written to this idle connection."""
        t = self.transport
        return not self.eof and not self.buf and t is not None and not t.is_closing()

    def close(self) -> None:
        """Close the socket (idempotent); ``lost`` resolves once it is gone."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    async def drain(self, timeout_s: float | None) -> None:
        """Wait until the kernel took what we wrote (only if the write buffer filled)."""
        if self._drain is not None and not self._drain.done():
            async with asyncio.timeout(timeout_s):
                await self._drain

    async def _wait(self, timeout_s: float | None) -> None:
        if self.eof:
            raise _ConnectionDied(self.received > 0, self.reset)
        self._waiter = self._loop.create_future()
        try:
            async with asyncio.timeout(timeout_s):
                await self._waiter
        finally:
            self._waiter = None

    async def read_until(self, sep: bytes, limit: int, timeout_s: float | None) -> bytes:
        """Consume and return the buffer up to ``sep`` (excluded); ``_TooLarge`` past ``limit``."""
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                if i > limit:
                    raise _TooLarge
                out = bytes(self.buf[:i])
                del self.buf[: i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise _TooLarge
            start = max(0, len(self.buf) - len(sep) + 1)
            await self._wait(timeout_s)

    async def read_exactly(self, n: int, timeout_s: float | None) -> bytes:
        """Consume and return exactly ``n`` bytes."""
        while len(self.buf) < n:
            await self._wait(timeout_s)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_to_close(self, cap: int, timeout_s: float | None) -> bytes:
        """Consume everything until the server closes, at most ``cap`` bytes."""
        while True:
            if len(self.buf) > cap:
                raise _TooLarge
            try:
                await self._wait(timeout_s)
            except _ConnectionDied as died:
                if died.reset:
                    raise
                out = bytes(self.buf)
                self.buf.clear()
                return out


class _TooLarge(Exception):
    """A head, chunk line or body over its bound."""


class _Pool:
    """The connections of one origin: ``slots`` bounds those in use plus idle."""

    def __init__(self, max_connections: int) -> None:
        self.slots = asyncio.Semaphore(max_connections)
        self.idle: list[_Connection] = []  # LIFO: the warmest socket first


class LeanTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 over asyncio with one write per request (see the module doc)."""

    def __init__(
        self,
        *,
        max_connections: int = 8,
        keepalive_expiry_s: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._max_connections = max_connections
        self._keepalive_expiry_s = keepalive_expiry_s
        self._ssl_context = ssl_context
        self._max_body = max_body_bytes
        self._max_head = max_header_bytes
        self._pools: dict[Origin, _Pool] = {}
        self._open: set[_Connection] = set()
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Sockets not yet gone (in use, idle or closing, over all origins)."""
        return len(self._open)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a pooled connection and return the whole response."""
        if self._closed:
            raise RuntimeError("LeanTransport is closed")
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {scheme!r}", request=request)
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        payload = await _serialize(request)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self._max_connections)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await pool.slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection free in time", request=request) from None
        try:
            conn = self._take_idle(pool)
            for fresh in (conn is None, True):
                if conn is None:
                    conn = await self._connect(origin, request, timeouts.get("connect"))
                try:
                    response, keep = await self._exchange(conn, payload, request, timeouts)
                except _ConnectionDied as died:
                    self._discard(conn)
                    conn = None
                    if not fresh and not died.got_bytes and request.method in _RETRYABLE_METHODS:
                        continue  # a stale reused socket, an idempotent request: once more
                    if died.reset:
                        raise httpx.ReadError("connection reset by peer",
                                              request=request) from None
                    raise httpx.RemoteProtocolError(
                        "server disconnected without a complete response", request=request
                    ) from None
                except BaseException:
                    # Timeout, protocol error, cancellation: the socket's state is unknown.
                    self._discard(conn)
                    raise
                if keep and not self._closed:
                    conn.idle_since = asyncio.get_running_loop().time()
                    pool.idle.append(conn)
                else:
                    self._discard(conn)
                return response
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            pool.slots.release()

    def _take_idle(self, pool: _Pool) -> _Connection | None:
        now = asyncio.get_running_loop().time()
        while pool.idle:
            conn = pool.idle.pop()
            if conn.reusable and now - conn.idle_since < self._keepalive_expiry_s:
                return conn
            self._discard(conn)
        return None

    @staticmethod
    def _discard(conn: _Connection) -> None:
        conn.close()  # it leaves ``_open`` once the socket is gone (so aclose can wait for it)

    async def _connect(
        self, origin: Origin, request: httpx.Request, timeout_s: float | None
    ) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        ctx: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            ctx = self._ssl_context
        try:
            async with asyncio.timeout(timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), host, port, ssl=ctx,
                    server_hostname=host if ctx is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("connect timed out", request=request) from None
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake (SSLError)
            raise httpx.ConnectError(f"connect failed: {type(exc).__name__}: {exc}",
                                     request=request) from None
        self._open.add(conn)
        conn.lost.add_done_callback(lambda _: self._open.discard(conn))
        return conn

    async def _exchange(
        self, conn: _Connection, payload: bytes, request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> tuple[httpx.Response, bool]:
        """Write the request in one call, read the response; return it and keep-alive."""
        assert conn.transport is not None
        conn.received = 0
        conn.transport.write(payload)
        try:
            await conn.drain(timeouts.get("write"))
        except TimeoutError:
            raise httpx.WriteTimeout("write timed out", request=request) from None
        read_timeout = timeouts.get("read")
        try:
            return await self._read_response(conn, request, read_timeout)
        except TimeoutError:
            raise httpx.ReadTimeout("read timed out", request=request) from None
        except _TooLarge:
            raise httpx.RemoteProtocolError("response head or body too large",
                                            request=request) from None

    async def _read_response(
        self, conn: _Connection, request: httpx.Request, timeout_s: float | None
    ) -> tuple[httpx.Response, bool]:
        while True:
            head = await conn.read_until(b"\r\n\r\n", self._max_head, timeout_s)
            lines = head.split(b"\r\n")
            m = _STATUS_LINE.fullmatch(lines[0])
            if m is None:
                raise httpx.RemoteProtocolError("malformed status line", request=request)
            status = int(m.group(2))
            if 100 <= status < 200 and status != 101:
                continue  # informational (100 Continue): the real answer follows
            break
        headers = _parse_headers(lines[1:], request)
        http11 = m.group(1) == b"1"
        conn_tokens = _tokens(headers, b"connection")
        keep = http11 and b"close" not in conn_tokens and status != 101
        te = _tokens(headers, b"transfer-encoding")
        if request.method == "HEAD" or status in (101, 204, 304):
            body = b""
        elif te:
            if te[-1] != b"chunked":
                raise httpx.RemoteProtocolError("unsupported transfer-encoding", request=request)
            body = await self._read_chunked(conn, request, timeout_s)
        else:
            lengths = {v.strip() for k, v in headers if k.lower() == b"content-length"}
            if len(lengths) > 1:
                raise httpx.RemoteProtocolError("conflicting content-length", request=request)
            if lengths:
                raw = lengths.pop()
                if not raw.isdigit():
                    raise httpx.RemoteProtocolError("malformed content-length",
                                                    request=request)
                n = int(raw)
                if n > self._max_body:
                    raise _TooLarge
                body = await conn.read_exactly(n, timeout_s)
            else:
                body = await conn.read_to_close(self._max_body, timeout_s)
                keep = False
        if conn.buf:
            keep = False  # bytes beyond this response: we cannot tell whose they are
        response = httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            request=request,
            extensions={"http_version": b"HTTP/1.1" if http11 else b"HTTP/1.0",
                        "reason_phrase": m.group(3) or b""},
        )
        return response, keep

    async def _read_chunked(
        self, conn: _Connection, request: httpx.Request, timeout_s: float | None
    ) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = await conn.read_until(b"\r\n", _MAX_CHUNK_LINE, timeout_s)
            size_text = line.split(b";", 1)[0].strip()
            try:
                if not size_text or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
                    raise ValueError
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError("malformed chunk size", request=request) from None
            if size == 0:
                break
            total += size
            if total > self._max_body:
                raise _TooLarge
            chunk = await conn.read_exactly(size + 2, timeout_s)
            if chunk[-2:] != b"\r\n":
                raise httpx.RemoteProtocolError("malformed chunk", request=request)
            parts.append(chunk[:-2])
        trailer_bytes = 0
        while True:  # trailers (ignored) up to the empty line
            line = await conn.read_until(b"\r\n", _MAX_CHUNK_LINE, timeout_s)
            trailer_bytes += len(line)
            if trailer_bytes > self._max_head:
                raise _TooLarge
            if not line:
                return b"".join(parts)

    async def aclose(self) -> None:
        """Close every connection and wait (briefly) until the sockets are gone."""
        self._closed = True
        conns = list(self._open)
        for pool in self._pools.values():
            pool.idle.clear()
        for conn in conns:
            conn.close()
        if conns:
            # TLS close_notify can stall on a dead peer: abort what is not gone in time.
            _, pending = await asyncio.wait([c.lost for c in conns], timeout=_CLOSE_GRACE_S)
            for conn in conns:
                if not conn.lost.done() and conn.transport is not None:
                    conn.transport.abort()
            if pending:
                await asyncio.wait(pending, timeout=_CLOSE_GRACE_S)
        self._open.clear()


async def _serialize(request: httpx.Request) -> bytes:
    """Request line + headers + body as one bytes object (a chunked body gets a length)."""
    body = await request.aread()
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    has_length = False
    for name, value in request.headers.raw:
        lname = name.lower()
        if lname == b"transfer-encoding":
            continue  # we always know the whole body: send Content-Length instead
        if lname == b"content-length":
            has_length = True
        lines.append(name + b": " + value)
    if not has_length and (body or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: %d" % len(body))
    head = b"\r\n".join(lines)
    separators = len(lines) - 1
    if head.count(b"\n") != separators or head.count(b"\r") != separators:
        # A CR or LF inside a header value or the path would split the request (injection).
        raise httpx.LocalProtocolError("CR or LF in request line or headers", request=request)
    return head + b"\r\n\r\n" + body


def _parse_headers(lines: Iterable[bytes], request: httpx.Request) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or _TOKEN.fullmatch(name) is None:
            # Includes obsolete line folding (a line starting with whitespace): refused.
            raise httpx.RemoteProtocolError("malformed header line", request=request)
        out.append((name, value.strip(b" \t")))
    return out


def _tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """The comma-separated, lower-cased tokens of every ``name`` header, in order."""
    return [
        token.strip().lower()
        for k, v in headers if k.lower() == name
        for token in v.split(b",") if token.strip()
    ]
