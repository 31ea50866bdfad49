"""The simulator can be as unkind as Kalshi: each hostile behaviour shown on its own."""

from __future__ import annotations

import asyncio

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519

from quoter.clock import ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import Side
from quoter.kalshi.auth import KalshiAuth, Signer
from quoter.sim.app import create_app
from quoter.sim.config import FaultConfig, WorldConfig
from quoter.sim.exchange import ExchangeConfig, OutMessage, QuoteStatus, SimExchange, SimMarket
from quoter.sim.faults import FaultInjector
from quoter.sim.world import World

S = 1_000_000_000
T1 = "KXTEST-26JAN01-T1"


def _exchange(clock: ReplayClock, signers: dict[str, Signer]) -> SimExchange:
    ex = SimExchange(clock)
    for user, signer in signers.items():
        ex.register_account(user, balance_micros=1_000_000_000)
        ex.register_key(user, signer.key_id, signer.public_key())
    ex.add_market(SimMarket(T1, "KXTEST-26JAN01", "KXTEST", T1,
                            grid_for_structure("linear_cent"),
                            fees=FeeSchedule(FeeType.QUADRATIC)))
    return ex


async def test_a_held_create_response_is_written_only_after_the_accept() -> None:
    clock = ReplayClock(start_ns=5 * S, wall_offset_ns=1_780_000_000 * S)
    maker = Signer("key-maker", ed25519.Ed25519PrivateKey.generate())
    ex = _exchange(clock, {"maker": maker, "req": Signer(
        "key-req", ed25519.Ed25519PrivateKey.generate())})
    faults = FaultInjector(clock, config=FaultConfig(quote_response_hold_ms=60_000))
    app = create_app(ex, faults=faults, run_timers=False)
    created = asyncio.Event()

    def on_out(out: OutMessage) -> None:
        if out.type == "quote_created":
            created.set()

    ex.add_listener(on_out)
    rfq_id = ex.create_rfq("req", T1, contracts_centi=100)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1/trade-api/v2",
        auth=KalshiAuth(maker, lambda: clock.wall_ns() // 1_000_000),
    ) as c:
        post = asyncio.create_task(c.post("/communications/quotes", json={
            "rfq_id": rfq_id, "yes_bid": "0.48", "no_bid": "0.48", "rest_remainder": False}))
        await created.wait()
        [quote] = ex.list_quotes(rfq_id=rfq_id)
        assert quote.status is QuoteStatus.OPEN
        assert not post.done()  # the quote exists, its maker does not know its id yet
        ex.accept_quote("req", rfq_id, quote.id, Side.YES)
        r = await post
    assert (r.status_code, r.json()) == (201, {"id": quote.id})
    assert ex.get_quote(quote.id).status is QuoteStatus.ACCEPTED


def _book_deltas_after_start(quiet_fraction: float) -> tuple[int, int]:
    """(orderbook_delta frames in ten minutes after listing, single markets listed)."""
    clock = ReplayClock(start_ns=0, wall_offset_ns=1_790_000_000 * S)
    ex = SimExchange(clock, ExchangeConfig(id_seed=3))
    world = World(ex, clock, WorldConfig.model_validate({
        "markets": {"close_after_ms": {"min_ms": 3_600_000, "max_ms": 3_600_000}},
        "requesters": {"rfq_rate_per_s": 0.0},
        "liquidity": {"quiet_fraction": quiet_fraction},
    }), seed=3)
    frames: list[OutMessage] = []
    ex.add_listener(frames.append)  # after the listing: the first levels are not counted
    for _ in range(6_000):  # ten minutes in 100 ms steps
        clock.advance(100_000_000)
        world.step(clock.now_ns())
    deltas = sum(f.type == "orderbook_delta" for f in frames)
    return deltas, sum(not m.is_combo for m in world.markets.values())


def test_quiet_books_stay_unchanged_for_minutes_while_others_move() -> None:
    moving, singles = _book_deltas_after_start(0.0)
    assert singles > 0
    assert moving > 0
    quiet, _ = _book_deltas_after_start(1.0)
    assert quiet == 0


def test_markets_settle_a_while_after_they_are_determined() -> None:
    clock = ReplayClock(start_ns=0, wall_offset_ns=1_790_000_000 * S)
    ex = SimExchange(clock, ExchangeConfig(id_seed=5))
    frames: list[tuple[int, OutMessage]] = []
    ex.add_listener(lambda out: frames.append((clock.now_ns(), out)))
    world = World(ex, clock, WorldConfig.model_validate({
        "markets": {"series": 1, "events_per_series": 1, "markets_per_event": 1, "combos": 0,
                    "close_after_ms": {"min_ms": 10_000, "max_ms": 10_000},
                    "settle_delay_ms": {"min_ms": 60_000, "max_ms": 60_000}},
        "requesters": {"rfq_rate_per_s": 0.0},
    }), seed=5)
    [ticker] = [t for t, m in world.markets.items() if not m.is_combo]
    for _ in range(800):  # 80 s in 100 ms steps
        clock.advance(100_000_000)
        world.step(clock.now_ns())
    when = {out.msg["event_type"]: ts for ts, out in frames
            if out.type == "market_lifecycle_v2" and out.market_ticker == ticker
            and out.msg["event_type"] in ("determined", "settled")}
    assert when["settled"] - when["determined"] == 60 * S


def test_a_determined_market_keeps_positions_listed_until_it_is_finalized() -> None:
    clock = ReplayClock(start_ns=5 * S, wall_offset_ns=1_780_000_000 * S)
    ex = _exchange(clock, {})
    for user in ("maker", "req"):
        ex.register_account(user, balance_micros=1_000_000_000)
    rfq_id = ex.create_rfq("req", T1, contracts_centi=100)
    qid = ex.create_quote("maker", rfq_id, 480_000, 480_000, rest_remainder=False)
    ex.accept_quote("req", rfq_id, qid, Side.YES)
    ex.confirm_quote("maker", qid, rfq_id)
    clock.advance(20 * S)
    ex.advance()
    assert ex.positions("maker")[T1].position_centi == 100
    ex.determine_market(T1, Side.YES)
    assert ex.positions("maker")[T1].position_centi == 100  # listed while awaiting settlement
    ex.finalize_market(T1)
    assert T1 not in ex.positions("maker")
    assert ex.balance_micros("maker") == 1_000_000_000 - 480_000 + 1_000_000
