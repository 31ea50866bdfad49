"""KalshiExecution / KalshiMarketData against the simulator (in-process ASGI) and MockTransport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from fractions import Fraction

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from quoter.clock import ReplayClock
from quoter.domain import events as E
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketStatus, Side
from quoter.errors import DecodeError, ExchangeRejectedError, ServerError, StrategyError
from quoter.kalshi.adapter import KalshiExecution, KalshiMarketData
from quoter.kalshi.auth import Signer
from quoter.kalshi.rest import KalshiRest, RetryPolicy
from quoter.kalshi.source import DATA_CHANNELS, build_feed_source
from quoter.kalshi.translate import decode_events
from quoter.kalshi.ws_types import Backoff, FeedConnected, FeedNotice
from quoter.ports import InboundFrame
from quoter.sim.app import RateLimits, create_app
from quoter.sim.exchange import QuoteStatus, SimExchange, SimMarket
from quoter.sim.server import serve_sim

S = 1_000_000_000
MS = 1_000_000
START_NS = 1_000_000_000_000
WALL0 = 1_780_000_000 * S
T = "KXTEST-26JAN01-A"
T2 = "KXTEST-26JAN01-B"
BASE = "http://127.0.0.1/trade-api/v2"


async def _no_sleep(_s: float) -> None:
    """Never wait in tests (rate limiter / retries)."""


@dataclass
class SimWorld:
    """A simulator with a maker and a requester account, reached in-process over ASGI."""

    clock: ReplayClock
    ex: SimExchange
    maker: KalshiRest
    requester: KalshiRest

    async def rfq(self, ticker: str = T, contracts_centi: int = 100) -> str:
        """The requester asks for a quote."""
        return await self.requester.create_rfq(ticker, contracts_centi)

    async def close(self) -> None:
        """Close both clients."""
        await self.maker.aclose()
        await self.requester.aclose()


def make_world(
    *, rate_limits: RateLimits | None = None, start_ns: int = START_NS
) -> SimWorld:
    """Build the simulator (two linear_cent markets in series KXTEST) and two REST clients."""
    clock = ReplayClock(start_ns=start_ns, wall_offset_ns=WALL0)
    ex = SimExchange(clock)
    keys = {u: Signer(f"key-{u}", ed25519.Ed25519PrivateKey.generate())
            for u in ("maker", "req")}
    for user, signer in keys.items():
        ex.register_account(user, balance_micros=1_000_000_000)
        ex.register_key(user, signer.key_id, signer.public_key())
    for t in (T, T2):
        ex.add_market(SimMarket(t, "KXTEST-26JAN01", "KXTEST", t,
                                grid_for_structure("linear_cent"),
                                fees=FeeSchedule(FeeType.QUADRATIC)))
    app = create_app(ex, rate_limits=rate_limits, run_timers=False)

    def rest(user: str) -> KalshiRest:
        return KalshiRest(BASE, keys[user], transport=httpx.ASGITransport(app=app), clock=clock,
                          sleep=_no_sleep, retry=RetryPolicy(max_attempts=1))

    return SimWorld(clock, ex, rest("maker"), rest("req"))


@pytest.fixture
async def world() -> AsyncIterator[SimWorld]:
    w = make_world()
    yield w
    await w.close()


# --- execution ----------------------------------------------------------------------------


async def test_submit_confirm_against_sim(world: SimWorld) -> None:
    execution = KalshiExecution(world.maker)
    rfq_id = await world.rfq()
    quote_id = await execution.submit_quote(rfq_id, 480_000, 470_000, rest_remainder=False,
                                            post_only=True, subaccount=None)
    q = world.ex.get_quote(quote_id)
    assert (q.rfq_id, q.yes_bid_micros, q.no_bid_micros, q.post_only) == (
        rfq_id, 480_000, 470_000, True)
    await world.requester.accept_quote(rfq_id, quote_id, Side.NO)
    await execution.confirm_quote(rfq_id, quote_id)
    assert world.ex.get_quote(quote_id).status == QuoteStatus.CONFIRMED


async def test_a_refused_retry_of_a_confirm_that_landed_counts_as_confirmed(
        world: SimWorld) -> None:
    execution = KalshiExecution(world.maker)
    rfq_id = await world.rfq()
    quote_id = await execution.submit_quote(rfq_id, 480_000, 470_000, rest_remainder=False,
                                            post_only=False, subaccount=None)
    await world.requester.accept_quote(rfq_id, quote_id, Side.NO)
    # The first attempt landed but its response was lost; the retry is refused (4xx).
    world.ex.confirm_quote("maker", quote_id, rfq_id)
    with pytest.raises(ExchangeRejectedError):
        await world.maker.confirm_quote(rfq_id, quote_id)
    await execution.confirm_quote(rfq_id, quote_id)  # read back: it is confirmed
    assert world.ex.get_quote(quote_id).status == QuoteStatus.CONFIRMED


async def test_a_refused_confirm_of_a_quote_not_confirmed_still_fails(world: SimWorld) -> None:
    execution = KalshiExecution(world.maker)
    rfq_id = await world.rfq()
    quote_id = await execution.submit_quote(rfq_id, 480_000, 470_000, rest_remainder=False,
                                            post_only=False, subaccount=None)
    with pytest.raises(ExchangeRejectedError):  # never accepted: nothing to confirm
        await execution.confirm_quote(rfq_id, quote_id)


async def test_cancel_open_then_accepted_is_404(world: SimWorld) -> None:
    execution = KalshiExecution(world.maker)
    rfq_id = await world.rfq()
    q1 = await execution.submit_quote(rfq_id, 400_000, 0, rest_remainder=False,
                                      post_only=False, subaccount=None)
    await execution.cancel_quote(rfq_id, q1)
    assert world.ex.get_quote(q1).status == QuoteStatus.CANCELLED
    q2 = await execution.submit_quote(rfq_id, 410_000, 0, rest_remainder=False,
                                      post_only=False, subaccount=None)
    await world.requester.accept_quote(rfq_id, q2, Side.YES)
    # §0a: a DELETE after the accept is a 404 and the quote stays accepted.
    with pytest.raises(ExchangeRejectedError) as info:
        await execution.cancel_quote(rfq_id, q2)
    assert info.value.status_code == 404
    assert world.ex.get_quote(q2).status == QuoteStatus.ACCEPTED


async def test_late_confirm_surfaces_expired(world: SimWorld) -> None:
    execution = KalshiExecution(world.maker)
    rfq_id = await world.rfq()
    qid = await execution.submit_quote(rfq_id, 480_000, 480_000, rest_remainder=False,
                                       post_only=False, subaccount=None)
    await world.requester.accept_quote(rfq_id, qid, Side.YES)
    world.clock.advance(40 * S)
    with pytest.raises(ExchangeRejectedError) as info:
        await execution.confirm_quote(rfq_id, qid)
    assert (info.value.status_code, info.value.code) == (400, "expired")


async def test_unsendable_price_is_a_strategy_error_and_nothing_is_sent(
    world: SimWorld,
) -> None:
    execution = KalshiExecution(world.maker)
    rfq_id = await world.rfq()
    with pytest.raises(StrategyError, match="exceeds"):
        await execution.submit_quote(rfq_id, 600_000, 500_000, rest_remainder=False,
                                     post_only=False, subaccount=None)
    assert world.ex.list_quotes() == []


async def test_unknown_rfq_and_bad_id_are_rejections(world: SimWorld) -> None:
    execution = KalshiExecution(world.maker)
    with pytest.raises(ExchangeRejectedError) as info:
        await execution.submit_quote("no-such-rfq", 480_000, 0, rest_remainder=False,
                                     post_only=False, subaccount=None)
    assert 400 <= info.value.status_code < 500
    with pytest.raises(ExchangeRejectedError) as bad:
        await execution.confirm_quote("r1", "..")
    assert (bad.value.status_code, bad.value.code) == (0, "invalid_request")


# --- market data --------------------------------------------------------------------------


async def test_fetch_market_and_book_from_sim(world: SimWorld) -> None:
    md = KalshiMarketData(world.maker)
    info = await md.fetch_market(T)
    assert (info.ticker, info.series_ticker, info.status) == (T, "KXTEST", MarketStatus.ACTIVE)
    assert info.grid.is_valid(10_000)
    assert not info.grid.is_valid(10_500)
    world.ex.place_order("req", T, Side.YES, 450_000, 300)
    world.ex.place_order("req", T, Side.NO, 520_000, 700)
    snap = await md.fetch_book(T, 123)
    assert snap.market_ticker == T
    assert snap.ts_recv_ns == 123
    assert snap.yes_levels == ((450_000, 300),)
    # REST NO levels are in NO prices: not yes-priced.
    assert snap.no_levels == ((520_000, 700),)
    assert snap.yes_priced is False


def _mock_rest(handler: httpx.MockTransport) -> KalshiRest:
    clock = ReplayClock(START_NS, WALL0)
    signer = Signer("key-mock", ed25519.Ed25519PrivateKey.generate())
    return KalshiRest(BASE, signer, transport=handler, clock=clock, sleep=_no_sleep,
                      retry=RetryPolicy(max_attempts=1))


async def test_market_with_price_ranges_and_exact_book_via_mock() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/series/KXMVEX"):
            return httpx.Response(200, json={"series": {
                "ticker": "KXMVEX", "fee_type": "quadratic_with_combo_maker_fees",
                "fee_multiplier": 1}})
        if request.url.path.endswith("/orderbook"):
            assert request.url.params["depth"] == "0"
            return httpx.Response(200, json={"orderbook_fp": {
                "yes_dollars": [["0.0015", "1.50"], ["0.0900", "10.00"]]}})
        return httpx.Response(200, json={"market": {
            "ticker": "KXMVEX-1", "status": "active", "event_ticker": "KXMVEX",
            "mve_collection_ticker": "KXMVECOLL",
            "price_ranges": [{"start": "0.0000", "end": "0.0100", "step": "0.0001"},
                             {"start": "0.0100", "end": "0.9900", "step": "0.0010"},
                             {"start": "0.9900", "end": "1.0000", "step": "0.0001"}]}})

    rest = _mock_rest(httpx.MockTransport(handle))
    md = KalshiMarketData(rest)
    info = await md.fetch_market("KXMVEX-1")
    assert info.is_combo
    assert info.is_hvm
    # Combos pay the combo maker share (half the taker fee), read from their series.
    assert info.fees == FeeSchedule(FeeType.QUADRATIC_WITH_COMBO_MAKER_FEES)
    assert info.grid.is_valid(1_500)
    assert not info.grid.is_valid(11_500)
    snap = await md.fetch_book("KXMVEX-1", 7)
    assert snap.yes_levels == ((1_500, 150), (90_000, 1_000))
    assert snap.no_levels == ()
    await rest.aclose()


async def test_fees_come_from_the_series_read_once_per_series(world: SimWorld) -> None:
    from fractions import Fraction

    from quoter.sim.models import SimSeries

    world.ex.add_series(SimSeries("KXFEE", fees=FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES,
                                                            Fraction(3, 2))))
    for t in ("KXFEE-26JAN01-A", "KXFEE-26JAN01-B"):
        world.ex.add_market(SimMarket(t, "KXFEE-26JAN01", "KXFEE", t,
                                      grid_for_structure("linear_cent")))
    reads: list[str] = []
    md = KalshiMarketData(world.maker)
    real = world.maker.get_series

    async def counting(ticker: str):  # type: ignore[no-untyped-def]
        reads.append(ticker)
        return await real(ticker)

    world.maker.get_series = counting  # type: ignore[method-assign]
    a = await md.fetch_market("KXFEE-26JAN01-A")
    b = await md.fetch_market("KXFEE-26JAN01-B")
    plain = await md.fetch_market(T)
    want = FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES, Fraction(3, 2))
    assert a.fees == want
    assert b.fees == want
    assert plain.fees == FeeSchedule(FeeType.QUADRATIC)  # KXTEST's own terms
    assert reads == ["KXFEE", "KXTEST"]  # once per series


async def test_an_unknown_series_gets_the_default_fees_and_a_failure_propagates() -> None:
    calls = {"n": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        if "/series/" in request.url.path:
            calls["n"] += 1
            if calls["n"] == 1:
                return httpx.Response(503, json={"error": {"code": "unavailable",
                                                           "message": "try later"}})
            return httpx.Response(404, json={"error": {"code": "not_found",
                                                       "message": "no such series"}})
        return httpx.Response(200, json={"market": {
            "ticker": "KXQ-26-A", "status": "active", "event_ticker": "KXQ-26",
            "price_level_structure": "linear_cent"}})

    rest = _mock_rest(httpx.MockTransport(handle))
    md = KalshiMarketData(rest)
    with pytest.raises(ServerError):
        await md.fetch_market("KXQ-26-A")  # transient: the load fails, retried later
    info = await md.fetch_market("KXQ-26-A")
    assert info.fees == FeeSchedule()
    await md.fetch_market("KXQ-26-A")
    assert calls["n"] == 2  # the 404's default is cached

async def test_market_structure_for_combo_pricing_via_mock() -> None:
    """Strikes, the settlement value and the event's ``mutually_exclusive`` flag reach the
    engine (combo pricing, issue 9); the event is read once per event, and an unreadable one
    proves nothing rather than failing the market."""
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path.removeprefix("/trade-api/v2"))
        if request.url.path.endswith("/events/KXRACE-26JAN01"):
            return httpx.Response(200, json={"event": {
                "event_ticker": "KXRACE-26JAN01", "mutually_exclusive": True}, "markets": []})
        if "/events/" in request.url.path or "/series/" in request.url.path:
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})
        ticker = request.url.path.rsplit("/", 1)[1]
        event = ticker.rsplit("-", 1)[0]
        market = {"ticker": ticker, "status": "active", "event_ticker": event,
                  "price_level_structure": "linear_cent"}
        if event == "KXGAME-26JAN01":
            market |= {"status": "determined", "strike_type": "greater", "floor_strike": 6.5,
                       "settlement_value_dollars": "1.0000"}
        return httpx.Response(200, json={"market": market})

    rest = _mock_rest(httpx.MockTransport(handle))
    md = KalshiMarketData(rest)
    a = await md.fetch_market("KXRACE-26JAN01-A")
    b = await md.fetch_market("KXRACE-26JAN01-B")
    assert a.mutually_exclusive
    assert b.mutually_exclusive
    assert paths.count("/events/KXRACE-26JAN01") == 1
    g = await md.fetch_market("KXGAME-26JAN01-W7")
    assert (g.strike_type, g.floor_strike, g.settlement_value_micros) == (
        "greater", Fraction(13, 2), 1_000_000)
    assert not g.mutually_exclusive
    await rest.aclose()


async def test_unusable_market_is_a_decode_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        market = {"ticker": "X-1", "status": "weird", "price_level_structure": "linear_cent"}
        return httpx.Response(200, content=json.dumps({"market": market}))

    rest = _mock_rest(httpx.MockTransport(handle))
    with pytest.raises(DecodeError):
        await KalshiMarketData(rest).fetch_market("X-1")
    await rest.aclose()


# --- the live frame source over real sockets (simulator under uvicorn, 127.0.0.1:0) ---------


async def _until(cond: Callable[[], bool], timeout_s: float = 3.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if cond():
                return
            await asyncio.sleep(0.005)  # polling: the conditions span several tasks


def _types(frames: list[InboundFrame], conn_prefix: str = "") -> list[str]:
    return [json.loads(f.data)["type"] for f in frames if f.conn_id.startswith(conn_prefix)]


async def test_feed_source_shards_data_channels_and_books() -> None:
    clock = ReplayClock(START_NS, WALL0)
    ex = SimExchange(clock)
    signer = Signer("key-maker", ed25519.Ed25519PrivateKey.generate())
    for user in ("maker", "req"):
        ex.register_account(user, balance_micros=1_000_000_000)
    ex.register_key("maker", signer.key_id, signer.public_key())
    for t in (T, T2):
        ex.add_market(SimMarket(t, "KXTEST-26JAN01", "KXTEST", t,
                                grid_for_structure("linear_cent")))
    ex.place_order("req", T, Side.NO, 520_000, 700)  # a NO bid at 0.52 = YES offer at 0.48
    notices: list[FeedNotice] = []

    async def on_notice(notice: FeedNotice) -> None:
        notices.append(notice)

    async with serve_sim(ex, "127.0.0.1", 0, clock=clock, heartbeat_s=None) as sim:
        source = build_feed_source(
            sim.ws_url, signer, wall_ms=lambda: clock.wall_ns() // 1_000_000,
            now_ns=clock.now_ns, shards=2, on_notice=on_notice, proxy=None,
            backoff=Backoff(initial_s=0.01, max_s=0.05), delete_batch=1,
        )
        frames: list[InboundFrame] = []

        async def collect() -> None:
            async for frame in source.frames():
                frames.append(frame)

        tasks = [asyncio.create_task(source.run()), asyncio.create_task(collect())]
        try:
            await _until(lambda: sum(isinstance(n, FeedConnected) for n in notices) == 3)
            channels = sorted(s.channel for n in notices if isinstance(n, FeedConnected)
                              for s in n.subscriptions)
            assert channels == sorted(["communications", "communications", *DATA_CHANNELS])
            assert source.books is not None
            # An unknown market fails the whole subscribe (code 16): it is found and dropped.
            await source.books.subscribe_markets(["KXNOPE-1", T])
            assert source.books.tickers() == (T,)
            await _until(lambda: "orderbook_snapshot" in _types(frames, "data"))
            snap = next(f for f in frames if b"orderbook_snapshot" in _raw(f))
            [book] = decode_events(snap.data, snap.ts_recv_ns, yes_priced=True)
            assert isinstance(book, E.BookSnapshotReceived)
            assert (book.market_ticker, book.no_levels) == (T, ((480_000, 700),))

            await source.books.subscribe_markets([T, T2])
            await _until(lambda: _types(frames, "data").count("orderbook_snapshot") == 2)
            await source.books.unsubscribe_markets([T])
            assert source.books.subscribed() == (T2,)  # delete_batch=1: sent at once
            assert source.books.tickers() == (T2,)

            rfq_id = ex.create_rfq("req", T, contracts_centi=100)
            await _until(lambda: "rfq_created" in _types(frames))
            [rfq_frame] = [f for f in frames if b"rfq_created" in _raw(f)]
            assert rfq_frame.conn_id.startswith("comms-s")  # exactly one shard got it
            qid = ex.create_quote("maker", rfq_id, 480_000, 480_000)
            ex.accept_quote("req", rfq_id, qid, Side.YES)
            ex.confirm_quote("maker", qid, rfq_id)
            clock.advance(15 * S)
            ex.advance()
            await _until(lambda: "fill" in _types(frames, "data"))
            assert "market_position" in _types(frames, "data")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _raw(frame: InboundFrame) -> bytes:
    return frame.data if isinstance(frame.data, bytes) else frame.data.encode()


async def test_books_wanted_before_connect_and_deletes_batched() -> None:
    clock = ReplayClock(START_NS, WALL0)
    ex = SimExchange(clock)
    signer = Signer("key-maker", ed25519.Ed25519PrivateKey.generate())
    ex.register_account("maker", balance_micros=1_000_000_000)
    ex.register_key("maker", signer.key_id, signer.public_key())
    for t in (T, T2):
        ex.add_market(SimMarket(t, "KXTEST-26JAN01", "KXTEST", t,
                                grid_for_structure("linear_cent")))
    async with serve_sim(ex, "127.0.0.1", 0, clock=clock, heartbeat_s=None) as sim:
        source = build_feed_source(
            sim.ws_url, signer, wall_ms=lambda: clock.wall_ns() // 1_000_000,
            now_ns=clock.now_ns, data_channels=(), proxy=None, delete_batch=2,
            backoff=Backoff(initial_s=0.01, max_s=0.05),
        )
        books = source.books
        assert books is not None
        async with asyncio.timeout(0.5):  # not connected: a wish, no waiting for an ack
            await books.subscribe_markets([T, T2])
        frames: list[InboundFrame] = []

        async def collect() -> None:
            async for frame in source.frames():
                frames.append(frame)

        tasks = [asyncio.create_task(source.run()), asyncio.create_task(collect())]
        try:
            await _until(lambda: _types(frames, "data").count("orderbook_snapshot") == 2)
            await books.unsubscribe_markets([T])
            assert books.tickers() == (T2,)
            assert books.subscribed() == (T, T2)  # one unwanted market: below the batch
            await books.subscribe_markets([T])  # still subscribed: nothing to send
            await books.unsubscribe_markets([T, T2])
            assert books.subscribed() == ()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
