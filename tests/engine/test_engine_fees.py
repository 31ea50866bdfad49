"""Last look counts our maker fee, from the market's series terms."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from engine_fixtures import Harness, config, decisions, market

from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.types import Side

#: Fair $0.50 and a 1 cent edge: we bid $0.49 on both sides.
THIN = config(pricer='fixed, params: {edge_dollars: "0.01", '
                     'fair_yes_dollars: {KXTEST-26JAN01-A: "0.50"}}')


def _accept_with(fees: FeeSchedule) -> list[tuple[str, str]]:
    h = Harness(THIN)
    h.ready(m=replace(market(), fees=fees))
    h.quote()
    return decisions(h.accept("q1", Side.YES, size=10_000))


def test_a_trade_whose_edge_the_maker_fee_eats_is_declined() -> None:
    # 0.07 x 1/4 x 3 x 0.49 x 0.51 = $0.0131 per contract > our $0.01 edge.
    assert _accept_with(FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES, Fraction(3))) == [
        ("declined", "edge")]


def test_the_same_trade_is_confirmed_where_the_series_fee_is_smaller() -> None:
    # x1: $0.0044 per contract leaves $0.0056 of edge; plain quadratic charges makers nothing.
    assert _accept_with(FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES)) == [
        ("confirmed", "edge_ok")]
    assert _accept_with(FeeSchedule(FeeType.QUADRATIC)) == [("confirmed", "edge_ok")]


def test_the_decline_detail_names_the_fee() -> None:
    h = Harness(THIN)
    h.ready(m=replace(market(), fees=FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES,
                                                 Fraction(3))))
    h.quote()
    (d,) = [c for c in h.accept("q1", Side.YES, size=10_000) if hasattr(c, "detail")]
    assert "edge=10000" in d.detail
    assert "fee=13120" in d.detail  # 0.0525 x 0.49 x 0.51 x 100 = $1.3120, per contract
