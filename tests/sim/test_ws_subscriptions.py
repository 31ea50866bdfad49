"""WebSocket subscription rules, as Kalshi's current docs state them (asyncapi.yaml).

* A repeat ``subscribe`` of a channel is a new subscription with its own ``sid`` and its own
  ``seq`` counter: code 6 ("already subscribed") is retired and never emitted.
* ``update_subscription`` (``sid`` or one-element ``sids``) adds/deletes markets of one
  subscription; ``list_subscriptions`` lists every live one.
* Our own feed (``quoter.kalshi.ws.KalshiFeed``) holds several ``orderbook_delta``
  subscriptions on one connection against the simulator.

Real sockets: the simulator under uvicorn on 127.0.0.1, a ``websockets`` client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from websockets.asyncio.client import ClientConnection, connect

from quoter.clock import ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import Side
from quoter.kalshi.auth import Signer, ws_headers
from quoter.kalshi.ws import Backoff, KalshiFeed
from quoter.sim.exchange import SimExchange, SimMarket
from quoter.sim.server import RunningSim, serve_sim

S = 1_000_000_000
A, B, C = "KXSUB-26JAN01-A", "KXSUB-26JAN01-B", "KXSUB-26JAN01-C"


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {u: Signer(f"key-{u}", ed25519.Ed25519PrivateKey.generate())
            for u in ("maker", "req", "lp")}


@pytest.fixture
def clock() -> ReplayClock:
    return ReplayClock(start_ns=5 * S, wall_offset_ns=1_780_000_000 * S)


@pytest.fixture
async def world(clock: ReplayClock, signers: dict[str, Signer],
                ) -> AsyncIterator[tuple[SimExchange, RunningSim]]:
    ex = SimExchange(clock)
    for user, signer in signers.items():
        ex.register_account(user, balance_micros=1_000_000_000)
        ex.register_key(user, signer.key_id, signer.public_key())
    for t in (A, B, C):
        ex.add_market(SimMarket(t, "KXSUB-26JAN01", "KXSUB", t, grid_for_structure("linear_cent"),
                                fees=FeeSchedule(FeeType.QUADRATIC)))
        ex.place_order("lp", t, Side.YES, 400_000, 500)
    async with serve_sim(ex, "127.0.0.1", 0) as sim:
        yield ex, sim


async def _ws(sim: RunningSim, signer: Signer, clock: ReplayClock) -> ClientConnection:
    return await connect(sim.ws_url,
                         additional_headers=ws_headers(signer, clock.wall_ns() // 1_000_000))


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 2.0))
    return frame


async def _command(ws: ClientConnection, cmd_id: int, cmd: str,
                   params: dict[str, Any] | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"id": cmd_id, "cmd": cmd}
    if params is not None:
        frame["params"] = params
    await ws.send(json.dumps(frame))
    return await _recv(ws)


async def _marker(ws: ClientConnection, cmd_id: int) -> list[dict[str, Any]]:
    """Every frame before the reply to a ``list_subscriptions`` (a barrier, not a sleep)."""
    await ws.send(json.dumps({"id": cmd_id, "cmd": "list_subscriptions"}))
    out = []
    while True:
        f = await _recv(ws)
        if f.get("id") == cmd_id:
            return out
        out.append(f)


async def test_repeat_orderbook_subscriptions_each_get_their_own_sid_and_seq(
    world: tuple[SimExchange, RunningSim], clock: ReplayClock, signers: dict[str, Signer],
) -> None:
    ex, sim = world
    ws = await _ws(sim, signers["maker"], clock)
    ack_a = await _command(ws, 1, "subscribe", {"channels": ["orderbook_delta"],
                                                "market_ticker": A})
    snap_a = await _recv(ws)
    ack_b = await _command(ws, 2, "subscribe", {"channels": ["orderbook_delta"],
                                                "market_tickers": [B, A]})
    assert ack_a["type"] == ack_b["type"] == "subscribed"
    sid_a, sid_b = ack_a["msg"]["sid"], ack_b["msg"]["sid"]
    assert sid_a != sid_b
    snaps_b = [await _recv(ws), await _recv(ws)]
    assert (snap_a["sid"], snap_a["seq"], snap_a["msg"]["market_ticker"]) == (sid_a, 1, A)
    assert [(f["sid"], f["seq"], f["msg"]["market_ticker"]) for f in snaps_b] == [
        (sid_b, 1, A), (sid_b, 2, B)]
    listed = await _command(ws, 3, "list_subscriptions")
    assert listed["msg"] == [{"channel": "orderbook_delta", "sid": sid_a},
                             {"channel": "orderbook_delta", "sid": sid_b}]
    ex.place_order("lp", A, Side.YES, 410_000, 100)  # on both subscriptions
    ex.place_order("lp", B, Side.YES, 410_000, 100)  # only on the second
    frames = await _marker(ws, 4)
    deltas = [(f["sid"], f["seq"], f["msg"]["market_ticker"]) for f in frames
              if f["type"] == "orderbook_delta"]
    assert deltas == [(sid_a, 2, A), (sid_b, 3, A), (sid_b, 4, B)]
    assert not [f for f in frames if f["type"] == "error"]
    await ws.close()


async def test_update_subscription_adds_and_deletes_markets_of_one_sid(
    world: tuple[SimExchange, RunningSim], clock: ReplayClock, signers: dict[str, Signer],
) -> None:
    ex, sim = world
    ws = await _ws(sim, signers["maker"], clock)
    sid = (await _command(ws, 1, "subscribe", {"channels": ["orderbook_delta"],
                                               "market_tickers": [A]}))["msg"]["sid"]
    await _recv(ws)  # snapshot of A, seq 1
    ok = await _command(ws, 2, "update_subscription", {
        "sids": [sid], "market_tickers": [B, C], "action": "add_markets"})
    assert (ok["type"], ok["id"], ok["sid"], ok["seq"]) == ("ok", 2, sid, 2)
    assert ok["msg"]["market_tickers"] == [A, B, C]
    added = [await _recv(ws), await _recv(ws)]
    assert [(f["type"], f["seq"], f["msg"]["market_ticker"]) for f in added] == [
        ("orderbook_snapshot", 3, B), ("orderbook_snapshot", 4, C)]
    ok = await _command(ws, 3, "update_subscription", {
        "sid": sid, "market_tickers": [A], "action": "delete_markets"})
    assert (ok["seq"], ok["msg"]["market_tickers"]) == (5, [B, C])
    ex.place_order("lp", A, Side.YES, 410_000, 100)  # no longer subscribed
    ex.place_order("lp", C, Side.YES, 410_000, 100)
    frames = await _marker(ws, 4)
    assert [(f["type"], f["seq"], f["msg"]["market_ticker"]) for f in frames] == [
        ("orderbook_delta", 6, C)]
    snap = await _command(ws, 5, "update_subscription", {
        "sid": sid, "market_tickers": [B], "action": "get_snapshot"})
    assert (snap["type"], snap["seq"], snap["msg"]["market_ticker"]) == (
        "orderbook_snapshot", 7, B)
    await ws.close()


async def test_repeat_communications_subscription_is_a_second_stream(
    world: tuple[SimExchange, RunningSim], clock: ReplayClock, signers: dict[str, Signer],
) -> None:
    ex, sim = world
    ws = await _ws(sim, signers["maker"], clock)
    one = (await _command(ws, 1, "subscribe", {"channels": ["communications"]}))["msg"]["sid"]
    two = (await _command(ws, 2, "subscribe", {"channels": ["communications"]}))["msg"]["sid"]
    assert one != two
    rfq = ex.create_rfq("req", A, contracts_centi=100)
    frames = await _marker(ws, 3)
    assert sorted((f["sid"], f["seq"]) for f in frames) == [(one, 1), (two, 1)]
    assert {f["msg"]["id"] for f in frames} == {rfq}
    unsub = await _command(ws, 4, "unsubscribe", {"sids": [one]})
    assert (unsub["type"], unsub["sid"]) == ("unsubscribed", one)
    ex.delete_rfq("req", rfq)
    frames = await _marker(ws, 5)
    assert [(f["type"], f["sid"], f["seq"]) for f in frames] == [("rfq_deleted", two, 2)]
    await ws.close()


async def test_unknown_market_refuses_the_subscribe_with_code_16(
    world: tuple[SimExchange, RunningSim], clock: ReplayClock, signers: dict[str, Signer],
) -> None:
    _, sim = world
    ws = await _ws(sim, signers["maker"], clock)
    reply = await _command(ws, 1, "subscribe", {"channels": ["orderbook_delta"],
                                                "market_tickers": ["KXNOPE-1", A]})
    assert (reply["type"], reply["msg"]["code"]) == ("error", 16)
    assert await _marker(ws, 2) == []
    await ws.close()


async def test_our_feed_holds_two_book_subscriptions_on_one_connection(
    world: tuple[SimExchange, RunningSim], clock: ReplayClock, signers: dict[str, Signer],
) -> None:
    _, sim = world
    feed = KalshiFeed(sim.ws_url, signers["maker"], wall_ms=lambda: clock.wall_ns() // 10**6,
                      now_ns=clock.now_ns, ping_interval_s=None, proxy=None,
                      backoff=Backoff(initial_s=0.001, max_s=0.01, factor=2.0, jitter=0.0,
                                      rng=random.Random(0)))
    task = asyncio.create_task(feed.run(), name="feed")
    try:
        [one] = await feed.subscribe(["orderbook_delta"], market_tickers=[A],
                                     use_yes_price=True)
        [two] = await feed.subscribe(["orderbook_delta"], market_tickers=[B],
                                     use_yes_price=True)
        assert one.sid is not None
        assert two.sid is not None
        assert one.sid != two.sid
        assert feed.stats.errors == 0
        snaps: dict[int, str] = {}
        while len(snaps) < 2:
            raw = await asyncio.wait_for(feed.out.get(), 2.0)
            f = json.loads(raw.data)
            if f["type"] == "orderbook_snapshot":
                snaps[f["sid"]] = f["msg"]["market_ticker"]
        assert snaps == {one.sid: A, two.sid: B}
        assert sorted(sid for _, sid in await feed.list_subscriptions()) == sorted(
            [one.sid, two.sid])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
