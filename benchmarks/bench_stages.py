"""Where B1/B2's wire-to-wire time goes: the service over loopback, stamped at each hand-off.

The B1/B2 harness (``benchmarks.b_loopback``: the simulator in a child process, the real
service, socket stamps below websockets and httpx) with extra stamps wrapped around the
service's own hand-offs, for light load (probes alone, no flood):

* accept -> confirm: socket bytes in -> ``ConfirmQuote`` out of the kernel -> confirm worker
  starts -> ``KalshiRest._request`` entered (claim + observers done) -> bytes written;
* RFQ -> quote: socket bytes in -> ``SubmitQuote`` out of the kernel -> ``_request`` entered ->
  bytes written;
* inside ``_request``: the rate limiter's ``acquire``, httpx's ``build_request``, and
  ``AsyncClient.send`` (request written *and* response read).

Stages are paired in order (the probes are sequential at this rate); medians in µs. The
wrappers are this report's measurement only: nothing here is used by the suite.

    .venv/bin/python -m benchmarks stages
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

_marks: dict[str, list[int]] = {}


def _mark(key: str) -> None:
    _marks.setdefault(key, []).append(time.perf_counter_ns())


def _timed(key: str, started_ns: int) -> None:
    _marks.setdefault(key, []).append(time.perf_counter_ns() - started_ns)


def _instrument() -> None:
    import httpx

    from quoter.domain import commands as cmd
    from quoter.kalshi.ratelimit import RateLimiter
    from quoter.kalshi.rest import KalshiRest
    from quoter.runtime.driver import Runtime

    confirm = Runtime._confirm
    apply = Runtime._apply
    request = KalshiRest._request
    acquire = RateLimiter.acquire
    send = httpx.AsyncClient.send
    build = httpx.AsyncClient.build_request

    async def _confirm(self: Runtime, command: Any, queued_ns: int) -> None:
        _mark("confirm_worker")
        await confirm(self, command, queued_ns)

    def _apply(self: Runtime, action: Any) -> None:
        if isinstance(action, cmd.ConfirmQuote):
            _mark("confirm_cmd")
        elif isinstance(action, cmd.SubmitQuote):
            _mark("submit_cmd")
        apply(self, action)

    async def _request(self: KalshiRest, method: str, *a: Any, **k: Any) -> Any:
        _mark(f"request_{method}")
        return await request(self, method, *a, **k)

    async def _acquire(self: RateLimiter, *a: Any, **k: Any) -> None:
        t = time.perf_counter_ns()
        await acquire(self, *a, **k)
        _timed("limiter_acquire", t)

    async def _send(self: httpx.AsyncClient, *a: Any, **k: Any) -> httpx.Response:
        t = time.perf_counter_ns()
        try:
            return await send(self, *a, **k)
        finally:
            _timed("client_send", t)

    def _build(self: httpx.AsyncClient, *a: Any, **k: Any) -> httpx.Request:
        t = time.perf_counter_ns()
        out = build(self, *a, **k)
        _timed("build_request", t)
        return out

    Runtime._confirm = _confirm  # type: ignore[method-assign]
    Runtime._apply = _apply  # type: ignore[method-assign]
    KalshiRest._request = _request  # type: ignore[method-assign]
    RateLimiter.acquire = _acquire  # type: ignore[method-assign]
    httpx.AsyncClient.send = _send  # type: ignore[method-assign]
    httpx.AsyncClient.build_request = _build  # type: ignore[method-assign]


def _median_gap_us(a: Sequence[int], b: Sequence[int]) -> float | None:
    n = min(len(a), len(b))
    pairs = zip(a[:n], b[:n], strict=True)
    return statistics.median((y - x) / 1000 for x, y in pairs) if n else None


def _median_us(xs: Sequence[int]) -> float | None:
    return statistics.median(xs) / 1000 if xs else None


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f} µs"


async def _measure(env: Any, seconds: float) -> None:
    from benchmarks import b_loopback as lb

    async def body(svc: Any) -> None:
        await env.ask_async("rfqs", rate=50, seconds=0.3)  # warm-up: metadata, connections
        await asyncio.sleep(1.0)
        rows: list[tuple[str, str]] = []

        async def phase(run: Callable[[], Awaitable[Any]]) -> None:
            _marks.clear()
            lb.STAMPS.reset()
            lb.STAMPS.on = True
            await run()
            lb.STAMPS.on = False

        await phase(lambda: env.ask_async("flood", rate=20.0, seconds=seconds, probe_every=1))
        recv = sorted(lb.STAMPS.first_recv(lb._ACCEPTED).values())
        sent = sorted(lb.STAMPS.first_sent(lb._CONFIRM, b"PUT").values())
        cmd_, worker, req = (_marks.get(k, []) for k in
                             ("confirm_cmd", "confirm_worker", "request_PUT"))
        rows += [(f"accept -> confirm written (n={min(len(recv), len(sent))})",
                  _fmt(_median_gap_us(recv, sent))),
                 ("  socket -> ConfirmQuote out of the kernel",
                  _fmt(_median_gap_us(recv, cmd_))),
                 ("  -> confirm worker starts", _fmt(_median_gap_us(cmd_, worker))),
                 ("  -> _request entered (claim, observers)", _fmt(_median_gap_us(worker, req))),
                 ("  -> bytes written (limiter, httpx)", _fmt(_median_gap_us(req, sent)))]
        await phase(lambda: env.ask_async("rfqs", rate=20, seconds=seconds))
        recv = sorted(lb.STAMPS.first_recv(lb._RFQ_CREATED).values())
        sent = sorted(lb.STAMPS.first_sent(lb._BODY_RFQ, b'"yes_bid"').values())
        sub, req = _marks.get("submit_cmd", []), _marks.get("request_POST", [])
        rows += [(f"rfq_created -> quote written (n={min(len(recv), len(sent))})",
                  _fmt(_median_gap_us(recv, sent))),
                 ("  socket -> SubmitQuote out of the kernel",
                  _fmt(_median_gap_us(recv, sub))),
                 ("  -> _request entered (exec queue)", _fmt(_median_gap_us(sub, req))),
                 ("  -> bytes written (limiter, httpx)", _fmt(_median_gap_us(req, sent))),
                 ("inside _request: limiter acquire", _fmt(_median_us(_marks.get(
                     "limiter_acquire", [])))),
                 ("inside _request: httpx build_request", _fmt(_median_us(_marks.get(
                     "build_request", [])))),
                 ("inside _request: AsyncClient.send (write + response)",
                  _fmt(_median_us(_marks.get("client_send", []))))]
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v:>10}")

    await lb._with_service(env, body)


def main(seconds: float = 3.0) -> None:
    """Print the stage medians (about 30 s)."""
    import logging

    import structlog

    from benchmarks import b_loopback as lb

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    _instrument()
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as d:
        env = lb._spawn(Path(d), write_per_s=100_000)
        try:
            with asyncio.Runner(loop_factory=lb.StampingLoop) as runner:
                runner.run(_measure(env, seconds))
        finally:
            lb._stop(env)
