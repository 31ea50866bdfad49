"""Extra accounts: ``POST /sim/accounts`` opens a requester (or any harness) with its own key,
and that key then drives the RFQ lifecycle against a maker account; bad requests change nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from quoter.clock import ReplayClock
from quoter.domain.grid import grid_for_structure
from quoter.kalshi.auth import KalshiAuth, Signer
from quoter.sim.app import create_app
from quoter.sim.exchange import SimExchange, SimMarket

S = 1_000_000_000
T = "KXACC-26JAN01-T1"
ORIGIN = "http://127.0.0.1"


def _pem(private_key: Any) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def sim() -> tuple[SimExchange, ReplayClock, Any]:
    clock = ReplayClock(start_ns=S, wall_offset_ns=1_780_000_000 * S)
    ex = SimExchange(clock)
    ex.add_market(SimMarket(T, "KXACC-26JAN01", "KXACC", "m", grid_for_structure("linear_cent")))
    return ex, clock, create_app(ex)


def _client(app: Any, clock: ReplayClock, signer: Signer | None = None,
            client: tuple[str, int] = ("127.0.0.1", 5000)) -> httpx.AsyncClient:
    auth = None if signer is None else KalshiAuth(signer, lambda: clock.wall_ns() // 1_000_000)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=client),
                             base_url=ORIGIN, auth=auth)


async def test_registered_accounts_trade_with_their_own_keys(
        sim: tuple[SimExchange, ReplayClock, Any]) -> None:
    ex, clock, app = sim
    keys = {"harness-requester": ed25519.Ed25519PrivateKey.generate(),
            "harness-maker": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
    ids: dict[str, str] = {}
    async with _client(app, clock) as c:
        for user, key in keys.items():
            r = await c.post("/sim/accounts", json={"user_id": user, "public_key_pem": _pem(key),
                                                    "balance_dollars": "250.00"})
            assert r.status_code == 201, r.text
            body = r.json()
            assert (body["user_id"], body["balance_dollars"]) == (user, "250.000000")
            assert body["communications_id"] == ex.comm_id(user)
            ids[user] = body["api_key_id"]
        assert ids["harness-requester"] != ids["harness-maker"]
        ledger = (await c.get("/sim/ledger")).json()["accounts"]
    assert {u: ledger[u]["balance_micros"] for u in keys} == dict.fromkeys(keys, 250_000_000)

    api = "/trade-api/v2"
    req_signer = Signer(ids["harness-requester"], keys["harness-requester"])
    maker_signer = Signer(ids["harness-maker"], keys["harness-maker"])
    async with _client(app, clock, req_signer) as req, _client(app, clock, maker_signer) as mk:
        r = await req.post(f"{api}/communications/rfqs", json={
            "market_ticker": T, "contracts_fp": "2.00", "rest_remainder": False})
        assert r.status_code == 201, r.text
        rfq_id = r.json()["id"]
        r = await mk.post(f"{api}/communications/quotes", json={
            "rfq_id": rfq_id, "yes_bid": "0.4000", "no_bid": "0.5000", "rest_remainder": False})
        qid = r.json()["id"]
        r = await req.put(f"{api}/communications/rfqs/{rfq_id}/quotes/{qid}/accept",
                          json={"accepted_side": "yes"})
        assert r.status_code == 204, r.text
        r = await mk.put(f"{api}/communications/rfqs/{rfq_id}/quotes/{qid}/confirm")
        assert r.status_code == 204, r.text
        clock.advance(15 * S)
        ex.advance()
        assert (await req.get(f"{api}/portfolio/positions")).json()[
            "market_positions"][0]["position_fp"] == "-2.00"
    # The requester bought NO at 1 - 0.40 from the maker's YES bid.
    assert ex.positions("harness-maker")[T].position_centi == 200
    assert ex.balance_micros("harness-requester") < 250_000_000


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"user_id": "x", "public_key_pem": "not a key"}, 400, "invalid_parameters"),
    ({"user_id": "../etc", "public_key_pem": "ED"}, 400, "invalid_parameters"),
    ({"user_id": "x", "public_key_pem": "ED", "balance_dollars": 5}, 400,
     "invalid_parameters"),
    ({"user_id": "x", "public_key_pem": "ED", "balance_dollars": "-1.00"}, 400,
     "invalid_parameters"),
    ({"user_id": "x", "public_key_pem": "ED", "password": "p"}, 400, "invalid_parameters"),
    ({"user_id": "x", "public_key_pem": "EC"}, 400, "invalid_parameters"),
    ({"user_id": "taken", "public_key_pem": "ED"}, 409, "conflict"),
])
async def test_bad_requests_register_nothing(
        sim: tuple[SimExchange, ReplayClock, Any], body: dict[str, Any], status: int,
        code: str) -> None:
    ex, clock, app = sim
    ex.register_account("taken", balance_micros=1)
    pems = {"ED": _pem(ed25519.Ed25519PrivateKey.generate()),
            "EC": _pem(ec.generate_private_key(ec.SECP256R1()))}
    body = {k: pems.get(v, v) if k == "public_key_pem" else v for k, v in body.items()}
    async with _client(app, clock) as c:
        r = await c.post("/sim/accounts", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert sorted(ex.users()) == ["taken"]
    assert ex.balance_micros("taken") == 1


async def test_accounts_are_opened_by_loopback_clients_only(
        sim: tuple[SimExchange, ReplayClock, Any]) -> None:
    ex, clock, app = sim
    # An ASGI scope naming a remote peer (no traffic leaves the process).
    async with _client(app, clock, client=("10.1.2.3", 5000)) as c:
        r = await c.post("/sim/accounts", json={
            "user_id": "x", "public_key_pem": _pem(ed25519.Ed25519PrivateKey.generate())})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert list(ex.users()) == []
