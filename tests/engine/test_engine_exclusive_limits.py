"""Event contract limits on mutually exclusive markets are measured per outcome (issue 9, 14).

In an event where at most one market resolves YES, YES on two outcomes of three is the same
bet as NO on the third (100 contracts at risk, not 200), and YES on one with NO on another is
a double bet (200). A signed or gross sum over the markets gets one of those wrong.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import product

from engine_fixtures import T2, Harness, T, config, decisions, market, of
from hypothesis import given, settings
from hypothesis import strategies as st

from quoter.domain import commands as C
from quoter.domain.types import Side
from quoter.engine.outcomes import exclusive_event_centi

T3 = "KXTEST-26JAN01-C"  # a third outcome of the same event as T and T2

EVENT_150 = config(risk="{max_position_contracts_per_market: 1000, "
                        "max_position_contracts_per_event: 150, "
                        "max_position_contracts_per_series: 5000, "
                        "max_position_contracts_total: 10000}")


def _harness(exclusive: bool) -> Harness:
    h = Harness(EVENT_150)
    for t in (T, T2, T3):
        h.ready(t, replace(market(t), mutually_exclusive=exclusive))
    return h


def test_yes_on_another_outcome_of_an_exclusive_event_reduces_the_risk() -> None:
    # Long 100 YES on A. Buying YES on B is a hedge (if A wins, B loses, and vice versa):
    # per outcome at most 100 at risk. Buying NO on B doubles the bet on A (200).
    h = _harness(exclusive=True)
    h.fill("t1", "o-elsewhere", Side.YES, 500_000, 10_000, T)
    out = h.rfq("r1", T2, contracts_centi=6_000)
    (sub,) = of(out, C.SubmitQuote)
    assert (sub.yes_bid_micros > 0, sub.no_bid_micros) == (True, 0)
    (d,) = of(out, C.RecordDecision)
    assert (d.decision, d.reason) == ("quoted", "one_sided")
    assert "max_position_per_event" in d.detail
    # At last look the accepted YES side is checked the same way and confirmed.
    h.placed("r1", "q1")
    assert decisions(h.accept("q1", Side.YES, rfq_id="r1", ticker=T2, size=6_000)) == [
        ("confirmed", "edge_ok")]


def test_an_ordinary_event_still_sums_its_markets() -> None:
    # Without the exclusive flag the markets may all resolve YES: 100 + 60 > 150 either way.
    h = _harness(exclusive=False)
    h.fill("t1", "o-elsewhere", Side.YES, 500_000, 10_000, T)
    out = h.rfq("r1", T2, contracts_centi=6_000)
    assert of(out, C.SubmitQuote) == []
    assert decisions(out) == [("not_quoted", "risk:max_position_per_event")]


def test_a_double_bet_across_exclusive_outcomes_is_declined_at_last_look() -> None:
    # Both B quotes go out two-sided while flat; then we get long 100 YES on A elsewhere. NO
    # on B now bets on A twice (160 > 150 per outcome) and is declined; YES on B hedges A.
    h = _harness(exclusive=True)
    for rid, qid in (("r1", "q1"), ("r2", "q2")):
        (sub,) = of(h.rfq(rid, T2, contracts_centi=6_000), C.SubmitQuote)
        assert sub.yes_bid_micros > 0
        assert sub.no_bid_micros > 0
        h.placed(rid, qid)
    h.fill("t1", "o-elsewhere", Side.YES, 500_000, 10_000, T)
    out = h.accept("q1", Side.NO, rfq_id="r1", ticker=T2, size=6_000)
    assert of(out, C.ConfirmQuote) == []
    assert decisions(out) == [("declined", "risk:max_position_per_event")]
    out = h.accept("q2", Side.YES, rfq_id="r2", ticker=T2, size=6_000)
    assert decisions(out) == [("confirmed", "edge_ok")]


def test_a_fully_hedged_exclusive_book_frees_the_limit() -> None:
    # 100 YES on each of A and C, 40 YES on B: a gross sum says 240 (over 150); per outcome
    # the spread is 100 (every named outcome pays at least 40, "none of them" pays 0).
    h = _harness(exclusive=True)
    h.fill("t1", "o1", Side.YES, 300_000, 10_000, T)
    h.fill("t2", "o2", Side.YES, 300_000, 4_000, T2)
    h.fill("t3", "o3", Side.YES, 300_000, 10_000, T3)
    out = h.rfq("r1", T2, contracts_centi=5_000)
    (sub,) = of(out, C.SubmitQuote)
    assert sub.yes_bid_micros > 0
    assert sub.no_bid_micros > 0
    assert decisions(out) == [("quoted", "quoted")]


def _brute_force(committed: list[int], quotes: list[list[tuple[int, int]]]) -> int:
    """Every way the quotes can be hit (none, YES side, NO side each), every outcome."""
    flat = [(i, y, n) for i, qs in enumerate(quotes) for y, n in qs]
    worst = 0
    for hits in product((0, 1, 2), repeat=len(flat)):
        c = list(committed)
        for (i, y, n), hit in zip(flat, hits, strict=True):
            c[i] += y if hit == 1 else -n if hit == 2 else 0
        shorts = sum(max(0, -x) for x in c)
        payouts = [shorts] + [shorts + x for x in c]  # none wins; market o wins
        worst = max(worst, max(payouts) - min(payouts))
    return worst


_quote = st.tuples(st.integers(0, 50), st.integers(0, 50))


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.tuples(st.integers(-100, 100), st.lists(_quote, max_size=2)),
                     min_size=1, max_size=4).filter(lambda d: sum(len(q) for _, q in d) <= 6))
def test_the_per_outcome_measure_equals_a_brute_force_over_hits_and_outcomes(
    data: list[tuple[int, list[tuple[int, int]]]],
) -> None:
    committed = [c for c, _ in data]
    quotes = [qs for _, qs in data]
    points = [(c + sum(y for y, _ in qs), c - sum(n for _, n in qs)) for c, qs in data]
    assert exclusive_event_centi(points) == _brute_force(committed, quotes)


def test_the_per_outcome_measure_by_hand() -> None:
    assert exclusive_event_centi([(100, 100), (100, 100), (0, 0)]) == 100  # YES A, YES B
    assert exclusive_event_centi([(100, 100), (-100, -100)]) == 200  # YES A, NO B
    assert exclusive_event_centi([(0, 0)]) == 0
    # One market's two sides never both count: a 50-lot quote alone is 50, not 100.
    assert exclusive_event_centi([(50, -50)]) == 50
