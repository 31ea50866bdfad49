"""Markets of the simulated exchange: listing, status changes, settlement, lifecycle messages."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from quoter.domain.types import MarketStatus, Side
from quoter.sim import wire
from quoter.sim.base import ExchangeBase
from quoter.sim.books import MarketBook
from quoter.sim.models import MarketStats, OutMessage, SimError, SimMarket

__all__ = ["MarketsMixin"]


class MarketsMixin(ExchangeBase):
    """List markets, change their status and settle them."""

    def add_market(self, m: SimMarket) -> None:
        """List a market (emits lifecycle ``created``)."""
        if m.ticker in self._markets:
            raise SimError(409, "conflict", f"market {m.ticker} already exists")
        if m.is_combo and not m.is_hvm:
            m = _replace(m, is_hvm=True)  # every combo is HVM (§6)
        m = self._series_for_market(m)  # fees live on the series (§5.4)
        self._markets[m.ticker] = m
        self._created_wall_ns[m.ticker] = self._wall()
        self._stats[m.ticker] = MarketStats()
        self._books[m.ticker] = MarketBook(m.ticker)
        self._lifecycle(m, "created")

    def set_event_mutually_exclusive(self, event_ticker: str) -> None:
        """Mark an event's markets as exclusive outcomes (at most one resolves YES)."""
        self._exclusive_events.add(event_ticker)

    def event_mutually_exclusive(self, event_ticker: str) -> bool:
        """True if the event was marked mutually exclusive."""
        return event_ticker in self._exclusive_events

    def list_markets(self) -> list[SimMarket]:
        """Every market, in listing order."""
        return list(self._markets.values())

    def stats(self, ticker: str) -> MarketStats:
        """Volume, open interest, last price and dollar volume of a market (a copy)."""
        return copy.copy(self._stats[self.get_market(ticker).ticker])

    def market_created_wall_ns(self, ticker: str) -> int:
        """When the market was listed (wall ns)."""
        return self._created_wall_ns[ticker]

    def set_market_status(self, ticker: str, status: MarketStatus) -> None:
        """Change a market's status; leaving ``active`` closes its RFQs and cancels orders."""
        m = self.get_market(ticker)
        if m.status == status:
            return
        m = _replace(m, status=status)
        self._markets[ticker] = m
        event = {
            MarketStatus.ACTIVE: "activated",
            MarketStatus.INACTIVE: "deactivated",
        }.get(status, "close_date_updated" if status == MarketStatus.CLOSED else None)
        if event is not None:
            self._lifecycle(m, event)
        if status != MarketStatus.ACTIVE:
            self._close_market_activity(ticker, "market_closed")

    def settle_market(self, ticker: str, result: Side) -> None:
        """Determine and settle at once: $1 per winning contract, positions closed."""
        self.determine_market(ticker, result)
        self.finalize_market(ticker)

    def determine_market(self, ticker: str, result: Side) -> None:
        """Fix the result (lifecycle ``determined``); positions stay listed until
        :meth:`finalize_market` pays them out, as on Kalshi while its settlement timer runs."""
        m = self.get_market(ticker)
        result = Side(result)
        if m.result is not None:
            raise SimError(400, "invalid_parameters", f"market {ticker} is already determined")
        self._close_market_activity(ticker, "market_settled")
        m = _replace(m, status=MarketStatus.DETERMINED, result=result)
        self._markets[ticker] = m
        self._lifecycle(m, "determined")

    def finalize_market(self, ticker: str) -> None:
        """Settle a determined market: pay out, close positions (lifecycle ``settled``)."""
        m = self.get_market(ticker)
        if m.result is None or m.status is not MarketStatus.DETERMINED:
            raise SimError(400, "invalid_parameters", f"market {ticker} is not determined")
        self._book_settlements(m, m.result)
        self._stats[ticker].open_interest_centi = 0
        m = _replace(m, status=MarketStatus.FINALIZED)
        self._markets[ticker] = m
        self._lifecycle(m, "settled")

    def _lifecycle(self, m: SimMarket, event_type: str) -> None:
        channel = "multivariate_market_lifecycle" if m.is_combo else "market_lifecycle_v2"
        msg = wire.lifecycle_msg(m, event_type, self._wall())
        self._emit(OutMessage(channel, channel, msg, m.ticker, None))

    def _close_market_activity(self, ticker: str, reason: str) -> None:
        for rfq in list(self._open_rfqs.values()):
            if rfq.market_ticker == ticker:
                self._close_rfq(rfq, reason)
        book = self._books[ticker]
        for order in book.orders():
            self._remove_order(ticker, order.order_id)


def _replace(m: SimMarket, **changes: Any) -> SimMarket:
    return dataclasses.replace(m, **changes)
