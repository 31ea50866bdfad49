"""combo: legs from their own books or settlement values, priced outside the joint's bounds
(Fréchet, narrowed by the events' structure and a per-series dependence model)."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from strat_fixtures import book, leg_market, pricing_input, sane_books

from quoter.domain.book import OrderBook
from quoter.domain.types import ComboLeg, MarketInfo, MarketStatus, Side
from strategies.base import Decline, Pricing
from strategies.combo import Combo, ComboParams, joint_bounds, joint_bounds_micros

COMBO = "KXMVECROSSCATEGORY-S1-ABC"
INDEPENDENT = {"*": {"min_rho": "0", "max_rho": "0"}}


def legs_and_books(
    *specs: tuple[str, str, Side, int, int],
) -> tuple[tuple[ComboLeg, ...], dict[str, OrderBook]]:
    """Each spec: (event, market, side, yes_bid, yes_ask)."""
    legs = tuple(ComboLeg(e, m, s) for e, m, s, _, _ in specs)
    books = {m: book(m, ((b, 500),), ((1_000_000 - a, 500),)) for _, m, _, b, a in specs}
    return legs, books


def combo(**params: object) -> Combo:
    return Combo(ComboParams.model_validate(params))


def test_independent_model_is_the_product_with_sides_honoured() -> None:
    legs, books = legs_and_books(
        ("E1-A", "M1", Side.YES, 590_000, 610_000),  # mid 0.60
        ("E2-A", "M2", Side.NO, 240_000, 260_000),  # mid 0.25 -> NO 0.75
    )
    out = combo(edge_dollars="0.03", dependence=INDEPENDENT).price(
        pricing_input(books, ticker=COMBO, legs=legs))
    # 0.60 * 0.75 = 0.45, known exactly under the model
    assert out == Pricing(450_000, 420_000, 520_000, 450_000, 450_000)


def test_default_quotes_only_outside_the_frechet_bounds() -> None:
    legs, books = legs_and_books(
        ("E1-A", "M1", Side.YES, 590_000, 610_000),  # 0.60
        ("E2-A", "M2", Side.NO, 240_000, 260_000),  # 0.75
    )
    out = combo(edge_dollars="0.03").price(pricing_input(books, ticker=COMBO, legs=legs))
    # max(0, 0.60 + 0.75 - 1) = 0.35 <= P <= min = 0.60
    assert out == Pricing(475_000, 320_000, 370_000, 350_000, 600_000)


def test_nested_strikes_price_the_interval_between_them() -> None:
    # "wins" (margin > 0) at 0.60 and "wins by 7+" (margin > 6.5) at 0.40: P(both) = 0.40.
    legs, books = legs_and_books(
        ("G-1", "WIN", Side.YES, 590_000, 610_000),
        ("G-1", "WIN7", Side.YES, 390_000, 410_000),
    )
    markets = {
        "WIN": leg_market(legs[0], strike_type="greater", floor_strike=Fraction(0)),
        "WIN7": leg_market(legs[1], strike_type="greater", floor_strike=Fraction(13, 2)),
    }
    out = combo(edge_dollars="0.02").price(
        pricing_input(books, ticker=COMBO, legs=legs, leg_markets=markets))
    assert out == Pricing(400_000, 380_000, 580_000, 400_000, 400_000)
    # "wins" but not by 7+: 0.60 - 0.40 = 0.20.
    legs2 = (legs[0], replace(legs[1], side=Side.NO))
    out = combo(edge_dollars="0.02").price(
        pricing_input(books, ticker=COMBO, legs=legs2, leg_markets=markets))
    assert out == Pricing(200_000, 180_000, 780_000, 200_000, 200_000)


def test_mutually_exclusive_outcomes() -> None:
    legs, books = legs_and_books(
        ("E-1", "A", Side.YES, 290_000, 310_000),  # 0.30
        ("E-1", "B", Side.YES, 190_000, 210_000),  # 0.20
    )
    markets = {t: leg_market(leg, mutually_exclusive=True) for t, leg in zip("AB", legs,
                                                                             strict=True)}
    c = combo(edge_dollars="0.02")
    # Two winners of one race: impossible. No YES bid; NO bid at 1 - 0 - edge.
    out = c.price(pricing_input(books, ticker=COMBO, legs=legs, leg_markets=markets))
    assert out == Pricing(1, 0, 980_000, 0, 0)
    # A wins and B does not: exactly P(A) = 0.30.
    legs2 = (legs[0], replace(legs[1], side=Side.NO))
    out = c.price(pricing_input(books, ticker=COMBO, legs=legs2, leg_markets=markets))
    assert out == Pricing(300_000, 280_000, 680_000, 300_000, 300_000)
    # Neither: 1 - 0.30 - 0.20 = 0.50.
    legs3 = tuple(replace(leg, side=Side.NO) for leg in legs)
    out = c.price(pricing_input(books, ticker=COMBO, legs=legs3, leg_markets=markets))
    assert out == Pricing(500_000, 480_000, 480_000, 500_000, 500_000)


def test_dependence_model_narrows_the_bounds() -> None:
    legs, books = legs_and_books(
        ("E1-A", "M1", Side.YES, 490_000, 510_000),  # 0.50
        ("E2-A", "M2", Side.YES, 490_000, 510_000),  # 0.50
    )
    # Fréchet [0, 0.5]; independence 0.25; rho in [0, 0.5] -> [0.25, 0.375].
    out = combo(edge_dollars="0.01", dependence={"E1": {"min_rho": "0", "max_rho": "0.5"},
                                                  "E2": {"min_rho": "0", "max_rho": "0.2"}}
                ).price(pricing_input(books, ticker=COMBO, legs=legs))
    assert out == Pricing(312_500, 240_000, 615_000, 250_000, 375_000)
    # A series without a model falls back to the full bounds.
    out = combo(edge_dollars="0.01", dependence={"E1": {"min_rho": "0", "max_rho": "0"}}
                ).price(pricing_input(books, ticker=COMBO, legs=legs))
    assert out == Pricing(250_000, 0, 490_000, 0, 500_000)


def test_dependence_params_are_validated() -> None:
    with pytest.raises(ValidationError):
        ComboParams.model_validate({"dependence": {"X": {"min_rho": "0.5", "max_rho": "0"}}})
    with pytest.raises(ValidationError):
        ComboParams.model_validate({"dependence": {"X": {"max_rho": "1.5"}}})
    with pytest.raises(ValidationError):
        ComboParams.model_validate({"dependence": {"X": {"max_rho": 0.5}}})  # a float


def test_unproven_same_event_legs_widen_both_sides() -> None:
    legs, books = legs_and_books(
        ("E1-A", "M1", Side.YES, 590_000, 610_000),
        ("E1-A", "M2", Side.YES, 490_000, 510_000),
    )
    out = combo(edge_dollars="0.03", same_event_edge_dollars="0.02", dependence=INDEPENDENT
                ).price(pricing_input(books, ticker=COMBO, legs=legs))
    assert out == Pricing(300_000, 250_000, 650_000, 300_000, 300_000)  # edge 0.05 a side


def test_determined_leg_prices_at_its_settlement_value() -> None:
    legs, books = legs_and_books(
        ("E1-A", "M1", Side.YES, 590_000, 610_000),  # 0.60
        ("E2-A", "M2", Side.YES, 490_000, 510_000),
    )
    del books["M2"]  # a determined market's book may be gone
    won = (legs[0], replace(legs[1], yes_settlement_value_micros=1_000_000))
    out = combo(edge_dollars="0.02").price(pricing_input(books, ticker=COMBO, legs=won))
    assert out == Pricing(600_000, 580_000, 380_000, 600_000, 600_000)
    # Known from the leg market's metadata instead of the RFQ: a lost leg sinks the combo.
    markets = {"M1": leg_market(legs[0]),
               "M2": leg_market(legs[1], status=MarketStatus.DETERMINED,
                                settlement_value_micros=0)}
    out = combo(edge_dollars="0.02").price(
        pricing_input(books, ticker=COMBO, legs=legs, leg_markets=markets))
    assert out == Pricing(1, 0, 980_000, 0, 0)


@pytest.mark.parametrize(("status", "reason"), [
    (MarketStatus.CLOSED, "leg_closed"),
    (MarketStatus.DETERMINED, "leg_closed"),  # determined, value not known yet
    (MarketStatus.INACTIVE, "leg_paused"),
    (MarketStatus.INITIALIZED, "leg_not_open"),
])
def test_leg_that_does_not_trade_declines(status: MarketStatus, reason: str) -> None:
    legs, books = legs_and_books(
        ("E1-A", "M1", Side.YES, 590_000, 610_000), ("E2-A", "M2", Side.YES, 490_000, 510_000)
    )
    markets: dict[str, MarketInfo] = {"M1": leg_market(legs[0]),
                                      "M2": leg_market(legs[1], status=status)}
    out = combo().price(pricing_input(books, ticker=COMBO, legs=legs, leg_markets=markets))
    assert isinstance(out, Decline)
    assert out.reason == reason
    del markets["M2"]
    out = combo().price(pricing_input(books, ticker=COMBO, legs=legs, leg_markets=markets))
    assert out == Decline("unknown_leg", "M2")


def test_missing_or_one_sided_leg_declines() -> None:
    legs, books = legs_and_books(
        ("E1-A", "M1", Side.YES, 590_000, 610_000), ("E2-A", "M2", Side.YES, 490_000, 510_000)
    )
    del books["M2"]
    out = combo().price(pricing_input(books, ticker=COMBO, legs=legs))
    assert out == Decline("no_leg_book", "M2")
    books["M2"] = book("M2", no=())
    out = combo().price(pricing_input(books, ticker=COMBO, legs=legs))
    assert out == Decline("one_sided_leg_book", "M2")
    books["M2"] = book("M2", yes=((10_000, 100),), no=((10_000, 100),))
    out = combo(max_leg_spread_dollars="0.5").price(pricing_input(books, ticker=COMBO, legs=legs))
    assert out == Decline("wide_leg_book", "M2")


def test_not_a_combo() -> None:
    out = combo().price(pricing_input())
    assert isinstance(out, Decline)
    assert out.reason == "not_a_combo"


@given(qs=st.lists(st.fractions(0, 1), min_size=1, max_size=5),
       a=st.fractions(-1, 1), b=st.fractions(-1, 1))
def test_bounds_nest_inside_frechet(qs: list[Fraction], a: Fraction, b: Fraction) -> None:
    lo_rho, hi_rho = min(a, b), max(a, b)
    low, high = joint_bounds(qs, (lo_rho, hi_rho))
    f_low, f_high = joint_bounds(qs)
    assert f_low == max(Fraction(0), sum(qs) - (len(qs) - 1))
    assert f_high == min(qs)
    assert f_low <= low <= high <= f_high


@given(
    books=st.lists(sane_books(), min_size=1, max_size=4),
    sides=st.lists(st.sampled_from(Side), min_size=4, max_size=4),
    edge=st.integers(0, 100_000),
)
def test_properties(books: list[OrderBook], sides: list[Side], edge: int) -> None:
    tickers = [f"M{i}" for i in range(len(books))]
    for t, b in zip(tickers, books, strict=True):
        b.market_ticker = t
    legs = tuple(ComboLeg(f"E{i}-A", t, sides[i]) for i, t in enumerate(tickers))
    inp = pricing_input(dict(zip(tickers, books, strict=True)), ticker=COMBO, legs=legs)
    out = Combo(
        ComboParams.model_validate({"max_leg_spread_dollars": "1"}).model_copy(
            update={"edge_micros": edge}
        )
    ).price(inp)
    assert isinstance(out, Pricing)
    assert 0 < out.fair_yes_micros < 1_000_000
    assert 0 <= out.yes_bid_micros < 1_000_000
    assert 0 <= out.no_bid_micros < 1_000_000
    assert out.yes_bid_micros + out.no_bid_micros <= 1_000_000
    qs = []
    for leg, b in zip(legs, books, strict=True):
        mid = b.mid_micros()
        assert mid is not None
        qs.append(Fraction(mid if leg.side is Side.YES else 1_000_000 - mid, 1_000_000))
    low, high = joint_bounds(qs)
    # Neither bid crosses the no-arbitrage bounds, whatever the dependence.
    assert out.yes_bid_micros <= low * 1_000_000 - edge or out.yes_bid_micros == 0
    assert out.no_bid_micros <= (1 - high) * 1_000_000 - edge or out.no_bid_micros == 0
    assert out.fair_low_micros is not None
    assert out.fair_high_micros is not None
    assert out.fair_low_micros <= low * 1_000_000 <= high * 1_000_000 <= out.fair_high_micros
    # Exactly the rational definition (the pricer computes it in integers).
    lo_m, hi_m = low * 1_000_000, high * 1_000_000
    top = 999_999
    assert out.yes_bid_micros == min(max(math.floor(lo_m - edge), 0), top)
    assert out.no_bid_micros == min(max(math.floor(1_000_000 - hi_m - edge), 0), top)
    assert out.fair_yes_micros == min(max(math.floor((lo_m + hi_m) / 2), 1), top)
    assert (out.fair_low_micros, out.fair_high_micros) == (math.floor(lo_m), math.ceil(hi_m))


@settings(max_examples=500)
@given(qs=st.lists(st.integers(0, 1_000_000), max_size=6),
       lo=st.fractions(-1, 1, max_denominator=1000), hi=st.fractions(-1, 1, max_denominator=1000))
def test_integer_joint_bounds_equal_the_rational_ones(qs: list[int], lo: Fraction,
                                                      hi: Fraction) -> None:
    # The pricing path works on probabilities over 10**6 in integers; the Fraction version is
    # the definition.
    (ln, ld), (hn, hd) = joint_bounds_micros(qs, (lo, hi))
    low, high = joint_bounds([Fraction(q, 1_000_000) for q in qs], (lo, hi))
    assert Fraction(ln, ld) == low * 1_000_000
    assert Fraction(hn, hd) == high * 1_000_000
