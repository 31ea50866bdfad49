"""The simulated Kalshi exchange core: a synchronous state machine driven by an injected clock.

It owns accounts, markets, resting books, RFQs, quotes, timers, execution, fills, fees,
positions, balances, settlement and a ground-truth ledger. It does no IO: every outbound
WebSocket message is handed to listeners as an :class:`OutMessage` (the ASGI app in
``quoter.sim.app`` routes them to subscriptions), errors are :class:`SimError` (HTTP status
+ Kalshi's ``code``), and time comes from the clock (``now_ns`` for deadlines, ``wall_ns``
for timestamps). Callers drive timers with :meth:`SimExchange.advance`.

Behaviour follows kalshi-api.md; §0a (demo ground truth) wins where sources differ:

* ``accepted_side`` names the maker's side that was hit: the maker buys that side at that
  side's bid; the requester buys the other side at $1 - bid (§0a).
* confirm window 30 s (HVM/combos 3 s), then execution timer 15 s (HVM 1 s) (§3.3).
  A confirm after the window gets 400 ``expired`` and the quote's status *stays*
  ``accepted`` (§0a); the RFQ may then be accepted again on another quote.
* DELETE of an accepted quote -> 404 ``not_found``, the quote stays accepted (§0a).
* Execution goes through the book (§3.3): the maker's order enters first. It may trade
  with better third-party liquidity (``post_only`` instead cancels the whole execution if
  it would cross). What is left rests; the requester's order then crosses it at the quote
  price (maker ``is_taker`` false, requester true, as §0a observed). Unfilled remainders
  rest only if that party asked for ``rest_remainder``, otherwise they are cancelled.
* Cash is charged at fill time (resting orders reserve nothing; ``place_order`` only
  checks the balance covers the order). Buying the side opposite to a held position nets
  the pair and pays $1 per pair at once, as Kalshi does.
* Target-cost RFQs (formula undocumented, §5.3 [UNCERTAIN]): for each side S the offered
  count is the largest n (in 0.01 contracts) whose requester cost n x ($1 - bid_S) plus the
  taker fee stays within the target (without the fee when ``target_cost_excludes_fees``).
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from quoter.clock import Clock
from quoter.domain.fees import FeeSchedule
from quoter.domain.grid import PriceGrid
from quoter.domain.money import (
    CENTI_PER_CONTRACT,
    MAX_PRICE_MICROS,
    MoneyError,
    check_bid,
    check_qty,
    notional_micros,
)
from quoter.domain.types import BookSide, ComboLeg, MarketStatus, Side
from quoter.sim import wire
from quoter.sim.books import MarketBook, RestingOrder

__all__ = [
    "OBSCURED_CREATOR_ID",
    "Account",
    "ExchangeConfig",
    "Fill",
    "MarketStats",
    "OutMessage",
    "Position",
    "QuoteStatus",
    "RfqStatus",
    "Settlement",
    "SimError",
    "SimExchange",
    "SimMarket",
    "SimQuote",
    "SimRfq",
    "communications_id",
]

_NS_PER_MS = 1_000_000
#: What others see as an RFQ's creator when it set ``obscure_creator_id``: SHA-256 of "" (§2.6).
OBSCURED_CREATOR_ID = hashlib.sha256(b"").hexdigest()
#: $1 per contract, in micro-dollars per hundredth of a contract.
_PAYOUT_MICROS_PER_CENTI = MAX_PRICE_MICROS // CENTI_PER_CONTRACT


class SimError(Exception):
    """An exchange rejection: HTTP ``status`` and Kalshi's error ``code`` + ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class QuoteStatus(StrEnum):
    """Quote lifecycle (kalshi-api.md §3.1)."""

    OPEN = "open"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    EXECUTED = "executed"
    CANCELLED = "cancelled"


class RfqStatus(StrEnum):
    """RFQ lifecycle."""

    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """Timers and limits of the simulated exchange (defaults are Kalshi's, §3.3 / §3.2)."""

    confirm_window_ms: int = 30_000
    hvm_confirm_window_ms: int = 3_000
    execution_timer_ms: int = 15_000
    hvm_execution_timer_ms: int = 1_000
    max_open_rfqs: int = 100
    #: Reject accepts/confirms/orders the account cannot pay for (INSUFFICIENT_BALANCE).
    check_balance: bool = True
    #: Seed of the id generator, so runs with the same inputs emit identical ids.
    id_seed: int = 0
    #: Reject off-grid quote prices. The docs say off-grid is rejected; demo accepted one
    #: (§0a), so a test can switch this off to mimic demo.
    reject_off_grid_quotes: bool = True


