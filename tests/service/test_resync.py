"""Startup checks and REST backfill against the simulator, and what the engine makes of it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import httpx
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import ed25519
from test_adapter import BASE, START_NS, T2, WALL0, SimWorld, T, _no_sleep, make_world

from quoter.clock import ReplayClock
from quoter.config import parse_config
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketInfo, MarketStatus, Side
from quoter.engine.engine import Engine
from quoter.kalshi.adapter import KalshiExecution, KalshiMarketData
from quoter.kalshi.auth import Signer
from quoter.kalshi.rest import KalshiRest, RetryPolicy
from quoter.kalshi.schemas import decode_frame, frame_type
from quoter.kalshi.source import build_feed_source
from quoter.kalshi.translate import to_events
from quoter.kalshi.ws_types import (
    Backoff,
    FeedConnected,
    FeedDisconnected,
    SubscriptionLost,
    SubscriptionRestored,
    SubscriptionView,
)
from quoter.runtime.driver import Runtime
from quoter.service.reconcile import Reconciler
from quoter.service.resync import (
    ExchangeClosedError,
    NoticeHandler,
    Resync,
    StartupFailedError,
)
from quoter.sim.app import RateLimits
from quoter.sim.exchange import QuoteStatus, SimExchange, SimMarket
from quoter.sim.server import serve_sim

S = 1_000_000_000
MS = 1_000_000
CONFIG = """
version: 1
strategies:
  - name: main
    match: {series: [KXTEST]}
    pricer:
      name: fixed
      params: {edge_dollars: "0.02", fair_yes_dollars: {KXTEST-26JAN01-A: "0.50"}}
