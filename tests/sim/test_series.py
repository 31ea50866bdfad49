"""Series carry the fee terms (``fee_type``, ``fee_multiplier``), the exchange charges by them,
and ``GET /series``, ``/series/{ticker}``, ``/series/fee_changes`` answer the SDK's shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from quoter.clock import ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import Side
from quoter.errors import ConfigError
from quoter.kalshi.auth import KalshiAuth, Signer
from quoter.sim.app import create_app
from quoter.sim.config import parse_sim_config
from quoter.sim.exchange import SimExchange, SimMarket, SimSeries
from quoter.sim.world import World

S = 1_000_000_000
WALL0 = 1_780_000_000 * S
MAKERFEE = FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES, Fraction(2))
HALF = FeeSchedule(FeeType.QUADRATIC, Fraction(1, 2))


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {u: Signer(f"key-{u}", ed25519.Ed25519PrivateKey.generate()) for u in ("maker", "req")}


@pytest.fixture
def clock() -> ReplayClock:
    return ReplayClock(start_ns=5 * S, wall_offset_ns=WALL0)


@pytest.fixture
def ex(clock: ReplayClock, signers: dict[str, Signer]) -> SimExchange:
    ex = SimExchange(clock)
    for u, s in signers.items():
        ex.register_account(u, balance_micros=1_000_000_000)
        ex.register_key(u, s.key_id, s.public_key())
    ex.add_series(SimSeries("KXFEEA", title="Series A", category="Sports", fees=MAKERFEE,
                            tags=("Baseball",)))
    ex.add_series(SimSeries("KXFEEB", title="Series B", category="Economics", fees=HALF))
    # The market says plain quadratic; its series' terms win (fees live on the series).
    for series in ("KXFEEA", "KXFEEB"):
        ex.add_market(SimMarket(f"{series}-26JAN01-T1", f"{series}-26JAN01", series, "m",
                                grid_for_structure("linear_cent"),
                                fees=FeeSchedule(FeeType.QUADRATIC)))
    return ex


@pytest.fixture
async def http(ex: SimExchange, clock: ReplayClock, signers: dict[str, Signer],
               ) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(ex)),
            base_url="http://127.0.0.1/trade-api/v2",
            auth=KalshiAuth(signers["maker"], lambda: clock.wall_ns() // 1_000_000)) as c:
        yield c


def _sdk_check(model_name: str, data: dict[str, Any]) -> None:
    sdk = pytest.importorskip("kalshi_python_sync")
    model = getattr(sdk.models, model_name)
    model.model_validate(data)


def _execute(ex: SimExchange, clock: ReplayClock, ticker: str) -> tuple[int, int]:
    """One 1-contract RFQ at $0.48, accepted YES and confirmed: (maker fee, requester fee)."""
    rfq = ex.create_rfq("req", ticker, contracts_centi=100)
    qid = ex.create_quote("maker", rfq, 480_000, 480_000)
    ex.accept_quote("req", rfq, qid, Side.YES)
    ex.confirm_quote("maker", qid, rfq)
    clock.advance(15 * S)
    ex.advance()
    return ex.fills("maker")[-1].fee_micros, ex.fills("req")[-1].fee_micros


async def test_get_series_is_exact(http: httpx.AsyncClient, clock: ReplayClock) -> None:
    r = await http.get("/series/KXFEEA")
    assert r.status_code == 200
    body = r.json()
    assert body == {"series": {
        "ticker": "KXFEEA", "frequency": "custom", "title": "Series A", "category": "Sports",
        "categories": ["Sports"], "tags": ["Baseball"], "settlement_sources": [],
        "contract_url": "", "contract_terms_url": "",
        "fee_type": "quadratic_with_maker_fees", "fee_multiplier": 2,
        "additional_prohibitions": [], "last_updated_ts": "2026-05-28T20:26:45.000000Z",
        "exchange_index": 0}}
    _sdk_check("GetSeriesResponse", body)
    half = (await http.get("/series/KXFEEB", params={"include_volume": "true"})).json()
    assert (half["series"]["fee_type"], half["series"]["fee_multiplier"]) == ("quadratic", 0.5)
    assert half["series"]["volume_fp"] == "0.00"
    missing = await http.get("/series/KXNOPE")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    bad = await http.get("/series/KXFEEA", params={"include_volume": "yes"})
    assert bad.status_code == 400


async def test_list_series_filters(http: httpx.AsyncClient) -> None:
    body = (await http.get("/series")).json()
    assert [s["ticker"] for s in body["series"]] == ["KXFEEA", "KXFEEB"]
    _sdk_check("GetSeriesListResponse", body)
    econ = (await http.get("/series", params={"category": "Economics"})).json()
    assert [s["ticker"] for s in econ["series"]] == ["KXFEEB"]
    tagged = (await http.get("/series", params={"tags": "Baseball"})).json()
    assert [s["ticker"] for s in tagged["series"]] == ["KXFEEA"]


def test_fills_are_charged_by_the_series_terms(ex: SimExchange, clock: ReplayClock) -> None:
    maker_fee, req_fee = _execute(ex, clock, "KXFEEA-26JAN01-T1")
    # 0.07 x 2 x 0.48 x 0.52 = 0.034944 -> $0.0350; maker 0.25 of that: 0.008736 -> $0.0088.
    assert (maker_fee, req_fee) == (8_800, 35_000)
    maker_fee, req_fee = _execute(ex, clock, "KXFEEB-26JAN01-T1")
    # Plain quadratic at 0.5x: no maker fee; taker 0.008736 -> $0.0088.
    assert (maker_fee, req_fee) == (0, 8_800)


async def test_fee_change_is_listed_then_applied(http: httpx.AsyncClient, ex: SimExchange,
                                                 clock: ReplayClock) -> None:
    cid = ex.schedule_fee_change("KXFEEB", FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES),
                                 clock.wall_ns() + 10 * S)
    body = (await http.get("/series/fee_changes", params={"series_ticker": "KXFEEB"})).json()
    assert body == {"series_fee_change_arr": [{
        "id": cid, "series_ticker": "KXFEEB", "fee_type": "quadratic_with_maker_fees",
        "fee_multiplier": 1, "scheduled_ts": "2026-05-28T20:26:55.000000Z"}]}
    _sdk_check("GetSeriesFeeChangesResponse", body)
    assert (await http.get("/series/fee_changes", params={"series_ticker": "KXFEEA"})
            ).json() == {"series_fee_change_arr": []}
    clock.advance(10 * S)
    ex.advance()
    s = (await http.get("/series/KXFEEB")).json()["series"]
    assert (s["fee_type"], s["fee_multiplier"]) == ("quadratic_with_maker_fees", 1)
    assert (await http.get("/series/fee_changes")).json()["series_fee_change_arr"] == []
    past = (await http.get("/series/fee_changes", params={"show_historical": "true"})).json()
    assert [c["id"] for c in past["series_fee_change_arr"]] == [cid]
    maker_fee, _ = _execute(ex, clock, "KXFEEB-26JAN01-T1")
    assert maker_fee == 4_400  # 0.0175 x 0.48 x 0.52 = 0.004368 -> $0.0044


def test_world_draws_fee_terms_per_series(clock: ReplayClock) -> None:
    cfg = parse_sim_config("""
world:
  markets:
    series: 4
    events_per_series: 1
    markets_per_event: 1
    fee_types: [quadratic_with_maker_fees]
    fee_multipliers: ["1", "0.5", "2"]
    combos: 1
  requesters: {uninformed: 0, informed: 0}
  makers: {count: 0}
""").world
    ex = SimExchange(clock)
    World(ex, clock, cfg, seed=3)
    series = {s.ticker: s.fees for s in ex.list_series()}
    singles = {t: f for t, f in series.items() if not t.startswith("KXMVE")}
    assert len(singles) == 4
    assert {f.multiplier for f in singles.values()} <= {Fraction(1), Fraction(1, 2), Fraction(2)}
    assert len({f.multiplier for f in singles.values()}) > 1
    [combo] = [f for t, f in series.items() if t.startswith("KXMVE")]
    assert combo.fee_type == FeeType.QUADRATIC_WITH_COMBO_MAKER_FEES
    for m in ex.list_markets():
        assert m.fees == series[m.series_ticker]


def test_bad_fee_multiplier_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="fee multiplier"):
        parse_sim_config("world:\n  markets:\n    fee_multipliers: ['lots']\n")
