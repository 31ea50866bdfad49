"""Limits count what could trade: target-cost RFQs by their target, and every open quote."""

from __future__ import annotations

from engine_fixtures import Harness, T, config, decisions, of

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import Side


def test_a_target_cost_rfq_with_zero_contracts_is_sized_from_its_target() -> None:
    # $50 of target cost at our ~$0.48 bids is ~104 contracts: ~$50 at risk, not $0.
    h = Harness(config(risk='{max_position_contracts_per_market: 100000, '
                           'max_position_contracts_per_event: 100000, '
                           'max_position_contracts_per_series: 100000, '
                           'max_position_contracts_total: 100000, '
                           'max_worst_case_loss_dollars_per_market: "10"}'))
    h.ready()
    out = h.rfq("r1", contracts_centi=0, target_cost_micros=50_000_000)
    assert of(out, C.SubmitQuote) == []
    assert decisions(out) == [("not_quoted", "risk:max_worst_case_loss_per_market")]
    # The same target within the limit is quoted, and counted at its estimated size.
    out = h.rfq("r2", contracts_centi=0, target_cost_micros=4_000_000)
    assert decisions(out) == [("quoted", "quoted")]
    assert h.engine.book.market(T).loss_micros > 0


def test_an_accept_of_a_target_cost_quote_is_confirmed_at_the_estimated_size() -> None:
    h = Harness()
    h.ready()
    (sub,) = of(h.rfq("r1", contracts_centi=None, target_cost_micros=4_800_000), C.SubmitQuote)
    h.placed("r1", "q1")
    out = h.accept("q1", Side.YES)  # the accept names no size
    assert decisions(out) == [("confirmed", "edge_ok")]
    # The most contracts the target could buy: $4.80 at the lowest price involved ($0.48).
    assert h.engine.quotes["q1"].size_centi == 1_000
    assert h.engine.ledger.provisional_centi(T) == 1_000
    assert sub.yes_bid_micros == 480_000


LIMIT_100 = config(risk="{max_position_contracts_per_market: 100}")


def test_open_quotes_count_against_contract_limits_at_quoting_time() -> None:
    # Five 100-contract RFQs against a 100-contract limit: any one quote may be hit, so only
    # one may be out at a time (all of them hit at once would be 500 contracts).
    h = Harness(LIMIT_100)
    h.ready()
    h.quote("r1", "q1")
    for i in range(2, 6):
        out = h.rfq(f"r{i}")
        assert of(out, C.SubmitQuote) == []
        assert decisions(out) == [("not_quoted", "risk:max_position_per_market")]
    # Once the live quote is gone, the next RFQ is quoted again.
    h.send(E.QuoteCancelled("r1", "q1", h.now))
    assert decisions(h.rfq("r6")) == [("quoted", "quoted")]


def test_at_a_limit_the_side_that_reduces_the_position_stays_quotable() -> None:
    h = Harness(LIMIT_100)
    h.ready()
    h.fill("t1", "o-elsewhere", Side.YES, 500_000, 10_000)  # long 100 YES: at the limit
    out = h.rfq("r1", contracts_centi=5_000)
    (sub,) = of(out, C.SubmitQuote)
    # Buying NO (our NO bid hit) brings us back toward flat; buying YES would breach.
    assert sub.yes_bid_micros == 0
    assert sub.no_bid_micros == 480_000
    (d,) = of(out, C.RecordDecision)
    assert (d.decision, d.reason) == ("quoted", "one_sided")
    assert "max_position_per_market" in d.detail
    h.placed("r1", "q1")
    out = h.accept("q1", Side.NO, size=5_000)
    assert decisions(out) == [("confirmed", "edge_ok")]


def test_a_quote_past_the_limit_on_both_sides_is_refused() -> None:
    h = Harness(LIMIT_100)
    h.ready()
    out = h.rfq("r1", contracts_centi=15_000)  # 150 contracts either way: over 100
    assert of(out, C.SubmitQuote) == []
    assert decisions(out) == [("not_quoted", "risk:max_position_per_market")]
