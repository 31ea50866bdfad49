"""The pricing-module contract.

A pricer is a pure function object: ``price(PricingInput) -> Pricing | Decline``. It reads the
RFQ, the market's metadata, order books (the RFQ market and, for combos, every leg) and our
positions; it returns a fair YES value and the two bids it would quote, or a decline with a
reason. It never does IO and never reads the clock (``now_ns`` is in the input).

Overlays (``inventory_skew``, size- and fee-aware edge, requester profiling) have the same shape
but also take the upstream result: ``adjust(PricingInput, Pricing) -> Pricing | Decline``.

The engine owns what comes after: snapping bids down to the grid, ``yes_bid + no_bid <=
1 - min_spread``, risk limits, and turning an exception or a blown time budget into a decline.

Each module has a frozen, ``extra="forbid"`` pydantic ``Params`` model; YAML's ``params:`` is
validated into it by the registry (``strategies.registry``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from quoter.domain.book import OrderBook
from quoter.domain.events import RfqReceived
from quoter.domain.money import MAX_PRICE_MICROS
from quoter.domain.types import MarketInfo, Side

__all__ = [
    "Decline",
    "Overlay",
    "Params",
    "Pricer",
    "Pricing",
    "PricingInput",
    "RequesterStats",
]


class Params(BaseModel):
    """Base for every module's parameters: strict and immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


@dataclass(frozen=True, slots=True)
class RequesterStats:
    """What we have learned about one requester (by pseudonymous ``creator_id``).

    Counts are of RFQs seen, RFQs we quoted, accepts of our quotes and our fills on their
    RFQs. A mark-out is the value to us, per contract, of one fill ``horizon`` after it,
    against the book mid (``mid - yes_price`` when we bought YES, ``yes_price - mid`` when we
    bought NO); positive is good for us. ``markout_count`` / ``markout_sum_micros`` are those of
    the first configured horizon; ``markouts`` lists ``(horizon_ms, count, sum_micros)`` for
    every horizon.
    """

    accepts: int = 0
    markout_sum_micros: int = 0
    markout_count: int = 0
    rfqs: int = 0
    quotes: int = 0
    fills: int = 0
    markouts: tuple[tuple[int, int, int], ...] = ()

    def markout(self, horizon_ms: int | None = None) -> tuple[int, int]:
        """``(count, sum_micros)`` at ``horizon_ms`` (None: the first horizon)."""
        if horizon_ms is None:
            return self.markout_count, self.markout_sum_micros
        for h, n, total in self.markouts:
            if h == horizon_ms:
                return n, total
        return 0, 0


@dataclass(frozen=True, slots=True)
class PricingInput:
    """Everything a pricer may look at."""

    rfq: RfqReceived
    market: MarketInfo
    books: Mapping[str, OrderBook]
    now_ns: int
    # Our signed position (+YES / -NO) in the RFQ market and summed over its event.
    position_centi: int = 0
    event_position_centi: int = 0
    # Size the quote would trade (the RFQ's contracts, or an estimate for target-cost RFQs).
    size_centi: int = 0
    # Leg market metadata for combos, by ticker.
    leg_markets: Mapping[str, MarketInfo] = field(default_factory=dict)
    requester: RequesterStats = field(default_factory=RequesterStats)


@dataclass(frozen=True, slots=True)
class Pricing:
    """A two-sided answer. A bid of 0 means no bid on that side (one-sided quote).

    ``fair_low_micros`` / ``fair_high_micros``: when a module knows the YES value only as an
    interval (combos, ``strategies.combo``), its ends; last look then measures a YES bid's edge
    against the low end and a NO bid's against the high end. None: the fair value itself.
    """

    fair_yes_micros: int
    yes_bid_micros: int
    no_bid_micros: int
    fair_low_micros: int | None = None
    fair_high_micros: int | None = None

    def value_micros(self, side: Side) -> int:
        """What one contract of ``side`` is surely worth at this pricing (its edge basis)."""
        if side is Side.YES:
            return self.fair_yes_micros if self.fair_low_micros is None else self.fair_low_micros
        high = self.fair_yes_micros if self.fair_high_micros is None else self.fair_high_micros
        return MAX_PRICE_MICROS - high


@dataclass(frozen=True, slots=True)
class Decline:
    """Do not quote, and why (a stable snake_case ``reason`` plus free ``detail``)."""

    reason: str
    detail: str = ""


class Pricer(Protocol):
    """A base pricing module."""

    name: ClassVar[str]

    def price(self, inp: PricingInput) -> Pricing | Decline:
        """Price an RFQ."""
        ...


class Overlay(Protocol):
    """A module that adjusts another module's pricing."""

    name: ClassVar[str]

    def adjust(self, inp: PricingInput, pricing: Pricing) -> Pricing | Decline:
        """Adjust (or veto) an upstream pricing."""
        ...
