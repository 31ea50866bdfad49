"""The simulator's synthetic world: determinism, markets, truth, liquidity, agents, settlement."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from quoter.clock import ReplayClock
from quoter.domain.money import MAX_PRICE_MICROS
from quoter.domain.types import ComboLeg, MarketStatus, Side
from quoter.errors import ConfigError
from quoter.kalshi.auth import Signer, load_private_key, verify_signature
from quoter.sim.config import WorldConfig, load_sim_config, parse_sim_config
from quoter.sim.exchange import ExchangeConfig, OutMessage, SimExchange
from quoter.sim.truth import TruthModel
from quoter.sim.world import COMBO_STRUCTURE, World

MS = 1_000_000
S = 1_000_000_000
WALL = 1_790_000_000 * S
REPO = Path(__file__).resolve().parents[2]

FAST: dict[str, Any] = {
    "markets": {"close_after_ms": {"min_ms": 20_000, "max_ms": 40_000}},
    "requesters": {"rfq_rate_per_s": 2.0},
    "burst": {"enabled": True, "start_after_ms": 3_000, "duration_ms": 1_000},
}


def build(seed: int, overrides: dict[str, Any] | None = None) -> tuple[World, ReplayClock,
                                                                        list[OutMessage]]:
    clock = ReplayClock(start_ns=0, wall_offset_ns=WALL)
    ex = SimExchange(clock, ExchangeConfig(id_seed=seed))
    frames: list[OutMessage] = []
    ex.add_listener(frames.append)
    world = World(ex, clock, WorldConfig.model_validate(overrides or FAST), seed=seed)
    return world, clock, frames


def run_for(world: World, clock: ReplayClock, seconds: float, step_ms: int = 100) -> None:
    end = clock.now_ns() + int(seconds * S)
    while clock.now_ns() < end:
        clock.advance(step_ms * MS)
        world.step(clock.now_ns())


def encode(frames: list[OutMessage]) -> bytes:
    return b"\n".join(
        json.dumps(
            [f.channel, f.type, f.market_ticker, sorted(f.recipients or []), f.msg],
            sort_keys=True, separators=(",", ":"),
        ).encode()
        for f in frames
    )


# --- determinism ------------------------------------------------------------------------


def test_same_seed_same_clock_gives_byte_identical_frames() -> None:
    runs = []
    for _ in range(2):
        world, clock, frames = build(11)
        run_for(world, clock, 8)
        runs.append(encode(frames))
    assert len(runs[0]) > 10_000
    assert runs[0] == runs[1]


def test_different_seed_differs() -> None:
    out = []
    for seed in (11, 12):
        world, clock, frames = build(seed)
        run_for(world, clock, 3)
        out.append(encode(frames))
    assert out[0] != out[1]


# --- markets ------------------------------------------------------------------------------


def test_world_lists_single_markets_with_mixed_grids_and_combos_over_them() -> None:
    world, _, _ = build(3, {"markets": {"series": 4, "combos": 5}})
    ex = world.exchange
    singles = [m for m in ex.list_markets() if not m.legs]
    combos = [m for m in ex.list_markets() if m.legs]
    assert len(singles) == 4 * 2 * 3
    assert len({m.price_level_structure for m in singles}) >= 2
    assert len(combos) == 5
    single_tickers = {m.ticker for m in singles}
    for c in combos:
        assert c.ticker.startswith("KXMVE")
        assert c.mve_collection_ticker == "KXMVECROSSCATEGORY-SHARD1-R"
        assert c.is_hvm
        assert c.price_level_structure == COMBO_STRUCTURE
        assert c.exchange_index == 1
        assert {leg.market_ticker for leg in c.legs} <= single_tickers
        # distinct events: no duplicated or conflicting legs
        assert len({leg.event_ticker for leg in c.legs}) == len(c.legs)
        assert c.close_ts_ms is not None


def test_combo_truth_is_product_of_legs_with_sides_honoured() -> None:
    import random

    truth = TruthModel(random.Random(0), volatility_per_sqrt_s=0.0, jump_rate_per_s=0.0,
                       jump_std=0.0)
    truth.add("A", 0.8)
    truth.add("B", 0.3)
    legs = (ComboLeg("EA", "A", Side.YES), ComboLeg("EB", "B", Side.NO))
    assert truth.combo_p_yes(legs) == pytest.approx(0.8 * 0.7)
    assert truth.micros(truth.combo_p_yes(legs)) == 560_000


def test_truth_moves_and_stays_inside_zero_one() -> None:
    world, clock, _ = build(5, {"truth": {"volatility_per_sqrt_s": 0.5, "jump_rate_per_s": 1.0}})
    ticker = world.truth.tickers()[0]
    before = world.truth_micros(ticker)
    run_for(world, clock, 5, step_ms=500)
    after = world.truth_micros(ticker)
    assert before != after
    assert all(0 < world.truth_micros(t) < MAX_PRICE_MICROS for t in world.truth.tickers())


def test_liquidity_provider_rests_levels_around_the_truth_and_follows_it() -> None:
    world, clock, frames = build(8, {"liquidity": {"levels": 3},
                                     "truth": {"volatility_per_sqrt_s": 0.3}})
    for ticker in world.truth.tickers():
        book = world.exchange.book(ticker)
        yes, no = book.best(Side.YES), book.best(Side.NO)
        assert yes is not None
        assert no is not None
        fair = world.truth_micros(ticker)
        assert yes[0] < fair < MAX_PRICE_MICROS - no[0]
        assert len(book.levels(Side.YES)) >= 1
    n_deltas = sum(f.type == "orderbook_delta" for f in frames)
    run_for(world, clock, 5, step_ms=1000)
    assert sum(f.type == "orderbook_delta" for f in frames) > n_deltas


# --- agents -------------------------------------------------------------------------------


def test_requesters_create_rfqs_of_both_kinds_and_delete_them_after_a_lifetime() -> None:
    world, clock, frames = build(21, {
        "requesters": {"rfq_rate_per_s": 3.0, "target_cost_fraction": 0.5,
                       "combo_fraction": 0.5, "rfq_lifetime_ms": {"min_ms": 500, "max_ms": 900},
                       "accept_delay_ms": {"min_ms": 2_000, "max_ms": 2_000}},
        "makers": {"count": 0},
    })
    run_for(world, clock, 10)
    created = [f.msg for f in frames if f.type == "rfq_created"]
    deleted = {f.msg["id"] for f in frames if f.type == "rfq_deleted"}
    assert any("target_cost_dollars" in m for m in created)
    assert any("contracts_fp" in m and "target_cost_dollars" not in m for m in created)
    assert any(m.get("mve_collection_ticker") for m in created)
    # nobody quoted, nothing accepted: every RFQ past its lifetime was deleted
    assert {m["id"] for m in created[:-10]} <= deleted


def test_makers_quote_and_confirm_and_trades_execute() -> None:
    world, clock, frames = build(4, {"requesters": {"rfq_rate_per_s": 2.0}})
    run_for(world, clock, 30)
    types = {f.type for f in frames}
    assert {"quote_created", "quote_accepted", "quote_executed", "fill"} <= types
    assert world.makers.confirmed > 0
    executed_makers = {r for f in frames if f.type == "quote_executed" for r in f.recipients or ()}
    assert any(u.startswith("sim-maker-") for u in executed_makers)


def _accepts_with_truth(world: World) -> list[tuple[dict[str, Any], int, int | None]]:
    """Record (quote_accepted msg, truth then, book best ask for the bought side then)."""
    seen: list[tuple[dict[str, Any], int, int | None]] = []

    def listener(out: OutMessage) -> None:
        if out.type != "quote_accepted":
            return
        m = world.markets[out.market_ticker]
        ask = None
        if not m.legs:
            bought = Side.NO if out.msg["accepted_side"] == "yes" else Side.YES
            best = world.exchange.book(m.ticker).best(bought.other)
            ask = None if best is None else MAX_PRICE_MICROS - best[0]
        seen.append((out.msg, world.truth_micros(m.ticker), ask))

    world.exchange.add_listener(listener)
    return seen


def _requester_cost_and_value(msg: dict[str, Any], truth: int) -> tuple[int, int]:
    from quoter.domain.money import parse_dollars

    if msg["accepted_side"] == "no":  # requester buys YES at 1 - no_bid
        return MAX_PRICE_MICROS - parse_dollars(msg["no_bid_dollars"]), truth
    return MAX_PRICE_MICROS - parse_dollars(msg["yes_bid_dollars"]), MAX_PRICE_MICROS - truth


def test_informed_requesters_accept_only_quotes_wrong_in_their_favour() -> None:
    world, clock, _ = build(31, {
        "requesters": {"uninformed": 0, "informed": 3, "rfq_rate_per_s": 3.0,
                       "informed_min_edge_dollars": "0.01"},
        "makers": {"count": 3, "noise_dollars": "0.05", "edge_dollars": "0.005"},
    })
    seen = _accepts_with_truth(world)
    run_for(world, clock, 30)
    assert len(seen) >= 5
    for msg, truth, _ in seen:
        cost, value = _requester_cost_and_value(msg, truth)
        assert value - cost >= 10_000, (msg, truth)


def test_uninformed_requesters_accept_only_when_the_quote_beats_the_book() -> None:
    world, clock, _ = build(32, {
        "requesters": {"uninformed": 4, "informed": 0, "rfq_rate_per_s": 3.0,
                       "combo_fraction": 0.0},
        "makers": {"count": 3, "edge_dollars": "0.005"},
        "liquidity": {"half_spread_dollars": "0.03"},
    })
    seen = _accepts_with_truth(world)
    run_for(world, clock, 30)
    assert len(seen) >= 5
    for msg, truth, ask in seen:
        cost, _ = _requester_cost_and_value(msg, truth)
        assert ask is not None
        assert cost < ask


def test_burst_mode_floods_over_a_thousand_rfq_frames_per_second() -> None:
    world, clock, frames = build(9, {
        "requesters": {"rfq_rate_per_s": 0.0}, "makers": {"count": 0},
        "burst": {"enabled": True, "rfq_rate_per_s": 1500, "start_after_ms": 1_000,
                  "duration_ms": 1_000, "lifetime_ms": 100},
    })
    run_for(world, clock, 1.0)
    before = sum(f.type == "rfq_created" for f in frames)
    run_for(world, clock, 1.0, step_ms=10)
    burst = sum(f.type == "rfq_created" for f in frames) - before
    assert burst >= 1_000
    run_for(world, clock, 1.0)
    assert world.exchange.ledger_snapshot()["open_rfqs"] == 0


# --- settlement ---------------------------------------------------------------------------


def test_markets_close_settle_from_truth_and_are_replaced() -> None:
    world, clock, frames = build(13, {
        "markets": {"series": 1, "events_per_series": 2, "markets_per_event": 2, "combos": 3,
                    "close_after_ms": {"min_ms": 2_000, "max_ms": 3_000}},
        "requesters": {"rfq_rate_per_s": 0.0},
    })
    first = set(world.truth.tickers())
    combos = [m for m in world.markets.values() if m.legs]
    run_for(world, clock, 3.5)
    ex = world.exchange
    for t in first:
        m = ex.get_market(t)
        assert m.status == MarketStatus.FINALIZED
        assert m.result == world.truth.result(t)
        assert ex.book(t).best(Side.YES) is None  # liquidity withdrawn
    for c in combos:
        m = ex.get_market(c.ticker)
        leg_results = [world.truth.result(leg.market_ticker) for leg in c.legs]
        wins = all(r is leg.side for r, leg in zip(leg_results, c.legs, strict=True))
        assert m.result == (Side.YES if wins else Side.NO)
    assert len(world.truth.tickers()) == len(first)  # replacements listed
    assert not first & set(world.truth.tickers())
    assert any(f.type == "market_lifecycle_v2" and f.msg.get("event_type") == "settled"
               for f in frames)


# --- demo account, live mode --------------------------------------------------------------


def test_demo_key_is_written_0600_and_registered(tmp_path: Path) -> None:
    world, _, _ = build(1)
    path = tmp_path / "keys" / "demo.pem"
    key_id = world.register_demo_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    user, public_key = world.exchange.key(key_id)  # type: ignore[misc]
    assert user == "quoter-demo"
    signer = Signer(key_id, load_private_key(path))
    message = "1703123456789GET/trade-api/v2/portfolio/balance"
    assert verify_signature(public_key, message, signer.sign(message))
    assert world.exchange.balance_micros("quoter-demo") == 10_000 * 1_000_000


async def test_run_steps_on_the_clock_until_cancelled() -> None:
    world, clock, frames = build(2)
    calls: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        calls.append(seconds)
        clock.advance(10 * MS)
        if len(calls) >= 300:
            raise asyncio.CancelledError
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        await world.run(fake_sleep)
    assert all(0 <= s <= 0.01 for s in calls)
    assert world.sched.now_ns == clock.now_ns() - 10 * MS
    assert any(f.type == "rfq_created" for f in frames)


# --- config -------------------------------------------------------------------------------


def test_example_world_file_loads() -> None:
    cfg = load_sim_config(REPO / "config" / "sim-world.yaml")
    assert cfg.world.makers.edge_micros > 0
    assert cfg.world.burst.rfq_rate_per_s >= 1_000


def test_config_parses_money_exactly_and_rejects_floats_and_unknown_keys() -> None:
    cfg = parse_sim_config('world:\n  makers:\n    edge_dollars: "0.0125"\n'
                           "  liquidity:\n    size_contracts: 12\n")
    assert cfg.world.makers.edge_micros == 12_500
    assert cfg.world.liquidity.size_centi == 1_200
    with pytest.raises(ConfigError, match="edge_dollars"):
        parse_sim_config("world:\n  makers:\n    edge_dollars: 0.02\n", "w.yaml")
    with pytest.raises(ConfigError, match=r"w.yaml:3: world.liquidity.bogus"):
        parse_sim_config("world:\n  liquidity:\n    bogus: 1\n", "w.yaml")
    with pytest.raises(ConfigError, match="range minimum"):
        parse_sim_config("world:\n  makers:\n    quote_delay_ms: {min_ms: 5, max_ms: 1}\n")


#: A load world (also in docs/simulator.md): 1,000 single markets, 400 requesters at 3 RFQs/s.
LOAD_WORLD = """
world:
  markets: {series: 10, events_per_series: 10, markets_per_event: 10, combos: 20}
  liquidity: {levels: 1}
  requesters: {uninformed: 380, informed: 20, rfq_rate_per_s: 3.0,
               rfq_lifetime_ms: {min_ms: 2000, max_ms: 6000}}
  makers: {count: 1}