"""
CmdT = TypeVar("CmdT")


def of(cmds: list[C.Command], kind: type[CmdT]) -> list[CmdT]:
    """The commands of one type, in order."""
    return [c for c in cmds if isinstance(c, kind)]


def decisions(cmds: list[C.Command]) -> list[tuple[str, str]]:
    """``(decision, reason)`` of every RecordDecision."""
    return [(d.decision, d.reason) for d in of(cmds, C.RecordDecision)]


class Harness:
    """An engine fed at an explicit engine time (the resync clock's ``now_ns``)."""

    def __init__(self) -> None:
        self.engine = Engine(parse_config(CONFIG))
        self.now = START_NS

    def send(self, event: E.Event) -> list[C.Command]:
        return self.engine.on_event(event, self.now)

    def ready(self, ticker: str) -> None:
        self.send(E.MarketLoaded(MarketInfo(
            ticker, "KXTEST-26JAN01", "KXTEST", MarketStatus.ACTIVE,
            grid_for_structure("linear_cent")), self.now))
        self.send(E.BookSnapshotReceived(ticker, ((480_000, 10_000),), ((480_000, 10_000),),
                                         self.now))

    def rfq(self, rfq_id: str, ticker: str, contracts_centi: int) -> list[C.Command]:
        return self.send(E.RfqReceived(rfq_id, ticker, self.now, creator_id="req",
                                       contracts_centi=contracts_centi))

    def placed(self, rfq_id: str, quote_id: str) -> list[C.Command]:
        return self.send(E.QuotePlaced(rfq_id, quote_id, self.now))


@pytest.fixture
async def world() -> AsyncIterator[SimWorld]:
    w = make_world(rate_limits=RateLimits(read_capacity=600, read_refill_per_s=300,
                                          write_capacity=600, write_refill_per_s=300,
                                          usage_tier="advanced"))
    yield w
    await w.close()


async def _quote(w: SimWorld, ticker: str = T) -> tuple[str, str]:
    rfq_id = await w.rfq(ticker)
    qid = await KalshiExecution(w.maker).submit_quote(
        rfq_id, 480_000, 480_000, rest_remainder=False, post_only=False, subaccount=None)
    return rfq_id, qid


async def test_startup_sizes_limiter_and_learns_comms_id(world: SimWorld) -> None:
    resync = Resync(world.maker, world.clock)
    info = await resync.startup()
    assert info.communications_id == world.ex.comm_id("maker") == resync.communications_id
    assert (info.exchange_active, info.trading_active, info.usage_tier) == (True, True, "advanced")
    levels = world.maker.limiter.levels()
    assert (levels["read_capacity"], levels["write_capacity"]) == (600, 600)


async def test_startup_refuses_a_closed_exchange() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/trade-api/v2/exchange/status"
        return httpx.Response(200, json={"exchange_active": True, "trading_active": False})

    rest = KalshiRest(BASE, Signer("k", ed25519.Ed25519PrivateKey.generate()),
                      transport=httpx.MockTransport(handle), clock=ReplayClock(START_NS, WALL0),
                      sleep=_no_sleep, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ExchangeClosedError, match="trading_active=False"):
        await Resync(rest, ReplayClock(START_NS, WALL0)).startup()
    await rest.aclose()


async def test_backfill_rfqs_new_known_and_gone(world: SimWorld) -> None:
    known = await world.rfq(T)
    new = await world.rfq(T2)
    resync = Resync(world.maker, world.clock)
    await resync.startup()
    result = await resync.backfill({known: T, "r-gone": T2})
    assert result.open_rfqs == 2
    rfqs = [e for e in result.events if isinstance(e, E.RfqReceived)]
    assert [(r.rfq_id, r.market_ticker, r.contracts_centi) for r in rfqs] == [(new, T2, 100)]
    assert rfqs[0].created_ts_ms == WALL0 // MS + START_NS // MS
    assert rfqs[0].ts_recv_ns == world.clock.now_ns()
    gone = [e for e in result.events if isinstance(e, E.RfqDeleted)]
    assert [(g.rfq_id, g.market_ticker) for g in gone] == [("r-gone", T2)]


async def test_accepted_quote_is_back_dated(world: SimWorld) -> None:
    rfq_id, qid = await _quote(world)
    world.clock.advance(2 * S)
    accepted_at_ns = world.clock.now_ns()
    await world.requester.accept_quote(rfq_id, qid, Side.NO)
    world.clock.advance(7_250 * MS)
    result = await Resync(world.maker, world.clock).backfill([rfq_id])
    [acc] = [e for e in result.events if isinstance(e, E.QuoteAccepted)]
    assert acc.ts_recv_ns == accepted_at_ns  # now - (wall_now - accepted_ts), to the ms
    assert (acc.quote_id, acc.rfq_id, acc.accepted_side) == (qid, rfq_id, Side.NO)
    assert (acc.yes_bid_micros, acc.no_bid_micros, acc.contracts_accepted_centi) == (
        480_000, 480_000, 100)
    assert (result.accepted_open, result.accepted_lapsed) == (1, 0)


async def test_executed_and_cancelled_quotes(world: SimWorld) -> None:
    rfq_id, qid = await _quote(world)
    await world.requester.accept_quote(rfq_id, qid, Side.YES)
    await world.maker.confirm_quote(rfq_id, qid)
    world.clock.advance(15 * S)
    world.ex.advance()
    rfq2, q2 = await _quote(world, T2)
    assert world.ex.cancel_open_quotes_silently() == 1  # a server roll (§3.1)
    result = await Resync(world.maker, world.clock).backfill([rfq_id, rfq2])
    [done] = [e for e in result.events if isinstance(e, E.QuoteExecuted)]
    fills = world.ex.fills("maker")
    assert (done.quote_id, done.order_id) == (qid, fills[0].order_id)
    cancelled = [e for e in result.events if isinstance(e, E.QuoteCancelled)]
    assert [(c.rfq_id, c.quote_id) for c in cancelled] == [(rfq2, q2)]


async def test_quotes_outside_lookback_are_not_listed(world: SimWorld) -> None:
    rfq_id, _ = await _quote(world)
    world.clock.advance(601 * S)
    result = await Resync(world.maker, world.clock, quote_lookback_s=600).backfill([rfq_id])
    assert result.quotes == 0
    assert result.events == ()


# --- with the engine ------------------------------------------------------------------------


async def _engine_with_quote(w: SimWorld) -> tuple[Harness, str, str]:
    """An engine that quoted a sim RFQ through the adapter and learnt the quote id."""
    h = Harness()
    h.now = w.clock.now_ns()
    h.ready(T)
    rfq_id = await w.rfq(T, 100)
    [sub] = of(h.rfq(rfq_id, T, contracts_centi=100), C.SubmitQuote)
    qid = await KalshiExecution(w.maker).submit_quote(
        rfq_id, sub.yes_bid_micros, sub.no_bid_micros, rest_remainder=sub.rest_remainder,
        post_only=sub.post_only, subaccount=sub.subaccount)
    h.placed(rfq_id, qid)
    return h, rfq_id, qid


async def _backfill_into_engine(w: SimWorld, h: Harness, sim: SimExchange) -> list[C.Command]:
    h.now = w.clock.now_ns()
    result = await Resync(w.maker, w.clock).backfill(list(h.engine.rfqs))
    out: list[C.Command] = []
    for event in result.events:
        out.extend(h.send(event))
    return out


async def test_missed_accept_with_open_window_is_confirmed(world: SimWorld) -> None:
    h, rfq_id, qid = await _engine_with_quote(world)
    accepted_at = world.clock.now_ns()
    await world.requester.accept_quote(rfq_id, qid, Side.YES)
    world.clock.advance(5 * S)  # the WS frame was lost while we were disconnected
    out = await _backfill_into_engine(world, h, world.ex)
    [confirm] = of(out, C.ConfirmQuote)
    assert (confirm.rfq_id, confirm.quote_id) == (rfq_id, qid)
    # Same deadline as from the live frame: accept time + 30 s window - 200 ms margin.
    assert confirm.deadline_ns == accepted_at + (30_000 - 200) * MS
    await KalshiExecution(world.maker).confirm_quote(rfq_id, qid)


async def test_missed_accept_with_lapsed_window_is_not_confirmed(world: SimWorld) -> None:
    h, rfq_id, qid = await _engine_with_quote(world)
    await world.requester.accept_quote(rfq_id, qid, Side.YES)
    world.clock.advance(40 * S)
    out = await _backfill_into_engine(world, h, world.ex)
    assert of(out, C.ConfirmQuote) == []
    assert ("declined", "confirm_deadline_passed") in decisions(out)


async def test_an_accept_cancelled_before_we_heard_of_it_is_recorded_as_missed(
    world: SimWorld,
) -> None:
    # The hard case the chaos soak found: the accept's frame was lost with the feed, and the
    # requester closed its RFQ before any backfill ran. The engine used to see a plain cancel
    # and say nothing about the accept at all.
    h, rfq_id, qid = await _engine_with_quote(world)
    await world.requester.accept_quote(rfq_id, qid, Side.YES)
    world.clock.advance(1 * S)
    await world.requester.delete_rfq(rfq_id)
    assert world.ex.get_quote(qid).status == QuoteStatus.CANCELLED
    out = await _backfill_into_engine(world, h, world.ex)
    assert of(out, C.ConfirmQuote) == []
    [missed] = [d for d in of(out, C.RecordDecision) if d.decision == "missed"]
    assert (missed.reason, missed.quote_id, missed.strategy) == ("accept_missed", qid, "main")
    # A quote cancelled without an accept is just cancelled.
    h2, rfq2, _q2 = await _engine_with_quote(world)
    await world.requester.delete_rfq(rfq2)
    assert [d for d in of(await _backfill_into_engine(world, h2, world.ex), C.RecordDecision)
            if d.decision == "missed"] == []


async def test_an_accept_while_the_comms_feed_is_dark_is_polled_and_confirmed(
    world: SimWorld,
) -> None:
    # The confirm window does not wait for the reconnect: while the communications feed is
    # down (or its subscription lost), the handler polls our quotes over REST.
    h, rfq_id, qid = await _engine_with_quote(world)
    posted: list[E.Event] = []
    ticks: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(delay_s: float) -> None:  # one poll per tick of the test, in virtual time
        await ticks.get()
        world.clock.advance(int(delay_s * S))

    def state(quote_id: str) -> str | None:
        q = h.engine.quotes.get(quote_id)
        return None if q is None else str(q.state)

    handler = NoticeHandler(
        post=posted.append, resync=Resync(world.maker, world.clock),
        known_rfqs=lambda: list(h.engine.rfqs), quote_state=state, clock=world.clock,
        outage_poll_s=0.5, sleep=sleep,
    )
    await handler(_connected("comms-s0", "communications"))
    posted.clear()
    poller = asyncio.create_task(handler.poll_outages())
    try:
        await handler(FeedDisconnected("comms-s0", "comms-s0-1", "closed: code=1006",
                                       world.clock.now_ns()))
        assert handler.dark_feeds == ("comms-s0",)
        accepted_at = world.clock.now_ns()
        await world.requester.accept_quote(rfq_id, qid, Side.YES)  # its frame is lost
        await ticks.put(None)
        await _until(lambda: handler.backfills == 2)
        assert handler.outage_polls == 1
        h.now = world.clock.now_ns()
        out = [c for e in posted for c in h.send(e)]
        [confirm] = of(out, C.ConfirmQuote)
        assert (confirm.quote_id, confirm.deadline_ns) == (qid, accepted_at + (30_000 - 200) * MS)
        # Back: the poller stops after its current sleep and waits for the next outage.
        await handler(_connected("comms-s0", "communications"))
        assert handler.dark_feeds == ()
        backfills = handler.backfills
        await ticks.put(None)
        await _until(ticks.empty)
        for _ in range(20):
            await asyncio.sleep(0)
        assert (handler.outage_polls, handler.backfills) == (1, backfills)
        # A lost subscription darkens the feed too; its restoration backfills and lights it.
        await handler(SubscriptionLost("comms-s0", "comms-s0-2", "communications", 10, 25,
                                       "overflow", world.clock.now_ns()))
        assert handler.dark_feeds == ("comms-s0",)
        await handler(SubscriptionRestored("comms-s0", "comms-s0-2", "communications", 11,
                                           world.clock.now_ns()))
        assert handler.dark_feeds == ()
        assert handler.backfills == backfills + 2  # one at the loss, one at the restore
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)


