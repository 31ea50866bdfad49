"""The simulator's fault injector: frame faults, REST faults, cuts, lost quotes, control routes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from quoter.clock import ReplayClock
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import Side
from quoter.sim.config import FaultConfig
from quoter.sim.exchange import OutMessage, QuoteStatus, SimExchange, SimMarket
from quoter.sim.faults import FaultInjector, fault_routes
from quoter.sim.faults_api import FaultHooks

MS = 1_000_000


def frame(msg_type: str, sid: int = 1, **msg: Any) -> str:
    return json.dumps({"type": msg_type, "sid": sid, "seq": 1, "msg": msg})


def injector(config: dict[str, Any] | None = None, seed: int = 0, **kw: Any) -> FaultInjector:
    return FaultInjector(
        ReplayClock(), FaultConfig.model_validate(config or {}), seed=seed, **kw
    )


def test_is_a_fault_hooks_and_passes_everything_by_default() -> None:
    f = injector()
    assert isinstance(f, FaultHooks)
    text = frame("rfq_created", id="r1")
    assert f.on_frame("c1", text) == [(0.0, text)]
    assert f.on_frame("c1", "not json") == [(0.0, "not json")]


def test_drop_by_type_leaves_other_types_alone() -> None:
    f = injector({"frames": [{"type": "rfq_created", "drop_probability": 1.0}]})
    assert f.on_frame("c1", frame("rfq_created")) == []
    kept = frame("quote_accepted")
    assert f.on_frame("c1", kept) == [(0.0, kept)]
    assert f.stats.dropped == 1


def test_channel_rule_matches_every_type_of_that_channel() -> None:
    f = injector({"frames": [{"channel": "orderbook_delta", "duplicate_probability": 1.0}]})
    for t in ("orderbook_snapshot", "orderbook_delta"):
        text = frame(t)
        assert f.on_frame("c1", text) == [(0.0, text), (0.0, text)]
    text = frame("ticker")
    assert f.on_frame("c1", text) == [(0.0, text)]


def test_delay_and_reorder_hold_frames_back() -> None:
    f = injector({"frames": [
        {"type": "fill", "delay_probability": 1.0, "delay_ms": {"min_ms": 250, "max_ms": 250}},
        {"type": "trade", "reorder_probability": 1.0, "reorder_delay_ms": 40},
    ]})
    assert f.on_frame("c", frame("fill")) == [(0.25, frame("fill"))]
    assert f.on_frame("c", frame("trade")) == [(0.04, frame("trade"))]
    assert (f.stats.delayed, f.stats.reordered) == (1, 1)


def test_accept_notice_delay_only_touches_quote_accepted() -> None:
    f = injector({"accept_notice_delay_ms": 1500})
    assert f.on_frame("c", frame("quote_accepted")) == [(1.5, frame("quote_accepted"))]
    assert f.on_frame("c", frame("quote_created")) == [(0.0, frame("quote_created"))]


def test_overflow_sends_error_25_and_kills_only_that_subscription() -> None:
    f = injector({"frames": [{"channel": "communications", "overflow_probability": 1.0}]})
    out = f.on_frame("c1", frame("rfq_created", sid=7))
    assert len(out) == 1
    error = json.loads(out[0][1])
    assert error == {"type": "error", "sid": 7,
                     "msg": {"code": 25, "msg": "Subscription buffer overflow"}}
    f.apply(FaultConfig())  # rules off: the dead subscription stays dead
    assert f.on_frame("c1", frame("rfq_deleted", sid=7)) == []
    other = frame("fill", sid=8)
    assert f.on_frame("c1", other) == [(0.0, other)]
    assert f.on_frame("c2", frame("rfq_deleted", sid=7)) == [(0.0, frame("rfq_deleted", sid=7))]


def test_probabilistic_faults_are_seeded() -> None:
    cfg = {"frames": [{"drop_probability": 0.5, "duplicate_probability": 0.5}]}

    def decisions(seed: int) -> list[int]:
        f = injector(cfg, seed=seed)
        return [len(f.on_frame("c", frame("ticker"))) for _ in range(200)]

    assert decisions(1) == decisions(1)
    assert decisions(1) != decisions(2)
    assert {0, 1, 2} == set(decisions(1))


def test_cut_closes_connections_open_at_the_time_and_drops_their_frames() -> None:
    f = injector()
    f.on_connect("old")
    assert not f.should_close("old")
    f.apply(FaultConfig(cut_connections=True))
    f.on_connect("new")
    assert f.should_close("old")
    assert not f.should_close("new")
    assert f.on_frame("old", frame("ticker")) == []
    assert f.on_frame("new", frame("ticker")) != []
    assert f.stats.cuts == 1


async def test_rest_error_burst_for_n_requests_then_recovers() -> None:
    f = injector({"rest": {"error_status": 503, "error_count": 2}})
    statuses = []
    for _ in range(3):
        resp = await f.on_request("POST", "/trade-api/v2/communications/quotes")
        statuses.append(None if resp is None else resp.status_code)
    assert statuses == [503, 503, None]


async def test_rest_429_uses_kalshis_body_and_path_filter() -> None:
    f = injector({"rest": {"error_status": 429, "error_probability": 1.0,
                           "path_prefixes": ["/trade-api/v2/communications/"]}})
    resp = await f.on_request("PUT", "/trade-api/v2/communications/rfqs/r/quotes/q/confirm")
    assert resp is not None
    assert resp.status_code == 429
    assert json.loads(bytes(resp.body)) == {"error": "too many requests"}
    assert "retry-after" not in resp.headers
    assert await f.on_request("GET", "/trade-api/v2/portfolio/balance") is None
    assert await f.on_request("GET", "/sim/faults") is None


async def test_rest_error_window_follows_the_injected_clock() -> None:
    clock = ReplayClock(start_ns=5_000 * MS)
    f = FaultInjector(clock, FaultConfig.model_validate({"rest": {"error_duration_ms": 1000}}))
    assert (await f.on_request("GET", "/trade-api/v2/markets")) is not None
    clock.advance(999 * MS)
    assert (await f.on_request("GET", "/trade-api/v2/markets")) is not None
    clock.advance(1 * MS)
    assert (await f.on_request("GET", "/trade-api/v2/markets")) is None


async def test_rest_latency_is_slept_through_the_injected_sleep() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    f = injector({"rest": {"latency_ms": {"min_ms": 120, "max_ms": 120}}}, sleep=sleep)
    assert await f.on_request("GET", "/trade-api/v2/markets") is None
    assert slept == [0.12]


def test_restart_loses_open_quotes_silently_but_keeps_accepted_ones() -> None:
    clock = ReplayClock(start_ns=1_000 * MS, wall_offset_ns=1_780_000_000_000_000_000)
    ex = SimExchange(clock)
    for u in ("maker", "req", "req2"):
        ex.register_account(u, balance_micros=1_000_000_000)
    ex.add_market(SimMarket(ticker="KXA-1", event_ticker="KXA", series_ticker="KXA",
                            title="a", grid=grid_for_structure("linear_cent")))
    rfq1 = ex.create_rfq("req", "KXA-1", contracts_centi=100)
    rfq2 = ex.create_rfq("req2", "KXA-1", contracts_centi=100)
    open_q = ex.create_quote("maker", rfq1, 400_000, 500_000)
    acc_q = ex.create_quote("maker", rfq2, 400_000, 500_000)
    ex.accept_quote("req2", rfq2, acc_q, Side.YES)
    frames: list[OutMessage] = []
    ex.add_listener(frames.append)
    f = FaultInjector(clock, exchange=ex)
    f.apply(FaultConfig(restart_lose_open_quotes=True))
    assert ex.get_quote(open_q).status == QuoteStatus.CANCELLED
    assert ex.get_quote(acc_q).status == QuoteStatus.ACCEPTED
    assert frames == []
    assert f.stats.quotes_lost == 1


async def test_control_routes_show_and_apply_faults() -> None:
    f = injector()
    app = Starlette(routes=fault_routes(f))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        got = (await client.get("/sim/faults")).json()
        assert got["config"]["frames"] == []
        assert got["stats"]["frames_seen"] == 0
        body = {"frames": [{"type": "rfq_created", "drop_probability": 1.0}],
                "rest": {"error_count": 1, "error_status": 500}}
        resp = await client.post("/sim/faults", json=body)
        assert resp.status_code == 200
        assert resp.json()["config"]["rest"]["error_count"] == 1
        assert f.on_frame("c", frame("rfq_created")) == []
        assert (await f.on_request("GET", "/trade-api/v2/markets")) is not None
        bad = await client.post("/sim/faults", json={"frames": [{"drop_probabilty": 1}]})
        assert bad.status_code == 400
        assert bad.json()["code"] == "invalid_parameters"
        bad2 = await client.post("/sim/faults", content=b"{nope")
        assert bad2.status_code == 400


def test_rest_fault_status_must_be_429_or_5xx() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 429"):
        FaultConfig.model_validate({"rest": {"error_status": 404}})
    with pytest.raises(ValueError, match="429 or 5xx"):
        FaultConfig.model_validate({"rest": {"error_status": 450}})


# --- through the real server and a real WebSocket client ----------------------------------


async def test_frame_faults_and_cuts_reach_a_real_websocket_client() -> None:
    import asyncio

    import websockets
    from cryptography.hazmat.primitives.asymmetric import rsa

    from quoter.clock import LiveClock
    from quoter.kalshi.auth import Signer, ws_headers
    from quoter.sim.server import serve_sim

    clock = LiveClock()
    ex = SimExchange(clock)
    for u in ("bot", "req"):
        ex.register_account(u, balance_micros=1_000_000_000)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ex.register_key("bot", "kid-1", key.public_key())
    ex.add_market(SimMarket(ticker="KXA-1", event_ticker="KXA", series_ticker="KXA",
                            title="a", grid=grid_for_structure("linear_cent")))
    f = FaultInjector(clock, FaultConfig.model_validate(
        {"frames": [{"type": "rfq_created", "duplicate_probability": 1.0}]}), exchange=ex)
    async with serve_sim(ex, "127.0.0.1", 0, faults=f, extra_routes=fault_routes(f)) as sim:
        headers = ws_headers(Signer("kid-1", key), clock.wall_ns() // 1_000_000)
        async with websockets.connect(sim.ws_url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"id": 1, "cmd": "subscribe",
                                      "params": {"channels": ["communications"]}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ack["type"] == "subscribed"
            rfq_id = ex.create_rfq("req", "KXA-1", contracts_centi=100)
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            second = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert first["type"] == second["type"] == "rfq_created"
            assert first["msg"]["id"] == second["msg"]["id"] == rfq_id
            async with httpx.AsyncClient(base_url=sim.base_url, timeout=5) as client:
                resp = await client.post("/sim/faults", json={"cut_connections": True})
                assert resp.status_code == 200
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
        assert f.stats.cuts == 1


# --- nested frames and corrupted bodies (issue 12: every fault the chaos soak needs) -------


def _depth(text: str) -> int:
    deepest = level = 0
    for ch in text:
        level += ch == "["
        level -= ch == "]"
        deepest = max(deepest, level)
    return deepest


def test_nest_adds_a_deep_ignored_field_and_keeps_the_rest() -> None:
    f = injector({"frames": [{"type": "rfq_created", "nest_probability": 1.0,
                              "nest_depth": 1_000}]})
    [(delay, text)] = f.on_frame("c1", frame("rfq_created", id="r1"))
    assert delay == 0.0
    assert _depth(text) == 1_000
    head = text.split('"sim_padding"')[0]
    assert '"type":"rfq_created"' in head
    assert '"id":"r1"' in head
    with pytest.raises(RecursionError):
        json.loads(text)  # what a naive decoder does with it
    assert f.stats.nested == 1
    # Frames without a dict msg (an error frame) and other types pass unchanged.
    other = frame("quote_accepted")
    assert f.on_frame("c1", other) == [(0.0, other)]
    assert f.stats.as_dict()["nested"] == 1


def _answer(status: int = 201, body: bytes = b'{"id":"q-123456"}') -> Any:
    from starlette.responses import Response

    return Response(body, status_code=status, media_type="application/json")


@pytest.mark.parametrize("kind", ["bad_gzip", "deep_json", "truncated"])
async def test_corrupt_bodies_spoil_successful_answers_of_the_chosen_kind(kind: str) -> None:
    f = injector({"corrupt_bodies": {"probability": 1.0, "kinds": [kind],
                                     "path_prefixes": ["/trade-api/v2/communications"],
                                     "methods": ["POST"]}})
    path = "/trade-api/v2/communications/quotes"
    spoiled = f.corrupt_response("POST", path, _answer())
    assert spoiled.status_code == 201
    assert spoiled.body != b'{"id":"q-123456"}'
    if kind == "bad_gzip":
        assert spoiled.headers["content-encoding"] == "gzip"
        r = httpx.Response(201, headers=dict(spoiled.headers),
                           stream=httpx.ByteStream(bytes(spoiled.body)))
        with pytest.raises(httpx.DecodingError):
            await r.aread()
    elif kind == "deep_json":
        assert _depth(spoiled.body.decode()) == 3_000
    else:
        assert spoiled.body == b'{"id":"q'
    assert f.stats.bodies_corrupted == 1
    # Errors, other methods, other paths and the control endpoint are left alone.
    for method, p, answer in [("POST", path, _answer(400)), ("GET", path, _answer(200)),
                              ("POST", "/trade-api/v2/markets", _answer()),
                              ("POST", "/sim/faults", _answer(200))]:
        assert f.corrupt_response(method, p, answer) is answer
    assert f.stats.bodies_corrupted == 1


async def test_a_corrupted_create_answer_still_creates_the_quote() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from quoter.clock import LiveClock
    from quoter.kalshi.auth import KalshiAuth, Signer
    from quoter.sim.app import create_app

    clock = LiveClock()
    ex = SimExchange(clock)
    for u in ("bot", "req"):
        ex.register_account(u, balance_micros=1_000_000_000)
    key = ed25519.Ed25519PrivateKey.generate()
    ex.register_key("bot", "kid-1", key.public_key())
    ex.add_market(SimMarket(ticker="KXA-1", event_ticker="KXA", series_ticker="KXA",
                            title="a", grid=grid_for_structure("linear_cent")))
    f = FaultInjector(clock, FaultConfig.model_validate(
        {"corrupt_bodies": {"probability": 1.0, "kinds": ["deep_json"]}}))
    app = create_app(ex, faults=f, run_timers=False)
    rfq_id = ex.create_rfq("req", "KXA-1", contracts_centi=100)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim/trade-api/v2",
        auth=KalshiAuth(Signer("kid-1", key), lambda: clock.wall_ns() // 1_000_000),
    ) as c:
        r = await c.post("/communications/quotes", json={
            "rfq_id": rfq_id, "yes_bid": "0.40", "no_bid": "0.40", "rest_remainder": False})
        assert r.status_code == 201
        assert r.content == b"[" * 3_000 + b"]" * 3_000
    [quote] = ex.list_quotes(rfq_id=rfq_id, creator_user_id="bot")
    assert quote.status is QuoteStatus.OPEN
    assert f.stats.bodies_corrupted == 1
