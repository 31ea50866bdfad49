"""Conformance: the simulator's JSON against the official SDK (kalshi-python-sync 3.34).

1. Every REST response shape validates against the SDK's pydantic models, and every field we
   send is one the model knows (a misspelt field name fails).
2. The SDK's own clients (sync, run in a thread) drive the whole RFQ lifecycle against the
   simulator served by uvicorn on 127.0.0.1: signatures, paths, bodies and parsing all real.

The SDK declares Requires-Python >=3.13 but imports on 3.11; install it with
``pip install --no-deps --ignore-requires-python 'kalshi-python-sync>=3.34'`` plus its
runtime deps (python-dateutil, urllib3, lazy-imports).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from quoter.clock import LiveClock, ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import ComboLeg, Side
from quoter.kalshi.auth import KalshiAuth, Signer
from quoter.sim.app import create_app
from quoter.sim.exchange import ExchangeConfig, SimExchange, SimMarket
from quoter.sim.server import serve_sim


@pytest.fixture(scope="module")
def sdk() -> Any:
    """The official SDK (tests that need it skip when it is not installed)."""
    return pytest.importorskip("kalshi_python_sync")

S = 1_000_000_000
T1 = "KXMLBGAME-26JUL081840NYYTB-NYY"
COMBO = "KXMVECROSSCATEGORY-S2026-ABC"


#: Fields the real exchange sends that the 3.34 SDK models do not list (recorded responses).
REAL_EXTRAS: dict[str, set[str]] = {
    "Market": {"fractional_trading_enabled", "liquidity_dollars", "response_price_units"},
    "MarketPosition": {"resting_orders_count"},
}


def _check(model: Any, data: dict[str, Any]) -> Any:
    """Validate ``data`` with the SDK model and insist every key is a known field."""
    unknown = set(data) - set(model.model_fields) - {
        a.alias for a in model.model_fields.values() if a.alias} - REAL_EXTRAS.get(
        model.__name__, set())
    assert not unknown, f"{model.__name__}: fields the SDK does not know: {unknown}"
    return model.model_validate(data)


def _markets(ex: SimExchange) -> None:
    ex.add_market(SimMarket(T1, "KXMLBGAME-26JUL081840NYYTB", "KXMLBGAME", "NYY win",
                            grid_for_structure("linear_cent"),
                            fees=FeeSchedule(FeeType.QUADRATIC), close_ts_ms=1_800_000_000_000))
    ex.add_market(SimMarket(COMBO, "KXMVECROSSCATEGORY-S2026", "KXMVECROSSCATEGORY", "combo",
                            grid_for_structure("center_deci_edge_centi_cent"),
                            mve_collection_ticker="KXMVECROSSCATEGORY-R", exchange_index=1,
                            price_level_structure="center_deci_edge_centi_cent",
                            legs=(ComboLeg("E1", "KXA-1", Side.YES),
                                  ComboLeg("E2", "KXB-2", Side.NO))))


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {"maker": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "req": ed25519.Ed25519PrivateKey.generate()}


@pytest.fixture
async def rest(keys: dict[str, Any]) -> AsyncIterator[tuple[SimExchange, ReplayClock,
                                                               dict[str, httpx.AsyncClient]]]:
    clock = ReplayClock(start_ns=S, wall_offset_ns=1_780_000_000 * S)
    ex = SimExchange(clock)
    for u, k in keys.items():
        ex.register_account(u, balance_micros=1_000_000_000)
        ex.register_key(u, f"key-{u}", k.public_key())
    _markets(ex)
    app = create_app(ex)
    clients = {
        u: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1/trade-api/v2",
            auth=KalshiAuth(Signer(f"key-{u}", k), lambda: clock.wall_ns() // 1_000_000))
        for u, k in keys.items()
    }
    yield ex, clock, clients
    for c in clients.values():
        await c.aclose()


async def test_rest_shapes_validate_against_sdk_models(
    rest: tuple[SimExchange, ReplayClock, dict[str, httpx.AsyncClient]], sdk: Any,
) -> None:
    models = sdk.models
    ex, clock, c = rest
    ex.place_order("req", T1, Side.YES, 300_000, 500)
    r = await c["req"].post("/communications/rfqs", json={
        "market_ticker": T1, "contracts_fp": "2.00", "rest_remainder": False})
    _check(models.CreateRFQResponse, r.json())
    rfq_id = r.json()["id"]
    r = await c["req"].post("/communications/rfqs", json={
        "market_ticker": COMBO, "target_cost_dollars": "10.00", "rest_remainder": False})
    combo_rfq = r.json()["id"]
    r = await c["maker"].post("/communications/quotes", json={
        "rfq_id": rfq_id, "yes_bid": "0.4800", "no_bid": "0.4800", "rest_remainder": False})
    _check(models.CreateQuoteResponse, r.json())
    qid = r.json()["id"]
    await c["maker"].post("/communications/quotes", json={
        "rfq_id": combo_rfq, "yes_bid": "0.1234", "no_bid": "0.8000", "rest_remainder": False})
    await c["req"].put(f"/communications/rfqs/{rfq_id}/quotes/{qid}/accept",
                       json={"accepted_side": "yes"})
    await c["maker"].put(f"/communications/rfqs/{rfq_id}/quotes/{qid}/confirm")
    clock.advance(15 * S)
    ex.advance()
    ex.settle_market(T1, Side.NO)

    for who in ("maker", "req"):
        quotes = (await c[who].get("/communications/quotes")).json()
        parsed = _check(models.GetQuotesResponse, quotes)
        for q in quotes["quotes"]:
            _check(models.Quote, q)
        assert parsed.quotes
        one = (await c[who].get(f"/communications/rfqs/{rfq_id}/quotes/{qid}")).json()
        _check(models.GetQuoteResponse, one)
        q = _check(models.Quote, one["quote"])
        assert q.status == "executed"
        assert q.executed_ts is not None
    rfqs = (await c["maker"].get("/communications/rfqs")).json()
    _check(models.GetRFQsResponse, rfqs)
    for x in rfqs["rfqs"]:
        _check(models.RFQ, x)
    combo = (await c["maker"].get(f"/communications/rfqs/{combo_rfq}")).json()
    _check(models.GetRFQResponse, combo)
    legs = _check(models.RFQ, combo["rfq"]).mve_selected_legs
    assert [leg.side for leg in legs] == ["yes", "no"]
    for ticker in (T1, COMBO):
        m = (await c["maker"].get(f"/markets/{ticker}")).json()
        _check(models.GetMarketResponse, m)
        _check(models.Market, m["market"])
    ms = (await c["maker"].get("/markets", params={"limit": 1})).json()
    assert _check(models.GetMarketsResponse, ms).cursor
    book = (await c["maker"].get(f"/markets/{COMBO}/orderbook")).json()
    _check(models.GetMarketOrderbookResponse, book)
    fills = (await c["maker"].get("/portfolio/fills")).json()
    _check(models.GetFillsResponse, fills)
    assert fills["fills"]
    for f in fills["fills"]:
        _check(models.Fill, f)
    positions = (await c["req"].get("/portfolio/positions")).json()
    _check(models.GetPositionsResponse, positions)
    settlements = (await c["maker"].get("/portfolio/settlements")).json()
    parsed_s = _check(models.GetSettlementsResponse, settlements)
    assert parsed_s.settlements[0].market_result == "no"
    for s in settlements["settlements"]:
        _check(models.Settlement, s)
    _check(models.GetBalanceResponse, (await c["maker"].get("/portfolio/balance")).json())
    _check(models.ExchangeStatus, (await c["maker"].get("/exchange/status")).json())
    _check(models.GetAccountApiLimitsResponse,
           (await c["maker"].get("/account/limits")).json())
    _check(models.GetAccountEndpointCostsResponse,
           (await c["maker"].get("/account/endpoint_costs")).json())
    _check(models.GetCommunicationsIDResponse,
           (await c["maker"].get("/communications/id")).json())
    # Positions while still open (before settlement) too.
    ex2_positions = (await c["maker"].get("/portfolio/positions")).json()
    _check(models.GetPositionsResponse, ex2_positions)


def _pem(key: Any) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _client(sdk: Any, url: str, key_id: str, key: Any) -> Any:
    config = sdk.Configuration(host=url)
    config.api_key_id = key_id
    config.private_key_pem = _pem(key)
    return sdk.KalshiClient(config)


def _sdk_lifecycle(sdk: Any, url: str, keys: dict[str, Any]) -> dict[str, Any]:
    """The whole RFQ flow through the official SDK (blocking; runs in a worker thread)."""
    maker = sdk.CommunicationsApi(_client(sdk, url, "key-maker", keys["maker"]))
    req = sdk.CommunicationsApi(_client(sdk, url, "key-req", keys["req"]))
    portfolio = sdk.PortfolioApi(_client(sdk, url, "key-maker", keys["maker"]))
    rfq_id = req.create_rfq(market_ticker=T1, contracts_fp="1.00", rest_remainder=False).id
    open_rfqs = maker.get_rfqs(status="open").rfqs
    assert rfq_id in [r.id for r in open_rfqs]
    quote_id = maker.create_quote(rfq_id=rfq_id, yes_bid="0.4800", no_bid="0.4800",
                                  rest_remainder=False).id
    req.accept_rfq_quote(rfq_id, quote_id, accepted_side="no")
    assert maker.get_rfq_quote(rfq_id, quote_id).quote.status == "accepted"
    maker.confirm_rfq_quote(rfq_id, quote_id)
    deadline = time.perf_counter() + 5
    quote = maker.get_rfq_quote(rfq_id, quote_id).quote
    while quote.status != "executed" and time.perf_counter() < deadline:
        time.sleep(0.05)
        quote = maker.get_rfq_quote(rfq_id, quote_id).quote
    # The SDK wants its enum here (it calls .value on the argument).
    mine = maker.get_quotes(user_filter=sdk.models.UserFilter("self")).quotes
    return {
        "comm_id": maker.get_communications_id().communications_id,
        "quote": quote,
        "mine": mine,
        "fills": portfolio.get_fills().fills,
        "positions": portfolio.get_positions().market_positions,
        "balance": portfolio.get_balance(),
    }


async def test_sdk_drives_rfq_lifecycle_over_uvicorn(keys: dict[str, Any], sdk: Any) -> None:
    ex = SimExchange(LiveClock(), ExchangeConfig(execution_timer_ms=200))
    for u, k in keys.items():
        ex.register_account(u, balance_micros=1_000_000_000)
        ex.register_key(u, f"key-{u}", k.public_key())
    _markets(ex)
    async with serve_sim(ex, "127.0.0.1", 0) as sim:
        out = await asyncio.to_thread(_sdk_lifecycle, sdk, sim.url, keys)
    q = out["quote"]
    assert q.status == "executed"
    assert (q.accepted_side, q.yes_bid_dollars, q.no_bid_dollars) == ("no", "0.4800", "0.4800")
    assert q.creator_id == out["comm_id"]
    assert [x.id for x in out["mine"]] == [q.id]
    [fill] = out["fills"]
    assert fill.order_id == q.creator_order_id
    assert (fill.outcome_side, fill.book_side, fill.is_taker) == ("no", "ask", False)
    assert (fill.no_price_dollars, fill.yes_price_dollars, fill.count_fp) == (
        "0.4800", "0.5200", "1.00")
    [pos] = out["positions"]
    assert (pos.ticker, pos.position_fp) == (T1, "-1.00")
    assert out["balance"].balance_dollars == "999.520000"


async def test_every_ws_frame_decodes_with_our_client_schemas(keys: dict[str, Any]) -> None:
    """The simulator's frames go through quoter.kalshi.schemas + translate without loss."""
    import json

    from websockets.asyncio.client import connect

    from quoter.kalshi.auth import ws_headers
    from quoter.kalshi.schemas import UnknownMessage, decode_frame, frame_type
    from quoter.kalshi.translate import to_events

    clock = ReplayClock(start_ns=S, wall_offset_ns=1_780_000_000 * S)
    ex = SimExchange(clock)
    for u, k in keys.items():
        ex.register_account(u, balance_micros=1_000_000_000)
        ex.register_key(u, f"key-{u}", k.public_key())
    _markets(ex)
    signer = Signer("key-maker", keys["maker"])
    async with serve_sim(ex, "127.0.0.1", 0) as sim:
        ws = await connect(sim.ws_url, additional_headers=ws_headers(
            signer, clock.wall_ns() // 1_000_000))
        commands = [
            {"id": 1, "cmd": "subscribe", "params": {"channels": [
                "communications", "fill", "market_positions", "ticker", "trade",
                "market_lifecycle_v2", "multivariate_market_lifecycle"]}},
            {"id": 2, "cmd": "subscribe", "params": {
                "channels": ["orderbook_delta"], "market_tickers": [T1], "use_yes_price": True}},
        ]
        for c in commands:
            await ws.send(json.dumps(c))
        early = [await asyncio.wait_for(ws.recv(), 2) for _ in range(9)]  # 8 acks + snapshot
        ex.place_order("req", T1, Side.NO, 600_000, 300)
        rfq = ex.create_rfq("req", T1, contracts_centi=100)
        qid = ex.create_quote("maker", rfq, 480_000, 480_000)
        ex.accept_quote("req", rfq, qid, Side.YES)
        ex.confirm_quote("maker", qid, rfq)
        clock.advance(15 * S)
        ex.advance()
        ex.settle_market(T1, Side.YES)
        await ws.send(json.dumps({"id": 3, "cmd": "list_subscriptions"}))
        await ws.send(json.dumps({"id": 4, "cmd": "subscribe", "params": {"channels": ["x"]}}))
        seen: dict[str, int] = {}
        while True:
            if early:
                raw = early.pop(0)
            else:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.3)
                except TimeoutError:
                    break
            message = decode_frame(raw, 0)
            assert not isinstance(message, UnknownMessage), raw
            to_events(message, 0, yes_priced=True)
            seen[frame_type(message)] = seen.get(frame_type(message), 0) + 1
        await ws.close()
    assert {"subscribed", "ok", "error", "orderbook_snapshot", "orderbook_delta", "ticker",
            "trade", "fill", "market_position", "rfq_created", "quote_created",
            "quote_accepted", "quote_executed", "rfq_deleted",
            "market_lifecycle_v2"} <= seen.keys(), seen


async def test_our_rest_client_round_trips_against_the_simulator(
    rest: tuple[SimExchange, ReplayClock, dict[str, httpx.AsyncClient]],
    keys: dict[str, Any],
) -> None:
    """quoter.kalshi.rest.KalshiRest (maker and requester) through the whole flow, in-process."""
    from quoter.kalshi.rest import KalshiRest

    ex, clock, _ = rest
    app = create_app(ex)

    def kalshi(user: str) -> KalshiRest:
        return KalshiRest("http://127.0.0.1/trade-api/v2", Signer(f"key-{user}", keys[user]),
                          transport=httpx.ASGITransport(app=app), clock=clock)

    async with kalshi("maker") as maker, kalshi("req") as req:
        rfq_id = await req.create_rfq(T1, 100)
        assert rfq_id in [r.id for r in await maker.list_rfqs(status="open")]
        qid = await maker.create_quote(rfq_id, 480_000, 480_000)
        await req.accept_quote(rfq_id, qid, Side.YES)
        assert (await maker.get_quote(rfq_id, qid)).status == "accepted"
        await maker.confirm_quote(rfq_id, qid)
        clock.advance(15 * S)
        ex.advance()
        q = await maker.get_quote(rfq_id, qid)
        assert (q.status, q.accepted_side, q.yes_bid_micros) == ("executed", Side.YES, 480_000)
        [fill] = await maker.get_fills()
        assert fill.order_id == q.creator_order_id
        assert (fill.yes_price_micros, fill.count_centi, fill.is_taker) == (480_000, 100, False)
        positions = await maker.get_positions()
        assert [(p.ticker, p.position_centi) for p in positions.market_positions] == [(T1, 100)]
        assert [m.ticker for m in await maker.list_markets()] == [T1, COMBO]
        assert (await maker.get_market(COMBO)).ticker == COMBO
        await maker.get_orderbook(T1)
        await maker.get_exchange_status()
        await maker.get_account_limits()
        await maker.get_endpoint_costs()
        assert await maker.get_communications_id() == ex.comm_id("maker")


async def test_our_rest_client_decodes_balance_breakdown(
    rest: tuple[SimExchange, ReplayClock, dict[str, httpx.AsyncClient]],
    keys: dict[str, Any],
) -> None:
    from quoter.kalshi.rest import KalshiRest

    ex, clock, _ = rest
    async with KalshiRest("http://127.0.0.1/trade-api/v2", Signer("key-maker", keys["maker"]),
                          transport=httpx.ASGITransport(app=create_app(ex)),
                          clock=clock) as maker:
        balance = await maker.get_balance()
        assert balance.cash_micros == 1_000_000_000
        assert balance.balance_breakdown is not None
        assert balance.balance_breakdown[0].balance_micros == 1_000_000_000
