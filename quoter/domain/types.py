"""Small value types shared across the domain: sides, combo legs, market metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

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

    @property
    def is_combo(self) -> bool:
        """True for multivariate (combo) markets."""
        return bool(self.legs) or self.mve_collection_ticker is not None