@dataclass(frozen=True, slots=True)
class SimMarket:
    """A market listed on the simulator."""

    ticker: str
    event_ticker: str
    series_ticker: str
    title: str
    grid: PriceGrid
    status: MarketStatus = MarketStatus.ACTIVE
    close_ts_ms: int | None = None
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    is_hvm: bool = False
    mve_collection_ticker: str | None = None
    legs: tuple[ComboLeg, ...] = ()
    exchange_index: int = 0
    price_level_structure: str = "linear_cent"
    result: Side | None = None

    @property
    def is_combo(self) -> bool:
        """True for multivariate (combo) markets: they are always HVM (§6)."""
        return bool(self.legs) or self.mve_collection_ticker is not None


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One outbound WebSocket data message before sid/seq are added by the server.

    ``msg`` is already in Kalshi's wire shape. ``recipients`` holds user ids; ``None`` means
    every subscriber of ``channel`` (market filters still apply).
    """

    channel: str
    type: str
    msg: dict[str, Any]
    market_ticker: str
    recipients: frozenset[str] | None = None


@dataclass(slots=True)
class SimRfq:
    """An RFQ (mutable exchange state; reads hand out copies)."""

    id: str
    user_id: str
    market_ticker: str
    event_ticker: str
    contracts_centi: int | None
    target_cost_micros: int | None
    target_cost_excludes_fees: bool
    rest_remainder: bool
    created_wall_ns: int
    status: RfqStatus = RfqStatus.OPEN
    updated_wall_ns: int = 0
    cancelled_wall_ns: int | None = None
    cancellation_reason: str | None = None
    mve_collection_ticker: str | None = None
    legs: tuple[ComboLeg, ...] = ()
    obscure_creator_id: bool = False
    executed: bool = False


@dataclass(slots=True)
class SimQuote:
    """A quote (mutable exchange state; reads hand out copies)."""

    id: str
    rfq_id: str
    user_id: str
    rfq_user_id: str
    market_ticker: str
    yes_bid_micros: int
    no_bid_micros: int
    #: Contracts the maker would trade if YES (resp. NO) were hit.
    yes_contracts_centi: int
    no_contracts_centi: int
    rest_remainder: bool
    post_only: bool
    created_wall_ns: int
    updated_wall_ns: int
    status: QuoteStatus = QuoteStatus.OPEN
    accepted_side: Side | None = None
    accepted_contracts_centi: int | None = None
    accepted_wall_ns: int | None = None
    confirmed_wall_ns: int | None = None
    executed_wall_ns: int | None = None
    cancelled_wall_ns: int | None = None
    cancellation_reason: str | None = None
    #: True once the confirm window lapsed: status still reads "accepted" (§0a).
    voided: bool = False
    creator_order_id: str | None = None
    rfq_creator_order_id: str | None = None
    rfq_target_cost_micros: int | None = None
    target_cost_excludes_fees: bool | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    """One side of a trade, as its owner sees it."""

    fill_id: str
    trade_id: str
    order_id: str
    client_order_id: str
    user_id: str
    market_ticker: str
    exchange_index: int
    outcome_side: Side
    book_side: BookSide
    yes_price_micros: int
    qty_centi: int
    is_taker: bool
    fee_micros: int
    post_position_centi: int
    wall_ns: int


@dataclass(slots=True)
class Position:
    """A user's position in one market (+YES / -NO), booked from fills."""

    market_ticker: str
    exchange_index: int = 0
    position_centi: int = 0
    #: Cost basis of the contracts held now (``market_exposure``).
    cost_micros: int = 0
    total_traded_micros: int = 0
    realized_pnl_micros: int = 0
    fees_paid_micros: int = 0
    volume_centi: int = 0
    updated_wall_ns: int = 0


@dataclass(frozen=True, slots=True)
class Settlement:
    """A settled position: what it was and what it paid."""

    market_ticker: str
    event_ticker: str
    exchange_index: int
    result: Side
    yes_count_centi: int
    yes_cost_micros: int
    no_count_centi: int
    no_cost_micros: int
    revenue_micros: int
    fees_micros: int
    wall_ns: int


@dataclass(slots=True)
class Account:
    """A trading account."""

    user_id: str
    balance_micros: int
    comm_id: str
    positions: dict[str, Position] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    settlements: list[Settlement] = field(default_factory=list)
    updated_wall_ns: int = 0


@dataclass(slots=True)
class MarketStats:
    """Trading statistics of one market."""

    volume_centi: int = 0
    open_interest_centi: int = 0
    last_price_micros: int | None = None
    dollar_volume_micros: int = 0


def communications_id(user_id: str) -> str:
    """Return the pseudonymous 64-hex communications id of ``user_id``."""
    return hashlib.sha256(f"sim-communications:{user_id}".encode()).hexdigest()


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


