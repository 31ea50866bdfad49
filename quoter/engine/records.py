"""The engine's cache: every RFQ and quote record, the indexes over them, and what retention
and the timers need to remember. One explicit object that every part is handed.

Plain data and index upkeep only: deciding is the parts' job. Every index is kept in step with
the records it indexes by the small helpers here, so a part never edits two structures by hand.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from quoter.config import QuoterConfig
from quoter.domain.events import QuoteAccepted
from quoter.engine.exposure import ExposureBook
from quoter.engine.lifecycle import QuoteRecord, RfqRecord
from quoter.engine.marketdata import MarketData
from quoter.engine.positions import PositionLedger
from quoter.engine.requesters import RequesterBook
from quoter.engine.risk import RiskManager
from quoter.engine.strategy_set import Strategy

__all__ = ["MS", "Load", "PoolRequest", "Records"]

#: Nanoseconds per millisecond (configs speak ms, the engine ns).
MS: Final = 1_000_000

#: What one RFQ's hittable quotes put into the risk totals: ``(ticker, loss if YES, loss if NO,
#: quotes, centi a YES-side hit would buy, centi a NO-side hit would buy, cash the costliest
#: hit would take)``.
Load = tuple[str, int, int, int, int, int, int]


@dataclass(slots=True)
class PoolRequest:
    """The one ``PriceInPool`` in flight for an RFQ: what its answer continues."""

    request_id: int
    purpose: str  # "new" | "replace" | "last_look"
    quote_id: str = ""
    # A book moved while a re-price was in flight: look again when it answers.
    dirty: bool = False


class Records:
    """What the engine knows: records, indexes, timer and retention bookkeeping."""

    def __init__(
        self,
        config: QuoterConfig,
        strategies: dict[str, Strategy],
        *,
        perf_ns: Callable[[], int] | None,
        wall_offset_ns: int,
        max_pending: int,
    ) -> None:
        """Empty records for ``config`` and its built ``strategies``."""
        self.config = config
        self.strategies = strategies
        self.perf_ns = perf_ns
        self.wall_offset_ns = wall_offset_ns
        self.max_pending = max_pending
        self.md = MarketData()
        self.risk = RiskManager(config.risk)
        self.rfqs: dict[str, RfqRecord] = {}
        self.quotes: dict[str, QuoteRecord] = {}
        #: Running risk totals, kept in step with ``rfqs``, ``quotes`` and the ledger.
        self.book = ExposureBook()
        # What each RFQ's live quotes / each quote's provisional trade put into ``book``.
        self.rfq_load: dict[str, Load] = {}
        self.prov_load: dict[str, tuple[str, int, int, int]] = {}
        self.ledger = PositionLedger()
        #: What each requester has done with our quotes, and how our fills marked out.
        self.requesters = RequesterBook(config.requesters.markout_horizons_ms)
        #: The strategy each RFQ was routed to.
        self.ctx: dict[str, Strategy] = {}
        # Parked RFQs in arrival order (value: arrival number), indexed by the markets they need.
        self.pending: dict[str, int] = {}
        self.pending_n = 0
        self.pending_by: dict[str, dict[str, None]] = {}
        self.pending_keys: dict[str, set[str]] = {}
        self.fetching: dict[str, None] = {}
        # Quoted RFQs by the markets whose books price them (and those markets per RFQ).
        self.by_book: dict[str, dict[str, None]] = {}
        self.books_of: dict[str, tuple[str, ...]] = {}
        self.orders: dict[str, str] = {}
        #: Events whose markets are mutually exclusive (their contract limit is per outcome).
        self.exclusive_events: set[str] = set()
        #: Collateral: the last reported cash balance (None until one arrives), what our fills
        #: have spent since that report, and whether the exchange refused a quote for want of
        #: cash since then (quoting pauses until the next report).
        self.cash_micros: int | None = None
        self.cash_spent_micros = 0
        self.cash_paused = False
        #: Markets determined but not yet settled: their YES payout (positions stay meanwhile).
        self.determined: dict[str, int] = {}
        #: Accepts of quote ids not known yet (our create response is in flight), by quote id.
        self.held: dict[str, QuoteAccepted] = {}
        self.early_fills: dict[str, int] = {}
        self.early_until: dict[str, int] = {}
        #: Per market, when the newest fill we booked was received: a position report
        #: received before that describes the exchange before that fill (one entry a market).
        self.fill_recv_ns: dict[str, int] = {}
        # (expires at, kind, key), in order of engine time: what to drop when (see retention).
        self.expiry: deque[tuple[int, str, str]] = deque()
        self.now = 0
        self.close_timers: dict[str, int] = {}
        self.stale_timers: dict[str, int] = {}
        self.replace_timers: dict[str, None] = {}
        # Process-isolated pricing: the request in flight per RFQ, and the request counter.
        self.pool_reqs: dict[str, PoolRequest] = {}
        self.pool_seq = 0

    @property
    def halted(self) -> bool:
        """True while quoting is stopped."""
        return self.risk.halted

    # --- the parking index ----------------------------------------------------------------------

    def index_pending(self, rfq_id: str, tickers: Iterable[str]) -> None:
        """Let a change on any of ``tickers`` find parked ``rfq_id``."""
        keys = self.pending_keys.setdefault(rfq_id, set())
        for t in tickers:
            if t not in keys:
                keys.add(t)
                self.pending_by.setdefault(t, {})[rfq_id] = None

    def unpend(self, rfq_id: str) -> None:
        """Take ``rfq_id`` off the parked list and its index."""
        self.pending.pop(rfq_id, None)
        for t in self.pending_keys.pop(rfq_id, ()):
            ids = self.pending_by[t]
            del ids[rfq_id]
            if not ids:
                del self.pending_by[t]

    # --- the by-book index ----------------------------------------------------------------------

    def unbook(self, rfq_id: str) -> None:
        """Stop routing book changes to ``rfq_id``: O(its markets), not O(all books)."""
        for t in self.books_of.pop(rfq_id, ()):
            ids = self.by_book.get(t)
            if ids is not None:
                ids.pop(rfq_id, None)
                if not ids:
                    del self.by_book[t]
