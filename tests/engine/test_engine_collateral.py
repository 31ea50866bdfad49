"""Collateral: quote only what we could pay for if hit, and treat the exchange's
``insufficient_balance`` as a state (pause, recorded once), not a surprise per RFQ."""

from __future__ import annotations

from engine_fixtures import T2, Harness, T, decisions, of

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import Side

DOLLAR = 1_000_000


def _cash(h: Harness, dollars: int) -> list[C.Command]:
    return h.send(E.BalanceReported(dollars * DOLLAR, h.now))


def test_no_balance_reported_means_the_exchange_is_the_judge() -> None:
    h = Harness()
    h.ready()
    assert decisions(h.rfq("r1")) == [("quoted", "quoted")]


def test_open_quotes_count_against_the_cash_they_could_take() -> None:
    h = Harness()
    h.ready()
    h.ready(T2)
    _cash(h, 60)
    # 100 contracts at $0.48 (either side) take $48 + a $0.44 maker fee if hit.
    assert decisions(h.rfq("r1")) == [("quoted", "quoted")]
    h.placed("r1", "q1")
    # The next one could take another $48.44: only $11.56 is free while q1 is live.
    out = h.rfq("r2", T)
    assert of(out, C.SubmitQuote) == []
    assert decisions(out) == [("not_quoted", "risk:insufficient_balance")]
    # Once q1 is gone its cash is free again.
    h.send(E.QuoteCancelled("r1", "q1", h.now))
    assert decisions(h.rfq("r3", T)) == [("quoted", "quoted")]


def test_fills_spend_cash_until_the_next_balance_report() -> None:
    h = Harness()
    h.ready()
    h.ready(T2)
    _cash(h, 100)
    h.quote("r1", "q1")
    h.accept("q1", Side.YES)
    h.send(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
    h.fill("t1", "o1", Side.YES, 480_000, 10_000, fee=440_000)  # $48.44 spent
    assert h.engine.records.cash_spent_micros == 48_440_000
    # On T2 (fair $0.30) our NO bid is $0.68: 110 contracts could take $74.80 + fee > $51.56
    # free; the YES side ($0.28: $30.80 + fee) fits, so only that side is quoted.
    out = h.rfq("r2", T2, contracts_centi=11_000)
    (sub,) = of(out, C.SubmitQuote)
    assert (sub.yes_bid_micros, sub.no_bid_micros) == (280_000, 0)
    assert decisions(out) == [("quoted", "one_sided")]
    h.send(E.QuoteRejected("r2", "bad_request", "", h.now))
    _cash(h, 200)  # the exchange's own figure replaces our estimate
    assert h.engine.records.cash_spent_micros == 0
    assert decisions(h.rfq("r3", T2, contracts_centi=11_000)) == [("quoted", "quoted")]


def test_an_exchange_refusal_pauses_quoting_once_until_the_next_report() -> None:
    h = Harness()
    h.ready()
    _cash(h, 1_000)  # our estimate says yes; the exchange knows better
    h.rfq("r1")
    out = h.send(E.QuoteRejected("r1", "insufficient_balance", "not enough", h.now))
    assert ("collateral_paused", "insufficient_balance") in decisions(out)
    out = h.rfq("r2")
    assert of(out, C.SubmitQuote) == []
    assert decisions(out) == [("not_quoted", "risk:insufficient_balance")]
    # A second refusal (a create already in flight) is not a new state.
    h.send(E.QuoteRejected("r2", "insufficient_balance", "not enough", h.now))
    assert not [d for d in h.log if isinstance(d, C.RecordDecision)
                and d.decision == "collateral_paused"][1:]
    out = _cash(h, 1_000)
    assert decisions(out) == [("collateral_resumed", "balance_reported")]
    assert decisions(h.rfq("r3")) == [("quoted", "quoted")]


def test_last_look_declines_a_trade_the_cash_no_longer_covers() -> None:
    h = Harness()
    h.ready()
    h.ready(T2)
    _cash(h, 50)
    h.quote("r1", "q1")  # $48.44 if hit: covered when quoted
    # A fill elsewhere spends $30 before the accept arrives.
    h.fill("x1", "o-elsewhere", Side.YES, 300_000, 10_000, T2)
    out = h.accept("q1", Side.YES)
    assert of(out, C.ConfirmQuote) == []
    assert decisions(out) == [("declined", "risk:insufficient_balance")]