class SimExchange:
    """The exchange state machine. Not thread-safe: drive it from one thread/event loop."""

    def __init__(self, clock: Clock, config: ExchangeConfig | None = None) -> None:
        self.clock = clock
        self.config = config or ExchangeConfig()
        self._rng = random.Random(self.config.id_seed)
        self._listeners: list[Callable[[OutMessage], None]] = []
        self._accounts: dict[str, Account] = {}
        self._keys: dict[str, tuple[str, Any]] = {}
        self._markets: dict[str, SimMarket] = {}
        self._created_wall_ns: dict[str, int] = {}
        self._stats: dict[str, MarketStats] = {}
        self._books: dict[str, MarketBook] = {}
        self._order_owner_market: dict[str, str] = {}
        self._rfqs: dict[str, SimRfq] = {}
        # Indices so hot paths never scan history: open RFQs, and every quote by its RFQ.
        self._open_rfqs: dict[str, SimRfq] = {}
        self._quotes_by_rfq: dict[str, list[SimQuote]] = {}
        self._quotes: dict[str, SimQuote] = {}
        self._timers: list[tuple[int, int, str, str]] = []
        self._seq = 0
        self.fees_collected_micros = 0

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

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _wall(self) -> int:
        return self.clock.wall_ns()

    # --- accounts and keys ------------------------------------------------------------

    def register_account(self, user_id: str, *, balance_micros: int) -> None:
        """Open an account with a starting cash balance."""
        if user_id in self._accounts:
            raise SimError(409, "conflict", f"account {user_id} already exists")
        self._accounts[user_id] = Account(user_id, balance_micros, communications_id(user_id))

    def deposit(self, user_id: str, amount_micros: int) -> None:
        """Add cash to an account (negative withdraws)."""
        self._account(user_id).balance_micros += amount_micros

    def register_key(self, user_id: str, key_id: str, public_key: Any) -> None:
        """Register an API key id and its public key (cryptography object) for ``user_id``."""
        self._account(user_id)
        self._keys[key_id] = (user_id, public_key)

    def key(self, key_id: str) -> tuple[str, Any] | None:
        """``(user_id, public_key)`` registered under ``key_id``, if any."""
        return self._keys.get(key_id)

    def has_account(self, user_id: str) -> bool:
        """True if ``user_id`` has an account."""
        return user_id in self._accounts

    def comm_id(self, user_id: str) -> str:
        """The user's communications id."""
        return self._account(user_id).comm_id

    def _account(self, user_id: str) -> Account:
        acct = self._accounts.get(user_id)
        if acct is None:
            raise SimError(401, "unauthorized", "unknown account")
        return acct

    # --- markets --------------------------------------------------------------------------

    def add_market(self, m: SimMarket) -> None:
        """List a market (emits lifecycle ``created``)."""
        if m.ticker in self._markets:
            raise SimError(409, "conflict", f"market {m.ticker} already exists")
        if m.is_combo and not m.is_hvm:
            m = _replace(m, is_hvm=True)  # every combo is HVM (§6)
        self._markets[m.ticker] = m
        self._created_wall_ns[m.ticker] = self._wall()
        self._stats[m.ticker] = MarketStats()
        self._books[m.ticker] = MarketBook(m.ticker)
        self._lifecycle(m, "created")

    def get_market(self, ticker: str) -> SimMarket:
        """The market, or 404."""
        m = self._markets.get(ticker)
        if m is None:
            raise SimError(404, "not_found", f"market {ticker} not found")
        return m

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
        """Determine and settle: $1 per winning contract, positions closed, settlements kept."""
        m = self.get_market(ticker)
        result = Side(result)
        if m.result is not None:
            raise SimError(400, "invalid_parameters", f"market {ticker} is already settled")
        self._close_market_activity(ticker, "market_settled")
        m = _replace(m, status=MarketStatus.DETERMINED, result=result)
        self._markets[ticker] = m
        self._lifecycle(m, "determined")
        now = self._wall()
        for acct in self._accounts.values():
            pos = acct.positions.pop(ticker, None)
            if pos is None or pos.position_centi == 0:
                continue
            held = Side.YES if pos.position_centi > 0 else Side.NO
            qty = abs(pos.position_centi)
            revenue = qty * _PAYOUT_MICROS_PER_CENTI if held == result else 0
            acct.balance_micros += revenue
            acct.updated_wall_ns = now
            acct.settlements.append(
                Settlement(
                    market_ticker=ticker,
                    event_ticker=m.event_ticker,
                    exchange_index=m.exchange_index,
                    result=result,
                    yes_count_centi=qty if held == Side.YES else 0,
                    yes_cost_micros=pos.cost_micros if held == Side.YES else 0,
                    no_count_centi=qty if held == Side.NO else 0,
                    no_cost_micros=pos.cost_micros if held == Side.NO else 0,
                    revenue_micros=revenue,
                    fees_micros=pos.fees_paid_micros,
                    wall_ns=now,
                )
            )
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

    # --- resting orders -------------------------------------------------------------------

    def place_order(
        self, user_id: str, ticker: str, side: Side, price_micros: int, qty_centi: int,
        *, client_order_id: str | None = None, post_only: bool = False,
    ) -> str:
        """Enter a limit bid: it trades with crossing liquidity, the rest rests. Returns its id."""
        m = self._active_market(ticker)
        acct = self._account(user_id)
        side = Side(side)
        price = self._grid_price(m, price_micros)
        try:
            check_qty(qty_centi)
        except MoneyError as exc:
            raise SimError(400, "invalid_parameters", str(exc)) from None
        if self.config.check_balance and acct.balance_micros < notional_micros(price, qty_centi):
            raise SimError(400, "insufficient_balance", "INSUFFICIENT_BALANCE")
        book = self._books[ticker]
        if post_only and book.crosses(side, price):
            raise SimError(400, "post_only_cross", "post-only order would take liquidity")
        order_id = self._new_id()
        coid = client_order_id or f"sim:{order_id}"
        left = self._take(m, user_id, order_id, coid, side, price, qty_centi)
        if left > 0:
            self._rest(m, RestingOrder(order_id, user_id, side, price, left, coid,
                                       self._next_seq(), self.clock.now_ns()))
        return order_id

    def cancel_order(self, user_id: str, order_id: str) -> int:
        """Cancel a resting order; returns the quantity removed (404 if not resting)."""
        ticker = self._order_owner_market.get(order_id)
        order = None if ticker is None else self._books[ticker].get(order_id)
        if ticker is None or order is None or order.user_id != user_id:
            raise SimError(404, "not_found", f"order {order_id} not found")
        self._remove_order(ticker, order_id)
        return order.remaining_centi

    def book(self, ticker: str) -> MarketBook:
        """The market's resting book (read it; do not mutate it)."""
        self.get_market(ticker)
        return self._books[ticker]

    def _rest(self, m: SimMarket, order: RestingOrder) -> None:
        self._books[m.ticker].add(order)
        self._order_owner_market[order.order_id] = m.ticker
        self._book_delta(m, order.side, order.price_micros, order.remaining_centi,
                         order.user_id, order.client_order_id)

    def _remove_order(self, ticker: str, order_id: str) -> None:
        order = self._books[ticker].remove(order_id)
        self._order_owner_market.pop(order_id, None)
        if order is not None and order.remaining_centi > 0:
            self._book_delta(self._markets[ticker], order.side, order.price_micros,
                             -order.remaining_centi, order.user_id, order.client_order_id)

    def _book_delta(self, m: SimMarket, side: Side, price: int, delta: int, user_id: str,
                    coid: str) -> None:
        msg = wire.orderbook_delta_msg(m, side, price, delta, self._wall())
        # client_order_id is only shown to the owner (kalshi-api.md §2.6): owner gets its own copy.
        public = OutMessage("orderbook_delta", "orderbook_delta", msg, m.ticker,
                            frozenset(u for u in self._accounts if u != user_id))
        own = OutMessage("orderbook_delta", "orderbook_delta", {**msg, "client_order_id": coid},
                         m.ticker, frozenset({user_id}))
        self._emit(public)
        self._emit(own)
        self._ticker(m)

    def _ticker(self, m: SimMarket) -> None:
        self._emit(OutMessage("ticker", "ticker", wire.ticker_msg(
            m, self._books[m.ticker], self._stats[m.ticker], self._wall()), m.ticker, None))

    def _take(self, m: SimMarket, user_id: str, order_id: str, coid: str, side: Side,
              price: int, qty: int, *, only: RestingOrder | None = None) -> int:
        """Trade a taker bid against resting liquidity (or one order); returns what is left."""
        book = self._books[m.ticker]
        candidates = [only] if only is not None else book.matchable(side, price)
        left = qty
        for resting in candidates:
            if left <= 0:
                break
            n = min(left, resting.remaining_centi)
            self._trade(m, taker=(user_id, order_id, coid, side), resting=resting, qty=n)
            book.reduce(resting, n)
            if resting.remaining_centi <= 0:
                self._order_owner_market.pop(resting.order_id, None)
            self._book_delta(m, resting.side, resting.price_micros, -n, resting.user_id,
                             resting.client_order_id)
            left -= n
        return left

    def _trade(self, m: SimMarket, *, taker: tuple[str, str, str, Side],
               resting: RestingOrder, qty: int) -> None:
        """Book one trade between a taker and a resting order at the resting order's price."""
        t_user, t_order, t_coid, t_side = taker
        yes_price = (resting.price_micros if resting.side == Side.YES
                     else MAX_PRICE_MICROS - resting.price_micros)
        trade_id = self._new_id()
        now = self._wall()
        oi_before = sum(abs(a.positions[m.ticker].position_centi)
                        for a in self._accounts.values() if m.ticker in a.positions)
        for user, order_id, coid, side, is_taker in (
            (resting.user_id, resting.order_id, resting.client_order_id, resting.side, False),
            (t_user, t_order, t_coid, t_side, True),
        ):
            self._book_fill(m, user, order_id, coid, side, yes_price, qty, is_taker,
                            trade_id, now)
        stats = self._stats[m.ticker]
        stats.volume_centi += qty
        stats.last_price_micros = yes_price
        stats.dollar_volume_micros += notional_micros(yes_price, qty)
        oi_after = sum(abs(a.positions[m.ticker].position_centi)
                       for a in self._accounts.values() if m.ticker in a.positions)
        stats.open_interest_centi += (oi_after - oi_before) // 2
        self._emit(OutMessage("trade", "trade", wire.trade_msg(
            m, trade_id, yes_price, qty, t_side, now), m.ticker, None))

    def _book_fill(self, m: SimMarket, user_id: str, order_id: str, coid: str, side: Side,
                   yes_price: int, qty: int, is_taker: bool, trade_id: str, now: int) -> None:
        acct = self._accounts[user_id]
        own_price = yes_price if side == Side.YES else MAX_PRICE_MICROS - yes_price
        fee = m.fees.fee_micros(yes_price, qty, is_taker=is_taker)
        pos = acct.positions.setdefault(m.ticker, Position(m.ticker, m.exchange_index))
        cost = notional_micros(own_price, qty)
        sign = 1 if side == Side.YES else -1
        held = pos.position_centi
        if held == 0 or (held > 0) == (sign > 0):
            pos.position_centi += sign * qty
            pos.cost_micros += cost
        else:
            # Opposite side: each YES+NO pair nets out and pays $1 at once.
            pairs = min(qty, abs(held))
            closed_cost = pos.cost_micros * pairs // abs(held)
            payout = pairs * _PAYOUT_MICROS_PER_CENTI
            pos.realized_pnl_micros += payout - closed_cost - notional_micros(own_price, pairs)
            pos.cost_micros -= closed_cost
            acct.balance_micros += payout
            rest = qty - pairs
            pos.position_centi += sign * qty
            if rest:
                pos.cost_micros = notional_micros(own_price, rest)
        acct.balance_micros -= cost + fee
        self.fees_collected_micros += fee
        pos.total_traded_micros += cost
        pos.fees_paid_micros += fee
        pos.volume_centi += qty
        pos.updated_wall_ns = now
        acct.updated_wall_ns = now
        fill = Fill(
            fill_id=trade_id if is_taker else self._new_id(),
            trade_id=trade_id,
            order_id=order_id,
            client_order_id=coid,
            user_id=user_id,
            market_ticker=m.ticker,
            exchange_index=m.exchange_index,
            outcome_side=side,
            book_side=BookSide.BID if side == Side.YES else BookSide.ASK,
            yes_price_micros=yes_price,
            qty_centi=qty,
            is_taker=is_taker,
            fee_micros=fee,
            post_position_centi=pos.position_centi,
            wall_ns=now,
        )
        acct.fills.append(fill)
        only = frozenset({user_id})
        self._emit(OutMessage("fill", "fill", wire.fill_msg(fill), m.ticker, only))
        self._emit(OutMessage("market_positions", "market_position",
                              wire.market_position_msg(user_id, pos), m.ticker, only))

    # --- RFQs -----------------------------------------------------------------------------

    def create_rfq(
        self, user_id: str, market_ticker: str, *, contracts_centi: int | None = None,
        target_cost_micros: int | None = None, rest_remainder: bool = False,
        target_cost_excludes_fees: bool = False, replace_existing: bool = False,
        obscure_creator_id: bool = False,
    ) -> str:
        """Open an RFQ for exactly one of a size or a target cost; broadcasts ``rfq_created``."""
        self._account(user_id)
        m = self._active_market(market_ticker)
        if (contracts_centi is None) == (target_cost_micros is None):
            raise SimError(400, "invalid_parameters",
                           "exactly one of contracts_fp and target_cost_dollars is required")
        if contracts_centi is not None and contracts_centi <= 0:
            raise SimError(400, "invalid_parameters", "contracts must be positive")
        if target_cost_micros is not None and target_cost_micros <= 0:
            raise SimError(400, "invalid_parameters", "target cost must be positive")
        mine = [r for r in self._open_rfqs.values() if r.user_id == user_id]
        if replace_existing:
            for r in mine:
                self._close_rfq(r, "replaced")
            mine = []
        if any(r.market_ticker == market_ticker for r in mine):
            raise SimError(409, "conflict", "an open RFQ on this market already exists")
        if len(mine) >= self.config.max_open_rfqs:
            raise SimError(400, "too_many_open_rfqs",
                           f"at most {self.config.max_open_rfqs} open RFQs per user")
        now = self._wall()
        rfq = SimRfq(
            id=self._new_id(), user_id=user_id, market_ticker=m.ticker,
            event_ticker=m.event_ticker, contracts_centi=contracts_centi,
            target_cost_micros=target_cost_micros,
            target_cost_excludes_fees=target_cost_excludes_fees,
            rest_remainder=rest_remainder, created_wall_ns=now, updated_wall_ns=now,
            mve_collection_ticker=m.mve_collection_ticker, legs=m.legs,
            obscure_creator_id=obscure_creator_id,
        )
        self._rfqs[rfq.id] = rfq
        self._open_rfqs[rfq.id] = rfq
        self._rfq_broadcast(rfq, "rfq_created", lambda cid: wire.rfq_created_msg(rfq, cid))
        return rfq.id

    def rfq_creator_id_for(self, rfq: SimRfq, viewer: str | None) -> str:
        """The RFQ creator's communications id as ``viewer`` sees it (obscured or not)."""
        if rfq.obscure_creator_id and viewer != rfq.user_id and not rfq.executed:
            return OBSCURED_CREATOR_ID
        return self.comm_id(rfq.user_id)

    def _rfq_broadcast(self, rfq: SimRfq, kind: str,
                       render: Callable[[str], dict[str, Any]]) -> None:
        real = render(self.comm_id(rfq.user_id))
        if not rfq.obscure_creator_id:
            self._emit(OutMessage("communications", kind, real, rfq.market_ticker, None))
            return
        # The creator sees its own id; everyone else the placeholder (§2.6).
        others = frozenset(u for u in self._accounts if u != rfq.user_id)
        self._emit(OutMessage("communications", kind, real, rfq.market_ticker,
                              frozenset({rfq.user_id})))
        self._emit(OutMessage("communications", kind, render(self.rfq_creator_id_for(rfq, None)),
                              rfq.market_ticker, others))

    def delete_rfq(self, user_id: str, rfq_id: str) -> None:
        """Close the caller's open RFQ (404 if not theirs/open); broadcasts ``rfq_deleted``."""
        rfq = self._rfqs.get(rfq_id)
        if rfq is None or rfq.user_id != user_id or rfq.status != RfqStatus.OPEN:
            raise SimError(404, "not_found", f"rfq {rfq_id} not found")
        if any(q.status == QuoteStatus.CONFIRMED for q in self._quotes_by_rfq.get(rfq_id, ())):
            raise SimError(400, "invalid_parameters", "rfq has a confirmed quote executing")
        self._close_rfq(rfq, "user_requested")

    def _close_rfq(self, rfq: SimRfq, reason: str) -> None:
        now = self._wall()
        rfq.status = RfqStatus.CLOSED
        self._open_rfqs.pop(rfq.id, None)
        rfq.updated_wall_ns = now
        if reason != "executed":
            rfq.cancelled_wall_ns = now
            rfq.cancellation_reason = reason
        for q in self._quotes_by_rfq.get(rfq.id, ()):
            live = q.status in (QuoteStatus.OPEN, QuoteStatus.CONFIRMED) or (
                q.status == QuoteStatus.ACCEPTED and not q.voided)
            if live:
                self._cancel_quote(q, "rfq_closed")
        self._rfq_broadcast(rfq, "rfq_deleted", lambda cid: wire.rfq_deleted_msg(rfq, cid, now))

    def get_rfq(self, rfq_id: str) -> SimRfq:
        """A copy of the RFQ, or 404."""
        rfq = self._rfqs.get(rfq_id)
        if rfq is None:
            raise SimError(404, "not_found", f"rfq {rfq_id} not found")
        return copy.copy(rfq)

    def list_rfqs(
        self, *, status: str | None = None, market_ticker: str | None = None,
        event_ticker: str | None = None, user_id: str | None = None,
    ) -> list[SimRfq]:
        """RFQs matching the filters, newest first (``user_id`` = created by that user)."""
        out = [
            copy.copy(r) for r in self._rfqs.values()
            if (status is None or r.status == status)
            and (market_ticker is None or r.market_ticker == market_ticker)
            and (event_ticker is None or r.event_ticker == event_ticker)
            and (user_id is None or r.user_id == user_id)
        ]
        return out[::-1]

    # --- quotes ---------------------------------------------------------------------------

    def create_quote(
        self, user_id: str, rfq_id: str, yes_bid_micros: int, no_bid_micros: int,
        *, rest_remainder: bool = False, post_only: bool = False,
    ) -> str:
        """Answer an RFQ with a two-sided quote; replaces the maker's open quote on it."""
        self._account(user_id)
        rfq = self._rfqs.get(rfq_id)
        if rfq is None:
            raise SimError(404, "not_found", f"rfq {rfq_id} not found")
        if rfq.status != RfqStatus.OPEN:
            raise SimError(400, "invalid_parameters", f"RFQ_CLOSED: rfq {rfq_id} is closed")
        if rfq.user_id == user_id:
            raise SimError(400, "invalid_parameters", "cannot quote your own RFQ")
        m = self._active_market(rfq.market_ticker)
        try:
            yes_bid, no_bid = check_bid(yes_bid_micros), check_bid(no_bid_micros)
        except MoneyError as exc:
            raise SimError(400, "invalid_parameters", str(exc)) from None
        if yes_bid == 0 and no_bid == 0:
            raise SimError(400, "invalid_parameters", "yes_bid and no_bid cannot both be 0")
        if yes_bid + no_bid > MAX_PRICE_MICROS:
            raise SimError(400, "invalid_parameters", "yes_bid + no_bid must not exceed 1")
        if yes_bid % 100 or no_bid % 100:  # nothing trades finer than $0.0001 (§5.2)
            raise SimError(400, "invalid_parameters", "prices must be multiples of $0.0001")
        for bid in (yes_bid, no_bid):
            if bid and self.config.reject_off_grid_quotes and not m.grid.is_valid(bid):
                raise SimError(400, "invalid_parameters", "price is not on the market's grid")
        for q in self._quotes_by_rfq.get(rfq_id, ()):
            if q.user_id == user_id and q.status == QuoteStatus.OPEN:
                self._cancel_quote(q, "replaced")
        yes_n, no_n = self._offered(m, rfq, yes_bid, no_bid)
        now = self._wall()
        q = SimQuote(
            id=self._new_id(), rfq_id=rfq_id, user_id=user_id, rfq_user_id=rfq.user_id,
            market_ticker=m.ticker, yes_bid_micros=yes_bid, no_bid_micros=no_bid,
            yes_contracts_centi=yes_n, no_contracts_centi=no_n,
            rest_remainder=rest_remainder, post_only=post_only,
            created_wall_ns=now, updated_wall_ns=now,
            rfq_target_cost_micros=rfq.target_cost_micros,
            target_cost_excludes_fees=(rfq.target_cost_excludes_fees
                                       if rfq.target_cost_micros is not None else None),
        )
        self._quotes[q.id] = q
        self._quotes_by_rfq.setdefault(rfq_id, []).append(q)
        self._quote_msg("quote_created", q, rfq, lambda cid: wire.quote_created_msg(
            q, self.comm_id(user_id), cid, rfq, now))
        return q.id

    def _offered(self, m: SimMarket, rfq: SimRfq, yes_bid: int, no_bid: int) -> tuple[int, int]:
        if rfq.contracts_centi is not None:
            return (rfq.contracts_centi if yes_bid else 0, rfq.contracts_centi if no_bid else 0)
        assert rfq.target_cost_micros is not None
        return tuple(  # type: ignore[return-value]
            _target_count(m.fees, MAX_PRICE_MICROS - bid, rfq.target_cost_micros,
                          rfq.target_cost_excludes_fees) if bid else 0
            for bid in (yes_bid, no_bid)
        )

    def delete_quote(self, user_id: str, quote_id: str, rfq_id: str | None = None) -> None:
        """Withdraw an open quote; anything else (accepted included, §0a) is 404."""
        q = self._quotes.get(quote_id)
        if (q is None or q.user_id != user_id or (rfq_id is not None and q.rfq_id != rfq_id)
                or q.status != QuoteStatus.OPEN):
            raise SimError(404, "not_found", f"quote {quote_id} not found")
        self._cancel_quote(q, "user_requested")

    def _cancel_quote(self, q: SimQuote, reason: str) -> None:
        now = self._wall()
        q.status = QuoteStatus.CANCELLED
        q.cancelled_wall_ns = q.updated_wall_ns = now
        q.cancellation_reason = reason

    def cancel_open_quotes_silently(self) -> int:
        """Cancel every open quote without a message (a server roll loses them, §3.1)."""
        n = 0
        for q in self._quotes.values():
            if q.status == QuoteStatus.OPEN:
                self._cancel_quote(q, "exchange_restart")
                n += 1
        return n

    def accept_quote(
        self, user_id: str, rfq_id: str | None, quote_id: str, side: Side,
        contracts_centi: int | None = None,
    ) -> None:
        """Requester accepts one side of a quote; starts the maker's confirm window."""
        q = self._quotes.get(quote_id)
        if q is None or (rfq_id is not None and q.rfq_id != rfq_id):
            raise SimError(404, "not_found", f"quote {quote_id} not found")
        rfq = self._rfqs[q.rfq_id]
        if rfq.user_id != user_id:
            raise SimError(404, "not_found", f"quote {quote_id} not found")
        if rfq.status != RfqStatus.OPEN:
            raise SimError(400, "invalid_parameters", f"RFQ_CLOSED: rfq {rfq.id} is closed")
        if q.status != QuoteStatus.OPEN:
            raise SimError(400, "invalid_parameters", f"quote is {q.status}, not open")
        if any(not o.voided and o.status in (QuoteStatus.ACCEPTED, QuoteStatus.CONFIRMED)
               for o in self._quotes_by_rfq.get(rfq.id, ())):
            raise SimError(400, "invalid_parameters", "another quote on this rfq is pending")
        side = Side(side)
        bid = q.yes_bid_micros if side == Side.YES else q.no_bid_micros
        offered = q.yes_contracts_centi if side == Side.YES else q.no_contracts_centi
        if bid == 0 or offered <= 0:
            raise SimError(400, "invalid_parameters", f"the quote has no {side} bid")
        qty = offered if contracts_centi is None else contracts_centi
        if not 0 < qty <= offered:
            raise SimError(400, "invalid_parameters", "contracts must be in (0, offered]")
        m = self._active_market(q.market_ticker)
        price = MAX_PRICE_MICROS - bid
        need = notional_micros(price, qty) + m.fees.fee_micros(price, qty, is_taker=True)
        if self.config.check_balance and self._accounts[user_id].balance_micros < need:
            raise SimError(400, "insufficient_balance", "INSUFFICIENT_BALANCE")
        now = self._wall()
        q.status = QuoteStatus.ACCEPTED
        q.accepted_side = side
        q.accepted_contracts_centi = qty
        q.accepted_wall_ns = q.updated_wall_ns = now
        window_ms = self.config.hvm_confirm_window_ms if m.is_hvm else self.config.confirm_window_ms
        self._schedule(self.clock.now_ns() + window_ms * _NS_PER_MS, "confirm_expiry", q.id)
        self._quote_msg("quote_accepted", q, rfq, lambda cid: wire.quote_accepted_msg(
            q, self.comm_id(q.user_id), cid, rfq))

    def confirm_quote(self, user_id: str, quote_id: str, rfq_id: str | None = None) -> None:
        """Maker's last-look confirm: starts the execution timer (400 ``expired`` if late)."""
        q = self._quotes.get(quote_id)
        if (q is None or q.user_id != user_id or (rfq_id is not None and q.rfq_id != rfq_id)):
            raise SimError(404, "not_found", f"quote {quote_id} not found")
        m = self.get_market(q.market_ticker)
        self._fire_due(self.clock.now_ns())
        if q.status == QuoteStatus.ACCEPTED and q.voided:
            raise SimError(400, "expired", "the confirmation window has expired")
        if q.status != QuoteStatus.ACCEPTED:
            raise SimError(400, "invalid_parameters", f"quote is {q.status}, not accepted")
        assert q.accepted_side is not None
        assert q.accepted_contracts_centi is not None
        bid = q.yes_bid_micros if q.accepted_side == Side.YES else q.no_bid_micros
        need = notional_micros(bid, q.accepted_contracts_centi) + m.fees.fee_micros(
            bid, q.accepted_contracts_centi, is_taker=False)
        if self.config.check_balance and self._accounts[user_id].balance_micros < need:
            raise SimError(400, "insufficient_balance", "INSUFFICIENT_BALANCE")
        q.status = QuoteStatus.CONFIRMED
        q.confirmed_wall_ns = q.updated_wall_ns = self._wall()
        cfg = self.config
        timer_ms = cfg.hvm_execution_timer_ms if m.is_hvm else cfg.execution_timer_ms
        self._schedule(self.clock.now_ns() + timer_ms * _NS_PER_MS, "execute", q.id)

    def get_quote(self, quote_id: str, rfq_id: str | None = None) -> SimQuote:
        """A copy of the quote, or 404 (also when it is not in ``rfq_id``)."""
        q = self._quotes.get(quote_id)
        if q is None or (rfq_id is not None and q.rfq_id != rfq_id):
            raise SimError(404, "not_found", f"quote {quote_id} not found")
        return copy.copy(q)

    def list_quotes(
        self, *, status: str | None = None, rfq_id: str | None = None,
        creator_user_id: str | None = None, rfq_creator_user_id: str | None = None,
        min_updated_wall_ns: int | None = None, max_updated_wall_ns: int | None = None,
    ) -> list[SimQuote]:
        """Quotes matching the filters, newest first."""
        out = [
            copy.copy(q) for q in self._quotes.values()
            if (status is None or q.status == status)
            and (rfq_id is None or q.rfq_id == rfq_id)
            and (creator_user_id is None or q.user_id == creator_user_id)
            and (rfq_creator_user_id is None or q.rfq_user_id == rfq_creator_user_id)
            and (min_updated_wall_ns is None or q.updated_wall_ns >= min_updated_wall_ns)
            and (max_updated_wall_ns is None or q.updated_wall_ns <= max_updated_wall_ns)
        ]
        return out[::-1]

    def _quote_msg(self, kind: str, q: SimQuote, rfq: SimRfq,
                   render: Callable[[str], dict[str, Any]]) -> None:
        # quote_* messages go only to the quote's creator and the RFQ's creator (§2.6).
        if not rfq.obscure_creator_id:
            self._emit(OutMessage("communications", kind, render(self.comm_id(rfq.user_id)),
                                  q.market_ticker, frozenset({q.user_id, q.rfq_user_id})))
            return
        for viewer in (q.user_id, q.rfq_user_id):
            self._emit(OutMessage("communications", kind,
                                  render(self.rfq_creator_id_for(rfq, viewer)),
                                  q.market_ticker, frozenset({viewer})))

    # --- timers and execution -------------------------------------------------------------

    def _schedule(self, due_ns: int, kind: str, quote_id: str) -> None:
        heapq.heappush(self._timers, (due_ns, self._next_seq(), kind, quote_id))

    def next_deadline_ns(self) -> int | None:
        """When :meth:`advance` next has work (clock ``now_ns`` base), or None."""
        return self._timers[0][0] if self._timers else None

    def advance(self, now_ns: int | None = None) -> None:
        """Fire every confirm-window expiry and execution timer due at ``now_ns``."""
        self._fire_due(self.clock.now_ns() if now_ns is None else now_ns)

    def _fire_due(self, now_ns: int) -> None:
        while self._timers and self._timers[0][0] <= now_ns:
            _, _, kind, quote_id = heapq.heappop(self._timers)
            q = self._quotes[quote_id]
            if kind == "confirm_expiry" and q.status == QuoteStatus.ACCEPTED:
                q.voided = True  # status keeps reading "accepted" (§0a)
            elif kind == "execute" and q.status == QuoteStatus.CONFIRMED:
                self._execute(q)

    def _execute(self, q: SimQuote) -> None:
        rfq = self._rfqs[q.rfq_id]
        m = self._markets[q.market_ticker]
        assert q.accepted_side is not None
        assert q.accepted_contracts_centi is not None
        if m.status != MarketStatus.ACTIVE:
            self._cancel_quote(q, "market_not_active")
            return
        maker_side = q.accepted_side
        bid = q.yes_bid_micros if maker_side == Side.YES else q.no_bid_micros
        qty = q.accepted_contracts_centi
        book = self._books[m.ticker]
        if q.post_only and book.crosses(maker_side, bid):
            self._cancel_quote(q, "post_only_cross")
            return
        if self.config.check_balance:
            taker_need = notional_micros(MAX_PRICE_MICROS - bid, qty) + m.fees.fee_micros(
                bid, qty, is_taker=True)
            if (self._accounts[q.user_id].balance_micros < notional_micros(bid, qty)
                    or self._accounts[rfq.user_id].balance_micros < taker_need):
                self._cancel_quote(q, "insufficient_balance")
                return
        maker_order, req_order = self._new_id(), self._new_id()
        maker_coid = f"quote:{_short_hash(q.id)}:{q.id}"
        req_coid = f"rfq:{_short_hash(rfq.id)}:{rfq.id}"
        q.creator_order_id, q.rfq_creator_order_id = maker_order, req_order
        # Maker order first: it may trade with better third-party liquidity, then rests.
        left = self._take(m, q.user_id, maker_order, maker_coid, maker_side, bid, qty)
        maker_rest = RestingOrder(maker_order, q.user_id, maker_side, bid, left, maker_coid,
                                  self._next_seq(), self.clock.now_ns())
        req_left = qty
        if left > 0:
            self._rest(m, maker_rest)
            # The requester's order crosses the maker's at the quote price ($1 - bid).
            req_left = self._take(m, rfq.user_id, req_order, req_coid, maker_side.other,
                                  MAX_PRICE_MICROS - bid, qty, only=maker_rest)
            if maker_rest.remaining_centi > 0 and not q.rest_remainder:
                self._remove_order(m.ticker, maker_order)
        if req_left > 0 and rfq.rest_remainder:
            self._rest(m, RestingOrder(req_order, rfq.user_id, maker_side.other,
                                       MAX_PRICE_MICROS - bid, req_left, req_coid,
                                       self._next_seq(), self.clock.now_ns()))
        now = self._wall()
        q.status = QuoteStatus.EXECUTED
        q.executed_wall_ns = q.updated_wall_ns = now
        rfq.executed = True  # from now on the counterparty sees the real creator id
        maker_comm, req_comm = self.comm_id(q.user_id), self.comm_id(rfq.user_id)
        for user, order_id, coid in ((q.user_id, maker_order, maker_coid),
                                     (rfq.user_id, req_order, req_coid)):
            self._emit(OutMessage("communications", "quote_executed", wire.quote_executed_msg(
                q, maker_comm, req_comm, order_id, coid, now), m.ticker, frozenset({user})))
        self._close_rfq(rfq, "executed")

    # --- reads ----------------------------------------------------------------------------

    def positions(self, user_id: str) -> dict[str, Position]:
        """Open positions of ``user_id`` by market ticker (copies)."""
        return {t: copy.copy(p) for t, p in self._account(user_id).positions.items()
                if p.position_centi != 0 or p.total_traded_micros}

    def balance_micros(self, user_id: str) -> int:
        """Cash balance of ``user_id``."""
        return self._account(user_id).balance_micros

    def account_updated_wall_ns(self, user_id: str) -> int:
        """When the account's cash last changed (wall ns)."""
        return self._account(user_id).updated_wall_ns

    def fills(self, user_id: str) -> list[Fill]:
        """Fills of ``user_id``, oldest first."""
        return list(self._account(user_id).fills)

    def settlements(self, user_id: str) -> list[Settlement]:
        """Settlements of ``user_id``, oldest first."""
        return list(self._account(user_id).settlements)

    def ledger_snapshot(self) -> dict[str, Any]:
        """Ground truth for every account (integers in micros / centi), JSON-ready."""
        accounts: dict[str, Any] = {}
        for uid, a in self._accounts.items():
            accounts[uid] = {
                "balance_micros": a.balance_micros,
                "communications_id": a.comm_id,
                "positions": {
                    t: {
                        "position_centi": p.position_centi,
                        "cost_micros": p.cost_micros,
                        "realized_pnl_micros": p.realized_pnl_micros,
                        "fees_paid_micros": p.fees_paid_micros,
                        "total_traded_micros": p.total_traded_micros,
                        "volume_centi": p.volume_centi,
                    }
                    for t, p in a.positions.items()
                },
                "fills": len(a.fills),
                "fees_paid_micros": sum(f.fee_micros for f in a.fills),
                "settlements": len(a.settlements),
            }
        return {
            "accounts": accounts,
            "fees_collected_micros": self.fees_collected_micros,
            "open_rfqs": sum(r.status == RfqStatus.OPEN for r in self._rfqs.values()),
            "quotes_by_status": {
                s.value: sum(q.status == s for q in self._quotes.values()) for s in QuoteStatus
            },
            "markets": {
                t: {"status": m.status.value, "result": m.result.value if m.result else None,
                    "open_interest_centi": self._stats[t].open_interest_centi}
                for t, m in self._markets.items()
            },
        }

    # --- helpers --------------------------------------------------------------------------

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

    def users(self) -> Iterable[str]:
        """Every account's user id."""
        return tuple(self._accounts)


def _target_count(fees: FeeSchedule, price: int, target: int, excludes_fees: bool) -> int:
    """Largest quantity (0.01 contracts) whose cost at ``price`` (+ taker fee) fits ``target``."""

    def cost(n: int) -> int:
        principal = price * n // CENTI_PER_CONTRACT
        return principal if excludes_fees else principal + fees.fee_micros(price, n, is_taker=True)

    lo, hi = 0, target * CENTI_PER_CONTRACT // price + 1
    while lo < hi:  # binary search: cost is monotone in n
        mid = (lo + hi + 1) // 2
        if cost(mid) <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _replace(m: SimMarket, **changes: Any) -> SimMarket:
    import dataclasses

    return dataclasses.replace(m, **changes)