async def test_backfill_duplicates_are_harmless_to_the_engine(world: SimWorld) -> None:
    h, rfq_id, qid = await _engine_with_quote(world)
    await world.requester.accept_quote(rfq_id, qid, Side.YES)
    world.clock.advance(1 * S)
    first = await _backfill_into_engine(world, h, world.ex)
    again = await _backfill_into_engine(world, h, world.ex)
    assert len(of(first, C.ConfirmQuote)) == 1
    assert of(again, C.ConfirmQuote) == []


# --- feed notices -> backfills, reconciliations and book gaps ------------------------------


def _connected(feed: str, *channels: str) -> FeedConnected:
    views = tuple(SubscriptionView(i, ch, 10 + i) for i, ch in enumerate(channels))
    return FeedConnected(feed, f"{feed}-1", 0, views)


async def test_notices_drive_backfill_and_reconcile(world: SimWorld) -> None:
    rfq_id = await world.rfq(T)
    posted: list[E.Event] = []
    handler = NoticeHandler(
        post=posted.append, resync=Resync(world.maker, world.clock), known_rfqs=dict,
        reconciler=Reconciler(world.maker, world.clock), ours=lambda: {T2: 300},
    )
    await handler(_connected("comms-s0", "communications"))
    assert [(type(e).__name__, getattr(e, "rfq_id", "")) for e in posted] == [
        ("RfqReceived", rfq_id)]
    posted.clear()
    await handler(_connected("data", "fill", "market_positions", "market_lifecycle_v2"))
    assert [(e.market_ticker, e.position_centi) for e in posted
            if isinstance(e, E.PositionReported)] == [(T2, 0)]
    posted.clear()
    await handler(E.SequenceGap("orderbook_delta", 3, 5, 7, 0))  # the engine sees book seqs
    assert posted == []
    await handler(E.SequenceGap("communications", 1, 5, 7, 0))
    assert (handler.backfills, handler.reconciles) == (2, 1)


