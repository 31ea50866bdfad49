"""The engine's shared state, constants and the small types its parts share."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, cast

from quoter.config import LifecycleParams, ModuleRef, QuoterConfig, StrategyConfig
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.book import OrderBook
from quoter.domain.types import MarketInfo
from quoter.engine.exposure import ExposureBook
from quoter.engine.lifecycle import QuoteRecord, QuoteState, RfqRecord, RfqState
from quoter.engine.marketdata import MarketData
from quoter.engine.positions import PositionLedger
from quoter.engine.risk import MarketExposure, QuoteExposure, RiskManager
from strategies.base import Decline, Overlay, Pricer, Pricing, PricingInput

MS: Final = 1_000_000
DAY_NS: Final = 86_400 * 1_000_000_000
#: How long after ``quote_executed`` we wait for its fills before dropping what is left of the
#: provisional exposure (a post-only or partial execution fills less than was accepted).
EXECUTION_FILL_GRACE_NS: Final = 10_000 * MS
#: How long an ended RFQ / quote record (and an unjoined early fill) is kept for late events.
RECORD_RETENTION_NS: Final = 60_000 * MS
#: How long past a ``PriceInPool`` deadline the engine waits for its answer before declining.
POOL_ANSWER_GRACE_NS: Final = 1_000 * MS
_TERMINAL: Final = (QuoteState.CANCELLED, QuoteState.DECLINED, QuoteState.EXPIRED, QuoteState.DEAD)
_COMMITTED: Final = (QuoteState.CONFIRMING, QuoteState.CONFIRMED, QuoteState.EXECUTED)
_RISK_LIVE: Final = (QuoteState.OPEN, QuoteState.CANCELLING)
_ACTIVE_RFQ: Final = (RfqState.QUOTING, RfqState.ACCEPTED)
_CLOSING_EVENTS: Final = ("closed", "deactivated", "determined", "settled", "finalized")

ModuleFactory = Callable[[ModuleRef], Pricer | Overlay]


def _registry_build(ref: ModuleRef) -> Pricer | Overlay:
    """Build a module through ``strategies.registry`` (the default factory)."""
    from strategies import registry

    return registry.build(ref.name, ref.params)


@dataclass(slots=True)
class _PoolRequest:
    """The one ``PriceInPool`` in flight for an RFQ: what its answer continues."""

    request_id: int
    purpose: str  # "new" | "replace" | "last_look"
    quote_id: str = ""
    # A book moved while a re-price was in flight: look again when it answers.
    dirty: bool = False


def _copy_book(book: OrderBook) -> OrderBook:
    """A copy a worker can price later while the engine keeps updating the original."""
    copy = OrderBook(book.market_ticker)
    copy.apply_snapshot(book.yes_levels(), book.no_levels(), book.updated_ns)
    return copy


@dataclass(frozen=True, slots=True)
class _Strategy:
    """A strategy ready to run: its config, effective lifecycle and built modules."""

    config: StrategyConfig
    lifecycle: LifecycleParams
    pricer: Pricer
    overlays: tuple[Overlay, ...]


class _EngineState:
    """The state every part of the engine reads and writes (one object, see ``Engine``)."""

    def __init__(
        self,
        config: QuoterConfig,
        *,
        pricers: ModuleFactory | None = None,
        perf_ns: Callable[[], int] | None = None,
        wall_offset_ns: int = 0,
        max_pending: int = 1000,
    ) -> None:
        """Set up the empty state and build the configured strategies (see ``Engine``)."""
        self._factory = pricers or _registry_build
        self._perf_ns = perf_ns
        self._wall_offset_ns = wall_offset_ns
        self._max_pending = max_pending
        self.config = config
        self._strategies = self._build(config)
        self.md = MarketData()
        self.risk = RiskManager(config.risk)
        self.rfqs: dict[str, RfqRecord] = {}
        self.quotes: dict[str, QuoteRecord] = {}
        #: Running risk totals, kept in step with ``rfqs``, ``quotes`` and the ledger.
        self.book = ExposureBook()
        # What each RFQ's live quotes / each quote's provisional trade put into ``book``.
        self._rfq_load: dict[str, tuple[str, int, int, int]] = {}
        self._prov_load: dict[str, tuple[str, int, int, int]] = {}
        self.ledger = PositionLedger()
        self._ctx: dict[str, _Strategy] = {}
        # Parked RFQs in arrival order (value: arrival number), indexed by the markets they need.
        self._pending: dict[str, int] = {}
        self._pending_n = 0
        self._pending_by: dict[str, dict[str, None]] = {}
        self._pending_keys: dict[str, set[str]] = {}
        self._fetching: dict[str, None] = {}
        # Quoted RFQs by the markets whose books price them (and those markets per RFQ).
        self._by_book: dict[str, dict[str, None]] = {}
        self._books_of: dict[str, tuple[str, ...]] = {}
        self._orders: dict[str, str] = {}
        self._early_fills: dict[str, int] = {}
        self._early_until: dict[str, int] = {}
        # (expires at, kind, key), in order of engine time: what to drop when (see Retention).
        self._expiry: deque[tuple[int, str, str]] = deque()
        self._now = 0
        self._close_timers: dict[str, int] = {}
        self._stale_timers: dict[str, int] = {}
        self._replace_timers: dict[str, None] = {}
        # Process-isolated pricing: the request in flight per RFQ, and the request counter.
        self._pool_reqs: dict[str, _PoolRequest] = {}
        self._pool_seq = 0

    @property
    def ledger(self) -> PositionLedger:
        """The positions ledger."""
        return self._ledger

    @ledger.setter
    def ledger(self, ledger: PositionLedger) -> None:
        """Swap in a ledger (e.g. restored from a snapshot) and rebuild the risk totals."""
        self._ledger = ledger
        ledger.on_position = self._on_position_changed
        self.book = ExposureBook()
        self._rfq_load.clear()
        self._prov_load.clear()
        for t, event, series in ledger.registered():
            self.book.set_meta(t, event, series)
        for t in ledger.tickers():
            self._on_position_changed(t)
        for q in self.quotes.values():
            self._sync_prov(q)
        for rec in self.rfqs.values():
            self._sync(rec)

    @property
    def halted(self) -> bool:
        """True while quoting is stopped."""
        return self.risk.halted

    def _build(self, config: QuoterConfig) -> dict[str, _Strategy]:
        built: dict[str, _Strategy] = {}
        for s in config.strategies:
            if not s.enabled:
                continue
            # The config validated each module's kind against the registry.
            pricer = cast(Pricer, self._factory(s.pricer))
            overlays = tuple(cast(Overlay, self._factory(o)) for o in s.overlays)
            built[s.name] = _Strategy(s, config.lifecycle_for(s), pricer, overlays)
        return built

    if TYPE_CHECKING:
        # What the parts call across modules, implemented by the mixins ``Engine`` is composed
        # of (declared here only for the type checker; at run time the mixins' methods apply).

        # quoter.engine.valuation
        def _wall_ms(self, now: int) -> int:
            ...

        def _note_day(self, now: int) -> None:
            ...

        def _not_quoted(
            self,
            rfq: E.RfqReceived,
            reason: str,
            out: list[C.Command],
            strategy: str = "",
            detail: str = "",
        ) -> None:
            ...

        @staticmethod
        def _needs(rfq: E.RfqReceived, market: MarketInfo | None) -> tuple[str, ...]:
            ...

        def _book_problem(
            self, tickers: Iterable[str], lc: LifecycleParams, now: int
        ) -> str | None:
            ...

        def _est_size(self, rfq: E.RfqReceived, yes: int = 0, no: int = 0) -> int:
            ...

        def _price(
            self, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int, *, final: bool = True
        ) -> Pricing | Decline:
            ...

        def _input(
            self, rec: RfqRecord, market: MarketInfo, now: int, *, copy_books: bool = False
        ) -> PricingInput:
            ...

        def _conclude(
            self, st: _Strategy, market: MarketInfo, res: Pricing | Decline, *, final: bool
        ) -> Pricing | Decline:
            ...

        # quoter.engine.totals
        def _exposures(
            self, ticker: str | None, exclude_rfq: str | None = None
        ) -> dict[str, MarketExposure]:
            ...

        def _sync(self, rec: RfqRecord) -> None:
            ...

        def _sync_prov(self, q: QuoteRecord) -> None:
            ...

        def _on_position_changed(self, ticker: str) -> None:
            ...

        def _check_quote(self, rec: RfqRecord, ticker: str, quote: QuoteExposure) -> str | None:
            ...

        # quoter.engine.retention
        def _retain(self, kind: str, key: str) -> None:
            ...

        # quoter.engine.intake
        def _try_pending(self, tickers: Iterable[str], now: int, out: list[C.Command]) -> None:
            ...

        def _drop(
            self, rec: RfqRecord, reason: str, out: list[C.Command], detail: str = ""
        ) -> None:
            ...

        # quoter.engine.quoting
        def _quote_new(
            self,
            rec: RfqRecord,
            now: int,
            out: list[C.Command],
            routed: StrategyConfig | None = None,
        ) -> None:
            ...

        def _unquotable(
            self, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int
        ) -> str | None:
            ...

        def _quote_priced(
            self,
            rec: RfqRecord,
            st: _Strategy,
            market: MarketInfo,
            res: Pricing | Decline,
            now: int,
            out: list[C.Command],
        ) -> None:
            ...

        def _arm_timers(
            self,
            market: MarketInfo,
            needs: Iterable[str],
            lc: LifecycleParams,
            now: int,
            out: list[C.Command],
        ) -> None:
            ...

        # quoter.engine.intake
        def _unbook(self, rfq_id: str) -> None:
            ...

        # quoter.engine.quotes
        def _settle_rfq(self, rec: RfqRecord) -> None:
            ...

        def _pull(self, rec: RfqRecord, reason: str, out: list[C.Command]) -> None:
            ...

        def _pull_market(self, ticker: str, reason: str, out: list[C.Command]) -> None:
            ...

        # quoter.engine.quoting
        def _maybe_replace(self, rec: RfqRecord, now: int, out: list[C.Command]) -> None:
            ...

        def _last_fair(self, rec: RfqRecord) -> int | None:
            ...

        def _replace_priced(
            self,
            rec: RfqRecord,
            st: _Strategy,
            market: MarketInfo,
            last_fair: int,
            res: Pricing | Decline,
            now: int,
            out: list[C.Command],
        ) -> None:
            ...

        # quoter.engine.pool_pricing
        def _request_pool(
            self,
            rec: RfqRecord,
            st: _Strategy,
            market: MarketInfo,
            purpose: str,
            now: int,
            out: list[C.Command],
            quote_id: str = "",
            *,
            cap_ns: int | None = None,
        ) -> None:
            ...

        def _forget_pool(self, rfq_id: str, out: list[C.Command]) -> _PoolRequest | None:
            ...

        def _on_pricing_timer(self, rfq_id: str, now: int, out: list[C.Command]) -> None:
            ...

        # quoter.engine.lastlook
        def _finish_look(
            self,
            q: QuoteRecord,
            rec: RfqRecord,
            reason: str | None,
            detail: str,
            out: list[C.Command],
        ) -> None:
            ...

        def _pre_look(
            self, q: QuoteRecord, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int
        ) -> tuple[str | None, str]:
            ...

        def _post_look(
            self, q: QuoteRecord, st: _Strategy, res: Pricing | Decline
        ) -> tuple[str | None, str]:
            ...

        def _finish_accepted(self, q: QuoteRecord) -> None:
            ...

        # quoter.engine.control
        def _halt(self, reason: str, out: list[C.Command], *, emit: bool) -> None:
            ...
