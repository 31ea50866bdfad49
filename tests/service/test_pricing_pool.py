"""The pricing pool with real worker processes: answers, hard timeouts, errors, recycling."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pool_pricers  # registers pool_sleepy / pool_boom (workers get the specs shipped)
import pytest

from quoter.config import ModuleRef
from quoter.domain.book import OrderBook
from quoter.domain.commands import PriceInPool
from quoter.domain.events import RfqReceived
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketInfo, MarketStatus
from quoter.runtime.pricing_pool import InlinePricing, PricingPool
from strategies.base import Decline, Pricing, PricingInput

T = "KXTEST-26JAN01-A"


def _inputs() -> PricingInput:
    book = OrderBook(T)
    book.apply_snapshot(((480_000, 10_000),), ((480_000, 10_000),), 5)
    market = MarketInfo(T, "KXTEST-26JAN01", "KXTEST", MarketStatus.ACTIVE,
                        grid_for_structure("linear_cent"))
    return PricingInput(rfq=RfqReceived("r1", T, 1, contracts_centi=10_000), market=market,
                        books={T: book}, now_ns=1)


def _command(name: str = "pool_sleepy", request_id: int = 1, **params: object) -> PriceInPool:
    ref = ModuleRef.model_validate({"name": name, "params": params})
    return PriceInPool("r1", "main", request_id, _inputs(), ref, (), 0)


@pytest.fixture
async def pool() -> AsyncIterator[PricingPool]:
    p = PricingPool(workers=1)
    try:
        assert await p.ready(30.0)
        yield p
    finally:
        p.close()


def test_test_pricers_are_registered() -> None:
    assert {s.name for s in pool_pricers.SPECS} == {"pool_sleepy", "pool_boom"}


async def test_result_comes_back_from_a_worker(pool: PricingPool) -> None:
    res = await pool.price(_command(fair_dollars="0.50"), 5.0)
    assert res == Pricing(500_000, 480_000, 480_000)
    pid = await pool.price(_command(report_pid=True), 5.0)
    assert isinstance(pid, Decline)
    assert pid.reason == "pid"
    assert int(pid.detail) != os.getpid()  # it really ran in another process


async def test_runaway_pricer_is_killed_and_pool_serves_the_next(pool: PricingPool) -> None:
    first = await pool.price(_command(report_pid=True), 5.0)
    assert isinstance(first, Decline)
    loop = asyncio.get_running_loop()
    started = loop.time()
    res = await pool.price(_command(sleep_ms=5_000), 0.4)
    elapsed = loop.time() - started
    assert isinstance(res, Decline)
    assert res.reason == "pricer_timeout"
    assert elapsed < 1.5
    assert pool.recycles == 1
    # The next request is served by a fresh worker (the stuck one was killed).
    assert await pool.ready(30.0)
    nxt = await pool.price(_command(report_pid=True), 5.0)
    assert isinstance(nxt, Decline)
    assert nxt.detail != first.detail
    assert await pool.price(_command(), 5.0) == Pricing(500_000, 480_000, 480_000)


async def test_worker_exception_is_pricer_error(pool: PricingPool) -> None:
    res = await pool.price(_command("pool_boom"), 5.0)
    assert isinstance(res, Decline)
    assert res.reason == "pricer_error"
    assert "ZeroDivisionError" in res.detail
    assert pool.recycles == 0
    assert isinstance(await pool.price(_command(), 5.0), Pricing)


async def test_cold_pool_declines_without_recycling() -> None:
    p = PricingPool(workers=1)
    try:
        res = await p.price(_command(), 0.001)
        assert isinstance(res, Decline)
        assert res.reason == "pricer_timeout"
        assert p.recycles == 0
    finally:
        p.close()


async def test_cancelled_caller_does_not_break_the_pool(pool: PricingPool) -> None:
    task = asyncio.create_task(pool.price(_command(sleep_ms=200), 5.0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert isinstance(await pool.price(_command(), 5.0), Pricing)


def test_inline_pricing_runs_the_same_modules() -> None:
    inline = InlinePricing()
    assert inline.price(_command(fair_dollars="0.40")) == Pricing(400_000, 380_000, 580_000)
    err = inline.price(_command("pool_boom"))
    assert isinstance(err, Decline)
    assert err.reason == "pricer_error"


def test_inputs_survive_pickling() -> None:
    import pickle

    inp = _inputs()
    back = pickle.loads(pickle.dumps(inp))
    assert back.books[T].yes_levels() == [(480_000, 10_000)]
    assert back.books[T].updated_ns == 5
    assert back.rfq == inp.rfq
    assert back.market == inp.market


def test_pricing_completed_survives_a_recording() -> None:
    """A pool answer is an engine input like any other: a replay feeds the recorded one."""
    from quoter.engine.pricing import pricing_completed, result_of
    from quoter.recording.format import decode_event, encode_event

    for res in (Pricing(500_000, 480_000, 480_000), Decline("pricer_timeout", "x")):
        event = pricing_completed("r1", 7, res, 123)
        back = decode_event(encode_event(event))
        assert back == event
        assert result_of(back) == res  # type: ignore[arg-type]


async def test_request_taken_down_by_a_recycle_is_retried() -> None:
    pool = PricingPool(workers=2)
    try:
        assert await pool.ready(30.0)
        stuck = asyncio.create_task(pool.price(_command(sleep_ms=5_000), 0.4))
        slow_ok = asyncio.create_task(pool.price(_command(sleep_ms=600, request_id=2), 8.0))
        res = await stuck
        assert isinstance(res, Decline)
        assert res.reason == "pricer_timeout"
        # Its neighbour's worker was killed with the pool; it ran again on the fresh one.
        assert await slow_ok == Pricing(500_000, 480_000, 480_000)
        assert pool.recycles == 1
    finally:
        pool.close()
