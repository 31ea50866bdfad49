"""Any exception in any task of the driver ends in the ordered shutdown (issue 12 item 1).

The ports here are real implementations of the ``ExecutionPort`` / ``MarketDataPort``
protocols that keep an exchange's view of our quotes in memory (what is live, what was
cancelled), the way a backtest's modelled exchange does; nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from quoter.clock import LiveClock
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.domain.types import MarketInfo
from quoter.ports import InboundFrame
from quoter.runtime.driver import Runtime


class QuoteEveryRfq:
    """A real EngineLike: one quote per RFQ, nothing else."""

    def __init__(self) -> None:
        self.seen: list[ev.Event] = []

    def on_event(self, event: ev.Event, now_ns: int) -> list[cmd.Command]:
        self.seen.append(event)
        if isinstance(event, ev.RfqReceived):
            return [cmd.SubmitQuote(event.rfq_id, event.market_ticker, 480_000, 480_000, "s")]
        return []


class Exchange:
    """Execution + market data in memory; ``boom_on`` makes one RFQ's submit raise a bug."""

    def __init__(self, boom_on: str = "", boom: BaseException | None = None) -> None:
        self.live: dict[str, str] = {}
        self.cancelled: list[str] = []
        self.boom_on, self.boom = boom_on, boom
        self.submitted = asyncio.Event()
        self._n = 0

    async def submit_quote(self, rfq_id: str, yes_bid_micros: int, no_bid_micros: int, *,
                           rest_remainder: bool, post_only: bool, subaccount: int | None) -> str:
        self._n += 1
        quote_id = f"q{self._n}"
        self.live[quote_id] = rfq_id
        self.submitted.set()
        if rfq_id == self.boom_on and self.boom is not None:
            raise self.boom  # created on the exchange, then the answer blows up
        return quote_id

    async def confirm_quote(self, rfq_id: str, quote_id: str, *,
                            deadline_ns: int | None = None) -> None:
        raise AssertionError("no confirm in this test")

    async def cancel_quote(self, rfq_id: str, quote_id: str) -> None:
        self.live.pop(quote_id, None)
        self.cancelled.append(quote_id)

    async def fetch_market(self, ticker: str) -> MarketInfo:
        raise AssertionError("no market fetch")

    async def fetch_book(self, ticker: str, ts_recv_ns: int) -> ev.BookSnapshotReceived:
        raise AssertionError("no book fetch")


def _decode(data: bytes | str, ts: int) -> tuple[str | None, list[ev.Event]]:
    return None, []


async def test_a_bug_in_an_exec_worker_stops_in_order_and_cancels_open_quotes() -> None:
    exchange = Exchange(boom_on="r2", boom=RuntimeError("unmapped library error"))
    clock = LiveClock()
    runtime = Runtime(clock=clock, engine=QuoteEveryRfq(), decode=_decode,
                      execution=exchange, market_data=exchange, exec_workers=1)
    never = asyncio.Event()
    task = asyncio.create_task(runtime.run([], until=never))
    runtime.post(ev.RfqReceived("r1", "M-1", clock.now_ns(), contracts_centi=100))
    runtime.post(ev.RfqReceived("r2", "M-1", clock.now_ns(), contracts_centi=100))
    # Nobody sets ``never``: the crash alone must end the run, and in order.
    await asyncio.wait_for(task, 10)
    assert isinstance(runtime.failure, RuntimeError)
    assert runtime.stats.task_crashes == 1
    assert runtime.halted
    assert runtime.halt_reason.startswith("task exec SubmitQuote crashed")
    # q1 was tracked and cancelled by the shutdown; q2's id never came back (the exit sweep
    # over the exchange's list handles that one, see tests/e2e/test_corrupt_rest.py).
    assert "q1" in exchange.cancelled
    assert runtime.open_quotes == {}


class ExplodingSource:
    """A frame source that fails (a feed bug) once ``ready`` is set."""

    def __init__(self, ready: asyncio.Event) -> None:
        self.ready = ready

    async def frames(self) -> AsyncIterator[InboundFrame]:
        await self.ready.wait()
        yield InboundFrame(b"{}", 1)
        raise ValueError("feed bug")


