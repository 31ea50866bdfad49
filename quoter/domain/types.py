"""Small value types shared across the domain: sides, combo legs, market metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction

from quoter.domain.fees import FeeSchedule
from quoter.domain.grid import PriceGrid

__all__ = ["BookSide", "ComboLeg", "MarketInfo", "MarketStatus", "Side"]


class Side(StrEnum):
    """A contract outcome side."""

    YES = "yes"
    NO = "no"

    @property
    def other(self) -> Side:
        """The opposite side."""
        return Side.NO if self is Side.YES else Side.YES


class BookSide(StrEnum):
    """Which side of the YES book a fill was on (``bid`` = bought YES, ``ask`` = bought NO)."""

    BID = "bid"
    ASK = "ask"


class MarketStatus(StrEnum):
    """Kalshi market statuses; only ``active`` is tradable (kalshi-api.md §4.1)."""

    INITIALIZED = "initialized"
    INACTIVE = "inactive"
    ACTIVE = "active"
    CLOSED = "closed"
    DETERMINED = "determined"
    DISPUTED = "disputed"
    AMENDED = "amended"
    FINALIZED = "finalized"
    SETTLED = "settled"


@dataclass(frozen=True, slots=True)
class ComboLeg:
    """One selected leg of a multivariate (combo) market."""

    event_ticker: str
    market_ticker: str
    side: Side
    # The leg market's YES payout once it is determined (``yes_settlement_value_dollars``).
    yes_settlement_value_micros: int | None = None


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """What the engine needs to know about a market to quote it."""

    ticker: str
    event_ticker: str
    series_ticker: str
    status: MarketStatus
    grid: PriceGrid
    close_ts_ms: int | None = None
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    # High-volatility markets (all combos) have a 3 s confirm window and 1 s execution timer.
    is_hvm: bool = False
    mve_collection_ticker: str | None = None
    legs: tuple[ComboLeg, ...] = ()
    exchange_index: int = 0
    # The YES payout once the market is determined (``settlement_value_dollars``).
    settlement_value_micros: int | None = None
    # What the event's structure proves about joint outcomes (combo pricing, docs/strategies.md):
    # ``strike_type`` "greater"/"greater_or_equal"/"less"/"less_or_equal" with its strikes
    # makes markets of one event nested; ``mutually_exclusive`` (the event's flag) makes at
    # most one of its markets resolve YES.
    strike_type: str | None = None
    floor_strike: Fraction | None = None
    cap_strike: Fraction | None = None
    mutually_exclusive: bool = False

    @property
    def is_combo(self) -> bool:
        """True for multivariate (combo) markets."""
        return bool(self.legs) or self.mve_collection_ticker is not None
