"""Shared state of the simulated exchange, its plumbing, and the hooks its parts call.

:class:`ExchangeBase` holds every table (accounts, markets, books, RFQs, quotes, timers),
emits :class:`OutMessage` to listeners, mints ids and reads the clock. Each part of the
exchange (``accounts``, ``markets``, ``orders``, ``rfqs``, ``quotes``, ``execution``) is a
mixin over it; the abstract hooks below are what one part calls on another, so mypy checks
that :class:`~quoter.sim.exchange.SimExchange` implements them all.
"""

from __future__ import annotations

import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from quoter.clock import Clock
from quoter.domain.money import MoneyError
from quoter.domain.types import MarketStatus, Side
from quoter.sim.books import MarketBook, RestingOrder
from quoter.sim.history import MarketHistory, OrderRecord
from quoter.sim.models import (
    Account,
    ExchangeConfig,
    MarketStats,
    OutMessage,
    SeriesFeeChange,
    SimError,
    SimMarket,
    SimQuote,
    SimRfq,
    SimSeries,
)

__all__ = ["ExchangeBase"]


class ExchangeBase(ABC):
    """Exchange state, plumbing and shared lookups; the parts are mixins over it."""

    def __init__(self, clock: Clock, config: ExchangeConfig | None = None) -> None:
        self.clock = clock
        self.config = config or ExchangeConfig()
        self._rng = random.Random(self.config.id_seed)
        self._listeners: list[Callable[[OutMessage], None]] = []
        self._accounts: dict[str, Account] = {}
        self._keys: dict[str, tuple[str, Any]] = {}
        self._markets: dict[str, SimMarket] = {}
        self._series: dict[str, SimSeries] = {}
        #: Events whose markets are mutually exclusive outcomes (``GET /events`` says so).
        self._exclusive_events: set[str] = set()
        self._series_updated_wall_ns: dict[str, int] = {}
        self._fee_changes: list[SeriesFeeChange] = []
        self._created_wall_ns: dict[str, int] = {}
        self._stats: dict[str, MarketStats] = {}
        self._books: dict[str, MarketBook] = {}
        self._order_owner_market: dict[str, str] = {}
        self._rfqs: dict[str, SimRfq] = {}
        # Indices so hot paths never scan history: open RFQs, and every quote by its RFQ.
        self._open_rfqs: dict[str, SimRfq] = {}
        #: Open RFQs by creator then market (one per market per user): O(1) create checks
        #: when a load world keeps tens of thousands open.
        self._open_by_user: dict[str, dict[str, SimRfq]] = {}
        self._quotes_by_rfq: dict[str, list[SimQuote]] = {}
        self._quotes: dict[str, SimQuote] = {}
        #: Confirmed quotes by maker, awaiting execution: the cash they will need is spoken for.
        self._confirmed_by_user: dict[str, set[str]] = {}
        self._timers: list[tuple[int, int, str, str]] = []
        self._seq = 0
        self.fees_collected_micros = 0
        #: Trades, orders and minute candles for the history endpoints.
        self.history = MarketHistory()

    # --- plumbing ---------------------------------------------------------------------

    def add_listener(self, fn: Callable[[OutMessage], None]) -> None:
        """Call ``fn`` with every outbound WebSocket message, in emission order."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[OutMessage], None]) -> None:
        """Stop calling ``fn`` (no error if it was not registered)."""
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _emit(self, out: OutMessage) -> None:
        for fn in self._listeners:
            fn(out)

    def _record_order(self, order_id: str, user_id: str, coid: str, m: SimMarket, side: Side,
                      price_micros: int, qty_centi: int) -> None:
        """Remember an order for ``GET /portfolio/orders`` before it trades or rests."""
        self.history.orders[order_id] = OrderRecord(
            order_id, user_id, coid, m.ticker, side, price_micros, qty_centi, self._wall(),
            m.exchange_index, updated_wall_ns=self._wall())

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _wall(self) -> int:
        return self.clock.wall_ns()

    # --- lookups ----------------------------------------------------------------------

    def comm_id(self, user_id: str) -> str:
        """The user's communications id."""
        return self._account(user_id).comm_id

    def _account(self, user_id: str) -> Account:
        acct = self._accounts.get(user_id)
        if acct is None:
            raise SimError(401, "unauthorized", "unknown account")
        return acct

    def get_market(self, ticker: str) -> SimMarket:
        """The market, or 404."""
        m = self._markets.get(ticker)
        if m is None:
            raise SimError(404, "not_found", f"market {ticker} not found")
        return m

    def _active_market(self, ticker: str) -> SimMarket:
        m = self.get_market(ticker)
        if m.status != MarketStatus.ACTIVE:
            raise SimError(400, "market_not_active", f"market {ticker} is {m.status}")
        return m

    def _grid_price(self, m: SimMarket, price_micros: int) -> int:
        try:
            return m.grid.check(price_micros)
        except MoneyError as exc:
            raise SimError(400, "invalid_parameters", str(exc)) from None

    # --- hooks: implemented by the mixins, called across them ------------------------------

    @abstractmethod
    def _book_fill(self, m: SimMarket, user_id: str, order_id: str, coid: str, side: Side,
                   yes_price: int, qty: int, is_taker: bool, trade_id: str, now: int) -> None:
        """Book one side of a trade on its owner's account (``accounts``)."""

    @abstractmethod
    def _book_settlements(self, m: SimMarket, result: Side) -> None:
        """Pay out and close every position in a determined market (``accounts``)."""

    @abstractmethod
    def _rest(self, m: SimMarket, order: RestingOrder) -> None:
        """Put an order on the book (``orders``)."""

    @abstractmethod
    def _remove_order(self, ticker: str, order_id: str) -> None:
        """Take an order off the book (``orders``)."""

    @abstractmethod
    def _take(self, m: SimMarket, user_id: str, order_id: str, coid: str, side: Side,
              price: int, qty: int, *, only: RestingOrder | None = None) -> int:
        """Trade a taker bid against resting liquidity; returns what is left (``orders``)."""

    @abstractmethod
    def _close_rfq(self, rfq: SimRfq, reason: str) -> None:
        """Close an RFQ and cancel its live quotes (``rfqs``)."""

    @abstractmethod
    def rfq_creator_id_for(self, rfq: SimRfq, viewer: str | None) -> str:
        """The RFQ creator's communications id as ``viewer`` sees it (``rfqs``)."""

    @abstractmethod
    def _cancel_quote(self, q: SimQuote, reason: str) -> None:
        """Mark a quote cancelled (``quotes``)."""

    @abstractmethod
    def _schedule(self, due_ns: int, kind: str, quote_id: str) -> None:
        """Arm a confirm-expiry or execution timer (``execution``)."""

    @abstractmethod
    def _series_for_market(self, m: SimMarket) -> SimMarket:
        """Register ``m``'s series if new; return ``m`` charged by its series' fees."""

    @abstractmethod
    def _apply_fee_change(self, change_id: str) -> None:
        """Put a scheduled series fee change into effect (``series``)."""

    @abstractmethod
    def _fire_due(self, now_ns: int) -> None:
        """Fire every timer due at ``now_ns`` (``execution``)."""