async def test_a_bug_in_a_reader_stops_in_order() -> None:
    exchange = Exchange()
    clock = LiveClock()
    engine = QuoteEveryRfq()
    runtime = Runtime(clock=clock, engine=engine, decode=_decode, execution=exchange,
                      market_data=exchange)
    # A quote of ours is open before the reader fails.
    runtime.post(ev.RfqReceived("r1", "M-1", clock.now_ns(), contracts_centi=100))
    task = asyncio.create_task(runtime.run([ExplodingSource(exchange.submitted)]))
    await asyncio.wait_for(task, 10)
    assert isinstance(runtime.failure, ValueError)
    assert exchange.live == {}
    assert exchange.cancelled == ["q1"]


# --- item 5: cancels and confirms are never dropped on a full queue ----------------------------


class CancelOnDelete(QuoteEveryRfq):
    """Quotes every RFQ; cancels our quote on an RFQ when the RFQ is deleted; stops at "end"."""

    def __init__(self) -> None:
        super().__init__()
        self.placed: dict[str, str] = {}
        self.done = asyncio.Event()

    def on_event(self, event: ev.Event, now_ns: int) -> list[cmd.Command]:
        out = super().on_event(event, now_ns)
        match event:
            case ev.QuotePlaced(rfq_id=rfq_id, quote_id=quote_id):
                self.placed[rfq_id] = quote_id
            case ev.RfqDeleted(rfq_id=rfq_id) if rfq_id in self.placed:
                out.append(cmd.CancelQuote(rfq_id, self.placed[rfq_id], "rfq_deleted"))
            case ev.QuoteCancelled():
                self.done.set()
        return out


async def test_a_cancel_is_never_dropped_on_a_full_exec_queue_only_new_quotes_are_shed() -> None:
    exchange = Exchange()
    exchange.live["q0"] = "r0"
    clock = LiveClock()
    engine = CancelOnDelete()
    runtime = Runtime(clock=clock, engine=engine, decode=_decode, execution=exchange,
                      market_data=exchange, exec_workers=1, queue_size=2)
    # All of these reach the engine before any worker runs (the inbox never blocks), so the
    # exec queue holds two new quotes when the cancel comes.
    runtime.post(ev.QuotePlaced("r0", "q0", clock.now_ns()))
    for i in range(1, 5):
        runtime.post(ev.RfqReceived(f"r{i}", "M-1", clock.now_ns(), contracts_centi=100))
    runtime.post(ev.RfqDeleted("r0", "M-1", clock.now_ns()))
    await asyncio.wait_for(runtime.run([], until=engine.done), 10)
    # The cancel went out, first (it overtakes queued quotes); two new quotes were shed.
    assert exchange.cancelled[0] == "q0"
    assert "q0" not in exchange.live
    assert runtime.stats.shed_submits == 2
    rejected = [e for e in engine.seen if isinstance(e, ev.QuoteRejected)]
    assert sorted((e.rfq_id, e.code) for e in rejected) == [("r3", "queue_full"),
                                                            ("r4", "queue_full")]
    assert runtime.failure is None


class ConfirmBurst:
    """On one event, confirms ``n`` accepted quotes at once (a burst of accepts)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.confirmed = 0
        self.done = asyncio.Event()

    def on_event(self, event: ev.Event, now_ns: int) -> list[cmd.Command]:
        if isinstance(event, ev.RfqReceived):
            return [cmd.ConfirmQuote(f"r{i}", f"q{i}", now_ns + 60 * 10**9) for i in range(self.n)]
        if isinstance(event, ev.QuoteConfirmed):
            self.confirmed += 1
            if self.confirmed == self.n:
                self.done.set()
        return []


class ConfirmingExchange(Exchange):
    def __init__(self) -> None:
        super().__init__()
        self.confirms: list[str] = []
        self.deadlines: set[int | None] = set()

    async def confirm_quote(self, rfq_id: str, quote_id: str, *,
                            deadline_ns: int | None = None) -> None:
        self.confirms.append(quote_id)
        self.deadlines.add(deadline_ns)


async def test_a_burst_of_confirms_beyond_any_queue_bound_is_sent_in_full() -> None:
    exchange = ConfirmingExchange()
    clock = LiveClock()
    engine = ConfirmBurst(1_500)
    runtime = Runtime(clock=clock, engine=engine, decode=_decode, execution=exchange,
                      market_data=exchange, queue_size=10)
    runtime.post(ev.RfqReceived("r", "M-1", clock.now_ns(), contracts_centi=100))
    await asyncio.wait_for(runtime.run([], until=engine.done), 20)
    assert len(exchange.confirms) == len(set(exchange.confirms)) == 1_500
    # Each confirm carries its deadline to the port, which retries until then (item 10).
    assert None not in exchange.deadlines
    assert runtime.failure is None
