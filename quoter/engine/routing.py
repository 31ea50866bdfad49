"""Route an RFQ to the first enabled strategy whose match rule accepts it, with reason codes.

Reason codes for every RFQ we do not quote (recorded with ``RecordDecision``):

* ``no_route``: no enabled strategy targets this RFQ (every one failed on a *selector*:
  series, event, market, kind or collection), or there are no enabled strategies;
* ``filtered:<filter>``: some strategy targets it but its first failed *filter* (contracts,
  notional, time_to_close, market_status, requester, max_legs) rejected it;
* ``no_market`` (metadata unknown / failed to load / parked too long), ``no_book`` (no trusted
  book), ``stale_book``, ``risk:<limit>``, ``pricer_declined:<reason>``, ``pricer_error``,
  ``pricer_timeout``, ``pricer_busy`` (the pricing pool's queue is full), ``halted``,
  ``rate_budget`` (too many RFQs waiting) are decided by the engine after routing.
"""

from __future__ import annotations

from typing import Final

from quoter.config import QuoterConfig, StrategyConfig
from quoter.domain.events import RfqReceived
from quoter.domain.types import MarketInfo

__all__ = [
    "HALTED",
    "INSUFFICIENT_BALANCE",
    "NO_BOOK",
    "NO_MARKET",
    "NO_ROUTE",
    "PRICER_DECLINED",
    "RATE_BUDGET",
    "SELECTORS",
    "STALE_BOOK",
    "UNKNOWN_LEG",
    "Route",
    "filtered",
    "risk",
    "route",
]

NO_ROUTE: Final = "no_route"
NO_MARKET: Final = "no_market"
#: A combo leg's metadata could not be loaded (the exchange does not know the market).
UNKNOWN_LEG: Final = "unknown_leg"
NO_BOOK: Final = "no_book"
STALE_BOOK: Final = "stale_book"
HALTED: Final = "halted"
RATE_BUDGET: Final = "rate_budget"
#: A quote or confirm we could not pay for (also Kalshi's rejection code for it).
INSUFFICIENT_BALANCE: Final = "insufficient_balance"
PRICER_DECLINED: Final = "pricer_declined"

#: Match-rule failures that mean "this strategy is not about this RFQ at all".
SELECTORS: Final = ("series", "event", "market", "kind", "collection")

Route = tuple[StrategyConfig | None, str | None]


def filtered(filter_code: str) -> str:
    """Reason code for an RFQ a strategy's filter rejected."""
    return f"filtered:{filter_code}"


def risk(limit: str) -> str:
    """Reason code for a risk limit that stopped a quote or a confirm."""
    return f"risk:{limit}"


def route(
    config: QuoterConfig, rfq: RfqReceived, market: MarketInfo | None, now_wall_ms: int | None
) -> Route:
    """Return ``(strategy, None)`` for the first enabled match, else ``(None, reason code)``.

    With ``market=None`` only what the RFQ itself shows is checked (filters needing metadata
    pass); call again once the market is loaded.
    """
    first_filter: str | None = None
    for strategy in config.strategies:
        if not strategy.enabled:
            continue
        why = strategy.match.matches(rfq, market, now_wall_ms)
        if why is None:
            return strategy, None
        if first_filter is None and why not in SELECTORS:
            first_filter = why
    return None, (filtered(first_filter) if first_filter is not None else NO_ROUTE)
