"""The runtime drives process-isolated strategies: a real engine, a real pool, real workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pool_pricers
import pytest

from quoter.clock import LiveClock
from quoter.config import QuoterConfig, parse_config
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketInfo, MarketStatus
from quoter.engine.engine import Engine
from quoter.runtime.driver import Runtime, RuntimeHooks
from quoter.runtime.pricing_pool import PricingPool

T = "KXTEST-26JAN01-A"
MARKET = MarketInfo(T, "KXTEST-26JAN01", "KXTEST", MarketStatus.ACTIVE,
                    grid_for_structure("linear_cent"))


class _Exchange:
    """An in-memory execution / market-data port: records what it is asked."""

    def __init__(self) -> None:
        self.quotes: list[tuple[str, int, int]] = []

    async def submit_quote(
        self, rfq_id: str, yes_bid_micros: int, no_bid_micros: int, *,
        rest_remainder: bool, post_only: bool, subaccount: int | None,
    ) -> str:
        self.quotes.append((rfq_id, yes_bid_micros, no_bid_micros))
        return f"q{len(self.quotes)}"

    async def confirm_quote(self, rfq_id: str, quote_id: str, *,
                            deadline_ns: int | None = None) -> None:
        return None

    async def cancel_quote(self, rfq_id: str, quote_id: str) -> None:
        return None

    async def fetch_market(self, ticker: str) -> MarketInfo:
        return MARKET

    async def fetch_book(self, ticker: str, ts_recv_ns: int) -> E.BookSnapshotReceived:
        return E.BookSnapshotReceived(ticker, (), (), ts_recv_ns)


class _Decisions(RuntimeHooks):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.changed = asyncio.Event()

    def on_decision(self, decision: C.RecordDecision, now_ns: int) -> None:
        self.seen.append((decision.rfq_id, decision.decision, decision.reason))
        self.changed.set()


def _config(params: str) -> QuoterConfig:
    return parse_config(f"""
version: 1
strategies:
  - name: heavy
    pricer: {{name: pool_sleepy, params: {params}}}
    quoting: {{isolation: process, pricer_timeout_ms: 400}}
""")


async def _until(hooks: _Decisions, cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(20.0):
        while True:
            hooks.changed.clear()
            if cond():
                return
            await hooks.changed.wait()


async def _run(
    cfg: QuoterConfig, pool: PricingPool | None, rfqs: list[str], done: Callable[[_Decisions], bool]
) -> tuple[_Exchange, _Decisions]:
    clock = LiveClock()
    ex, hooks = _Exchange(), _Decisions()
    rt = Runtime(clock=clock, engine=Engine(cfg), decode=lambda d, t: (None, []), execution=ex,
                 market_data=ex, hooks=hooks, pricing_pool=pool)
    task = asyncio.create_task(rt.run([]))
    try:
        if pool is not None:
            assert await pool.ready(30.0)
        rt.post(E.MarketLoaded(MARKET, clock.now_ns()))
        rt.post(E.BookSnapshotReceived(T, ((480_000, 100),), ((480_000, 100),), clock.now_ns()))
        for rfq_id in rfqs:
            rt.post(E.RfqReceived(rfq_id, T, clock.now_ns(), contracts_centi=100))
            await _until(hooks, lambda r=rfq_id: any(d[0] == r for d in hooks.seen))
        await _until(hooks, lambda: done(hooks))
    finally:
        rt.stop()
        await asyncio.wait_for(task, 10)
    return ex, hooks


def test_pricers_module_is_loaded() -> None:
    assert pool_pricers.SPECS


async def test_pool_strategy_is_quoted_through_worker_processes() -> None:
    pool = PricingPool(workers=1, eager=True)
    ex, _ = await _run(_config('{fair_dollars: "0.40"}'), pool, ["r1"],
                           lambda h: ("r1", "quoted", "quoted") in h.seen)
    assert ex.quotes == [("r1", 380_000, 580_000)]
    assert pool.recycles == 0


async def test_runaway_pricer_times_out_and_the_runtime_shuts_the_pool() -> None:
    pool = PricingPool(workers=1)
    await _run(_config("{sleep_ms: 5000}"), pool, ["r1"],
                          lambda h: ("r1", "not_quoted", "pricer_timeout") in h.seen)
    assert pool.recycles == 1


async def test_without_a_pool_requests_are_priced_inline() -> None:
    ex, _ = await _run(_config('{fair_dollars: "0.40"}'), None, ["r1"],
                       lambda h: ("r1", "quoted", "quoted") in h.seen)
    assert ex.quotes == [("r1", 380_000, 580_000)]


@pytest.mark.parametrize("workers", [0])
def test_pool_needs_a_worker(workers: int) -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        PricingPool(workers=workers)