async def test_lost_book_data_pulls_quotes_until_snapshot(world: SimWorld) -> None:
    h, rfq_id, qid = await _engine_with_quote(world)
    posted: list[E.Event] = []
    handler = NoticeHandler(
        post=posted.append, resync=Resync(world.maker, world.clock), known_rfqs=dict,
        book_tickers=lambda: (T,), book_sid=lambda: 4,
    )
    await handler(FeedDisconnected("comms-s0", "comms-s0-1", "closed", 0))
    assert posted == []
    await handler(FeedDisconnected("data", "data-1", "closed: code=1006", 9))
    assert posted == [E.SequenceGap("orderbook_delta", 4, 0, 0, 9, market_ticker=T)]
    out = h.send(posted[0])
    assert [(c.rfq_id, c.quote_id) for c in of(out, C.CancelQuote)] == [(rfq_id, qid)]
    assert of(out, C.RequestBookSnapshot) == [C.RequestBookSnapshot(T)]
    posted.clear()
    await handler(SubscriptionLost("data", "data-2", "orderbook_delta", 8, 25, "overflow", 11,
                                   market_tickers=(T, T2)))
    assert [(g.sid, g.market_ticker) for g in posted if isinstance(g, E.SequenceGap)] == [
        (8, T), (8, T2)]


