"""The simulator's REST (in-process over httpx.ASGITransport) and WebSocket (uvicorn, 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from starlette.responses import JSONResponse, Response
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode

from quoter.clock import ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import Side
from quoter.kalshi.auth import KalshiAuth, Signer, ws_headers
from quoter.sim.app import RateLimits, create_app
from quoter.sim.exchange import SimExchange, SimMarket
from quoter.sim.server import RunningSim, serve_sim

S = 1_000_000_000
T1 = "KXTEST-26JAN01-T1"
WALL0 = 1_780_000_000 * S


def make_exchange(clock: ReplayClock, signers: dict[str, Signer], tickers: list[str]
                  ) -> SimExchange:
    ex = SimExchange(clock)
    for user, signer in signers.items():
        ex.register_account(user, balance_micros=1_000_000_000)
        ex.register_key(user, signer.key_id, signer.public_key())
    for t in tickers:
        ex.add_market(SimMarket(t, "KXTEST-26JAN01", "KXTEST", t,
                                grid_for_structure("linear_cent"),
                                fees=FeeSchedule(FeeType.QUADRATIC)))
    return ex


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "maker": Signer("key-maker", rsa_key),
        "req": Signer("key-req", ed25519.Ed25519PrivateKey.generate()),
        "third": Signer("key-third", ed25519.Ed25519PrivateKey.generate()),
    }


@pytest.fixture
def clock() -> ReplayClock:
    return ReplayClock(start_ns=5 * S, wall_offset_ns=WALL0)


@pytest.fixture
def ex(clock: ReplayClock, signers: dict[str, Signer]) -> SimExchange:
    return make_exchange(clock, signers, [T1, "KXTEST-26JAN01-T2", "KXTEST-26JAN01-T3"])


def client(ex: SimExchange, clock: ReplayClock, signer: Signer | None, **kw: Any,
           ) -> httpx.AsyncClient:
    app = create_app(ex, **kw)
    auth = None if signer is None else KalshiAuth(signer, lambda: clock.wall_ns() // 1_000_000)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url="http://127.0.0.1/trade-api/v2", auth=auth)


@pytest.fixture
async def clients(ex: SimExchange, clock: ReplayClock, signers: dict[str, Signer],
                  ) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    app = create_app(ex)
    out = {
        u: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1/trade-api/v2",
            auth=KalshiAuth(s, lambda: clock.wall_ns() // 1_000_000))
        for u, s in signers.items()
    }
    yield out
    for c in out.values():
        await c.aclose()


async def rest_rfq_quote(c: dict[str, httpx.AsyncClient], ticker: str = T1) -> tuple[str, str]:
    r = await c["req"].post("/communications/rfqs", json={
        "market_ticker": ticker, "contracts_fp": "1.00", "rest_remainder": False})
    assert r.status_code == 201, r.text
    rfq_id = r.json()["id"]
    r = await c["maker"].post("/communications/quotes", json={
        "rfq_id": rfq_id, "yes_bid": "0.4800", "no_bid": "0.4800", "rest_remainder": False})
    assert r.status_code == 201, r.text
    return rfq_id, r.json()["id"]


# --- REST ---------------------------------------------------------------------------------


async def test_rest_lifecycle_to_fills(clients: dict[str, httpx.AsyncClient],
                                       ex: SimExchange, clock: ReplayClock) -> None:
    c = clients
    rfq_id, qid = await rest_rfq_quote(c)
    r = await c["req"].put(f"/communications/rfqs/{rfq_id}/quotes/{qid}/accept",
                           json={"accepted_side": "yes"})
    assert r.status_code == 204
    r = await c["maker"].put(f"/communications/rfqs/{rfq_id}/quotes/{qid}/confirm", json={})
    assert r.status_code == 204
    q = (await c["maker"].get(f"/communications/rfqs/{rfq_id}/quotes/{qid}")).json()["quote"]
    assert (q["status"], q["accepted_side"]) == ("confirmed", "yes")
    clock.advance(15 * S)
    ex.advance()
    q = (await c["maker"].get(f"/communications/quotes/{qid}")).json()["quote"]
    assert q["status"] == "executed"
    assert {"accepted_ts", "confirmed_ts", "executed_ts", "yes_contracts_fp"} <= q.keys()
    fills = (await c["maker"].get("/portfolio/fills")).json()["fills"]
    assert len(fills) == 1
    f = fills[0]
    assert (f["outcome_side"], f["book_side"], f["is_taker"]) == ("yes", "bid", False)
    assert (f["yes_price_dollars"], f["count_fp"], f["fee_cost"]) == ("0.4800", "1.00",
                                                                       "0.000000")
    assert f["order_id"] == q["creator_order_id"]
    rf = (await c["req"].get("/portfolio/fills")).json()["fills"][0]
    assert (rf["outcome_side"], rf["is_taker"], rf["fee_cost"]) == ("no", True, "0.017500")
    pos = (await c["req"].get("/portfolio/positions")).json()["market_positions"]
    assert [(p["ticker"], p["position_fp"]) for p in pos] == [(T1, "-1.00")]
    bal = (await c["maker"].get("/portfolio/balance")).json()
    assert bal["balance_dollars"] == "999.520000"
    assert bal["balance"] == 99952
    # The requester's view hides the maker's private fields, and vice versa.
    rq = (await c["req"].get(f"/communications/quotes/{qid}")).json()["quote"]
    assert "creator_order_id" not in rq
    assert "rfq_creator_order_id" in rq
    assert (await c["third"].get(f"/communications/quotes/{qid}")).status_code == 404


async def test_late_confirm_and_delete_after_accept(clients: dict[str, httpx.AsyncClient],
                                                    clock: ReplayClock) -> None:
    c = clients
    rfq_id, qid = await rest_rfq_quote(c)
    await c["req"].put(f"/communications/quotes/{qid}/accept", json={"accepted_side": "no"})
    r = await c["maker"].delete(f"/communications/rfqs/{rfq_id}/quotes/{qid}")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    clock.advance(40 * S)
    r = await c["maker"].put(f"/communications/rfqs/{rfq_id}/quotes/{qid}/confirm")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "expired"
    q = (await c["maker"].get(f"/communications/rfqs/{rfq_id}/quotes/{qid}")).json()["quote"]
    assert q["status"] == "accepted"


async def test_validation_errors_use_kalshi_body(clients: dict[str, httpx.AsyncClient]) -> None:
    c = clients
    rfq_id, _ = await rest_rfq_quote(c)
    r = await c["maker"].post("/communications/quotes", json={
        "rfq_id": rfq_id, "yes_bid": "0", "no_bid": "0", "rest_remainder": False})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_parameters")
    assert "message" in r.json()["error"]
    r = await c["req"].post("/communications/rfqs", json={
        "market_ticker": T1, "contracts_fp": "1.00", "rest_remainder": False})
    assert r.status_code == 409
    r = await c["maker"].get("/markets/NOPE")
    assert r.status_code == 404


async def test_bad_signature_and_skew_are_401(ex: SimExchange, clock: ReplayClock,
                                              signers: dict[str, Signer]) -> None:
    forged = Signer("key-maker", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    async with client(ex, clock, forged) as c:
        r = await c.get("/portfolio/balance")
        assert r.status_code == 401
    async with client(ex, clock, signers["maker"], skew_ms=5_000) as c:
        assert (await c.get("/portfolio/balance")).status_code == 200
        late = signers["maker"].headers("GET", "/trade-api/v2/portfolio/balance",
                                        clock.wall_ns() // 1_000_000 - 6_000)
        r = await c.get("/portfolio/balance", headers=late, auth=None)
        assert r.status_code == 401
    async with client(ex, clock, None) as c:
        assert (await c.get("/portfolio/balance")).status_code == 401
        assert (await c.get(f"/markets/{T1}")).status_code == 200  # public


async def test_write_bucket_429(ex: SimExchange, clock: ReplayClock,
                                signers: dict[str, Signer]) -> None:
    async with client(ex, clock, signers["req"]) as req, \
            client(ex, clock, signers["maker"],
                   rate_limits=RateLimits(write_capacity=10, write_refill_per_s=5)) as mk:
        r = await req.post("/communications/rfqs", json={
            "market_ticker": T1, "contracts_fp": "1.00", "rest_remainder": False})
        rfq_id = r.json()["id"]
        body = {"rfq_id": rfq_id, "yes_bid": "0.40", "no_bid": "0.50", "rest_remainder": False}
        codes = [(await mk.post("/communications/quotes", json=body)).status_code
                 for _ in range(6)]
        assert codes == [201] * 5 + [429]  # cost 2 each from a bucket of 10
        r = await mk.post("/communications/quotes", json=body)
        assert r.json() == {"error": "too many requests"}
        clock.advance(S // 5)  # 5 tokens/s x 0.2 s = 1 token: still short of 2
        assert (await mk.post("/communications/quotes", json=body)).status_code == 429
        clock.advance(S // 5)
        assert (await mk.post("/communications/quotes", json=body)).status_code == 201


async def test_list_paging_and_filters(clients: dict[str, httpx.AsyncClient]) -> None:
    c = clients
    for t in (T1, "KXTEST-26JAN01-T2", "KXTEST-26JAN01-T3"):
        r = await c["req"].post("/communications/rfqs", json={
            "market_ticker": t, "contracts": 2, "rest_remainder": False})
        assert r.status_code == 201
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        r = (await c["maker"].get("/communications/rfqs",
                                  params={"limit": 1, "cursor": cursor, "status": "open"})).json()
        seen += [x["id"] for x in r["rfqs"]]
        cursor = r["cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 3
    mine = (await c["req"].get("/communications/rfqs", params={"user_filter": "self"})).json()
    assert len(mine["rfqs"]) == 3
    assert mine["rfqs"][0]["contracts_fp"] == "2.00"
    assert (await c["maker"].get("/communications/rfqs", params={"user_filter": "self"})
            ).json()["rfqs"] == []
    quotes = (await c["maker"].get("/communications/quotes",
                                   params={"user_filter": "self"})).json()
    assert quotes == {"quotes": [], "cursor": ""}


async def test_account_endpoints_and_ledger(clients: dict[str, httpx.AsyncClient]) -> None:
    c = clients["maker"]
    limits = (await c.get("/account/limits")).json()
    assert limits["read"] == {"refill_rate": 200, "bucket_capacity": 400}
    assert limits["write"] == {"refill_rate": 100, "bucket_capacity": 100}
    costs = (await c.get("/account/endpoint_costs")).json()
    assert costs["default_cost"] == 10
    assert {"method": "POST", "path": "/trade-api/v2/communications/quotes", "cost": 2} in costs[
        "endpoint_costs"]
    assert (await c.get("/communications/id")).json()["communications_id"]
    ledger = (await c.get("http://127.0.0.1/sim/ledger", auth=None)).json()
    assert ledger["accounts"]["maker"]["balance_micros"] == 1_000_000_000
    status = (await c.get("/exchange/status")).json()
    assert status["trading_active"] is True


# --- WebSocket over uvicorn ---------------------------------------------------------------


@pytest.fixture
async def sim(ex: SimExchange) -> AsyncIterator[RunningSim]:
    async with serve_sim(ex, "127.0.0.1", 0) as running:
        yield running


async def ws_connect(sim: RunningSim, signer: Signer, clock: ReplayClock) -> ClientConnection:
    headers = ws_headers(signer, clock.wall_ns() // 1_000_000)
    return await connect(sim.ws_url, additional_headers=headers)


async def recv(ws: ClientConnection, wait_s: float = 2.0) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait_s))
    return frame


async def no_frame(ws: ClientConnection, wait_s: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), wait_s)


async def subscribe(ws: ClientConnection, cmd_id: int, **params: Any) -> int:
    await ws.send(json.dumps({"id": cmd_id, "cmd": "subscribe", "params": params}))
    ack = await recv(ws)
    assert ack["type"] == "subscribed", ack
    assert ack["id"] == cmd_id
    sid: int = ack["msg"]["sid"]
    return sid


async def test_ws_handshake_rejects_bad_auth(sim: RunningSim, clock: ReplayClock) -> None:
    bad = Signer("key-maker", ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(InvalidStatus) as err:
        await ws_connect(sim, bad, clock)
    assert err.value.response.status_code == 401


async def test_ws_delivery_rules_and_seq(sim: RunningSim, ex: SimExchange, clock: ReplayClock,
                                         signers: dict[str, Signer]) -> None:
    conns = {u: await ws_connect(sim, s, clock) for u, s in signers.items()}
    sids = {u: await subscribe(ws, 1, channels=["communications"]) for u, ws in conns.items()}
    fill_sid = await subscribe(conns["maker"], 2, channels=["fill", "market_positions"])
    assert fill_sid != sids["maker"]
    await recv(conns["maker"])  # second "subscribed" (one per channel)
    rfq = ex.create_rfq("req", T1, contracts_centi=100)
    for u, ws in conns.items():
        f = await recv(ws)
        assert (f["type"], f["sid"], f["seq"]) == ("rfq_created", sids[u], 1)
        assert f["msg"]["id"] == rfq
    qid = ex.create_quote("maker", rfq, 480_000, 480_000)
    for u in ("maker", "req"):
        f = await recv(conns[u])
        assert (f["type"], f["seq"], f["msg"]["quote_id"]) == ("quote_created", 2, qid)
    await no_frame(conns["third"])
    ex.accept_quote("req", rfq, qid, "yes")  # type: ignore[arg-type]
    ex.confirm_quote("maker", qid, rfq)
    clock.advance(15 * S)
    ex.advance()
    maker = [await recv(conns["maker"]) for _ in range(5)]
    types = sorted(f["type"] for f in maker)
    assert types == sorted(["quote_accepted", "fill", "market_position", "quote_executed",
                            "rfq_deleted"])
    fill = next(f for f in maker if f["type"] == "fill")
    assert (fill["msg"]["outcome_side"], fill["msg"]["is_taker"]) == ("yes", False)
    executed = next(f for f in maker if f["type"] == "quote_executed")
    assert executed["msg"]["client_order_id"] == fill["msg"]["client_order_id"]
    comm_seqs = [f["seq"] for f in maker if f["sid"] == sids["maker"]]
    assert comm_seqs == [3, 4, 5]
    third = await recv(conns["third"])
    assert (third["type"], third["seq"]) == ("rfq_deleted", 2)  # per-subscription seq
    await no_frame(conns["third"])
    for ws in conns.values():
        await ws.close()


async def test_ws_communications_sharding(sim: RunningSim, ex: SimExchange,
                                          clock: ReplayClock, signers: dict[str, Signer]
                                          ) -> None:
    shards = [await ws_connect(sim, signers["maker"], clock) for _ in range(2)]
    for key, ws in enumerate(shards):
        await subscribe(ws, 1, channels=["communications"], shard_factor=2, shard_key=key)
    tickers = [T1, "KXTEST-26JAN01-T2", "KXTEST-26JAN01-T3"]
    for t in tickers:
        ex.create_rfq("req", t, contracts_centi=100)
    got: list[list[str]] = [[], []]
    for key, ws in enumerate(shards):
        expected = [t for t in tickers if zlib.crc32(t.encode()) % 2 == key]
        for _ in expected:
            got[key].append((await recv(ws))["msg"]["market_ticker"])
        await no_frame(ws)
        assert got[key] == expected
    assert sorted(got[0] + got[1]) == sorted(tickers)
    for ws in shards:
        await ws.close()


async def test_ws_orderbook_snapshot_then_deltas(sim: RunningSim, ex: SimExchange,
                                                 clock: ReplayClock, signers: dict[str, Signer]
                                                 ) -> None:
    ex.place_order("third", T1, "yes", 400_000, 500)  # type: ignore[arg-type]
    ex.place_order("third", T1, "no", 550_000, 300)  # type: ignore[arg-type]
    a = await ws_connect(sim, signers["maker"], clock)
    b = await ws_connect(sim, signers["req"], clock)
    await subscribe(a, 1, channels=["orderbook_delta"], market_ticker=T1)
    await subscribe(b, 1, channels=["orderbook_delta"], market_tickers=[T1], use_yes_price=True)
    snap_a, snap_b = await recv(a), await recv(b)
    assert snap_a["type"] == "orderbook_snapshot"
    assert snap_a["seq"] == 1
    assert snap_a["msg"]["yes_dollars_fp"] == [["0.4000", "5.00"]]
    assert snap_a["msg"]["no_dollars_fp"] == [["0.5500", "3.00"]]
    assert snap_b["msg"]["no_dollars_fp"] == [["0.4500", "3.00"]]
    ex.place_order("third", T1, "no", 520_000, 100)  # type: ignore[arg-type]
    da = (await recv(a))
    db = (await recv(b))
    assert (da["type"], da["seq"], da["msg"]["side"]) == ("orderbook_delta", 2, "no")
    assert (da["msg"]["price_dollars"], da["msg"]["delta_fp"]) == ("0.5200", "1.00")
    assert db["msg"]["price_dollars"] == "0.4800"
    assert "client_order_id" not in da["msg"]
    for ws in (a, b):
        await ws.close()


async def test_ws_command_errors_and_management(sim: RunningSim, clock: ReplayClock,
                                                signers: dict[str, Signer]) -> None:
    ws = await ws_connect(sim, signers["maker"], clock)

    async def err(frame: str) -> int:
        await ws.send(frame)
        reply = await recv(ws)
        assert reply["type"] == "error", reply
        code: int = reply["msg"]["code"]
        return code

    assert await err("{nope") == 1
    assert await err(json.dumps({"id": 2, "cmd": "dance"})) == 5
    assert await err(json.dumps({"id": 3, "cmd": "subscribe"})) == 2
    assert await err(json.dumps({"id": 4, "cmd": "subscribe", "params": {}})) == 3
    assert await err(json.dumps({"id": 5, "cmd": "subscribe",
                                 "params": {"channels": ["nope"]}})) == 8
    assert await err(json.dumps({"id": 6, "cmd": "subscribe", "params": {
        "channels": ["communications"], "shard_factor": 101}})) == 22
    assert await err(json.dumps({"id": 7, "cmd": "subscribe", "params": {
        "channels": ["communications"], "shard_key": 1}})) == 20
    assert await err(json.dumps({"id": 8, "cmd": "subscribe", "params": {
        "channels": ["communications"], "shard_factor": 2, "shard_key": 2}})) == 21
    assert await err(json.dumps({"id": 9, "cmd": "subscribe", "params": {
        "channels": ["orderbook_delta"]}})) == 14
    sid = await subscribe(ws, 10, channels=["ticker"], market_tickers=[T1])
    # A repeat subscription is a new one (retired code 6 is never sent).
    again = await subscribe(ws, 11, channels=["ticker"], market_tickers=["KXTEST-26JAN01-T3"])
    assert again != sid
    await ws.send(json.dumps({"id": 111, "cmd": "unsubscribe", "params": {"sids": [again]}}))
    assert (await recv(ws))["type"] == "unsubscribed"
    await ws.send(json.dumps({"id": 12, "cmd": "update_subscription", "params": {
        "sid": sid, "market_tickers": ["KXTEST-26JAN01-T2"], "action": "add_markets"}}))
    ok = await recv(ws)
    assert (ok["type"], ok["id"], ok["sid"], ok["seq"]) == ("ok", 12, sid, 1)
    assert ok["msg"]["market_tickers"] == [T1, "KXTEST-26JAN01-T2"]
    assert await err(json.dumps({"id": 13, "cmd": "update_subscription", "params": {
        "sids": [sid, 99], "market_tickers": [T1], "action": "add_markets"}})) == 12
    await ws.send(json.dumps({"id": 14, "cmd": "list_subscriptions"}))
    assert (await recv(ws))["msg"] == [{"channel": "ticker", "sid": sid}]
    await ws.send(json.dumps({"id": 15, "cmd": "unsubscribe", "params": {"sids": [sid]}}))
    unsub = await recv(ws)
    assert (unsub["type"], unsub["sid"], unsub["seq"]) == ("unsubscribed", sid, 2)
    assert await err(json.dumps({"id": 16, "cmd": "unsubscribe", "params": {"sids": [sid]}})
                     ) == 7
    await ws.close()


async def test_ws_fill_only_to_owner_and_timer_task_executes(
    ex: SimExchange, signers: dict[str, Signer], clock: ReplayClock
) -> None:
    from quoter.clock import LiveClock
    from quoter.sim.exchange import ExchangeConfig

    live = LiveClock()
    fast = SimExchange(live, ExchangeConfig(execution_timer_ms=100))
    for user, s in signers.items():
        fast.register_account(user, balance_micros=10**9)
        fast.register_key(user, s.key_id, s.public_key())
    fast.add_market(SimMarket(T1, "E", "S", "t", grid_for_structure("linear_cent")))
    async with serve_sim(fast, "127.0.0.1", 0) as running:
        ws_t = await connect(running.ws_url, additional_headers=ws_headers(
            signers["third"], live.wall_ns() // 1_000_000))
        ws_m = await connect(running.ws_url, additional_headers=ws_headers(
            signers["maker"], live.wall_ns() // 1_000_000))
        await subscribe(ws_t, 1, channels=["fill"])
        await subscribe(ws_m, 1, channels=["fill"])
        rfq = fast.create_rfq("req", T1, contracts_centi=100)
        qid = fast.create_quote("maker", rfq, 300_000, 600_000)
        fast.accept_quote("req", rfq, qid, "no")  # type: ignore[arg-type]
        fast.confirm_quote("maker", qid, rfq)
        fill = await recv(ws_m)  # the server's timer task runs the execution
        assert (fill["msg"]["outcome_side"], fill["msg"]["book_side"]) == ("no", "ask")
        assert fill["msg"]["yes_price_dollars"] == "0.4000"
        await no_frame(ws_t)
        await ws_t.close()
        await ws_m.close()


class ScriptedFaults:
    """A tiny real FaultHooks: duplicates rfq_created, drops rfq_deleted, fails one path."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def on_frame(self, conn_id: str, text: str) -> list[tuple[float, str]]:
        if '"rfq_deleted"' in text:
            return []
        if '"rfq_created"' in text:
            return [(0.0, text), (0.05, text)]
        return [(0.0, text)]

    async def on_request(self, method: str, path: str) -> Response | None:
        self.requests.append((method, path))
        if path.endswith("/portfolio/balance"):
            return JSONResponse({"code": "internal", "message": "injected"}, status_code=503)
        return None


