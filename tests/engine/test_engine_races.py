"""Races Kalshi runs and a kind simulator never did: an accept that beats our create-quote
response (kalshi-api.md §0a: accepts ~0.11 s after creation), and a replace racing an accept."""

from __future__ import annotations

from engine_fixtures import BOOK_MID, MS, Harness, T, config, decisions, of
from test_exposure_book import assert_book_matches

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import Side
from quoter.engine.lifecycle import QuoteState


def _submitted(h: Harness, rfq_id: str = "r1") -> C.SubmitQuote:
    (sub,) = of(h.rfq(rfq_id), C.SubmitQuote)
    return sub


def test_an_accept_that_beats_the_create_response_is_held_then_confirmed() -> None:
    h = Harness()
    h.ready()
    _submitted(h)
    ts = h.now
    out = h.accept("q1", Side.YES, ts_ns=ts)  # q1 is not known yet: our create is in flight
    assert of(out, C.ConfirmQuote) == []
    deadline = ts + (30_000 - 200) * MS
    assert C.ScheduleTimer("held:q1", deadline) in out
    assert decisions(out) == [("held", "create_in_flight")]
    h.advance_ms(40)
    out = h.placed("r1", "q1")
    # The deadline runs from the accept's receipt, not from when we learnt the id.
    assert of(out, C.ConfirmQuote) == [C.ConfirmQuote("r1", "q1", deadline)]
    assert C.CancelTimer("held:q1") in out
    assert decisions(out) == [("confirmed", "edge_ok")]
    assert h.engine.quotes["q1"].state is QuoteState.CONFIRMING
    assert h.engine.ledger.provisional_centi(T) == 10_000


def test_a_held_accept_is_dropped_when_the_create_fails() -> None:
    h = Harness()
    h.ready()
    _submitted(h)
    h.accept("q1", Side.YES)
    out = h.send(E.QuoteRejected("r1", "insufficient_balance", "no cash", h.now))
    assert of(out, C.ConfirmQuote) == []
    assert C.CancelTimer("held:q1") in out
    assert ("ignored", "unknown_quote") in decisions(out)
    assert h.engine.records.held == {}


def test_a_held_accept_lapses_at_its_confirm_deadline() -> None:
    h = Harness()
    h.ready()
    _submitted(h)
    h.accept("q1", Side.YES)
    h.advance_ms(29_800)
    out = h.send(E.TimerFired("held:q1", h.now))
    assert decisions(out) == [("ignored", "unknown_quote")]
    assert "deadline" in of(out, C.RecordDecision)[0].detail
    # The create answers after all: the quote is live, but that accept is gone (never confirmed).
    out = h.placed("r1", "q1")
    assert of(out, C.ConfirmQuote) == []
    assert h.engine.quotes["q1"].state is QuoteState.OPEN


def test_an_accept_of_an_unknown_quote_with_no_create_in_flight_is_ignored_at_once() -> None:
    h = Harness()
    h.ready()
    h.quote()  # q1 placed: nothing is in flight
    out = h.accept("q9", Side.YES)
    assert decisions(out) == [("ignored", "unknown_quote")]
    assert not any(isinstance(c, C.ScheduleTimer) for c in out)


def test_an_accept_of_a_replacement_in_flight_is_held_and_priced_on_its_own_bids() -> None:
    h = Harness(config(pricer=BOOK_MID))
    h.ready(bid=480_000, ask=520_000)
    h.quote()  # q1 at fair 0.50
    h.advance_ms(300)
    (sub,) = of(h.snapshot(bid=440_000, ask=460_000), C.SubmitQuote)  # the replacement
    out = h.accept("q2", Side.NO, size=5_000)  # the requester hits q2's NO bid first
    assert decisions(out) == [("held", "create_in_flight")]
    out = h.placed("r1", "q2")
    (conf,) = of(out, C.ConfirmQuote)
    assert conf.quote_id == "q2"
    q2 = h.engine.quotes["q2"]
    assert (q2.state, q2.no_bid_micros) == (QuoteState.CONFIRMING, sub.no_bid_micros)
    assert h.engine.quotes["q1"].state is QuoteState.REPLACED


# --- a replace racing an accept -----------------------------------------------------------------


def _accepted_while_replacing(h: Harness) -> C.SubmitQuote:
    """q1 live; a replacement in flight; the requester accepts q1 and we confirm it."""
    h.ready(bid=480_000, ask=520_000)
    h.quote()  # q1
    h.advance_ms(300)
    (sub,) = of(h.snapshot(bid=460_000, ask=500_000), C.SubmitQuote)  # fair 0.48: replace
    out = h.accept("q1", Side.NO)  # buy NO at 0.48 with fair NO 0.52: confirm
    assert of(out, C.ConfirmQuote) != []
    return sub


def test_a_replacement_landing_after_an_accept_is_cancelled_and_counted_in_risk() -> None:
    h = Harness(config(pricer=BOOK_MID))
    _accepted_while_replacing(h)
    out = h.placed("r1", "q2")
    assert C.CancelQuote("r1", "q2", "superseded_by_accept") in out
    assert h.engine.quotes["q2"].state is QuoteState.CANCELLING
    # Until the exchange confirms the cancel, q2 can still be hit: it is in the risk totals.
    assert h.engine.book.market(T).n_quotes == 1
    assert_book_matches(h.engine)
    h.send(E.QuoteCancelled("r1", "q2", h.now))
    assert h.engine.book.market(T).n_quotes == 0
    assert_book_matches(h.engine)


def test_an_accept_of_the_racing_replacement_is_declined_by_rule() -> None:
    h = Harness(config(pricer=BOOK_MID))
    _accepted_while_replacing(h)
    h.placed("r1", "q2")
    out = h.accept("q2", Side.YES)  # one RFQ, one trade: q1 is already being confirmed
    assert of(out, C.ConfirmQuote) == []
    assert decisions(out) == [("declined", "rfq_already_accepted")]
    assert h.engine.rfqs["r1"].state.value == "accepted"
    assert h.engine.quotes["q1"].state is QuoteState.CONFIRMING
    assert_book_matches(h.engine)


def test_an_accept_of_a_replacement_after_the_rfq_executed_is_declined_not_a_crash() -> None:
    h = Harness(config(pricer=BOOK_MID))
    _accepted_while_replacing(h)
    h.send(E.QuoteConfirmed("r1", "q1", h.now))
    h.send(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
    assert h.engine.rfqs["r1"].state.value == "done"
    out = h.placed("r1", "q2")
    assert C.CancelQuote("r1", "q2", "superseded_by_accept") in out
    assert_book_matches(h.engine)
    out = h.accept("q2", Side.YES)
    assert of(out, C.ConfirmQuote) == []
    assert decisions(out) == [("declined", "rfq_already_accepted")]
    assert_book_matches(h.engine)
