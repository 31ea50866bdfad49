"""``book_mid``: fair value = mid of the RFQ market's own order book, quoted ``edge`` either side.

yes_bid = fair - edge, no_bid = (1 - fair) - edge (rounded down; the engine snaps to the grid).
Declines: ``no_book``, ``one_sided_book``, ``crossed_book``, ``wide_book``, ``thin_book``.
"""

from __future__ import annotations

from typing import ClassVar

from quoter.domain.book import OrderBook
from strategies._common import BookParams, price_from_book
from strategies.base import Decline, Params, Pricing, PricingInput
from strategies.registry import ModuleSpec

__all__ = ["SPEC", "BookMid", "BookMidParams"]


class BookMidParams(BookParams):
    """``book_mid`` parameters: edge_dollars, max_spread_dollars, min_depth_contracts."""


def _mid(book: OrderBook) -> int | None:
    return book.mid_micros()


class BookMid:
    """Quote around the mid of the RFQ market's book."""

    name: ClassVar[str] = "book_mid"

    def __init__(self, params: BookMidParams) -> None:
        self.params = params

    def price(self, inp: PricingInput) -> Pricing | Decline:
        """Price an RFQ from its market's mid."""
        return price_from_book(inp, self.params, _mid)


def _build(params: Params) -> BookMid:
    if not isinstance(params, BookMidParams):
        raise TypeError(f"book_mid needs BookMidParams, got {type(params).__name__}")
    return BookMid(params)


SPEC = ModuleSpec(name="book_mid", kind="pricer", params_model=BookMidParams, factory=_build)
