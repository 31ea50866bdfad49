"""book_mid and microprice: worked cases, declines, and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strat_fixtures import TICKER, book, pricing_input, sane_books

from quoter.domain.book import OrderBook
from strategies.base import Decline, Pricing
from strategies.book_mid import BookMid, BookMidParams
from strategies.microprice import Microprice, MicropriceParams

EDGES = st.integers(0, 200_000)


def mid_pricer(edge: int = 20_000, **kw: object) -> BookMid:
    return BookMid(BookMidParams.model_validate({"edge_dollars": "0", **kw}).model_copy(
        update={"edge_micros": edge}))


def micro_pricer(edge: int = 20_000, **kw: object) -> Microprice:
    return Microprice(MicropriceParams.model_validate(kw).model_copy(update={"edge_micros": edge}))


def test_book_mid_worked_example() -> None:
    # YES bid 0.40, NO bid 0.55 -> YES ask 0.45; mid 0.425; edge 0.02.
    p = BookMid(BookMidParams.model_validate({"edge_dollars": "0.02"}))
    out = p.price(pricing_input())
    assert out == Pricing(fair_yes_micros=425_000, yes_bid_micros=405_000, no_bid_micros=555_000)


def test_microprice_leans_to_the_thin_side() -> None:
    # Ask has 1 contract, bid 9: the next trade is likelier up, fair above the mid.
    b = book(yes=((400_000, 900),), no=((550_000, 100),))
    out = Microprice(MicropriceParams.model_validate({})).price(pricing_input({TICKER: b}))
    assert isinstance(out, Pricing)
    assert out.fair_yes_micros == (400_000 * 100 + 450_000 * 900) // 1_000 == 445_000
    assert out.yes_bid_micros == 445_000 - 20_000


@pytest.mark.parametrize(
    ("books", "reason"),
    [
        ({}, "no_book"),
        ({TICKER: OrderBook(TICKER)}, "no_book"),
        ({TICKER: book(no=())}, "one_sided_book"),
        ({TICKER: book(yes=())}, "one_sided_book"),
        ({TICKER: book(yes=((500_000, 100),), no=((550_000, 100),))}, "crossed_book"),
        ({TICKER: book(yes=((100_000, 100),), no=((550_000, 100),))}, "wide_book"),
        ({TICKER: book(yes=((400_000, 50),))}, "thin_book"),
    ],
)
@pytest.mark.parametrize("cls", [BookMid, Microprice])
def test_declines(books: dict[str, OrderBook], reason: str, cls: type) -> None:
    params_cls = BookMidParams if cls is BookMid else MicropriceParams
    params = params_cls.model_validate({"max_spread_dollars": "0.20", "min_depth_contracts": 1})
    out = cls(params).price(pricing_input(books))
    assert isinstance(out, Decline)
    assert out.reason == reason


@given(b=sane_books(), edge=EDGES, use_micro=st.booleans())
def test_properties(b: OrderBook, edge: int, use_micro: bool) -> None:
    pricer = micro_pricer(edge, max_spread_dollars="1") if use_micro else mid_pricer(
        edge, max_spread_dollars="1")
    out = pricer.price(pricing_input({TICKER: b}))
    assert isinstance(out, Pricing)
    bid, ask = b.best_yes_bid(), b.best_yes_ask()
    assert bid is not None
    assert ask is not None
    assert bid[0] <= out.fair_yes_micros <= ask[0]
    assert 0 <= out.yes_bid_micros < 1_000_000
    assert 0 <= out.no_bid_micros < 1_000_000
    assert out.yes_bid_micros + out.no_bid_micros <= 1_000_000 - 2 * edge or (
        0 in (out.yes_bid_micros, out.no_bid_micros)
    )
    assert out.yes_bid_micros + out.no_bid_micros <= 1_000_000
    assert out.yes_bid_micros <= out.fair_yes_micros
    assert out.no_bid_micros <= 1_000_000 - out.fair_yes_micros


@given(b=sane_books(), lo=EDGES, hi=EDGES)
def test_more_edge_never_raises_a_bid(b: OrderBook, lo: int, hi: int) -> None:
    lo, hi = min(lo, hi), max(lo, hi)
    a = mid_pricer(lo, max_spread_dollars="1").price(pricing_input({TICKER: b}))
    z = mid_pricer(hi, max_spread_dollars="1").price(pricing_input({TICKER: b}))
    assert isinstance(a, Pricing)
    assert isinstance(z, Pricing)
    assert z.yes_bid_micros <= a.yes_bid_micros
    assert z.no_bid_micros <= a.no_bid_micros
