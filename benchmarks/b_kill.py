"""B7: kill switch -> no further quote or confirm leaves the process.

The real async driver (``quoter.runtime.driver.Runtime``) around the real engine with the demo
config, fed in-memory ``rfq_created`` and ``quote_accepted`` frames through a ``FrameSource``
while an execution port (a real ``ExecutionPort`` implementation that keeps the exchange's view
in memory) records the ``perf_counter_ns`` of every submit and confirm call. Mid-stream the
source calls ``Runtime.halt()`` and keeps sending RFQs and accepts. The figure is, per trial,
the time from the halt call until no quote or confirm can leave: the halt call's own duration,
or the last submit/confirm seen after it if any got out; the worst trial is reported, with the
count of calls after a halt (must be 0). Target: <= 1 ms. Baseline: one event-loop turn
(``await asyncio.sleep(0)``) in the same run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from benchmarks._suite import Result, percentile
from benchmarks.bench_engine import TICKERS, _accepted, _created, _engine
from quoter.clock import LiveClock
from quoter.domain import events as E
from quoter.domain.types import MarketInfo
from quoter.kalshi.decode import decode
from quoter.ports import InboundFrame
from quoter.runtime.driver import Runtime


class RecordingPort:
    """Execution + market data in memory; every submit/confirm call's time is recorded."""

    def __init__(self) -> None:
        self.sends_ns: list[int] = []
        self.placed: list[tuple[str, str, str]] = []  # (rfq_id, quote_id, ticker)
        self.tickers: dict[str, str] = {}
        self._n = 0

    async def submit_quote(self, rfq_id: str, yes_bid_micros: int, no_bid_micros: int, *,
                           rest_remainder: bool, post_only: bool, subaccount: int | None) -> str:
        self.sends_ns.append(time.perf_counter_ns())
        self._n += 1
        quote_id = f"q{self._n}"
        self.placed.append((rfq_id, quote_id, self.tickers.get(rfq_id, TICKERS[0])))
        return quote_id

    async def confirm_quote(self, rfq_id: str, quote_id: str, *,
                            deadline_ns: int | None = None) -> None:
        self.sends_ns.append(time.perf_counter_ns())

    async def cancel_quote(self, rfq_id: str, quote_id: str) -> None:
        return None

    async def fetch_market(self, ticker: str) -> MarketInfo:
        raise LookupError(ticker)

    async def fetch_book(self, ticker: str, ts_recv_ns: int) -> E.BookSnapshotReceived:
        raise LookupError(ticker)


class KillMidStream:
    """RFQs and accepts of placed quotes; halts the runtime at frame ``halt_at``."""

    def __init__(self, port: RecordingPort, clock: LiveClock, n: int, halt_at: int) -> None:
        self.port, self.clock, self.n, self.halt_at = port, clock, n, halt_at
        self.runtime: Runtime | None = None
        self.halt_ns = self.halt_done_ns = 0
        self.done = asyncio.Event()

    async def frames(self) -> AsyncIterator[InboundFrame]:
        accepted = 0
        for i in range(self.n):
            if i == self.halt_at and self.runtime is not None:
                self.halt_ns = time.perf_counter_ns()
                self.runtime.halt("bench")
                self.halt_done_ns = time.perf_counter_ns()
            ticker = TICKERS[i % len(TICKERS)]
            self.port.tickers[f"k{i}"] = ticker
            yield InboundFrame(_created(f"k{i}", ticker), self.clock.now_ns())
            if accepted < len(self.port.placed):
                rfq_id, quote_id, t = self.port.placed[accepted]
                accepted += 1
                yield InboundFrame(_accepted(quote_id, rfq_id, t), self.clock.now_ns())
            await asyncio.sleep(0)  # let the workers send, as a live feed would
        for _ in range(50):  # room for anything still queued to (wrongly) leave
            await asyncio.sleep(0)
        self.done.set()


async def _trial(n: int) -> tuple[int, int, int]:
    clock = LiveClock()
    port = RecordingPort()
    runtime = Runtime(clock=clock, engine=_engine(), decode=decode, execution=port,
                      market_data=port)
    source = KillMidStream(port, clock, n, halt_at=n // 2)
    source.runtime = runtime
    await asyncio.wait_for(runtime.run([source], until=source.done), 60)
    after = [t for t in port.sends_ns if t >= source.halt_ns]
    before = len(port.sends_ns) - len(after)
    assert before > 0, "nothing was quoted before the halt: the trial measured nothing"
    worst = max([source.halt_done_ns, *after]) - source.halt_ns
    return worst, len(after), before


async def _loop_turn_ns(n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await asyncio.sleep(0)
        samples.append(time.perf_counter_ns() - t0)
    return percentile(samples, 0.5)


def run(quick: bool) -> list[Result]:
    """Measure B7."""
    trials = 3 if quick else 20
    n = 100 if quick else 400
    results = [asyncio.run(_trial(n)) for _ in range(trials)]
    worst_ns = max(r[0] for r in results)
    leaked = sum(r[1] for r in results)
    turn_ns = asyncio.run(_loop_turn_ns(2_000))
    return [Result(
        "B7", "kill switch -> nothing more leaves (worst trial)", worst_ns / 1e6, "ms", 1.0,
        turn_ns / 1e6, "one loop turn",
        note="" if leaked == 0 else f"{leaked} submit/confirm calls after a halt",
        extra={"trials": trials, "sends_after_halt": leaked,
               "sends_before_halt_min": min(r[2] for r in results),
               "p50_ms": percentile([r[0] for r in results], 0.5) / 1e6})]