async def test_fault_hooks_shape_frames_and_requests(
    ex: SimExchange, clock: ReplayClock, signers: dict[str, Signer]
) -> None:
    faults = ScriptedFaults()
    async with client(ex, clock, signers["maker"], faults=faults) as c:
        assert (await c.get("/portfolio/balance")).status_code == 503
        assert (await c.get("/portfolio/positions")).status_code == 200
    assert faults.requests == [("GET", "/trade-api/v2/portfolio/balance"),
                               ("GET", "/trade-api/v2/portfolio/positions")]
    async with serve_sim(ex, "127.0.0.1", 0, faults=faults) as running:
        ws = await ws_connect(running, signers["maker"], clock)
        await subscribe(ws, 1, channels=["communications"])
        rfq = ex.create_rfq("req", T1, contracts_centi=100)
        ex.delete_rfq("req", rfq)
        first, dup = await recv(ws), await recv(ws)
        assert first == dup
        assert (first["type"], first["seq"]) == ("rfq_created", 1)
        await no_frame(ws)  # rfq_deleted was dropped: the client sees a seq gap next time
        ex.create_rfq("req", T1, contracts_centi=100)
        assert (await recv(ws))["seq"] == 3
        await ws.close()


async def test_ws_lifecycle_channels_split_combos(
    sim: RunningSim, ex: SimExchange, clock: ReplayClock, signers: dict[str, Signer]
) -> None:
    ws = await ws_connect(sim, signers["maker"], clock)
    life = await subscribe(ws, 1, channels=["market_lifecycle_v2"])
    mve = await subscribe(ws, 2, channels=["multivariate_market_lifecycle"])
    ex.add_market(SimMarket("KXMVECROSS-X", "E", "S", "c",
                            grid_for_structure("center_deci_edge_centi_cent"),
                            mve_collection_ticker="KXMVECROSSCATEGORY-R"))
    f = await recv(ws)
    assert (f["type"], f["sid"], f["msg"]["event_type"]) == (
        "multivariate_market_lifecycle", mve, "created")
    ex.settle_market(T1, Side.YES)
    frames = [await recv(ws) for _ in range(2)]
    assert [(x["sid"], x["msg"]["event_type"]) for x in frames] == [
        (life, "determined"), (life, "settled")]
    assert frames[0]["msg"]["result"] == "yes"
    await ws.close()


