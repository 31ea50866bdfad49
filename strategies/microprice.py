"""``microprice``: fair value = size-weighted mid of the RFQ market's book, ``edge`` either side.

The microprice leans toward the side with less size (``OrderBook.microprice_micros``): a thin
ask and a deep bid suggest the next trade is up. Same params and declines as ``book_mid``.
"""

from __future__ import annotations

from typing import ClassVar

from quoter.domain.book import OrderBook
from strategies._common import BookParams, price_from_book
from strategies.base import Decline, Params, Pricing, PricingInput
from strategies.registry import ModuleSpec

__all__ = ["SPEC", "Microprice", "MicropriceParams"]


class MicropriceParams(BookParams):
    """``microprice`` parameters: edge_dollars, max_spread_dollars, min_depth_contracts."""


def _micro(book: OrderBook) -> int | None:
    return book.microprice_micros()


class Microprice:
    """Quote around the size-weighted mid of the RFQ market's book."""

    name: ClassVar[str] = "microprice"

    def __init__(self, params: MicropriceParams) -> None:
        self.params = params

    def price(self, inp: PricingInput) -> Pricing | Decline:
        """Price an RFQ from its market's microprice."""
        return price_from_book(inp, self.params, _micro)


def _build(params: Params) -> Microprice:
    if not isinstance(params, MicropriceParams):
        raise TypeError(f"microprice needs MicropriceParams, got {type(params).__name__}")
    return Microprice(params)


SPEC = ModuleSpec(name="microprice", kind="pricer", params_model=MicropriceParams, factory=_build)
