"""Endpoints other clients call: events, batch orderbooks, exchange schedule, user-data
timestamp, deposits and withdrawals — each validated against the official SDK's models."""

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
from quoter.sim.app import create_app
from quoter.sim.exchange import SimExchange, SimMarket

S = 1_000_000_000
EV1, EV2 = "KXEP-26JAN01", "KXEP-26JAN02"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    clock = ReplayClock(start_ns=5 * S, wall_offset_ns=1_780_000_000 * S)
    ex = SimExchange(clock)
    signer = Signer("key-u", ed25519.Ed25519PrivateKey.generate())
    ex.register_account("u", balance_micros=1_000_000_000)
    ex.register_key("u", signer.key_id, signer.public_key())
    for ev, n in ((EV1, 2), (EV2, 1)):
        for i in range(n):
            ex.add_market(SimMarket(f"{ev}-T{i}", ev, "KXEP", "m",
                                    grid_for_structure("linear_cent"),
                                    fees=FeeSchedule(FeeType.QUADRATIC)))
    ex.place_order("u", f"{EV1}-T0", Side.YES, 400_000, 300)
    async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(ex)),
            base_url="http://127.0.0.1/trade-api/v2",
            auth=KalshiAuth(signer, lambda: clock.wall_ns() // 1_000_000)) as c:
        yield c


def _sdk(name: str, data: dict[str, Any]) -> Any:
    sdk = pytest.importorskip("kalshi_python_sync")
    return getattr(sdk.models, name).model_validate(data)


async def test_events_list_and_one(http: httpx.AsyncClient) -> None:
    body = (await http.get("/events", params={"series_ticker": "KXEP"})).json()
    assert [e["event_ticker"] for e in body["events"]] == [EV1, EV2]
    assert "markets" not in body["events"][0]
    _sdk("GetEventsResponse", body)
    nested = (await http.get("/events", params={"with_nested_markets": "true",
                                                "limit": 1})).json()
    assert [m["ticker"] for m in nested["events"][0]["markets"]] == [f"{EV1}-T0", f"{EV1}-T1"]
    assert nested["cursor"]
    one = (await http.get(f"/events/{EV2}")).json()
    assert one["event"]["series_ticker"] == "KXEP"
    assert [m["ticker"] for m in one["markets"]] == [f"{EV2}-T0"]
    _sdk("GetEventResponse", one)
    missing = await http.get("/events/KXNOPE-1")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")


async def test_batch_orderbooks(http: httpx.AsyncClient) -> None:
    # Repeated (the SDK's form) and comma-separated tickers both work.
    r = await http.get("/markets/orderbooks", params=[("tickers", f"{EV1}-T0"),
                                                      ("tickers", f"{EV2}-T0")])
    body = r.json()
    assert [b["ticker"] for b in body["orderbooks"]] == [f"{EV1}-T0", f"{EV2}-T0"]
    assert body["orderbooks"][0]["orderbook_fp"]["yes_dollars"] == [["0.4000", "3.00"]]
    _sdk("GetMarketOrderbooksResponse", body)
    comma = (await http.get("/markets/orderbooks",
                            params={"tickers": f"{EV1}-T1,{EV2}-T0"})).json()
    assert len(comma["orderbooks"]) == 2
    assert (await http.get("/markets/orderbooks")).status_code == 400


async def test_exchange_and_account_extras(http: httpx.AsyncClient) -> None:
    schedule = (await http.get("/exchange/schedule")).json()
    parsed = _sdk("GetExchangeScheduleResponse", schedule)
    assert parsed.schedule.maintenance_windows == []
    assert schedule["schedule"]["standard_hours"][0]["thursday"] == [
        {"open_time": "00:00", "close_time": "23:59"}]
    ts = (await http.get("/exchange/user_data_timestamp")).json()
    assert ts == {"as_of_time": "2026-05-28T20:26:45.000000Z"}
    _sdk("GetUserDataTimestampResponse", ts)
    deposits = (await http.get("/portfolio/deposits")).json()
    assert deposits == {"deposits": [], "cursor": ""}
    _sdk("GetDepositsResponse", deposits)
    _sdk("GetWithdrawalsResponse", (await http.get("/portfolio/withdrawals")).json())
