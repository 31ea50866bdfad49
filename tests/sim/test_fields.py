"""Field-level differences from the real exchange, fixed (kalshi-api.md §0a, recorded responses):
``portfolio_value`` = open positions only, cash amounts with 6 decimals, positions'
``event_positions`` and ``resting_orders_count``, the requester's closing fill reported as a
sell, ``endpoint_costs`` paths written ``:quote_id``, the extra market fields, and an off-grid
quote accepted as the demo exchange did."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from quoter.clock import ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import Side
from quoter.kalshi.auth import KalshiAuth, Signer
from quoter.kalshi.ratelimit import RateLimiter
from quoter.kalshi.rest import KalshiRest
from quoter.sim.app import create_app
from quoter.sim.exchange import SimExchange, SimMarket

S = 1_000_000_000
T1 = "KXMLBGAME-26JUL081840NYYTB-NYY"
EVENT = "KXMLBGAME-26JUL081840NYYTB"
BASE = "http://127.0.0.1/trade-api/v2"


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {u: Signer(f"key-{u}", ed25519.Ed25519PrivateKey.generate())
            for u in ("maker", "req", "lp")}


@pytest.fixture
def world(signers: dict[str, Signer]) -> tuple[SimExchange, ReplayClock]:
    clock = ReplayClock(start_ns=5 * S, wall_offset_ns=1_780_000_000 * S)
    ex = SimExchange(clock)
    for user, signer in signers.items():
        ex.register_account(user, balance_micros=1_000_000_000)  # $1000 = 100000 cents
        ex.register_key(user, signer.key_id, signer.public_key())
    ex.add_market(SimMarket(T1, EVENT, "KXMLBGAME", "NYY", grid_for_structure("linear_cent"),
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


def _trade(ex: SimExchange, clock: ReplayClock, side: Side) -> None:
    """The §0a case: a 1-contract RFQ, maker quotes 0.48 / 0.48, requester accepts ``side``."""
    rfq = ex.create_rfq("req", T1, contracts_centi=100, replace_existing=True)
    qid = ex.create_quote("maker", rfq, 480_000, 480_000)
    ex.accept_quote("req", rfq, qid, side)
    ex.confirm_quote("maker", qid, rfq)
    clock.advance(15 * S)
    ex.advance()


async def test_portfolio_value_is_open_positions_only(
    world: tuple[SimExchange, ReplayClock], http: dict[str, httpx.AsyncClient],
) -> None:
    ex, clock = world
    _trade(ex, clock, Side.YES)
    bal = (await http["maker"].get("/portfolio/balance")).json()
    # Recorded on demo: balance 99952, portfolio_value 48 (not 99952 + 48).
    assert (bal["balance"], bal["portfolio_value"]) == (99952, 48)
    assert bal["balance_dollars"] == "999.520000"
    assert bal["balance_breakdown"] == [{"exchange_index": 0, "balance": "999.520000"}]


async def test_positions_carry_six_decimals_events_and_resting_orders(
    world: tuple[SimExchange, ReplayClock], http: dict[str, httpx.AsyncClient],
) -> None:
    ex, clock = world
    _trade(ex, clock, Side.YES)
    ex.place_order("maker", T1, Side.YES, 300_000, 100)
    ex.place_order("maker", T1, Side.YES, 310_000, 100)
    body = (await http["maker"].get("/portfolio/positions")).json()
    [pos] = body["market_positions"]
    assert pos["market_exposure_dollars"] == "0.480000"
    assert pos["total_traded_dollars"] == "0.480000"
    assert pos["fees_paid_dollars"] == "0.000000"
    assert pos["resting_orders_count"] == 2
    assert body["event_positions"] == [{
        "event_ticker": EVENT, "total_cost_dollars": "0.480000",
        "total_cost_shares_fp": "1.00", "event_exposure_dollars": "0.480000",
        "realized_pnl_dollars": "0.000000", "fees_paid_dollars": "0.000000"}]
    sdk = pytest.importorskip("kalshi_python_sync")
    sdk.models.GetPositionsResponse.model_validate(body)
    req = (await http["req"].get("/portfolio/positions")).json()
    assert req["market_positions"][0]["resting_orders_count"] == 0


async def test_requesters_closing_fill_is_a_sell_of_the_held_side(
    world: tuple[SimExchange, ReplayClock], http: dict[str, httpx.AsyncClient],
) -> None:
    ex, clock = world
    _trade(ex, clock, Side.NO)   # requester buys YES at 0.52
    _trade(ex, clock, Side.YES)  # requester buys NO at 0.52: closes its YES
    fills = (await http["req"].get("/portfolio/fills")).json()["fills"]
    closing, opening = fills  # newest first
    assert (opening["outcome_side"], opening["side"], opening["action"]) == ("yes", "yes", "buy")
    assert (closing["outcome_side"], closing["side"], closing["action"]) == ("no", "yes", "sell")
    assert closing["is_taker"] is True
    maker = (await http["maker"].get("/portfolio/fills")).json()["fills"]
    assert [f["action"] for f in maker] == ["sell", "buy"]


async def test_endpoint_costs_use_colon_parameters_and_our_limiter_reads_them(
    world: tuple[SimExchange, ReplayClock], http: dict[str, httpx.AsyncClient],
    signers: dict[str, Signer],
) -> None:
    ex, clock = world
    body = (await http["maker"].get("/account/endpoint_costs")).json()
    paths = [c["path"] for c in body["endpoint_costs"]]
    assert "/trade-api/v2/communications/rfqs/:rfq_id/quotes/:quote_id" in paths
    assert not [p for p in paths if "{" in p]
    async with KalshiRest(BASE, signers["maker"],
                          transport=httpx.ASGITransport(app=create_app(ex)),
                          clock=clock) as rest:
        costs = await rest.get_endpoint_costs()
        limiter = RateLimiter(now_ns=clock.now_ns)
        limiter.configure_from(await rest.get_account_limits(), costs)
    assert limiter.cost_for("DELETE", "/communications/rfqs/{rfq_id}/quotes/{quote_id}") == 2
    assert limiter.cost_for("PUT", "/communications/rfqs/{rfq_id}/quotes/{quote_id}/confirm") == 10


async def test_market_object_has_the_real_exchanges_fields(
    http: dict[str, httpx.AsyncClient],
) -> None:
    m: dict[str, Any] = (await http["maker"].get(f"/markets/{T1}")).json()["market"]
    for name in ("occurrence_datetime", "strike_type", "custom_strike", "early_close_condition",
                 "fractional_trading_enabled", "liquidity_dollars", "response_price_units"):
        assert name in m, name
    assert m["fractional_trading_enabled"] is True
    assert m["liquidity_dollars"] == "0.000000"


async def test_off_grid_quote_is_accepted_as_demo_did(
    world: tuple[SimExchange, ReplayClock], http: dict[str, httpx.AsyncClient],
) -> None:
    ex, _ = world
    rfq = ex.create_rfq("req", T1, contracts_centi=100)
    r = await http["maker"].post("/communications/quotes", json={
        "rfq_id": rfq, "yes_bid": "0.3550", "no_bid": "0", "rest_remainder": False})
    assert r.status_code == 201
    q = (await http["maker"].get(f"/communications/quotes/{r.json()['id']}")).json()["quote"]
    assert q["yes_bid_dollars"] == "0.3550"
    bad = await http["maker"].post("/communications/quotes", json={
        "rfq_id": rfq, "yes_bid": "0.35505", "no_bid": "0", "rest_remainder": False})
    assert bad.status_code == 400  # nothing trades finer than $0.0001
