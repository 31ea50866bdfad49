"""Real inputs to mutate: recorded frames (tests/data/frames) and REST bodies the simulator
actually serves (one scripted session, read through a capturing transport)."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519

from quoter.clock import ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import Side
from quoter.kalshi.auth import Signer
from quoter.kalshi.rest import KalshiRest, RetryPolicy
from quoter.sim.app import create_app
from quoter.sim.exchange import SimExchange, SimMarket

FRAMES_DIR = Path(__file__).resolve().parents[1] / "data" / "frames"
BASE = "http://127.0.0.1/trade-api/v2"
T, T2 = "KXFUZZ-26JAN01-A", "KXFUZZ-26JAN01-B"


@functools.cache
def frames() -> tuple[bytes, ...]:
    """Every recorded WebSocket frame we keep as test data (valid and malformed)."""
    out: list[bytes] = []
    for path in sorted(FRAMES_DIR.glob("*.jsonl")):
        out.extend(line.encode() for line in path.read_text().splitlines() if line.strip())
    return tuple(out)


class _Capture(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, bodies: list[bytes]) -> None:
        self._inner = inner
        self._bodies = bodies

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = await response.aread()
        if body and response.status_code < 300:
            self._bodies.append(body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)


async def _session() -> list[bytes]:
    clock = ReplayClock(start_ns=1_000_000_000_000, wall_offset_ns=1_780_000_000 * 10**9)
    ex = SimExchange(clock)
    keys = {u: Signer(f"key-{u}", ed25519.Ed25519PrivateKey.generate()) for u in ("mk", "rq")}
    for user, signer in keys.items():
        ex.register_account(user, balance_micros=1_000_000_000)
        ex.register_key(user, signer.key_id, signer.public_key())
    for t in (T, T2):
        ex.add_market(SimMarket(t, "KXFUZZ-26JAN01", "KXFUZZ", t,
                                grid_for_structure("linear_cent"),
                                fees=FeeSchedule(FeeType.QUADRATIC)))
    app = create_app(ex, run_timers=False)
    bodies: list[bytes] = []

    def rest(user: str) -> KalshiRest:
        async def no_sleep(_s: float) -> None:
            return None
        return KalshiRest(BASE, keys[user], clock=clock, sleep=no_sleep,
                          transport=_Capture(httpx.ASGITransport(app=app), bodies),
                          retry=RetryPolicy(max_attempts=1))

    maker, req = rest("mk"), rest("rq")
    try:
        await maker.get_exchange_status()
        await maker.get_account_limits()
        await maker.get_endpoint_costs()
        await maker.get_communications_id()
        rfq = await req.create_rfq(T, 300)
        await req.create_rfq(T2, 100)
        qid = await maker.create_quote(rfq, 480_000, 490_000, rest_remainder=False,
                                       post_only=False, subaccount=None)
        await req.accept_quote(rfq, qid, Side.YES)
        await maker.confirm_quote(rfq, qid)
        clock.advance(20 * 10**9)
        ex.advance()
        await maker.get_quote(rfq, qid)
        await maker.list_quotes(user_filter="self")
        await maker.list_rfqs(status="open")
        await maker.get_rfq(rfq)
        await maker.get_market(T)
        await maker.list_markets()
        await maker.get_orderbook(T)
        await maker.get_positions()
        await maker.get_balance()
        await maker.get_fills()
        await maker.get_settlements()
    finally:
        await maker.aclose()
        await req.aclose()
    return bodies


@functools.cache
def rest_bodies() -> tuple[bytes, ...]:
    """REST response bodies the simulator served in one session (deduplicated)."""
    seen = dict.fromkeys(asyncio.run(_session()))
    return tuple(seen)


def as_json(raw: bytes) -> object | None:
    """The parsed seed, or None if the seed itself is not JSON (a malformed frame)."""
    try:
        return json.loads(raw)
    except ValueError:
        return None
