"""LeanTransport against real loopback servers: exact request bytes, framing, reuse, failures.

Each test runs an ``asyncio.start_server`` on 127.0.0.1:0 whose handler is a script: it
reads whole requests (head + Content-Length body), records the raw bytes per server-side
connection, and answers (or misbehaves) as the test says. Waits are on state (events, the
transport's open socket count), never on a fixed time; the only timeouts are the ones under
test.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from quoter.clock import ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import Side
from quoter.errors import ExchangeRejectedError
from quoter.kalshi.auth import Signer
from quoter.kalshi.lean_http import LeanTransport
from quoter.kalshi.rest import KalshiRest, RetryPolicy
from quoter.sim.exchange import SimExchange, SimMarket
from quoter.sim.server import serve_sim


@dataclass
class ServerConn:
    """One accepted connection: the raw requests it carried, and whether it has ended."""

    requests: list[bytes] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


Script = Callable[[asyncio.StreamWriter, ServerConn, bytes], Awaitable[bool]]


def ok(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    """A 200 with a Content-Length body."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@dataclass
class Server:
    """A scripted HTTP/1.1 server; the script returns False to stop serving a connection."""

    script: Script
    conns: list[ServerConn] = field(default_factory=list)
    port: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)  # frees hanging handlers

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ServerConn()
        self.conns.append(conn)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                raw = head + await reader.readexactly(length)
                conn.requests.append(raw)
                if not await self.script(writer, conn, raw):
                    return
        finally:
            writer.close()
            conn.ended.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script], Awaitable[Server]]]:
    servers: list[tuple[Server, asyncio.Server]] = []

    async def start(script: Script) -> Server:
        srv = Server(script)
        aserver = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        srv.port = aserver.sockets[0].getsockname()[1]
        servers.append((srv, aserver))
        return srv

    yield start
    for srv, aserver in servers:
        srv.release.set()
        aserver.close()
        await aserver.wait_closed()


async def until(cond: Callable[[], bool], bound_s: float = 5.0) -> None:
    """Yield to the loop until ``cond()`` holds (bounded so a bug fails, never hangs)."""
    async with asyncio.timeout(bound_s):
        while True:
            if cond():
                return
            await asyncio.sleep(0)  # one loop turn: the socket callbacks run in between


def answer(response: bytes, *, keep: bool = True) -> Script:
    async def script(writer: asyncio.StreamWriter, conn: ServerConn, raw: bytes) -> bool:
        writer.write(response)
        await writer.drain()
        return keep
    return script


TIMEOUT = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


def req(server: Server, method: str = "GET", path: str = "/x", **kw: object) -> httpx.Request:
    r = httpx.Request(method, server.url + path, **kw)  # type: ignore[arg-type]
    r.extensions["timeout"] = dict(TIMEOUT)
    return r


async def send(t: LeanTransport, request: httpx.Request) -> httpx.Response:
    response = await t.handle_async_request(request)
    await response.aread()
    return response


# --- framing ------------------------------------------------------------------------------


async def test_exact_request_bytes_and_content_length_body(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answer(ok(b'{"id":"q1"}', b"Content-Type: application/json\r\n")))
    t = LeanTransport()
    try:
        r = await send(t, req(server, "POST", "/trade-api/v2/q?a=1&b=x%20y",
                              headers={"Accept": "application/json", "KALSHI-X": "v"},
                              content=b'{"rfq_id":"r1"}'))
    finally:
        await t.aclose()
    assert r.status_code == 200
    assert r.content == b'{"id":"q1"}'
    assert r.reason_phrase == "OK"
    assert r.headers["content-type"] == "application/json"
    assert server.conns[0].requests == [
        b"POST /trade-api/v2/q?a=1&b=x%20y HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{server.port}\r\n".encode()
        + b"Accept: application/json\r\nKALSHI-X: v\r\nContent-Length: 15\r\n\r\n"
        b'{"rfq_id":"r1"}'
    ]