"""


def test_a_scaled_world_offers_over_a_thousand_rfqs_per_simulated_second() -> None:
    clock = ReplayClock(start_ns=0, wall_offset_ns=WALL)
    ex = SimExchange(clock, ExchangeConfig(id_seed=5))
    created_ns: list[int] = []
    ex.add_listener(lambda out: created_ns.append(clock.now_ns())
                    if out.type == "rfq_created" else None)
    world = World(ex, clock, parse_sim_config(LOAD_WORLD).world, seed=5)
    assert world.stats()["markets_active"] == 1_020
    run_for(world, clock, 3, step_ms=10)
    per_second = [sum(k * S <= t < (k + 1) * S for t in created_ns) for k in range(3)]
    assert min(per_second) >= 1_000, per_second
    stats = world.stats()
    assert stats["rfqs_created"] == len(created_ns)
    assert stats["rfqs_capped"] == 0
    # Many open at once per requester, each on its own market (Kalshi: one per market).
    open_rfqs = ex.list_rfqs(status="open")
    assert len(open_rfqs) > 2_000
    pairs = [(r.user_id, r.market_ticker) for r in open_rfqs]
    assert len(set(pairs)) == len(pairs)


def test_a_requester_out_of_markets_is_capped_not_refused() -> None:
    # 2 markets, 1 requester at a high rate with long lifetimes: after two RFQs it has no
    # market left, so later arrivals are counted as capped instead of refused creates.
    world, clock, _frames = build(3, {
        "markets": {"series": 1, "events_per_series": 1, "markets_per_event": 2, "combos": 0},
        "requesters": {"uninformed": 1, "informed": 0, "rfq_rate_per_s": 50.0,
                       "rfq_lifetime_ms": {"min_ms": 60_000, "max_ms": 60_000}},
        "makers": {"count": 0},
    })
    run_for(world, clock, 1)
    stats = world.stats()
    assert stats["rfqs_created"] == 2
    assert stats["rfqs_capped"] > 20
    assert sorted(r.market_ticker for r in world.exchange.list_rfqs(status="open")) == sorted(
        world.markets)