async def test_failed_backfill_is_logged_and_skipped() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"code": "unavailable", "message": "later"})

    clock = ReplayClock(START_NS, WALL0)
    rest = KalshiRest(BASE, Signer("k", ed25519.Ed25519PrivateKey.generate()),
                      transport=httpx.MockTransport(handle), clock=clock, sleep=_no_sleep,
                      retry=RetryPolicy(max_attempts=1))
    posted: list[E.Event] = []
    handler = NoticeHandler(post=posted.append, resync=Resync(rest, clock), known_rfqs=dict)
    with structlog.testing.capture_logs() as logs:
        await handler(_connected("comms-s0", "communications"))
    assert posted == []
    assert handler.backfills == 0
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"][-1] == (
        "resync_backfill_failed")
    await rest.aclose()


# --- end to end: runtime + engine + feeds + adapters over the simulator's real sockets ------


class _DropAccepts:
    """A fault injector that loses every ``quote_accepted`` frame while ``active``."""

    def __init__(self) -> None:
        self.active = False
        self.dropped = 0

    def on_frame(self, conn_id: str, text: str) -> list[tuple[float, str]]:
        if self.active and '"quote_accepted"' in text:
            self.dropped += 1
            return []
        return [(0.0, text)]

    async def on_request(self, method: str, path: str) -> None:
        return None


def _decode(data: bytes | str, ts_recv_ns: int) -> tuple[str | None, list[E.Event]]:
    msg = decode_frame(data, ts_recv_ns)
    # The source subscribes books with use_yes_price: true.
    return frame_type(msg), to_events(msg, ts_recv_ns, yes_priced=True)


async def _until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if cond():
                return
            await asyncio.sleep(0.005)  # polling: the conditions span several tasks


