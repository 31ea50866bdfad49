"""Position reconciliation against the simulator and MockTransport, and the engine's verdict."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from test_adapter import BASE, START_NS, T2, WALL0, SimWorld, T, _no_sleep, make_world
from test_resync import Harness, of

from quoter.clock import ReplayClock
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import BookSide, Side
from quoter.kalshi.adapter import KalshiExecution
from quoter.kalshi.auth import Signer
from quoter.kalshi.rest import KalshiRest, RetryPolicy
from quoter.service.reconcile import Reconciler, diff_positions

S = 1_000_000_000


def test_diff_positions_says_exactly_what_differs() -> None:
    assert diff_positions({"A": 100, "B": -250}, {"A": 100, "B": -250}) == []
    assert diff_positions({"A": 100, "B": -250, "C": 0}, {"A": 150, "D": 1}) == [
        "A: ours 1.00 exchange 1.50 contracts (+YES/-NO; exchange - ours = 0.50)",
        "B: ours -2.50 exchange 0.00 contracts (+YES/-NO; exchange - ours = 2.50)",
        "D: ours 0.00 exchange 0.01 contracts (+YES/-NO; exchange - ours = 0.01)",
    ]


@pytest.fixture
async def traded() -> AsyncIterator[SimWorld]:
    """A world where the maker bought 1.00 YES at $0.48 on T through an RFQ."""
    w = make_world()
    rfq_id = await w.rfq(T, 100)
    qid = await KalshiExecution(w.maker).submit_quote(
        rfq_id, 480_000, 480_000, rest_remainder=False, post_only=False, subaccount=None)
    await w.requester.accept_quote(rfq_id, qid, Side.YES)
    await w.maker.confirm_quote(rfq_id, qid)
    w.clock.advance(15 * S)
    w.ex.advance()
    yield w
    await w.close()


async def test_round_against_sim_backfills_fill_and_reports(traded: SimWorld) -> None:
    w = traded
    report = await Reconciler(w.maker, w.clock).reconcile(dict)
    [sim_fill] = w.ex.fills("maker")
    fills = [e for e in report.events if isinstance(e, E.FillReceived)]
    assert [(f.trade_id, f.order_id, f.market_ticker) for f in fills] == [
        (sim_fill.trade_id, sim_fill.order_id, T)]
    f = fills[0]
    assert (f.outcome_side, f.book_side, f.yes_price_micros, f.count_centi) == (
        Side.YES, BookSide.BID, 480_000, 100)
    assert (f.fee_micros, f.is_taker) == (0, False)
    reported = [e for e in report.events if isinstance(e, E.PositionReported)]
    assert [(p.market_ticker, p.position_centi, p.position_cost_micros) for p in reported] == [
        (T, 100, 480_000)]
    assert report.events.index(f) < report.events.index(reported[0])  # fills first
    assert report.theirs == {T: 100}
    assert report.unstable == ()
    assert report.diffs == (
        f"{T}: ours 0.00 exchange 1.00 contracts (+YES/-NO; exchange - ours = 1.00)",)


async def test_engine_books_backfilled_fill_and_stays_quiet(traded: SimWorld) -> None:
    h = Harness()
    h.now = traded.clock.now_ns()
    report = await Reconciler(traded.maker, traded.clock).reconcile(
        lambda: {t: h.engine.ledger.position_centi(t) for t in h.engine.ledger.tickers()})
    out = [c for e in report.events for c in h.send(e)]
    assert of(out, C.Halt) == []
    assert h.engine.ledger.position_centi(T) == 100
    # A second round: the fill is a duplicate, positions agree, nothing differs.
    again = await Reconciler(traded.maker, traded.clock).reconcile(
        lambda: {t: h.engine.ledger.position_centi(t) for t in h.engine.ledger.tickers()})
    assert again.diffs == ()
    assert [c for e in again.events for c in h.send(e)] == []


async def test_position_missing_on_exchange_is_reported_zero_and_halts(
    traded: SimWorld,
) -> None:
    h = Harness()
    h.now = traded.clock.now_ns()
    h.send(E.FillReceived("t-ghost", "o-ghost", T2, Side.NO, BookSide.ASK, 300_000, 500, 0,
                          False, h.now))

    def ours() -> dict[str, int]:
        return {t: h.engine.ledger.position_centi(t) for t in h.engine.ledger.tickers()}

    report = await Reconciler(traded.maker, traded.clock).reconcile(ours)
    zero = [e for e in report.events if isinstance(e, E.PositionReported) and e.market_ticker == T2]
    assert [(z.position_centi, z.ts_recv_ns) for z in zero] == [(0, traded.clock.now_ns())]
    # Sampled before the backfilled fill on T reached the engine: both markets differ here.
    assert [d.split(" (")[0] for d in report.diffs] == [
        f"{T}: ours 0.00 exchange 1.00 contracts", f"{T2}: ours -5.00 exchange 0.00 contracts"]
    out = [c for e in report.events for c in h.send(e)]
    [halt] = of(out, C.Halt)
    assert halt.reason.startswith(f"position_mismatch {T2}: ours=-500 exchange=0")


# --- MockTransport: paging of fills, moving positions, the periodic loop -------------------


class FakeKalshi:
    """Scripted answers for positions (one per call) and fills; records every query."""

    def __init__(self, positions: list[dict[str, str]], fail_first: int = 0) -> None:
        self.positions = positions
        self.fail_first = fail_first
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.fail_first:
            self.fail_first -= 1
            return httpx.Response(503, json={"code": "unavailable", "message": "try later"})
        if request.url.path.endswith("/portfolio/fills"):
            return httpx.Response(200, json={"fills": [], "cursor": ""})
        n = sum(r.url.path.endswith("/portfolio/positions") for r in self.calls) - 1
        book = self.positions[min(n, len(self.positions) - 1)]
        return httpx.Response(200, json={"market_positions": [
            {"ticker": t, "position_fp": fp} for t, fp in book.items()], "cursor": ""})


def _rest(fake: FakeKalshi, clock: ReplayClock) -> KalshiRest:
    return KalshiRest(BASE, Signer("k", ed25519.Ed25519PrivateKey.generate()),
                      transport=httpx.MockTransport(fake), clock=clock, sleep=_no_sleep,
                      retry=RetryPolicy(max_attempts=1))


async def test_fills_are_listed_since_the_previous_round_with_overlap() -> None:
    clock = ReplayClock(START_NS, WALL0)
    fake = FakeKalshi([{T: "1.00"}])
    rest = _rest(fake, clock)
    rec = Reconciler(rest, clock, subaccount=2)
    await rec.reconcile(lambda: {T: 100})
    round1_s = clock.wall_ns() // S
    clock.advance(30 * S)
    await rec.reconcile(lambda: {T: 100})
    fills = [r for r in fake.calls if r.url.path.endswith("/portfolio/fills")]
    assert "min_ts" not in fills[0].url.params
    assert fills[1].url.params["min_ts"] == str(round1_s - 60)
    assert all(r.url.params["subaccount"] == "2" for r in fake.calls)
    await rest.aclose()


async def test_market_moving_between_reads_is_skipped() -> None:
    clock = ReplayClock(START_NS, WALL0)
    fake = FakeKalshi([{T: "1.00", T2: "-2.00"}, {T: "2.00", T2: "-2.00"}])
    rest = _rest(fake, clock)
    report = await Reconciler(rest, clock).reconcile(lambda: {T: 100, T2: -200})
    assert report.unstable == (T,)
    assert [(e.market_ticker, e.position_centi) for e in report.events
            if isinstance(e, E.PositionReported)] == [(T2, -200)]
    assert report.diffs == ()
    await rest.aclose()


async def test_periodic_loop_survives_a_failed_round() -> None:
    clock = ReplayClock(START_NS, WALL0)
    fake = FakeKalshi([{T: "1.00"}], fail_first=1)
    rest = _rest(fake, clock)
    posted: list[E.Event] = []
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)
        if len(sleeps) == 2:
            raise asyncio.CancelledError

    def ours() -> Mapping[str, int]:
        return {T: 100}

    with pytest.raises(asyncio.CancelledError):
        await Reconciler(rest, clock).run(posted.append, ours, interval_s=5.0, sleep=sleep)
    assert sleeps == [5.0, 5.0]
    assert [(e.market_ticker, e.position_centi) for e in posted
            if isinstance(e, E.PositionReported)] == [(T, 100)]
    await rest.aclose()


async def _turns_until(done: Callable[[], bool], turns: int = 10_000) -> None:
    """Let the event loop run (no wall time involved) until ``done``; bounded."""
    for _ in range(turns):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_a_requested_round_runs_at_once_instead_of_at_the_interval() -> None:
    clock = ReplayClock(START_NS, WALL0)
    fake = FakeKalshi([{T: "1.00"}, {T: "1.00"}, {T: "1.00"}])
    rest = _rest(fake, clock)
    posted: list[E.Event] = []
    naps: list[asyncio.Future[None]] = []
    reconciler = Reconciler(rest, clock)

    def sleep(s: float) -> asyncio.Future[None]:
        # An interval that never ends by itself: only a request can start the next round.
        naps.append(asyncio.get_running_loop().create_future())
        return naps[-1]

    def ours() -> Mapping[str, int]:
        return {T: 100}

    def reports() -> int:
        return sum(isinstance(e, E.PositionReported) for e in posted)

    task = asyncio.create_task(reconciler.run(posted.append, ours, interval_s=30.0,
                                              sleep=sleep))
    await _turns_until(lambda: len(naps) == 1)  # the first round ran and the loop sleeps
    assert (reconciler.rounds, reports()) == (1, 1)
    reconciler.request_round(T)
    await _turns_until(lambda: len(naps) == 2)
    assert (reconciler.rounds, reports(), reconciler.requested) == (2, 2, 1)
    assert naps[0].cancelled()  # the interval it cut short is not left running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await rest.aclose()


def test_a_feed_mismatch_asks_rest_and_only_the_rest_read_halts() -> None:
    h = Harness()
    h.send(E.FillReceived("t1", "o1", T, Side.YES, BookSide.BID, 480_000, 300, 0, False, h.now))
    h.now += 1_000_000
    # The market_positions feed says 1.00 where we booked 3.00: stale, duplicated or real?
    out = h.send(E.PositionReported(T, 100, h.now, from_feed=True))
    assert of(out, C.Halt) == []
    [ask] = of(out, C.RequestReconcile)
    assert ask == C.RequestReconcile(T, "position_mismatch")
    [d] = of(out, C.RecordDecision)
    assert (d.decision, d.reason) == ("reconcile_deferred", "confirming_over_rest")
    assert not h.engine.halted
    # The REST read agrees with us: nothing more happens.
    assert h.send(E.PositionReported(T, 300, h.now)) == []
    # The REST read confirms a difference: that halts.
    [halt] = of(h.send(E.PositionReported(T, 100, h.now)), C.Halt)
    assert halt.reason.startswith(f"position_mismatch {T}: ours=300 exchange=100")


async def test_missed_settlement_settles_the_ledger_instead_of_halting(
    traded: SimWorld,
) -> None:
    h = Harness()
    h.now = traded.clock.now_ns()

    def ours() -> dict[str, int]:
        return {t: h.engine.ledger.position_centi(t) for t in h.engine.ledger.tickers()}

    rec = Reconciler(traded.maker, traded.clock)
    for event in (await rec.reconcile(ours)).events:
        h.send(event)
    assert h.engine.ledger.position_centi(T) == 100
    traded.ex.settle_market(T, Side.YES)  # its lifecycle frames never reached us
    report = await rec.reconcile(ours)
    # The fill is listed again (the min_ts overlap) and is a duplicate for the ledger.
    assert [(type(e).__name__, getattr(e, "market_ticker", "")) for e in report.events] == [
        ("FillReceived", T), ("MarketLifecycleChanged", T), ("PositionReported", T),
        ("BalanceReported", "")]
    # The balance is read last, after the settlement paid out: $1 for the winning contract.
    balance = report.events[-1]
    assert isinstance(balance, E.BalanceReported)
    assert balance.balance_micros == traded.ex.balance_micros("maker")
    assert report.diffs == ()
    out = [c for e in report.events for c in h.send(e)]
    assert of(out, C.Halt) == []
    assert h.engine.ledger.position_centi(T) == 0
