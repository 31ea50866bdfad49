"""Hostile world options, each on its own: pauses, lost confirm responses, balance limits, and
the shipped hostile world that turns everything on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from quoter.clock import ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketStatus, Side
from quoter.kalshi.auth import KalshiAuth, Signer
from quoter.sim.app import create_app
from quoter.sim.config import FaultConfig, WorldConfig, load_sim_config
from quoter.sim.exchange import (
    ExchangeConfig,
    OutMessage,
    QuoteStatus,
    SimError,
    SimExchange,
    SimMarket,
)
from quoter.sim.faults import FaultInjector
from quoter.sim.world import World

MS = 1_000_000
S = 1_000_000_000
WALL = 1_790_000_000 * S
REPO = Path(__file__).resolve().parents[2]
T1 = "KXTEST-26JAN01-T1"
BASE = "http://127.0.0.1/trade-api/v2"


def _world(overrides: dict[str, Any], seed: int = 7) -> tuple[World, ReplayClock,
                                                               list[tuple[int, OutMessage]]]:
    clock = ReplayClock(start_ns=0, wall_offset_ns=WALL)
    ex = SimExchange(clock, ExchangeConfig(id_seed=seed))
    frames: list[tuple[int, OutMessage]] = []
    ex.add_listener(lambda out: frames.append((clock.now_ns(), out)))
    return World(ex, clock, WorldConfig.model_validate(overrides), seed), clock, frames


def _run(world: World, clock: ReplayClock, seconds: float, step_ms: int = 100) -> None:
    end = clock.now_ns() + int(seconds * S)
    while clock.now_ns() < end:
        clock.advance(step_ms * MS)
        world.step(clock.now_ns())


# --- pauses -----------------------------------------------------------------------------------


def test_markets_pause_for_a_while_then_reopen() -> None:
    world, clock, frames = _world({
        "markets": {"series": 1, "events_per_series": 2, "markets_per_event": 3, "combos": 0,
                    "close_after_ms": {"min_ms": 3_600_000, "max_ms": 3_600_000},
                    "pause_rate_per_s": 0.1, "pause_ms": {"min_ms": 10_000, "max_ms": 10_000}},
        "requesters": {"uninformed": 4, "informed": 0, "rfq_rate_per_s": 2.0},
    })
    ex = world.exchange
    book_at_pause: dict[str, int] = {}

    def on_out(out: OutMessage) -> None:
        if out.type == "market_lifecycle_v2" and out.msg["event_type"] == "deactivated":
            book = ex.book(out.market_ticker)
            book_at_pause[out.market_ticker] = len(book.levels(Side.YES) + book.levels(Side.NO))

    ex.add_listener(on_out)
    _run(world, clock, 120)
    lifecycle = [(ts, out.market_ticker, out.msg["event_type"]) for ts, out in frames
                 if out.type == "market_lifecycle_v2"
                 and out.msg["event_type"] in ("deactivated", "activated")]
    paused = [(ts, t) for ts, t, e in lifecycle if e == "deactivated"]
    assert len(paused) >= 5
    assert world.stats()["pauses"] == len(paused)
    assert set(book_at_pause.values()) == {0}  # the book is emptied while paused
    for ts, ticker in paused:
        if ts + 10 * S > clock.now_ns():
            continue
        assert (ts + 10 * S, ticker, "activated") in lifecycle
        # No RFQ while paused; RFQs and a book again once activated.
        during = [out for t2, out in frames if ts < t2 < ts + 10 * S
                  and out.market_ticker == ticker and out.type in ("rfq_created", "fill")]
        assert during == []
        after = [out for t2, out in frames if t2 >= ts + 10 * S
                 and out.market_ticker == ticker and out.type == "orderbook_delta"]
        assert after
    inactive = sum(ex.get_market(t).status is MarketStatus.INACTIVE for t in world.markets)
    assert inactive == world.stats()["markets_paused"]


def test_a_pause_closes_open_rfqs_on_the_market() -> None:
    world, clock, frames = _world({
        "markets": {"series": 1, "events_per_series": 1, "markets_per_event": 2, "combos": 0,
                    "close_after_ms": {"min_ms": 3_600_000, "max_ms": 3_600_000},
                    "pause_rate_per_s": 0.05, "pause_ms": {"min_ms": 5_000, "max_ms": 5_000}},
        "requesters": {"uninformed": 3, "informed": 0, "rfq_rate_per_s": 2.0,
                       "rfq_lifetime_ms": {"min_ms": 60_000, "max_ms": 60_000}},
        "makers": {"count": 0},
    })
    _run(world, clock, 200)
    closed = [out for _, out in frames if out.type == "rfq_deleted"]
    assert closed  # the only way an RFQ closes before its 60 s lifetime here is a pause
    paused_at = {out.market_ticker: ts for ts, out in frames
                 if out.type == "market_lifecycle_v2" and out.msg["event_type"] == "deactivated"}
    assert {out.market_ticker for out in closed} <= set(paused_at)


# --- lost confirm responses -------------------------------------------------------------------


def _exchange(clock: ReplayClock, signers: dict[str, Signer]) -> SimExchange:
    ex = SimExchange(clock)
    for user, signer in signers.items():
        ex.register_account(user, balance_micros=1_000_000_000)
        ex.register_key(user, signer.key_id, signer.public_key())
    ex.add_market(SimMarket(T1, "KXTEST-26JAN01", "KXTEST", T1,
                            grid_for_structure("linear_cent"),
                            fees=FeeSchedule(FeeType.QUADRATIC)))
    return ex


def _accepted(ex: SimExchange) -> tuple[str, str]:
    rfq_id = ex.create_rfq("req", T1, contracts_centi=100)
    qid = ex.create_quote("maker", rfq_id, 480_000, 480_000)
    ex.accept_quote("req", rfq_id, qid, Side.YES)
    return rfq_id, qid


async def test_a_confirm_applied_but_answered_5xx_still_executes() -> None:
    clock = ReplayClock(start_ns=5 * S, wall_offset_ns=WALL)
    maker = Signer("key-maker", ed25519.Ed25519PrivateKey.generate())
    ex = _exchange(clock, {"maker": maker})
    ex.register_account("req", balance_micros=1_000_000_000)
    faults = FaultInjector(clock, config=FaultConfig.model_validate(
        {"lost_confirm_responses": {"probability": 1.0, "mode": "error", "error_status": 502}}))
    app = create_app(ex, faults=faults, run_timers=False)
    rfq_id, qid = _accepted(ex)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE,
        auth=KalshiAuth(maker, lambda: clock.wall_ns() // 1_000_000),
    ) as c:
        r = await c.put(f"/communications/quotes/{qid}/confirm", json={})
        assert r.status_code == 502
        assert ex.get_quote(qid).status is QuoteStatus.CONFIRMED  # applied all the same
        # A retry now is refused: the quote is no longer "accepted" (the ambiguous case).
        again = await c.put(f"/communications/quotes/{qid}/confirm", json={})
        assert again.status_code == 400
    assert faults.stats.confirm_responses_lost == 1  # only an applied confirm loses its answer
    clock.advance(15 * S)
    ex.advance()
    assert ex.get_quote(qid).status is QuoteStatus.EXECUTED
    assert ex.positions("maker")[T1].position_centi == 100
    assert rfq_id


async def test_a_confirm_response_can_be_held_past_the_clients_timeout() -> None:
    clock = ReplayClock(start_ns=5 * S, wall_offset_ns=WALL)
    maker = Signer("key-maker", ed25519.Ed25519PrivateKey.generate())
    ex = _exchange(clock, {"maker": maker})
    ex.register_account("req", balance_micros=1_000_000_000)
    _, qid = _accepted(ex)
    held: list[tuple[float, QuoteStatus]] = []

    async def record_sleep(seconds: float) -> None:
        held.append((seconds, ex.get_quote(qid).status))

    faults = FaultInjector(clock, sleep=record_sleep, config=FaultConfig.model_validate(
        {"lost_confirm_responses": {"probability": 1.0, "mode": "timeout", "hold_ms": 45_000}}))
    app = create_app(ex, faults=faults, run_timers=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE,
        auth=KalshiAuth(maker, lambda: clock.wall_ns() // 1_000_000),
    ) as c:
        r = await c.put(f"/communications/quotes/{qid}/confirm", json={})
    assert r.status_code == 204
    # The response waited 45 s, and the confirm had been applied before it waited.
    assert held == [(45.0, QuoteStatus.CONFIRMED)]


def test_lost_confirm_responses_are_off_by_default() -> None:
    assert FaultConfig().lost_confirm_responses.probability == 0.0


# --- balance limits ---------------------------------------------------------------------------


def _poor_world(balance: str) -> tuple[World, ReplayClock, str]:
    world, clock, _ = _world({
        "markets": {"series": 1, "events_per_series": 1, "markets_per_event": 2, "combos": 0},
        "requesters": {"rfq_rate_per_s": 0.0}, "makers": {"count": 0},
        "demo_balance_dollars": balance,
    })
    world.exchange.register_account("req", balance_micros=1_000_000_000)
    [ticker, *_] = [t for t, m in world.markets.items() if not m.is_combo]
    return world, clock, ticker


def test_a_low_demo_balance_refuses_a_confirm_it_cannot_pay() -> None:
    world, _, ticker = _poor_world("5.00")
    ex = world.exchange
    assert ex.balance_micros("quoter-demo") == 5_000_000
    rfq_id = ex.create_rfq("req", ticker, contracts_centi=10_000)
    qid = ex.create_quote("quoter-demo", rfq_id, 480_000, 480_000)
    ex.accept_quote("req", rfq_id, qid, Side.YES)
    with pytest.raises(SimError) as info:
        ex.confirm_quote("quoter-demo", qid, rfq_id)
    assert (info.value.status, info.value.code, info.value.message) == (
        400, "insufficient_balance", "INSUFFICIENT_BALANCE")
    assert ex.get_quote(qid).status is QuoteStatus.ACCEPTED


def test_confirms_that_together_exceed_the_balance_are_refused_at_confirm() -> None:
    # $60: one 100-contract confirm at $0.48 (+ fee) fits, a second does not.
    world, clock, ticker = _poor_world("60.00")
    ex = world.exchange
    other = next(t for t, m in world.markets.items() if not m.is_combo and t != ticker)
    quotes = []
    for t in (ticker, other):
        rfq_id = ex.create_rfq("req", t, contracts_centi=10_000)
        qid = ex.create_quote("quoter-demo", rfq_id, 480_000, 480_000)
        ex.accept_quote("req", rfq_id, qid, Side.YES)
        quotes.append((rfq_id, qid))
    ex.confirm_quote("quoter-demo", quotes[0][1], quotes[0][0])
    with pytest.raises(SimError) as info:
        ex.confirm_quote("quoter-demo", quotes[1][1], quotes[1][0])
    assert info.value.code == "insufficient_balance"
    # Once the first executed, its cash is spent, not reserved twice.
    clock.advance(15 * S)
    ex.advance()
    assert ex.get_quote(quotes[0][1]).status is QuoteStatus.EXECUTED
    assert ex.balance_micros("quoter-demo") <= 60_000_000 - 48_000_000
    # The second is still in its window, and still cannot be paid from the $12 left.
    with pytest.raises(SimError):
        ex.confirm_quote("quoter-demo", quotes[1][1], quotes[1][0])


# --- the hostile world ------------------------------------------------------------------------

HOSTILE = REPO / "config" / "sim-world-hostile.yaml"


def test_the_hostile_world_file_turns_everything_on() -> None:
    cfg = load_sim_config(HOSTILE)
    w, f = cfg.world, cfg.faults
    assert w.markets.nested_fraction > 0
    assert w.markets.exclusive_fraction > 0
    assert w.markets.combo_same_event_fraction > 0
    assert w.markets.pause_rate_per_s > 0
    assert w.markets.settle_delay_ms.max_ms > 0
    assert w.liquidity.quiet_fraction > 0
    assert len(set(w.markets.fee_types)) > 1
    assert len(set(w.markets.fee_multipliers)) > 1
    assert w.requesters.informed > 0
    assert w.demo_balance_micros < WorldConfig().demo_balance_micros
    assert f.quote_response_hold_ms > 0
    assert f.lost_confirm_responses.probability > 0


def test_the_hostile_world_runs_in_virtual_time() -> None:
    cfg = load_sim_config(HOSTILE)
    clock = ReplayClock(start_ns=0, wall_offset_ns=WALL)
    ex = SimExchange(clock, ExchangeConfig(id_seed=3))
    frames: list[OutMessage] = []
    ex.add_listener(frames.append)
    world = World(ex, clock, cfg.world, seed=3)
    _run(world, clock, 600, step_ms=200)  # ten simulated minutes
    stats = world.stats()
    kinds = {f.msg["event_type"] for f in frames if f.type == "market_lifecycle_v2"}
    assert {"deactivated", "activated", "determined", "settled"} <= kinds
    assert stats["pauses"] > 0
    assert stats["markets_settled"] > 0
    assert stats["rfqs_accepted"] > 0
    assert stats["quotes_confirmed"] > 0
    fee_terms = {(s.fees.fee_type, s.fees.multiplier) for s in ex.list_series()}
    assert len(fee_terms) > 2
    # Some settled combo had two legs of one structured event.
    assert any(m.is_combo and len({leg.event_ticker for leg in m.legs}) < len(m.legs)
               for m in ex.list_markets())
