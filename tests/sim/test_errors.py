"""Error bodies as the real exchange sends them, and our client reading them.

Real 4xx bodies are nested, ``{"error": {"code", "message", "service"}}`` (kalshi-api.md §3,
recorded on demo); unknown paths answer JSON too. ``quoter.kalshi.rest`` must read that shape
(and still the docs' flat one) into ``ExchangeRejectedError`` with the exchange's code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from quoter.clock import ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import Side
from quoter.errors import ExchangeRejectedError
from quoter.kalshi.auth import KalshiAuth, Signer
from quoter.kalshi.rest import KalshiRest
from quoter.sim.app import create_app
from quoter.sim.exchange import SimExchange, SimMarket

S = 1_000_000_000
T1 = "KXERR-26JAN01-T1"
BASE = "http://127.0.0.1/trade-api/v2"


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {u: Signer(f"key-{u}", ed25519.Ed25519PrivateKey.generate())
            for u in ("maker", "req", "poor")}


@pytest.fixture
def world(signers: dict[str, Signer]) -> tuple[SimExchange, ReplayClock]:
    clock = ReplayClock(start_ns=5 * S, wall_offset_ns=1_780_000_000 * S)
    ex = SimExchange(clock)
    for user, signer in signers.items():
        ex.register_account(user, balance_micros=0 if user == "poor" else 1_000_000_000)
        ex.register_key(user, signer.key_id, signer.public_key())
    ex.add_market(SimMarket(T1, "KXERR-26JAN01", "KXERR", "t", grid_for_structure("linear_cent"),
                            fees=FeeSchedule(FeeType.QUADRATIC)))
    return ex, clock


@pytest.fixture
async def http(world: tuple[SimExchange, ReplayClock], signers: dict[str, Signer],
               ) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    ex, clock = world
    app = create_app(ex)
    out = {u: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE,
                                auth=KalshiAuth(s, lambda: clock.wall_ns() // 1_000_000))
           for u, s in signers.items()}
    yield out
    for c in out.values():
        await c.aclose()


async def test_4xx_bodies_are_nested_with_code_message_and_service(
    http: dict[str, httpx.AsyncClient],
) -> None:
    r = await http["maker"].get("/communications/rfqs/00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "not_found"
    assert body["error"]["service"] == "communications"
    assert body["error"]["message"]
    r = await http["maker"].post("/communications/quotes", json={"rfq_id": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_parameters"


async def test_unknown_paths_and_methods_answer_json(http: dict[str, httpx.AsyncClient]) -> None:
    r = await http["maker"].get("/no/such/endpoint")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == "not_found"
    r = await http["maker"].patch("/portfolio/balance")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


async def test_429_keeps_its_own_flat_string_body(world: tuple[SimExchange, ReplayClock],
                                                  signers: dict[str, Signer]) -> None:
    from quoter.sim.app import RateLimits

    ex, clock = world
    app = create_app(ex, rate_limits=RateLimits(read_capacity=10, read_refill_per_s=1))
    async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE,
            auth=KalshiAuth(signers["maker"], lambda: clock.wall_ns() // 1_000_000)) as c:
        assert (await c.get("/portfolio/balance")).status_code == 200
        r = await c.get("/portfolio/balance")
    assert (r.status_code, r.json()) == (429, {"error": "too many requests"})


async def test_our_client_reads_nested_errors_from_the_simulator(
    world: tuple[SimExchange, ReplayClock], signers: dict[str, Signer],
) -> None:
    ex, clock = world
    app = create_app(ex)

    def kalshi(user: str) -> KalshiRest:
        return KalshiRest(BASE, signers[user], transport=httpx.ASGITransport(app=app),
                          clock=clock)

    async with kalshi("maker") as maker, kalshi("req") as req, kalshi("poor") as poor:
        rfq_id = await req.create_rfq(T1, 100)
        qid = await maker.create_quote(rfq_id, 480_000, 480_000)
        # The requester's accept works; a broke requester's would be insufficient_balance.
        poor_rfq = await poor.create_rfq(T1, 100)
        poor_qid = await maker.create_quote(poor_rfq, 480_000, 480_000)
        with pytest.raises(ExchangeRejectedError) as info:
            await poor.accept_quote(poor_rfq, poor_qid, Side.YES)
        assert (info.value.status_code, info.value.code) == (400, "insufficient_balance")
        await req.accept_quote(rfq_id, qid, Side.YES)
        with pytest.raises(ExchangeRejectedError) as info:
            await maker.delete_quote(rfq_id, qid)
        assert (info.value.status_code, info.value.code) == (404, "not_found")
        clock.advance(40 * S)
        with pytest.raises(ExchangeRejectedError) as info:
            await maker.confirm_quote(rfq_id, qid)
        assert (info.value.status_code, info.value.code) == (400, "expired")
        assert info.value.error_message


def _rejected(status: int, body: object) -> httpx.AsyncBaseTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)
    return httpx.MockTransport(handler)


@pytest.mark.parametrize("body", [
    # Recorded on the real exchange: nested, with "service".
    {"error": {"code": "insufficient_balance", "message": "insufficient balance",
               "service": "communications"}},
    # The docs' schema: flat.
    {"code": "insufficient_balance", "message": "insufficient balance"},
])
async def test_our_client_reads_both_error_shapes(body: object, signers: dict[str, Signer],
                                                  ) -> None:
    clock = ReplayClock(start_ns=S, wall_offset_ns=1_780_000_000 * S)
    async with KalshiRest(BASE, signers["maker"], transport=_rejected(400, body),
                          clock=clock) as rest:
        with pytest.raises(ExchangeRejectedError) as info:
            await rest.get_balance()
    assert (info.value.code, info.value.error_message) == (
        "insufficient_balance", "insufficient balance")
