"""``combo``: price a multivariate (combo) RFQ from its legs' own books (kalshi-api.md §6).

A combo pays $1 only if every leg resolves on its selected side. Each leg's YES probability is
its book's mid (or microprice); a NO leg uses ``1 - p``. Under independence the joint fair is
the product. Legs that share an event are not independent (the sign of the dependence is
unknown), so each leg after the first in an event adds ``same_event_edge_dollars`` to the edge
on both sides. Declines: ``not_a_combo``, ``no_leg_book``, ``one_sided_leg_book``,
``crossed_leg_book``, ``wide_leg_book``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import ClassVar, Literal

from pydantic import Field

from quoter.domain.money import MAX_PRICE_MICROS
from quoter.domain.types import Side
from strategies._common import (
    Edge,
    bids_from_fair,
    clamp_fair,
    floor_fraction,
    sane_two_sided,
)
from strategies.base import Decline, Params, Pricing, PricingInput
from strategies.registry import ModuleSpec

__all__ = ["SPEC", "Combo", "ComboParams"]


class ComboParams(Params):
    """``combo`` parameters."""

    edge_micros: Edge = Field(default=30_000, validation_alias="edge_dollars")
    leg_fair: Literal["mid", "microprice"] = "mid"
    # Extra edge (both sides) per leg that shares its event with an earlier leg.
    same_event_edge_micros: Edge = Field(
        default=20_000, validation_alias="same_event_edge_dollars"
    )
    # Decline if any leg's YES spread (ask - bid) is wider than this.
    max_leg_spread_micros: Edge = Field(
        default=200_000, validation_alias="max_leg_spread_dollars"
    )


class Combo:
    """Quote combos at the product of their legs' fair values."""

    name: ClassVar[str] = "combo"

    def __init__(self, params: ComboParams) -> None:
        self.params = params

    def price(self, inp: PricingInput) -> Pricing | Decline:
        """Price a combo RFQ from its legs' books."""
        legs = inp.rfq.legs or inp.market.legs
        if not legs:
            return Decline("not_a_combo", inp.rfq.market_ticker)
        joint = Fraction(1)
        events: set[str] = set()
        edge = self.params.edge_micros
        for leg in legs:
            book = inp.books.get(leg.market_ticker)
            why = sane_two_sided(book)
            if why is not None or book is None:
                reason = (why or "no_book").replace("_book", "_leg_book")
                return Decline(reason, leg.market_ticker)
            bid, ask = book.best_yes_bid(), book.best_yes_ask()
            assert bid is not None  # checked by sane_two_sided
            assert ask is not None
            if ask[0] - bid[0] > self.params.max_leg_spread_micros:
                return Decline("wide_leg_book", leg.market_ticker)
            p = book.mid_micros() if self.params.leg_fair == "mid" else book.microprice_micros()
            assert p is not None  # two-sided
            p_side = p if leg.side is Side.YES else MAX_PRICE_MICROS - p
            joint *= Fraction(p_side, MAX_PRICE_MICROS)
            if leg.event_ticker in events:
                edge += self.params.same_event_edge_micros
            events.add(leg.event_ticker)
        fair = joint * MAX_PRICE_MICROS
        yes, no = bids_from_fair(fair, edge)
        return Pricing(
            fair_yes_micros=clamp_fair(floor_fraction(fair)), yes_bid_micros=yes, no_bid_micros=no
        )


def _build(params: Params) -> Combo:
    if not isinstance(params, ComboParams):
        raise TypeError(f"combo needs ComboParams, got {type(params).__name__}")
    return Combo(params)


SPEC = ModuleSpec(name="combo", kind="pricer", params_model=ComboParams, factory=_build)
