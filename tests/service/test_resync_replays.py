"""Issue 12 item 7: a WebSocket gap backfills only since the gap, never replays what the engine
has seen, and a re-delivered event is never counted or written twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from test_adapter import SimWorld, T, make_world
from test_resync import Harness, of

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketInfo, MarketStatus, Side
from quoter.kalshi.adapter import KalshiExecution
from quoter.kalshi.ws_types import FeedConnected, FeedDisconnected, SubscriptionView
from quoter.observability.metrics import Metrics
from quoter.service.hooks import ServiceHooks
from quoter.service.resync import NoticeHandler, ReplayFilter, Resync
from quoter.service.store import Store

S = 1_000_000_000
COMMS = (SubscriptionView(0, "communications", 1),)


@pytest.fixture
async def world() -> AsyncIterator[SimWorld]:
    w = make_world()
    yield w
    await w.close()


async def _quote(w: SimWorld, h: Harness, ticker: str = T) -> tuple[str, str]:
    """The engine quotes a new sim RFQ and learns the quote id."""
    h.now = w.clock.now_ns()
    rfq_id = await w.rfq(ticker, 100)
    [sub] = of(h.rfq(rfq_id, ticker, contracts_centi=100), C.SubmitQuote)
    qid = await KalshiExecution(w.maker).submit_quote(
        rfq_id, sub.yes_bid_micros, sub.no_bid_micros, rest_remainder=False, post_only=False,
        subaccount=None)
    h.placed(rfq_id, qid)
    return rfq_id, qid


def _handler(w: SimWorld, h: Harness, posted: list[E.Event]) -> NoticeHandler:
    def state(quote_id: str) -> str | None:
        q = h.engine.quotes.get(quote_id)
        return None if q is None else str(q.state)

    return NoticeHandler(
        post=posted.append, resync=Resync(w.maker, w.clock),
        known_rfqs=lambda: {r: rec.market_ticker for r, rec in h.engine.rfqs.items()},
        quote_state=state, clock=w.clock,
    )


def _backfilled(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == "resync_backfilled"]


async def test_a_gap_backfills_since_its_start_and_skips_what_the_engine_saw(
    world: SimWorld,
) -> None:
    h = Harness()
    h.now = world.clock.now_ns()
    h.ready(T)
    rfq1, q1 = await _quote(world, h)
    await world.maker.delete_quote(rfq1, q1)
    await world.requester.delete_rfq(rfq1)
    h.send(E.QuoteCancelled(rfq1, q1, h.now))  # the live frame: the engine knows
    posted: list[E.Event] = []
    handler = _handler(world, h, posted)
    await handler(FeedConnected("comms-s0", "comms-s0-1", world.clock.now_ns(), COMMS))
    # The first backfill reads the whole lookback, but q1's cancel is not news to the engine.
    assert not [e for e in posted if isinstance(e, E.QuoteCancelled)]

    world.clock.advance(120 * S)
    h.now = world.clock.now_ns()
    h.ready(T)
    rfq2, q2 = await _quote(world, h)
    world.clock.advance(10 * S)
    last_frame_ns = world.clock.now_ns()
    await handler(FeedDisconnected("comms-s0", "comms-s0-1", "closed", last_frame_ns + S,
                                   last_frame_ns=last_frame_ns))
    world.clock.advance(1 * S)
    await world.requester.accept_quote(rfq2, q2, Side.YES)  # missed: we are disconnected
    world.clock.advance(1 * S)
    posted.clear()
    with capture_logs() as logs:
        await handler(FeedConnected("comms-s0", "comms-s0-2", world.clock.now_ns(), COMMS))
    [line] = _backfilled(logs)
    # Only quotes updated since the gap (its last frame less the 5 s margin) were read:
    # q1 (cancelled 132 s ago) is not listed any more.
    wall_gap_s = (world.clock.wall_ns() - (world.clock.now_ns() - last_frame_ns)) // S
    assert line["min_ts_s"] == wall_gap_s - 5
    assert line["quotes"] == 1
    assert [(type(e).__name__, getattr(e, "quote_id", "")) for e in posted] == [
        ("QuoteAccepted", q2)]
    h.now = world.clock.now_ns()
    [confirm] = of(h.send(posted[0]), C.ConfirmQuote)
    assert confirm.quote_id == q2

    # A later comms gap reads since the last backfill; the accept is not sent again.
    posted.clear()
    world.clock.advance(2 * S)
    with capture_logs() as logs:
        await handler(E.SequenceGap("communications", 1, 5, 7, world.clock.now_ns()))
    assert posted == []
    [line] = _backfilled(logs)
    assert line["replays_skipped"] == 1


def test_replay_filter_sends_each_fact_once_and_only_if_the_engine_lacks_it() -> None:
    states = {"q-open": "open", "q-conf": "confirming", "q-done": "executed"}
    f = ReplayFilter(states.get)
    assert f.quote_is_news("q-open", "accepted")
    assert not f.quote_is_news("q-open", "accepted")  # sent before
    assert not f.quote_is_news("q-conf", "accepted")  # the engine is past the accept
    assert f.quote_is_news("q-conf", "confirmed")
    assert not f.quote_is_news("q-done", "executed")
    assert not f.quote_is_news("q-done", "cancelled")
    assert f.quote_is_news("q-unknown", "accepted")  # its create response may be in flight
    assert not f.quote_is_news("q-unknown", "accepted")
    assert not f.quote_is_news("q-open", "open")  # not a fact the engine acts on
    assert f.rfq_is_news("r1", "new")
    assert not f.rfq_is_news("r1", "new")


async def test_replayed_events_are_counted_and_written_once(
    world: SimWorld, tmp_path: Path,
) -> None:
    h = Harness()
    h.now = world.clock.now_ns()
    h.ready(T)
    with Store(tmp_path / "q.db") as store:
        hooks = ServiceHooks(clock=world.clock, engine=h.engine, store=store, metrics=Metrics())

        def step(event: E.Event) -> list[C.Command]:
            out = h.send(event)
            for d in of(out, C.RecordDecision):
                hooks.on_decision(d, h.now)
            hooks.on_engine_step(event, out, h.now)
            return out

        rfq_id = await world.rfq(T, 100)
        step(E.RfqReceived(rfq_id, T, h.now, creator_id="req", contracts_centi=100))
        step(E.QuotePlaced(rfq_id, "q1", h.now))
        accepted = E.QuoteAccepted("q1", rfq_id, T, 480_000, 480_000, Side.YES, h.now,
                                   contracts_accepted_centi=100)
        confirmed = E.QuoteConfirmed(rfq_id, "q1", h.now)
        step(accepted)
        assert store.claim_confirm("q1", world.clock.wall_ns())  # what the journal does
        for event in (accepted, confirmed, confirmed, confirmed):
            step(event)  # the live frames, then backfills racing them
        h.send(E.MarketLoaded(MarketInfo("KXOTHER-26-A", "KXOTHER-26", "KXOTHER",
                                         MarketStatus.ACTIVE, grid_for_structure("linear_cent")),
                              h.now))
        unrouted = E.RfqReceived("r-other", "KXOTHER-26-A", h.now, creator_id="req",
                                 contracts_centi=100)
        step(unrouted)
        step(unrouted)
        step(E.QuoteCancelled("r2", "q2", h.now))
        step(E.QuoteCancelled("r2", "q2", h.now))
        store.flush()
        assert (hooks.counts["accepted"], hooks.counts["confirmed"]) == (1, 1)
        assert (hooks.counts["rfqs_seen"], hooks.routed) == (2, 1)
        assert [s for s, _, _ in store.quote_transitions("q1")] == ["open", "accepted", "confirmed"]
        assert [s for s, _, _ in store.quote_transitions("q2")] == ["cancelled"]
