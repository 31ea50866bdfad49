"""Confirms go out concurrently: one slow confirm does not hold the next accept's confirm.

The exchange here is a real ``ExecutionPort`` in memory whose confirm answers only when the
test releases it, so "two confirms in flight at once" is observed, not timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from test_driver_failures import Exchange

from quoter.clock import LiveClock
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.runtime.driver import Runtime

_HOUR_NS = 3_600 * 10**9


class ConfirmEveryRfq:
    """An EngineLike that confirms quote ``q-<rfq>`` for each RFQ it sees."""

    def __init__(self, clock: LiveClock) -> None:
        self.clock = clock
        self.results: list[ev.Event] = []

    def on_event(self, event: ev.Event, now_ns: int) -> list[cmd.Command]:
        if isinstance(event, ev.RfqReceived):
            return [cmd.ConfirmQuote(event.rfq_id, f"q-{event.rfq_id}", now_ns + _HOUR_NS)]
        if isinstance(event, ev.QuoteConfirmed | ev.ConfirmFailed):
            self.results.append(event)
        return []


class SlowConfirms(Exchange):
    """Confirms block until released; ``in_flight`` counts the ones waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.in_flight = 0
        self.peak = 0
        self.confirmed: list[str] = []

    async def confirm_quote(self, rfq_id: str, quote_id: str, *,
                            deadline_ns: int | None = None) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await self.release.wait()
        self.in_flight -= 1
        self.confirmed.append(quote_id)


async def _wait_for(cond: Callable[[], bool]) -> None:
    """Yield to the loop until ``cond()`` holds (the caller bounds it with a timeout)."""
    while True:
        if cond():
            return
        await asyncio.sleep(0)  # polling: the state moves in the runtime's worker tasks


async def test_a_slow_confirm_does_not_hold_the_next_one() -> None:
    clock = LiveClock()
    exchange = SlowConfirms()
    engine = ConfirmEveryRfq(clock)
    runtime = Runtime(clock=clock, engine=engine, decode=lambda d, t: (None, []),
                      execution=exchange, market_data=exchange, confirm_workers=3)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run([], until=stop))
    for rfq_id in ("r1", "r2", "r3"):
        runtime.post(ev.RfqReceived(rfq_id, "M-1", clock.now_ns(), contracts_centi=100))
    # With one worker the second confirm would wait for the first one's answer: never here.
    await asyncio.wait_for(_wait_for(lambda: exchange.in_flight == 3), 10)
    exchange.release.set()
    await asyncio.wait_for(_wait_for(lambda: len(exchange.confirmed) == 3), 10)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert sorted(exchange.confirmed) == ["q-r1", "q-r2", "q-r3"]
    assert exchange.peak == 3
    assert runtime.stats.confirms_sent == 3


async def test_concurrent_workers_never_send_one_quote_twice() -> None:
    clock = LiveClock()
    exchange = SlowConfirms()
    exchange.release.set()
    engine = ConfirmEveryRfq(clock)
    runtime = Runtime(clock=clock, engine=engine, decode=lambda d, t: (None, []),
                      execution=exchange, market_data=exchange, confirm_workers=4)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run([], until=stop))
    for _ in range(5):  # the same accept five times (a replayed frame, a resync)
        runtime.post(ev.RfqReceived("r1", "M-1", clock.now_ns(), contracts_centi=100))
    await asyncio.wait_for(_wait_for(lambda: runtime.stats.confirms_sent
                                     + runtime.stats.confirms_skipped == 5), 10)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert exchange.confirmed == ["q-r1"]


def test_confirm_workers_must_be_positive() -> None:
    exchange = Exchange()
    with pytest.raises(ValueError, match="confirm_workers"):
        Runtime(clock=LiveClock(), engine=ConfirmEveryRfq(LiveClock()),
                decode=lambda d, t: (None, []), execution=exchange, market_data=exchange,
                confirm_workers=0)