async def test_accept_lost_on_the_wire_is_confirmed_after_the_comms_gap() -> None:
    clock = ReplayClock(START_NS, WALL0)
    ex = SimExchange(clock)
    signer = Signer("key-maker", ed25519.Ed25519PrivateKey.generate())
    for user in ("maker", "req"):
        ex.register_account(user, balance_micros=1_000_000_000)
    ex.register_key("maker", signer.key_id, signer.public_key())
    for t in (T, T2):
        ex.add_market(SimMarket(t, "KXTEST-26JAN01", "KXTEST", t,
                                grid_for_structure("linear_cent")))
    faults = _DropAccepts()
    async with serve_sim(ex, "127.0.0.1", 0, clock=clock, faults=faults, heartbeat_s=None) as sim:
        rest = KalshiRest(BASE, signer, transport=httpx.ASGITransport(app=sim.app), clock=clock,
                          sleep=_no_sleep)
        engine = Engine(parse_config(CONFIG))
        holder: dict[str, Runtime] = {}

        def post(event: E.Event) -> None:  # the runtime is built after its notice handler
            holder["rt"].post(event)

        resync = Resync(rest, clock)
        await resync.startup()
        handler = NoticeHandler(
            post=post, resync=resync,
            known_rfqs=lambda: {r: rec.market_ticker for r, rec in engine.rfqs.items()},
            reconciler=Reconciler(rest, clock),
            ours=lambda: {t: engine.ledger.position_centi(t) for t in engine.ledger.tickers()},
        )
        source = build_feed_source(
            sim.ws_url, signer, wall_ms=lambda: clock.wall_ns() // 1_000_000,
            now_ns=clock.now_ns, on_notice=handler, proxy=None,
            backoff=Backoff(initial_s=0.01, max_s=0.05),
        )
        assert source.books is not None
        runtime = holder["rt"] = Runtime(
            clock=clock, engine=engine, decode=_decode, execution=KalshiExecution(rest),
            market_data=KalshiMarketData(rest), subscriptions=source.books,
        )
        tasks = [asyncio.create_task(source.run()),
                 asyncio.create_task(runtime.run([source]))]
        try:
            await _until(lambda: handler.backfills == 1 and handler.reconciles == 1)
            rfq_id = ex.create_rfq("req", T, contracts_centi=100)
            await _until(lambda: bool(runtime.open_quotes))
            [(qid, quoted_rfq)] = runtime.open_quotes.items()
            assert quoted_rfq == rfq_id
            faults.active = True
            ex.accept_quote("req", rfq_id, qid, Side.YES)
            clock.advance(3 * S)
            # The next communications frame reveals the seq gap -> REST backfill -> confirm.
            ex.create_rfq("req", T2, contracts_centi=100)
            await _until(lambda: ex.get_quote(qid).status == QuoteStatus.CONFIRMED)
            assert faults.dropped == 1
            assert handler.backfills == 2
            assert runtime.stats.confirms_sent == 1
        finally:
            runtime.stop()
            await asyncio.wait_for(tasks[1], 10)
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await rest.aclose()


# --- item 8: startup reads are retried with backoff for a bounded time ------------------------


Sleep = Callable[[float], Awaitable[None]]


class FlakyStatus:
    """``/exchange/status`` answers 503 ``failures`` times, then the exchange is open."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/trade-api/v2")
        if path == "/exchange/status":
            self.calls += 1
            if self.calls <= self.failures:
                return httpx.Response(503, json={"code": "unavailable", "message": "later"})
            return httpx.Response(200, json={"exchange_active": True, "trading_active": True})
        if path == "/account/limits":
            bucket = {"refill_rate": 20, "bucket_capacity": 20}
            return httpx.Response(200, json={"usage_tier": "basic", "read": bucket,
                                             "write": bucket})
        if path == "/account/endpoint_costs":
            return httpx.Response(200, json={"default_cost": 1, "endpoint_costs": []})
        assert path == "/communications/id", path
        return httpx.Response(200, json={"communications_id": "c-1"})


def _flaky(failures: int) -> tuple[Resync, FlakyStatus, ReplayClock, Sleep]:
    """A Resync over a flaky exchange; its ``sleep`` advances the injected clock."""
    clock = ReplayClock(START_NS, WALL0)

    async def sleep(delay_s: float) -> None:
        clock.advance(int(delay_s * 1e9))

    exchange = FlakyStatus(failures)
    rest = KalshiRest(BASE, Signer("k", ed25519.Ed25519PrivateKey.generate()),
                      transport=httpx.MockTransport(exchange), clock=clock, sleep=sleep,
                      retry=RetryPolicy(max_attempts=4, base_delay_s=0.01))
    return Resync(rest, clock), exchange, clock, sleep


async def test_startup_survives_a_run_of_5xx_longer_than_the_client_retries() -> None:
    resync, exchange, _, sleep = _flaky(failures=12)  # three client calls' worth of 503s
    info = await resync.startup_retrying(retry_for_s=60.0, sleep=sleep, rng=random.Random(1))
    assert info.communications_id == "c-1"
    assert exchange.calls == 13


async def test_startup_gives_up_after_its_budget_with_one_clear_line() -> None:
    resync, exchange, clock, sleep = _flaky(failures=10**6)
    with pytest.raises(StartupFailedError) as info:
        await resync.startup_retrying(retry_for_s=30.0, sleep=sleep, rng=random.Random(1))
    line = str(info.value)
    assert "\n" not in line
    assert line.startswith("startup reads failed for ")
    assert "GET /exchange/status: 503" in line
    assert clock.now_ns() - START_NS <= 30 * 10**9
    assert exchange.calls > 4
