"""combo: legs priced from their own books, sides honoured, product, same-event edge."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st
from strat_fixtures import book, pricing_input, sane_books

from quoter.domain.book import OrderBook
from quoter.domain.types import ComboLeg, Side
from strategies.base import Decline, Pricing
from strategies.combo import Combo, ComboParams

COMBO = "KXMVECROSSCATEGORY-S1-ABC"


def legs_and_books(
    *specs: tuple[str, str, Side, int, int],
) -> tuple[tuple[ComboLeg, ...], dict[str, OrderBook]]:
    """Each spec: (event, market, side, yes_bid, yes_ask)."""
    legs = tuple(ComboLeg(e, m, s) for e, m, s, _, _ in specs)
    books = {m: book(m, ((b, 500),), ((1_000_000 - a, 500),)) for _, m, _, b, a in specs}
    return legs, books


def combo(**params: object) -> Combo:
    return Combo(ComboParams.model_validate(params))


def test_product_with_sides_honoured() -> None:
    legs, books = legs_and_books(
        ("E1", "M1", Side.YES, 590_000, 610_000),  # mid 0.60
        ("E2", "M2", Side.NO, 240_000, 260_000),  # mid 0.25 -> NO 0.75
    )
    out = combo(edge_dollars="0.03").price(pricing_input(books, ticker=COMBO, legs=legs))
    # 0.60 * 0.75 = 0.45
    assert out == Pricing(450_000, 420_000, 520_000)


def test_same_event_legs_widen_both_sides() -> None:
    legs, books = legs_and_books(
        ("E1", "M1", Side.YES, 590_000, 610_000),
        ("E1", "M2", Side.YES, 490_000, 510_000),
    )
    out = combo(edge_dollars="0.03", same_event_edge_dollars="0.02").price(
        pricing_input(books, ticker=COMBO, legs=legs)
    )
    assert out == Pricing(300_000, 250_000, 650_000)  # edge 0.05 on each side


def test_missing_or_one_sided_leg_declines() -> None:
    legs, books = legs_and_books(
        ("E1", "M1", Side.YES, 590_000, 610_000), ("E2", "M2", Side.YES, 490_000, 510_000)
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


@given(
    books=st.lists(sane_books(), min_size=1, max_size=4),
    sides=st.lists(st.sampled_from(Side), min_size=4, max_size=4),
    edge=st.integers(0, 100_000),
)
def test_properties(books: list[OrderBook], sides: list[Side], edge: int) -> None:
    tickers = [f"M{i}" for i in range(len(books))]
    for t, b in zip(tickers, books, strict=True):
        b.market_ticker = t
    legs = tuple(ComboLeg(f"E{i}", t, sides[i]) for i, t in enumerate(tickers))
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
    # The joint is the exact product of the legs' side probabilities (bounded by each leg).
    joint = Fraction(1)
    for leg, b in zip(legs, books, strict=True):
        mid = b.mid_micros()
        assert mid is not None
        joint *= Fraction(mid if leg.side is Side.YES else 1_000_000 - mid, 1_000_000)
    assert out.fair_yes_micros == max(1, int(joint * 1_000_000))
