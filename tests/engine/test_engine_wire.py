"""Wire details through the engine: a legacy fill frame (no fee) and its REST copy (with the
fee) book one trade with its fee; an accept without the quote's bids is confirmed on ours."""

from __future__ import annotations

from engine_fixtures import Harness, T, decisions, of

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import BookSide, Side


def _fill(fee: int, known: bool, ts: int) -> E.FillReceived:
    return E.FillReceived("t1", "o1", T, Side.YES, BookSide.BID, 480_000, 10_000, fee, False,
                          ts, fee_known=known)


def test_a_legacy_fill_and_its_rest_copy_book_one_trade_with_its_fee() -> None:
    h = Harness()
    h.ready()
    h.quote()
    h.accept("q1", Side.YES)
    h.send(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
    h.send(_fill(0, False, h.now))  # the feed's legacy frame: no fee
    assert h.engine.ledger.provisional_centi(T) == 0
    assert h.engine.ledger.market(T).fees_micros == 0
    h.send(_fill(43_700, True, h.now))  # the REST copy: same trade, with its fee
    m = h.engine.ledger.market(T)
    assert (m.position_centi, m.fees_micros) == (10_000, 43_700)
    assert h.engine.ledger.provisional_centi(T) == 0  # not reduced twice
    # Reconciliation against the exchange's fees now agrees: nothing recorded.
    out = h.send(E.PositionReported(T, 10_000, h.now, fees_paid_micros=43_700))
    assert out == []


def test_an_accept_without_bids_is_confirmed_on_our_quotes_prices() -> None:
    h = Harness()
    h.ready()
    h.quote()
    out = h.send(E.QuoteAccepted("q1", "r1", T, None, None, Side.NO, h.now,
                                 contracts_accepted_centi=10_000))
    assert decisions(out) == [("confirmed", "edge_ok")]
    assert of(out, C.ConfirmQuote)
    assert h.engine.quotes["q1"].no_bid_micros == 480_000


def test_an_execution_after_a_confirm_that_looked_refused_is_booked() -> None:
    h = Harness()
    h.ready()
    h.quote()
    h.accept("q1", Side.YES)
    # The retried confirm answered 4xx although the first attempt landed.
    h.send(E.ConfirmFailed("r1", "q1", "invalid_parameters", "already confirmed", h.now))
    assert h.engine.ledger.provisional_centi(T) == 0
    out = h.send(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
    assert ("executed", "after_confirm_failed") in decisions(out)
    assert h.engine.quotes["q1"].state.value == "executed"
    assert h.engine.ledger.provisional_centi(T) == 10_000  # counted again until its fills
    h.send(_fill(0, True, h.now))
    assert h.engine.ledger.provisional_centi(T) == 0
    assert h.engine.ledger.position_centi(T) == 10_000