async def test_chunked_body_with_extensions_and_trailers(serve) -> None:  # type: ignore[no-untyped-def]
    response = (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    server = await serve(answer(response))
    t = LeanTransport()
    try:
        r1 = await send(t, req(server))
        r2 = await send(t, req(server))  # the chunked framing left the socket reusable
    finally:
        await t.aclose()
    assert (r1.status_code, r1.content, r2.content) == (201, b"hello, world", b"hello, world")
    assert len(server.conns) == 1


async def test_keep_alive_reuses_one_server_connection(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answer(ok(b"a")))
    t = LeanTransport()
    try:
        for _ in range(3):
            assert (await send(t, req(server))).content == b"a"
        assert t.open_connections == 1
    finally:
        await t.aclose()
    assert len(server.conns) == 1
    assert len(server.conns[0].requests) == 3


async def test_connection_close_is_not_reused_and_aclose_leaves_nothing_open(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answer(ok(b"a", b"Connection: close\r\n"), keep=False))
    t = LeanTransport()
    try:
        await send(t, req(server))
        await send(t, req(server))
        await until(lambda: t.open_connections == 0)
    finally:
        await t.aclose()
    assert [len(c.requests) for c in server.conns] == [1, 1]


async def test_http10_read_to_close(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answer(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", keep=False))
    t = LeanTransport()
    try:
        r = await send(t, req(server))
        assert r.content == b"until the end"
        assert r.http_version == "HTTP/1.0"
        await send(t, req(server))
    finally:
        await t.aclose()
    assert len(server.conns) == 2


async def test_gzip_is_decoded_by_the_client_and_corrupt_gzip_is_a_decoding_error(serve) -> None:  # type: ignore[no-untyped-def]
    body = gzip.compress(b'{"ok": true}')
    bodies = [body, body[:-4] + b"\0\0\0\0"]

    async def script(writer: asyncio.StreamWriter, conn: ServerConn, raw: bytes) -> bool:
        assert b"Accept-Encoding: gzip, deflate" in raw  # the client's default, passed on
        writer.write(ok(bodies.pop(0), b"Content-Encoding: gzip\r\n"))
        return True

    server = await serve(script)
    async with httpx.AsyncClient(transport=LeanTransport(), base_url=server.url) as client:
        r = await client.get("/x")
        assert r.json() == {"ok": True}
        with pytest.raises(httpx.DecodingError):
            await client.get("/x")


# --- reuse after the server closed --------------------------------------------------------


async def test_idle_connection_closed_by_server_then_post_goes_on_a_fresh_one(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answer(ok(b"a"), keep=False))  # closes right after answering
    t = LeanTransport()
    try:
        await send(t, req(server, "POST", content=b"1"))
        await server.conns[0].ended.wait()
        await until(lambda: t.open_connections == 0)  # the client saw the FIN while idle
        r = await send(t, req(server, "POST", content=b"2"))
    finally:
        await t.aclose()
    assert r.content == b"a"
    assert [len(c.requests) for c in server.conns] == [1, 1]


def _close_on_second_request(response: bytes) -> Script:
    """Answer the first request; close the connection on the second without answering
    (the race: the server dropped an idle socket just as our request arrived)."""
    async def script(writer: asyncio.StreamWriter, conn: ServerConn, raw: bytes) -> bool:
        if len(conn.requests) == 2:
            return False
        writer.write(response)
        return True
    return script


async def test_get_on_a_socket_that_died_unanswered_is_retried_once_on_a_fresh_one(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(_close_on_second_request(ok(b"a")))
    t = LeanTransport()
    try:
        await send(t, req(server))
        r = await send(t, req(server))
    finally:
        await t.aclose()
    assert r.content == b"a"
    assert [len(c.requests) for c in server.conns] == [2, 1]


async def test_post_on_a_socket_that_died_unanswered_is_never_resent(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(_close_on_second_request(ok(b"a")))
    t = LeanTransport()
    try:
        await send(t, req(server, "POST", content=b"1"))
        with pytest.raises(httpx.RemoteProtocolError) as info:
            await send(t, req(server, "POST", content=b"2"))
        assert info.value.request.content == b"2"
    finally:
        await t.aclose()
    assert [len(c.requests) for c in server.conns] == [2]  # the second POST went out once


async def test_reset_is_a_read_error(serve) -> None:  # type: ignore[no-untyped-def]
    async def script(writer: asyncio.StreamWriter, conn: ServerConn, raw: bytes) -> bool:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN
        return False

    server = await serve(script)
    t = LeanTransport()
    try:
        with pytest.raises(httpx.ReadError):
            await send(t, req(server))
        await until(lambda: t.open_connections == 0)
    finally:
        await t.aclose()


# --- malformed and oversized answers ------------------------------------------------------


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 OK\r\n\r\n",
    b"HTTP/2 200 OK\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded: header\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then the server closes
])
async def test_malformed_responses_are_remote_protocol_errors(serve, response: bytes) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answer(response, keep=False))
    t = LeanTransport()
    try:
        with pytest.raises(httpx.RemoteProtocolError):
            await send(t, req(server))
        await until(lambda: t.open_connections == 0)
    finally:
        await t.aclose()


async def test_oversize_head_and_body_are_refused(serve) -> None:  # type: ignore[no-untyped-def]
    big_head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n"
    server = await serve(answer(big_head))
    t = LeanTransport()
    try:
        with pytest.raises(httpx.RemoteProtocolError, match="too large"):
            await send(t, req(server))
    finally:
        await t.aclose()
    for response in (ok(b"x" * 11),
                     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"6\r\nxxxxxx\r\n6\r\nxxxxxx\r\n0\r\n\r\n"):
        server = await serve(answer(response))
        t = LeanTransport(max_body_bytes=10)
        try:
            with pytest.raises(httpx.RemoteProtocolError, match="too large"):
                await send(t, req(server))
        finally:
            await t.aclose()


async def test_crlf_in_a_header_value_is_refused_before_sending(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answer(ok()))
    t = LeanTransport()
    try:
        with pytest.raises(httpx.LocalProtocolError):
            await send(t, req(server, headers={"X": "a\r\nInjected: 1"}))
    finally:
        await t.aclose()
    assert server.conns == []


# --- timeouts, refusals, the pool ---------------------------------------------------------


def _hang(server_ref: list[Server]) -> Script:
    async def script(writer: asyncio.StreamWriter, conn: ServerConn, raw: bytes) -> bool:
        await server_ref[0].release.wait()
        return False
    return script


async def test_read_timeout_when_the_server_never_answers(serve) -> None:  # type: ignore[no-untyped-def]
    ref: list[Server] = []
    server = await serve(_hang(ref))
    ref.append(server)
    t = LeanTransport()
    request = req(server)
    request.extensions["timeout"]["read"] = 0.05
    try:
        with pytest.raises(httpx.ReadTimeout) as info:
            await send(t, request)
        assert info.value.request is request
        await until(lambda: t.open_connections == 0)  # a timed-out socket: closed
    finally:
        await t.aclose()


async def test_connect_refused_is_a_connect_error() -> None:
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = LeanTransport()
    request = httpx.Request("GET", f"http://127.0.0.1:{port}/x")
    try:
        with pytest.raises(httpx.ConnectError) as info:
            await t.handle_async_request(request)
        assert info.value.request is request
    finally:
        await t.aclose()


async def test_concurrent_requests_beyond_the_pool_wait_for_a_connection(serve) -> None:  # type: ignore[no-untyped-def]
    in_flight = 0
    most = 0
    both_in = asyncio.Event()

    async def script(writer: asyncio.StreamWriter, conn: ServerConn, raw: bytes) -> bool:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if most == 2:
            both_in.set()
        await both_in.wait()  # hold answers until the pool is full, so later ones must wait
        in_flight -= 1
        writer.write(ok(raw.rsplit(b"\r\n\r\n", 1)[1]))
        return True

    server = await serve(script)
    t = LeanTransport(max_connections=2)
    try:
        bodies = [str(i).encode() for i in range(7)]
        responses = await asyncio.gather(
            *(send(t, req(server, "POST", content=b)) for b in bodies))
        assert [r.content for r in responses] == bodies
        assert t.open_connections == 2
    finally:
        await t.aclose()
    assert len(server.conns) == 2
    assert most == 2
    assert sum(len(c.requests) for c in server.conns) == 7
    for conn in server.conns:
        await conn.ended.wait()  # aclose closed both sockets: the server saw EOF


async def test_pool_timeout_when_every_connection_is_busy(serve) -> None:  # type: ignore[no-untyped-def]
    ref: list[Server] = []
    server = await serve(_hang(ref))
    ref.append(server)
    t = LeanTransport(max_connections=1)
    try:
        first = asyncio.create_task(send(t, req(server)))
        await until(lambda: len(server.conns) == 1 and len(server.conns[0].requests) == 1)
        waiting = req(server)
        waiting.extensions["timeout"]["pool"] = 0.05
        with pytest.raises(httpx.PoolTimeout):
            await send(t, waiting)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await until(lambda: t.open_connections == 0)  # the cancelled one's socket closed
    finally:
        await t.aclose()


# --- end to end: KalshiRest over LeanTransport against the simulator over a real socket ----


WALL0 = 1_780_000_000 * 1_000_000_000
T = "KXTEST-26JAN01-A"


async def _no_sleep(_s: float) -> None:
    """No backoff waits in tests."""


async def test_kalshi_rest_over_lean_transport_against_the_simulator() -> None:
    clock = ReplayClock(start_ns=1_000_000_000_000, wall_offset_ns=WALL0)
    ex = SimExchange(clock)
    keys = {u: Signer(f"key-{u}", ed25519.Ed25519PrivateKey.generate()) for u in ("maker", "req")}
    for user, signer in keys.items():
        ex.register_account(user, balance_micros=1_000_000_000)
        ex.register_key(user, signer.key_id, signer.public_key())
    ex.add_market(SimMarket(T, "KXTEST-26JAN01", "KXTEST", T, grid_for_structure("linear_cent"),
                            fees=FeeSchedule(FeeType.QUADRATIC)))
    async with serve_sim(ex, "127.0.0.1", 0, clock=clock) as sim:
        transports = {u: LeanTransport() for u in keys}
        rests = {u: KalshiRest(sim.url, keys[u], transport=transports[u], clock=clock,
                               sleep=_no_sleep, retry=RetryPolicy(max_attempts=1))
                 for u in keys}
        try:
            rfq_id = await rests["req"].create_rfq(T, 100)
            quote_id = await rests["maker"].create_quote(rfq_id, 480_000, 480_000)
            quotes = await rests["maker"].list_quotes(rfq_id=rfq_id)
            assert [q.id for q in quotes] == [quote_id]
            await rests["req"].accept_quote(rfq_id, quote_id, Side.YES)
            await rests["maker"].confirm_quote(rfq_id, quote_id)
            quote = await rests["maker"].get_quote(rfq_id, quote_id)
            assert quote.status == "confirmed"
            assert transports["maker"].open_connections == 1  # one socket served all five
            with pytest.raises(ExchangeRejectedError):  # an error answer maps as before
                await rests["maker"].get_quote(rfq_id, "no-such-quote")
        finally:
            for rest in rests.values():
                await rest.aclose()
        assert all(t.open_connections == 0 for t in transports.values())


# --- TLS ----------------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=36500))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_verifies_the_server_and_reuses_the_tls_connection(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_path, key_path)
    srv = Server(answer(ok(b"secure")))
    aserver = await asyncio.start_server(srv.handle, "127.0.0.1", 0, ssl=server_ctx)
    port = aserver.sockets[0].getsockname()[1]
    try:
        trusting = LeanTransport(ssl_context=ssl.create_default_context(cafile=str(cert_path)))
        try:
            for _ in range(2):
                request = httpx.Request("GET", f"https://127.0.0.1:{port}/x")
                assert (await send(trusting, request)).content == b"secure"
        finally:
            await trusting.aclose()
        assert [len(c.requests) for c in srv.conns] == [2]
        default = LeanTransport()  # the system's trust store: a self-signed server is refused
        try:
            with pytest.raises(httpx.ConnectError):
                await send(default, httpx.Request("GET", f"https://127.0.0.1:{port}/x"))
        finally:
            await default.aclose()
    finally:
        aserver.close()
        await aserver.wait_closed()
