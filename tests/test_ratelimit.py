"""Token buckets: exact refills, per-endpoint costs, the confirm reserve, a hypothesis property."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quoter.clock import ReplayClock
from quoter.kalshi.ratelimit import (
    BucketConfig,
    BucketKind,
    Priority,
    RateLimiter,
    TokenBucket,
    endpoint_key,
    kind_for_method,
)
from quoter.kalshi.rest_models import (
    AccountLimits,
    BucketLimit,
    EndpointCost,
    EndpointCosts,
)

MS = 1_000_000
QUOTES = "/communications/quotes"
CONFIRM = "/communications/rfqs/{rfq_id}/quotes/{quote_id}/confirm"


def test_endpoint_costs_default_to_demo_observations() -> None:
    lim = RateLimiter(now_ns=lambda: 0)
    assert lim.cost_for("POST", QUOTES) == 2
    assert lim.cost_for("GET", "/communications/rfqs/{rfq_id}/quotes/{quote_id}") == 2
    assert lim.cost_for("DELETE", "/communications/quotes/{quote_id}") == 2
    assert lim.cost_for("PUT", CONFIRM) == 10
    assert lim.cost_for("GET", "/portfolio/balance") == 10
    assert kind_for_method("get") is BucketKind.READ
    assert kind_for_method("PUT") is BucketKind.WRITE


def test_endpoint_key_normalises_prefix_params_and_query() -> None:
    want = ("DELETE", "/communications/rfqs/{}/quotes/{}")
    assert (
        endpoint_key("delete", "/trade-api/v2/communications/rfqs/{rfq_id}/quotes/{quote_id}")
        == want
    )
    assert endpoint_key("DELETE", "/communications/rfqs/:rfq_id/quotes/:quote_id?x=1") == want


def test_bucket_refills_exactly_and_caps() -> None:
    b = TokenBucket(BucketConfig(capacity=100, refill_per_s=100), now_ns=0)
    assert b.try_take(100, 0)
    assert not b.try_take(1, 0)
    assert b.wait_ns(1, 0) == 10 * MS  # 1 token at 100/s
    assert not b.try_take(1, 10 * MS - 1)
    assert b.try_take(1, 10 * MS)
    assert b.level_tokens(10 * MS + 5_000 * MS) == 100  # capped at capacity
    with pytest.raises(ValueError, match="exceeds bucket capacity"):
        b.wait_ns(90, 0, floor=20)


def test_write_reserve_lets_confirms_through_while_quotes_are_blocked() -> None:
    clock = ReplayClock()
    lim = RateLimiter(now_ns=clock.now_ns, write=BucketConfig(100, 100), write_reserve=20)
    # A quote burst: 40 quotes x 2 tokens = 80 tokens, leaving exactly the reserve.
    assert all(lim.try_acquire(BucketKind.WRITE, 2) for _ in range(40))
    assert lim.levels()["write_tokens"] == 20
    assert not lim.try_acquire(BucketKind.WRITE, 2)  # quotes may not dip into the reserve
    assert lim.wait_ns(BucketKind.WRITE, 2) == 20 * MS
    assert lim.try_acquire(BucketKind.WRITE, 10, Priority.CONFIRM)  # a confirm may
    assert lim.try_acquire(BucketKind.WRITE, 10, Priority.CONFIRM)
    assert not lim.try_acquire(BucketKind.WRITE, 10, Priority.CONFIRM)
    assert lim.levels()["write_tokens"] == 0
    # Reads are a separate budget.
    assert lim.try_acquire(BucketKind.READ, 10)


async def test_async_acquire_waits_for_quotes_but_not_for_confirms() -> None:
    clock = ReplayClock()
    slept: list[float] = []
    order: list[str] = []

    async def sleep(delay_s: float) -> None:
        slept.append(delay_s)
        await asyncio.sleep(0)  # let the other task run
        clock.advance(round(delay_s * 1e9))

    lim = RateLimiter(
        now_ns=clock.now_ns, write=BucketConfig(100, 100), write_reserve=20, sleep=sleep
    )
    for _ in range(40):
        await lim.acquire(BucketKind.WRITE, 2)
    assert slept == []

    async def quote() -> None:
        await lim.acquire(BucketKind.WRITE, 2)
        order.append("quote")

    async def confirm() -> None:
        await lim.acquire(BucketKind.WRITE, 10, Priority.CONFIRM)
        order.append("confirm")

    quote_task = asyncio.create_task(quote())
    await asyncio.sleep(0)
    await confirm()
    await quote_task
    assert order == ["confirm", "quote"]  # the confirm did not wait behind the blocked quote
    assert clock.now_ns() >= 20 * MS  # the quote waited for the bucket to refill above the reserve


def test_drain_after_429_and_configure_from() -> None:
    clock = ReplayClock()
    lim = RateLimiter(now_ns=clock.now_ns, write_reserve=20)
    lim.drain(BucketKind.READ)
    assert lim.levels()["read_tokens"] == 0
    clock.advance(50 * MS)
    assert lim.levels()["read_tokens"] == 10  # 200/s x 50 ms
    lim.configure_from(
        AccountLimits(
            read=BucketLimit(refill_rate=1000, bucket_capacity=1000),
            write=BucketLimit(refill_rate=300, bucket_capacity=600),
            usage_tier="advanced",
        ),
        EndpointCosts(
            default_cost=8,
            endpoint_costs=(
                EndpointCost(method="POST", path="/trade-api/v2/communications/quotes", cost=1),
                EndpointCost(method="PUT", path="/trade-api/v2" + CONFIRM, cost=4),
            ),
        ),
    )
    assert lim.cost_for("POST", QUOTES) == 1
    assert lim.cost_for("PUT", CONFIRM) == 4
    assert lim.cost_for("GET", "/markets/{ticker}") == 8
    levels = lim.levels()
    assert (levels["read_capacity"], levels["write_capacity"], levels["write_reserve"]) == (
        1000,
        600,
        20,
    )
    clock.advance(10_000 * MS)
    assert lim.levels()["read_tokens"] == 1000


def test_reserve_is_clipped_below_capacity() -> None:
    lim = RateLimiter(now_ns=lambda: 0, write=BucketConfig(10, 10), write_reserve=50)
    assert lim.write_reserve == 9
    with pytest.raises(ValueError, match="negative"):
        lim.set_write_reserve(-1)


ops = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=50 * MS),  # time advance
        st.integers(min_value=1, max_value=60),  # cost
        st.sampled_from([Priority.NORMAL, Priority.CONFIRM]),
        st.sampled_from([BucketKind.READ, BucketKind.WRITE]),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops, reserve=st.integers(min_value=0, max_value=40))
def test_property_bucket_never_negative_nor_over_capacity(
    ops: list[tuple[int, int, Priority, BucketKind]], reserve: int
) -> None:
    clock = ReplayClock()
    lim = RateLimiter(
        now_ns=clock.now_ns,
        read=BucketConfig(80, 40),
        write=BucketConfig(60, 30),
        write_reserve=reserve,
    )
    for advance, cost, priority, kind in ops:
        clock.advance(advance)
        before = lim.levels()[f"{kind}_tokens"]
        floor = reserve if kind is BucketKind.WRITE and priority is Priority.NORMAL else 0
        took = lim.try_acquire(kind, cost, priority)
        after = lim.levels()
        # Taking happened exactly when the level (in whole tokens) covered cost + floor.
        assert took == (before >= cost + floor)
        assert after[f"{kind}_tokens"] == (before - cost if took else before)
        for k in ("read", "write"):
            assert 0 <= after[f"{k}_tokens"] <= after[f"{k}_capacity"]
        if took and floor:
            assert after["write_tokens"] >= reserve
