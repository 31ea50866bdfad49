"""An engine bug on one event halts quoting but never stops the service's event loop."""

from __future__ import annotations

import asyncio

from quoter.clock import LiveClock
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.domain.types import MarketInfo
from quoter.runtime.driver import Runtime


class BrokenOnRfqEngine:
    """A real EngineLike that fails on RFQs (as a buggy engine would) and records the rest."""

    def __init__(self) -> None:
        self.seen: list[ev.Event] = []
        #: Set when the halt notice arrives (it is queued after everything posted before it).
        self.halt_seen = asyncio.Event()

    def on_event(self, event: ev.Event, now_ns: int) -> list[cmd.Command]:
        if isinstance(event, ev.RfqReceived):
            raise KeyError("bug")
        self.seen.append(event)
        if isinstance(event, ev.KillSwitchChanged) and event.halted:
            self.halt_seen.set()
        return []


class RefusingPorts:
    """Execution and market-data ports that must not be used in this test."""

    async def submit_quote(self, rfq_id: str, yes_bid_micros: int, no_bid_micros: int, *,
                           rest_remainder: bool, post_only: bool, subaccount: int | None) -> str:
        raise AssertionError("no quote may be sent")

    async def confirm_quote(self, rfq_id: str, quote_id: str, *,
                            deadline_ns: int | None = None) -> None:
        raise AssertionError("no confirm may be sent")

    async def cancel_quote(self, rfq_id: str, quote_id: str) -> None:
        raise AssertionError("nothing to cancel")

    async def fetch_market(self, ticker: str) -> MarketInfo:
        raise AssertionError("no market fetch")

    async def fetch_book(self, ticker: str, ts_recv_ns: int) -> ev.BookSnapshotReceived:
        raise AssertionError("no book fetch")


def _decode(data: bytes | str, ts: int) -> tuple[str | None, list[ev.Event]]:
    return None, []


async def test_engine_exception_halts_and_the_loop_keeps_running() -> None:
    engine = BrokenOnRfqEngine()
    ports = RefusingPorts()
    clock = LiveClock()
    runtime = Runtime(clock=clock, engine=engine, decode=_decode, execution=ports,
                      market_data=ports)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run([], until=stop))
    runtime.post(ev.RfqReceived("r1", "M-1", clock.now_ns(), contracts_centi=100))
    runtime.post(ev.RfqDeleted("r1", "M-1", clock.now_ns()))
    # No polling: the halt notice is posted while the RFQ fails, so it runs after RfqDeleted.
    await asyncio.wait_for(engine.halt_seen.wait(), 10)
    assert runtime.stats.engine_errors == 1
    assert runtime.halted
    assert runtime.halt_reason == "engine error on RfqReceived"
    # the loop survived: later events still reach the engine (the halt notice among them)
    assert any(isinstance(e, ev.RfqDeleted) for e in engine.seen)
    assert any(isinstance(e, ev.KillSwitchChanged) and e.halted for e in engine.seen)
    stop.set()
    await asyncio.wait_for(task, 5)
