"""A quiet book is not a stale one: illiquid markets, where RFQs matter most, stay quoted.

A book is untrusted only when we cannot know it is current: no snapshot yet, a sequence gap,
a lost connection (the service turns that into ``SequenceGap`` for every subscribed book).
"""

from __future__ import annotations

from engine_fixtures import Harness, T, config, decisions, of

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.engine.lifecycle import QuoteState

FIVE_MINUTES_MS = 5 * 60 * 1000


def test_a_book_quiet_for_minutes_keeps_its_quote_and_new_rfqs_are_quoted() -> None:
    h = Harness()
    h.ready()
    h.quote("r1", "q1")
    h.advance_ms(FIVE_MINUTES_MS)  # nobody traded: the book never changed
    out = h.rfq("r2")
    assert decisions(out) == [("quoted", "quoted")]
    assert of(out, C.SubmitQuote)
    assert h.engine.quotes["q1"].state is QuoteState.OPEN
    # ... and an accept after those minutes is confirmed on that book.
    out = h.accept("q1")
    assert decisions(out) == [("confirmed", "edge_ok")]


def test_a_lost_connection_makes_the_book_untrusted_and_pulls_its_quotes() -> None:
    h = Harness()
    h.ready(sid=4, seq=1)
    h.quote("r1", "q1")
    # The data connection dropped: the service reports a gap on every subscription.
    out = h.send(E.SequenceGap("orderbook_delta", 4, 0, 0, h.now))
    assert of(out, C.CancelQuote) == [C.CancelQuote("r1", "q1", "book_gap")]
    assert C.RequestBookSnapshot(T) in out
    # A new RFQ waits for the fresh snapshot (it is not quoted on an untrusted book) ...
    assert of(h.rfq("r2", contracts_centi=1_000), C.SubmitQuote) == []
    assert decisions(h.snapshot(sid=5, seq=1)) == [("quoted", "quoted")]
    # ... which is current however quiet it stays afterwards.
    h.advance_ms(FIVE_MINUTES_MS)
    assert decisions(h.rfq("r3", contracts_centi=1_000)) == [("quoted", "quoted")]


def test_an_operator_may_still_opt_into_an_age_limit() -> None:
    h = Harness(config(lifecycle="{book_stale_after_ms: 60000}"))
    h.ready()
    h.quote("r1", "q1")
    h.advance_ms(60_000)
    out = h.send(E.TimerFired(f"stale:{T}", h.now))
    assert of(out, C.CancelQuote) == [C.CancelQuote("r1", "q1", "stale_book")]
    h.advance_ms(1)
    assert decisions(h.rfq("r2")) == [("not_quoted", "stale_book")]
