"""Value types of the simulated exchange: statuses, config, markets, RFQs, quotes, fills.

Plain data with no behaviour beyond trivial properties; the state machine that mutates the
mutable ones (``SimRfq``, ``SimQuote``, ``Position``, ``Account``, ``MarketStats``) is
:class:`quoter.sim.exchange.SimExchange`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from quoter.domain.fees import FeeSchedule
from quoter.domain.grid import PriceGrid
from quoter.domain.money import CENTI_PER_CONTRACT, MAX_PRICE_MICROS
from quoter.domain.types import BookSide, ComboLeg, MarketStatus, Side

__all__ = [
    "NS_PER_MS",
    "OBSCURED_CREATOR_ID",
    "PAYOUT_MICROS_PER_CENTI",
    "Account",
    "ExchangeConfig",
    "Fill",
    "MarketStats",
    "OutMessage",
    "Position",
    "QuoteStatus",
    "RfqStatus",
    "SeriesFeeChange",
    "Settlement",
    "SimError",
    "SimMarket",
    "SimQuote",
    "SimRfq",
    "SimSeries",
    "communications_id",
    "short_hash",
]

NS_PER_MS = 1_000_000
#: What others see as an RFQ's creator when it set ``obscure_creator_id``: SHA-256 of "" (§2.6).
OBSCURED_CREATOR_ID = hashlib.sha256(b"").hexdigest()
#: $1 per contract, in micro-dollars per hundredth of a contract.
PAYOUT_MICROS_PER_CENTI = MAX_PRICE_MICROS // CENTI_PER_CONTRACT


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
    #: Reject off-grid quote prices. The RFQ guide says off-grid is ``invalid_parameters``,
    #: but the real (demo) exchange accepted $0.3550 on a 1-cent market and executed at it
    #: (§0a): the simulator does what the exchange did; a test can switch the docs' rule on.
    reject_off_grid_quotes: bool = False


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
    #: Kalshi's strike fields: ``greater`` with ``floor_strike`` (YES iff the value is above
    #: it), ``less`` with ``cap_strike``; ``custom`` for a market without a numeric strike.
    strike_type: str = "custom"
    floor_strike: int | None = None
    cap_strike: int | None = None

    @property
    def is_combo(self) -> bool:
        """True for multivariate (combo) markets: they are always HVM (§6)."""
        return bool(self.legs) or self.mve_collection_ticker is not None


@dataclass(frozen=True, slots=True)
class SimSeries:
    """A series: the template of its events, and the owner of their fee terms.

    Kalshi puts ``fee_type`` / ``fee_multiplier`` on the series, not the market (kalshi-api.md
    §5.4); every market of the series is charged by ``fees``.
    """

    ticker: str
    title: str = ""
    category: str = "Simulated"
    frequency: str = "custom"
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    exchange_index: int = 0
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SeriesFeeChange:
    """A scheduled change of a series' fee terms (``GET /series/fee_changes``)."""

    id: str
    series_ticker: str
    fees: FeeSchedule
    scheduled_wall_ns: int


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


def short_hash(text: str) -> str:
    """Return the first 8 hex digits of SHA-256 of ``text`` (client order id tags)."""
    return hashlib.sha256(text.encode()).hexdigest()[:8]
