"""The REST request path: httpx's default transport (httpcore) vs ``LeanTransport``, same run.

``python -m benchmarks.bench_lean_http`` (``LEAN_HTTP_N`` requests per client, default 2,000).

A minimal HTTP/1.1 server in a child process (so it does not share this process's core)
answers every request with ``201 {"id": "q-1"}``. In this process, two figures per transport,
sequential requests, blocks of 250 alternating between the transports so load on the shared
machine hits both alike:

* ``create_quote``: ``KalshiRest.create_quote`` end to end (build, Ed25519 signing, rate
  limiter with an unbounded budget, transport, response decode): what an exec worker waits;
* ``transport``: ``handle_async_request`` + ``aread`` of a pre-built request only.

Each is a round trip over loopback (the server's answer included), in microseconds per request,
p50 and p99.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog
from cryptography.hazmat.primitives.asymmetric import ed25519

from quoter.kalshi.auth import Signer
from quoter.kalshi.lean_http import LeanTransport
from quoter.kalshi.ratelimit import BucketConfig, RateLimiter
from quoter.kalshi.rest import KalshiRest

_BODY = b'{"id":"q-1"}'
_RESPONSE = (b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
             b"\r\n%s" % (len(_BODY), _BODY))
_BLOCK = 250


class _Answer(asyncio.Protocol):
    """Answer each complete request (head + Content-Length body) with the fixed 201."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buf[:end].split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            assert self.transport is not None
            self.transport.write(_RESPONSE)


def _serve(port_out: Any) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Answer, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()  # until terminated

    asyncio.run(main())


def _pcts(samples_ns: list[int]) -> tuple[float, float]:
    qs = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return qs[49] / 1000, qs[98] / 1000


async def _time(fn: Callable[[], Awaitable[object]], n: int, out: list[int]) -> None:
    for _ in range(n):
        start = time.perf_counter_ns()
        await fn()
        out.append(time.perf_counter_ns() - start)


def _rest(url: str, signer: Signer, transport: httpx.AsyncBaseTransport) -> KalshiRest:
    unbounded = BucketConfig(10**9, 10**9)
    limiter = RateLimiter(now_ns=time.perf_counter_ns, read=unbounded, write=unbounded)
    return KalshiRest(url, signer, transport=transport, limiter=limiter)


async def _run(port: int, n: int) -> dict[str, dict[str, list[int]]]:
    base = f"http://127.0.0.1:{port}"
    signer = Signer("bench-key", ed25519.Ed25519PrivateKey.generate())
    kinds = {"httpcore": httpx.AsyncHTTPTransport, "lean": LeanTransport}
    samples: dict[str, dict[str, list[int]]] = {k: {"create_quote": [], "transport": []}
                                                for k in kinds}
    rests = {k: _rest(base + "/trade-api/v2", signer, make()) for k, make in kinds.items()}
    raw = {k: make() for k, make in kinds.items()}

    def quote(rest: KalshiRest) -> Callable[[], Awaitable[object]]:
        return lambda: rest.create_quote("rfq-1", 480_000, 480_000)

    def send(t: httpx.AsyncBaseTransport) -> Callable[[], Awaitable[object]]:
        content = b'{"rfq_id":"rfq-1","yes_bid":"0.4800","no_bid":"0.4800"}'

        async def one() -> None:
            request = httpx.Request(
                "POST", base + "/trade-api/v2/communications/quotes", content=content,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                extensions={"timeout": {"connect": 5.0, "read": 5.0, "write": 5.0,
                                        "pool": 5.0}})
            response = await t.handle_async_request(request)
            await response.aread()
        return one

    try:
        for k in kinds:  # warm up: connections open, code paths hot
            await _time(quote(rests[k]), 200, [])
            await _time(send(raw[k]), 200, [])
        done = 0
        while done < n:
            step = min(_BLOCK, n - done)
            for k in kinds:
                await _time(quote(rests[k]), step, samples[k]["create_quote"])
                await _time(send(raw[k]), step, samples[k]["transport"])
            done += step
    finally:
        for rest in rests.values():
            await rest.aclose()
        for t in raw.values():
            await t.aclose()
    return samples


def main() -> None:
    """Print p50/p99 per request for both transports."""
    n = int(os.environ.get("LEAN_HTTP_N", "2000"))
    # The client's per-request debug lines would cost more than what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(child,),
                                                         daemon=True)
    server.start()
    try:
        port = parent.recv()
        samples = asyncio.run(_run(port, n))
    finally:
        server.terminate()
        server.join()
    print(f"REST request path, {n:,} sequential requests per figure, loopback, "
          f"server in a child process (us per request)")
    print(f"{'figure':<28} {'httpcore p50':>13} {'p99':>9} {'lean p50':>10} {'p99':>9} "
          f"{'p50 ratio':>10}")
    for figure in ("create_quote", "transport"):
        c50, c99 = _pcts(samples["httpcore"][figure])
        l50, l99 = _pcts(samples["lean"][figure])
        print(f"{figure:<28} {c50:13.1f} {c99:9.1f} {l50:10.1f} {l99:9.1f} {l50 / c50:9.2f}x")


if __name__ == "__main__":
    main()