async def test_slow_subscriber_gets_error_25(ex: SimExchange, clock: ReplayClock,
                                             signers: dict[str, Signer]) -> None:
    async with serve_sim(ex, "127.0.0.1", 0, queue_max=3) as running:
        ws = await ws_connect(running, signers["maker"], clock)
        sid = await subscribe(ws, 1, channels=["communications"])
        for t in (T1, "KXTEST-26JAN01-T2", "KXTEST-26JAN01-T3"):
            ex.create_rfq("req", t, contracts_centi=100)
            ex.create_rfq("third", t, contracts_centi=100)  # no await: the queue overflows
        frames = [await recv(ws) for _ in range(4)]
        assert [f["type"] for f in frames] == ["rfq_created"] * 3 + ["error"]
        assert frames[-1]["msg"]["code"] == 25
        assert frames[-1]["sid"] == sid
        await ws.send(json.dumps({"id": 2, "cmd": "list_subscriptions"}))
        assert (await recv(ws))["msg"] == []
        await ws.close()


class PingSpy(ClientConnection):
    """A websockets client connection that records the server's ping frames."""

    pings: list[bytes]

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings = [*getattr(self, "pings", []), bytes(event.data)]
        super().process_event(event)


async def test_server_sends_heartbeat_pings(ex: SimExchange, clock: ReplayClock,
                                            signers: dict[str, Signer]) -> None:
    async with serve_sim(ex, "127.0.0.1", 0, heartbeat_s=0.1) as running:
        ws = await connect(running.ws_url, create_connection=PingSpy, additional_headers=ws_headers(
            signers["maker"], clock.wall_ns() // 1_000_000))
        assert isinstance(ws, PingSpy)
        async with asyncio.timeout(30):  # two 0.1 s heartbeats, however loaded the machine
            while True:
                if len(getattr(ws, "pings", [])) >= 2:
                    break
                await asyncio.sleep(0.02)  # polling what the client's reader task records
        assert len(getattr(ws, "pings", [])) >= 2
        await ws.close()


async def test_a_client_gone_mid_request_is_not_a_traceback(
    ex: SimExchange, clock: ReplayClock, signers: dict[str, Signer]
) -> None:
    # A killed client (the chaos soak's kill -9) disconnects while its body is read: the
    # simulator answers into the void instead of raising ClientDisconnect into uvicorn.
    app = create_app(ex, clock=clock, run_timers=False)
    path = "/trade-api/v2/communications/quotes"
    headers = signers["maker"].headers("POST", path, clock.wall_ns() // 1_000_000)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 5555),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 499
    assert ex.list_quotes() == []
