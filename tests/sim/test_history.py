"""History endpoints: /markets/trades, /portfolio/orders, candlesticks and the multivariate
event collections — exact values, and each body validated against the official SDK's models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from quoter.clock import ReplayClock
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import ComboLeg, Side
from quoter.kalshi.auth import KalshiAuth, Signer
from quoter.sim.app import create_app
from quoter.sim.exchange import SimExchange, SimMarket

S = 1_000_000_000
WALL_S = 1_780_000_040  # 20 s into a minute
T = "KXH-26JAN01-T1"
COMBO = "KXMVEH-S1"
COLLECTION = "KXMVEH-R"


def _sdk(name: str, data: dict[str, Any]) -> Any:
    sdk = pytest.importorskip("kalshi_python_sync")
    return getattr(sdk.models, name).model_validate(data)


@pytest.fixture
async def world() -> AsyncIterator[tuple[SimExchange, ReplayClock, dict[str, httpx.AsyncClient]]]:
    clock = ReplayClock(start_ns=S, wall_offset_ns=WALL_S * S - S)
    ex = SimExchange(clock)
    ex.add_market(SimMarket(T, "KXH-26JAN01", "KXH", "m", grid_for_structure("linear_cent")))
    ex.add_market(SimMarket(T.replace("T1", "T2"), "KXH-26JAN02", "KXH", "m",
                            grid_for_structure("linear_cent")))
    ex.add_market(SimMarket(COMBO, "KXMVEH-E1", "KXMVEH", "combo",
                            grid_for_structure("center_deci_edge_centi_cent"),
                            mve_collection_ticker=COLLECTION, exchange_index=1,
                            price_level_structure="center_deci_edge_centi_cent",
                            close_ts_ms=1_790_000_000_000,
                            legs=(ComboLeg("KXH-26JAN01", T, Side.YES),
                                  ComboLeg("KXH-26JAN02", T.replace("T1", "T2"), Side.NO))))
    clients = {}
    app = create_app(ex)
    for u in ("a", "b"):
        signer = Signer(f"key-{u}", ed25519.Ed25519PrivateKey.generate())
        ex.register_account(u, balance_micros=1_000_000_000)
        ex.register_key(u, signer.key_id, signer.public_key())
        clients[u] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1/trade-api/v2",
            auth=KalshiAuth(signer, lambda: clock.wall_ns() // 1_000_000))
    yield ex, clock, clients
    for c in clients.values():
        await c.aclose()


async def test_trades_orders_and_candles(
        world: tuple[SimExchange, ReplayClock, dict[str, httpx.AsyncClient]]) -> None:
    ex, clock, c = world
    resting = ex.place_order("a", T, Side.YES, 400_000, 500)      # rests 5 YES @ 0.40
    clock.advance(10 * S)
    taker = ex.place_order("b", T, Side.NO, 600_000, 200)         # takes 2 of them
    clock.advance(60 * S)                                         # the next minute
    ex.place_order("b", T, Side.NO, 610_000, 100)                 # takes 1 more @ 0.40
    cancelled = ex.place_order("b", T, Side.YES, 100_000, 100)
    ex.cancel_order("b", cancelled)

    trades = (await c["a"].get("/markets/trades", params={"ticker": T})).json()
    _sdk("GetTradesResponse", trades)
    assert [(t["count_fp"], t["yes_price_dollars"], t["taker_outcome_side"])
            for t in trades["trades"]] == [("1.00", "0.4000", "no"), ("2.00", "0.4000", "no")]
    early = (await c["a"].get("/markets/trades", params={"max_ts": WALL_S + 30})).json()
    assert [t["count_fp"] for t in early["trades"]] == ["2.00"]
    paged = (await c["a"].get("/markets/trades", params={"limit": 1})).json()
    assert paged["cursor"]

    mine = (await c["a"].get("/portfolio/orders")).json()
    _sdk("GetOrdersResponse", mine)
    [order] = mine["orders"]
    assert (order["order_id"], order["status"], order["fill_count_fp"],
            order["remaining_count_fp"], order["initial_count_fp"],
            order["maker_fill_cost_dollars"]) == (resting, "resting", "3.00", "2.00", "5.00",
                                                  "1.200000")
    theirs = (await c["b"].get("/portfolio/orders")).json()["orders"]
    assert [o["status"] for o in theirs] == ["canceled", "executed", "executed"]
    assert theirs[2]["order_id"] == taker
    assert theirs[2]["taker_fill_cost_dollars"] == "1.200000"  # 2 NO at 0.60
    only = (await c["b"].get("/portfolio/orders", params={"status": "canceled"})).json()
    assert [o["order_id"] for o in only["orders"]] == [cancelled]
    one = (await c["b"].get(f"/portfolio/orders/{taker}")).json()
    _sdk("GetOrderResponse", one)
    assert (await c["a"].get(f"/portfolio/orders/{taker}")).status_code == 404
    assert (await c["b"].get("/portfolio/orders", params={"status": "x"})).status_code == 400

    path = f"/series/KXH/markets/{T}/candlesticks"
    body = (await c["a"].get(path, params={"start_ts": WALL_S - 60, "end_ts": WALL_S + 200,
                                           "period_interval": 1})).json()
    _sdk("GetMarketCandlesticksResponse", body)
    first, second = body["candlesticks"]
    assert first["end_period_ts"] == WALL_S - 20 + 60
    assert (first["volume_fp"], first["price"]["close_dollars"]) == ("2.00", "0.4000")
    assert first["yes_bid"]["open_dollars"] == "0.4000"
    assert first["open_interest_fp"] == "2.00"
    assert (second["volume_fp"], second["open_interest_fp"]) == ("1.00", "3.00")
    hourly = (await c["a"].get(path, params={"start_ts": WALL_S - 60, "end_ts": WALL_S + 7200,
                                             "period_interval": 60})).json()
    [hour] = hourly["candlesticks"]
    assert hour["volume_fp"] == "3.00"
    bad = await c["a"].get(path, params={"start_ts": 1, "end_ts": 2, "period_interval": 5})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_parameters")
    wrong_series = await c["a"].get(f"/series/KXNO/markets/{T}/candlesticks",
                                    params={"start_ts": 1, "end_ts": 2, "period_interval": 1})
    assert wrong_series.status_code == 404


async def test_quote_executions_are_orders_and_trades(
        world: tuple[SimExchange, ReplayClock, dict[str, httpx.AsyncClient]]) -> None:
    ex, clock, c = world
    rfq = ex.create_rfq("b", T, contracts_centi=100)
    qid = ex.create_quote("a", rfq, 450_000, 500_000)
    ex.accept_quote("b", rfq, qid, Side.YES)
    ex.confirm_quote("a", qid, rfq)
    clock.advance(15 * S)
    ex.advance()
    q = ex.get_quote(qid)
    [maker] = (await c["a"].get("/portfolio/orders")).json()["orders"]
    [req] = (await c["b"].get("/portfolio/orders")).json()["orders"]
    assert (maker["order_id"], maker["status"], maker["yes_price_dollars"]) == (
        q.creator_order_id, "executed", "0.4500")
    assert (req["order_id"], req["outcome_side"], req["no_price_dollars"]) == (
        q.rfq_creator_order_id, "no", "0.5500")
    [trade] = (await c["a"].get("/markets/trades")).json()["trades"]
    assert (trade["yes_price_dollars"], trade["count_fp"]) == ("0.4500", "1.00")


async def test_multivariate_event_collections(
        world: tuple[SimExchange, ReplayClock, dict[str, httpx.AsyncClient]]) -> None:
    _, _, c = world
    body = (await c["a"].get("/multivariate_event_collections")).json()
    _sdk("GetMultivariateEventCollectionsResponse", body)
    [col] = body["multivariate_contracts"]
    assert (col["collection_ticker"], col["series_ticker"], col["size_min"],
            col["size_max"]) == (COLLECTION, "KXMVEH", 2, 2)
    assert col["associated_event_tickers"] == ["KXH-26JAN01", "KXH-26JAN02"]
    assert col["price_level_structure"] == "center_deci_edge_centi_cent"
    one = (await c["a"].get(f"/multivariate_event_collections/{COLLECTION}")).json()
    _sdk("GetMultivariateEventCollectionResponse", one)
    assert one["multivariate_contract"] == col
    filtered = (await c["a"].get("/multivariate_event_collections",
                                 params={"associated_event_ticker": "KXOTHER"})).json()
    assert filtered["multivariate_contracts"] == []
    missing = await c["a"].get("/multivariate_event_collections/KXMVENOPE-R")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
