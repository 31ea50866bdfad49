"""Ports: the only things that change between the live, simulated and replay worlds.

The runtime talks to the outside through these Protocols: frames in (``FrameSource``), quote
commands out (``ExecutionPort``), metadata and books on demand (``MarketDataPort``), which
books to stream (``SubscriptionPort``), and the durable record that a confirm left
(``ConfirmJournal``), which the kernel consults before any confirm goes out. Live and
simulated runs use the Kalshi adapters (``quoter.kalshi.adapter``); backtests plug in replay
sources and modelled execution. Test doubles are real implementations (the simulator over
real sockets, an in-process ASGI transport), never mocks of our own code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from quoter.domain.events import BookSnapshotReceived
from quoter.domain.types import MarketInfo

__all__ = [
    "ConfirmJournal",
    "ExecutionPort",
    "FrameSource",
    "InboundFrame",
    "MarketDataPort",
    "MemoryConfirmJournal",
    "SubscriptionPort",
]


@dataclass(frozen=True, slots=True)
class InboundFrame:
    """One raw WebSocket frame as received, before decoding."""

    data: bytes | str
    ts_recv_ns: int
    conn_id: str = ""


class FrameSource(Protocol):
    """Where raw frames come from: a live feed or a recording."""

    def frames(self) -> AsyncIterator[InboundFrame]:
        """Yield frames in arrival order."""
        ...


class ExecutionPort(Protocol):
    """Where quote commands go: Kalshi's REST API, the simulator, or a backtest model."""

    async def submit_quote(
        self, rfq_id: str, yes_bid_micros: int, no_bid_micros: int, *,
        rest_remainder: bool, post_only: bool, subaccount: int | None,
    ) -> str:
        """Create (or replace) our quote on an RFQ; returns the quote id."""
        ...

    async def confirm_quote(
        self, rfq_id: str, quote_id: str, *, deadline_ns: int | None = None
    ) -> None:
        """Confirm an accepted quote (last look: yes); keep trying until ``deadline_ns``
        (the confirm window less its safety margin, on the runtime's clock)."""
        ...

    async def cancel_quote(self, rfq_id: str, quote_id: str) -> None:
        """Withdraw a quote."""
        ...


class MarketDataPort(Protocol):
    """Market metadata and book snapshots on demand."""

    async def fetch_market(self, ticker: str) -> MarketInfo:
        """Load a market's metadata."""
        ...

    async def fetch_book(self, ticker: str, ts_recv_ns: int) -> BookSnapshotReceived:
        """Load a market's full order book."""
        ...


class SubscriptionPort(Protocol):
    """Which markets' order books stream to us (``SubscribeMarkets`` / ``UnsubscribeMarkets``)."""

    async def subscribe_markets(self, tickers: Sequence[str]) -> None:
        """Start book data for these markets."""
        ...

    async def unsubscribe_markets(self, tickers: Sequence[str]) -> None:
        """Stop book data for these markets."""
        ...


class ConfirmJournal(Protocol):
    """The durable record of confirms sent: a quote is never confirmed twice, even across
    restarts (the service keeps it in SQLite; replays and backtests in memory)."""

    def claim(self, quote_id: str, now_ns: int) -> bool:
        """Claim the one confirm of ``quote_id``; False if it was claimed before."""
        ...


class MemoryConfirmJournal:
    """A ``ConfirmJournal`` that lives as long as the process (replays, backtests, tests)."""

    def __init__(self) -> None:
        self.claimed: dict[str, int] = {}

    def claim(self, quote_id: str, now_ns: int) -> bool:
        """Claim ``quote_id`` unless it was claimed before."""
        if quote_id in self.claimed:
            return False
        self.claimed[quote_id] = now_ns
        return True
