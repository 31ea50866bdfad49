"""Commands: what the engine asks the shell to do, named in the imperative.

The engine returns these from ``on_event``; the runtime executes them through the ports
(REST, WebSocket subscriptions, timers, store). Results come back as events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CancelQuote",
    "CancelTimer",
    "Command",
    "ConfirmQuote",
    "FetchMarket",
    "Halt",
    "PriceInPool",
    "RecordDecision",
    "RequestBookSnapshot",
    "RequestReconcile",
    "ScheduleTimer",
    "SubmitQuote",
    "SubscribeMarkets",
    "UnsubscribeMarkets",
]


@dataclass(frozen=True, slots=True)
class SubmitQuote:
    """Post a quote on an RFQ (replaces any previous quote of ours on it)."""

    rfq_id: str
    market_ticker: str
    yes_bid_micros: int
    no_bid_micros: int
    strategy: str
    fair_yes_micros: int | None = None
    rest_remainder: bool = False
    post_only: bool = False
    subaccount: int | None = None


@dataclass(frozen=True, slots=True)
class CancelQuote:
    """Withdraw our quote from an RFQ."""

    rfq_id: str
    quote_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ConfirmQuote:
    """Confirm an accepted quote (last look: yes). Never send it at or after ``deadline_ns``."""

    rfq_id: str
    quote_id: str
    deadline_ns: int


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    """Deliver ``TimerFired(key)`` at ``fire_at_ns`` (replacing a timer with the same key)."""

    key: str
    fire_at_ns: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget the timer with this key."""

    key: str


@dataclass(frozen=True, slots=True)
class RequestBookSnapshot:
    """Re-snapshot a market's order book (after a gap, or for a market we just started to price)."""

    market_ticker: str


@dataclass(frozen=True, slots=True)
class FetchMarket:
    """Load a market's metadata (grid, status, close time, legs); answered by ``MarketLoaded``."""

    market_ticker: str


@dataclass(frozen=True, slots=True)
class SubscribeMarkets:
    """Start receiving order book data for these markets."""

    market_tickers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnsubscribeMarkets:
    """Stop receiving order book data for these markets."""

    market_tickers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RequestReconcile:
    """Reconcile with the exchange over REST now (a feed's position report disagreed: the
    REST read decides whether it is a real difference); answered by ``PositionReported``."""

    market_ticker: str
    reason: str


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop quoting: something is wrong enough that a human must look (e.g. position mismatch)."""

    reason: str


@dataclass(frozen=True, slots=True)
class PriceInPool:
    """Run a strategy's modules on ``inputs`` in a worker process; answer by ``deadline_ns``.

    Answered by exactly one ``PricingCompleted`` with the same ``request_id`` (a decline
    ``pricer_timeout`` when the deadline passes). ``inputs`` is a ``strategies.base.PricingInput``
    whose books are the engine's copies at request time; ``pricer`` / ``overlays`` are the
    strategy's ``quoter.config.ModuleRef`` objects (the domain cannot import either module).
    """

    rfq_id: str
    strategy: str
    request_id: int
    inputs: Any
    pricer: Any
    overlays: tuple[Any, ...]
    deadline_ns: int


@dataclass(frozen=True, slots=True)
class RecordDecision:
    """Persist and count what the engine decided about an RFQ or accept, with a reason code."""

    rfq_id: str
    market_ticker: str
    decision: str
    reason: str
    strategy: str = ""
    quote_id: str = ""
    detail: str = ""


Command = (
    SubmitQuote
    | CancelQuote
    | ConfirmQuote
    | ScheduleTimer
    | CancelTimer
    | RequestBookSnapshot
    | FetchMarket
    | SubscribeMarkets
    | UnsubscribeMarkets
    | Halt
    | RecordDecision
    | PriceInPool
    | RequestReconcile
)
