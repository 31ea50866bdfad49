"""The engine: ``on_event(event, now_ns) -> list[Command]``, pure and deterministic.

No IO and no clock reads: time arrives as ``now_ns`` (and, for pricer budgets only, the injected
``perf_ns``). Dicts are iterated in insertion order; there is no randomness. What the engine
decides about every RFQ and every accept is returned as ``RecordDecision`` commands with a
stable reason code (see ``quoter.engine.routing``). Decisions: ``quoted``, ``not_quoted``,
``requoted``, ``pulled``, ``rejected`` (exchange refused a quote), ``declined`` / ``confirmed``
(last look), ``confirm_failed``, ``confirm_unanswered``, ``cancel_failed``, ``ignored``,
``halted`` / ``resumed``, ``reconcile_deferred``, ``config_applied`` / ``config_rejected``.

Rules worth knowing (the rest is in the handlers' docstrings):

* **Parking.** An RFQ whose market metadata or book we do not have yet is parked (at most
  ``max_pending``; beyond that ``rate_budget``) while we ``FetchMarket`` / ``SubscribeMarkets``;
  a ``pending:<rfq_id>`` timer gives up after ``pending_rfq_timeout_ms``.
* **Replace.** On a book change, an RFQ with a live quote is re-priced; if the fair value moved by
  ``replace_tolerance`` and ``min_replace_interval`` has passed, we post again (Kalshi replaces
  our previous quote on that RFQ, kalshi-api.md §3.1). A change inside the interval arms a
  ``replace:<rfq_id>`` timer for its end. Every quote id is kept: an accept of an older quote
  is handled on that quote's own prices.
* **Pulling** (CancelQuote): market closing, stale book, book gap, risk breach, pricer now
  declining, halt. A pulled RFQ is never re-quoted; a quote placed after the pull is cancelled
  as soon as its id is known.
* **Last look.** See :meth:`Engine._on_accepted`; declining is "do nothing" (there is no
  decline call, kalshi-api.md §0a).
* **Reconciliation.** A ``PositionReported`` that differs from our ledger halts the engine,
  but only when no fills are in flight for that market, i.e. no quote of ours on it holds
  provisional exposure (confirm sent and fills not all seen, or within
  ``EXECUTION_FILL_GRACE_NS`` after ``quote_executed``). Otherwise the report may simply be
  ahead of (or behind) our fills, and the check waits for the next report.
* **Risk totals.** Exposure per market / event / series / overall and the worst-case losses are
  running sums (``quoter.engine.exposure.ExposureBook``) adjusted whenever an RFQ's quotes, a
  provisional trade or a position changes, so a risk check costs O(1) however many quotes are
  open; they equal the full recomputation ``_risk_view`` exactly.
* **Retention.** Records are dropped ``RECORD_RETENTION_NS`` (60 s of engine time) after their
  life ends, so a long-running engine holds only recent ones: a ``DONE`` RFQ (with its finished
  quotes); a quote kept after its RFQ was deleted (committed: confirming, confirmed or executed)
  once it is executed and holds no provisional exposure; fills that arrived before their
  ``quote_executed`` named the order. Until then late events are served from the records as
  before (an accept is ``ignored`` as ``quote_<state>``, a fill still shrinks its quote's
  provisional exposure, a duplicate ``quote_executed`` is ignored); after it, an accept is
  ``ignored``/``unknown_quote`` and a fill is still booked (positions are authoritative) but
  joins no quote. Committed quotes still waiting for fills are kept until they are settled.
  Expiry runs at the start of ``on_event``, in order of engine time, so it is deterministic.
* **Process isolation.** A strategy with ``quoting.isolation: process`` is never priced here:
  the engine emits ``PriceInPool`` (inputs with copies of the books, a ``request_id`` and a
  ``deadline_ns``) and continues on the matching ``PricingCompleted`` exactly where inline
  pricing would (finalize -> risk -> quote / confirm), after re-checking what may have changed
  meanwhile (halt, market status, close, book age). At most one request per RFQ is in flight;
  an answer whose ``request_id`` is not the RFQ's current one is ignored. A new RFQ waits in
  ``PRICING``; a book move while a re-price is in flight marks it to look again once it
  answers; last look re-prices in the pool with ``deadline_ns <= `` the confirm deadline and
  declines on a timeout. A ``pricing:<rfq_id>`` timer (deadline + ``POOL_ANSWER_GRACE_NS``)
  declines ``pricer_timeout`` if no answer ever comes.
* **Halts.** ``KillSwitchChanged(halted=True)``, a reconciliation mismatch or the daily loss
  stop: every live quote is cancelled, no new quotes, no confirms. Only the operator
  (``KillSwitchChanged(halted=False)``) resumes.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final, cast

from quoter.config import LifecycleParams, ModuleRef, QuoterConfig, StrategyConfig
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.book import OrderBook
from quoter.domain.grid import Band, PriceGrid
from quoter.domain.money import MAX_PRICE_MICROS, MoneyError
from quoter.domain.types import MarketInfo, MarketStatus, Side
from quoter.engine.exposure import ExposureBook
from quoter.engine.lifecycle import QuoteRecord, QuoteState, RfqRecord, RfqState, Submission
from quoter.engine.marketdata import BookUpdate, MarketData
from quoter.engine.positions import PositionLedger
from quoter.engine.pricing import PRICER_TIMEOUT, SHELL_REASONS, finalize, result_of, run_pricing
from quoter.engine.risk import MarketExposure, QuoteExposure, RiskManager, Trade
from quoter.engine.routing import (
    HALTED,
    NO_BOOK,
    NO_MARKET,
    PRICER_DECLINED,
    RATE_BUDGET,
    STALE_BOOK,
    filtered,
    risk,
    route,
)
from strategies.base import Decline, Overlay, Pricer, Pricing, PricingInput

__all__ = [
    "EXECUTION_FILL_GRACE_NS",
    "POOL_ANSWER_GRACE_NS",
    "RECORD_RETENTION_NS",
    "Engine",
    "ModuleFactory",
]

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


class Engine:
    """The strategy engine. Feed it events in order; execute the commands it returns."""

    def __init__(
        self,
        config: QuoterConfig,
        *,
        pricers: ModuleFactory | None = None,
        perf_ns: Callable[[], int] | None = None,
        wall_offset_ns: int = 0,
        max_pending: int = 1000,
    ) -> None:
        """Build the engine; ``wall_offset_ns`` maps engine time to Unix time (wall = now + it)."""
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
        self._handlers: dict[type[Any], Callable[[Any, int, list[C.Command]], None]] = {
            E.RfqReceived: self._on_rfq,
            E.RfqDeleted: self._on_rfq_deleted,
            E.QuotePlaced: self._on_placed,
            E.QuoteRejected: self._on_rejected,
            E.QuoteCancelled: self._on_cancelled,
            E.QuoteCancelFailed: self._on_cancel_failed,
            E.QuoteAccepted: self._on_accepted,
            E.QuoteConfirmed: self._on_confirmed,
            E.ConfirmFailed: self._on_confirm_failed,
            E.QuoteExecuted: self._on_executed,
            E.FillReceived: self._on_fill,
            E.PositionReported: self._on_position,
            E.BookSnapshotReceived: self._on_snapshot,
            E.BookDeltaReceived: self._on_delta,
            E.SequenceGap: self._on_gap,
            E.MarketLoaded: self._on_market_loaded,
            E.MarketLoadFailed: self._on_market_failed,
            E.MarketLifecycleChanged: self._on_lifecycle,
            E.TimerFired: self._on_timer,
            E.KillSwitchChanged: self._on_kill,
            E.ConfigReloaded: self._on_config,
            E.PricingCompleted: self._on_pricing_completed,
        }

    # === public ==================================================================================

    def on_event(self, event: E.Event, now_ns: int) -> list[C.Command]:
        """Handle one event at engine time ``now_ns``; return the commands to execute, in order."""
        out: list[C.Command] = []
        self._now = now_ns
        if self._expiry and self._expiry[0][0] <= now_ns:
            self._sweep(now_ns)
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event, now_ns, out)
        return out

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

    def live_quote_ids(self) -> list[str]:
        """Our quotes the requester could still accept (open, replaced or being cancelled)."""
        return [q.quote_id for q in self.quotes.values() if q.is_live]

    # === configuration ===========================================================================

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

    def _on_config(self, ev: E.ConfigReloaded, now: int, out: list[C.Command]) -> None:
        """Swap the whole config atomically; keep the old one if its modules fail to build."""
        config = ev.config
        if not isinstance(config, QuoterConfig):
            out.append(C.RecordDecision("", "", "config_rejected", "not_a_config"))
            return
        try:
            strategies = self._build(config)
        except Exception as exc:  # a module factory failing must not leave half a config
            out.append(C.RecordDecision("", "", "config_rejected", "build_failed", detail=str(exc)))
            return
        self.config, self._strategies = config, strategies
        self.risk.limits = config.risk
        out.append(C.RecordDecision("", "", "config_applied", "reloaded"))

    # === helpers =================================================================================

    def _wall_ms(self, now: int) -> int:
        return (now + self._wall_offset_ns) // MS

    def _note_day(self, now: int) -> None:
        """Tell risk today's realised PnL; UTC days on the wall clock (``wall_offset_ns``)."""
        self.risk.note_realized((now + self._wall_offset_ns) // DAY_NS,
                                self.ledger.realized_pnl_micros())

    def _not_quoted(
        self, rfq: E.RfqReceived, reason: str, out: list[C.Command], strategy: str = "",
        detail: str = "",
    ) -> None:
        out.append(C.RecordDecision(rfq.rfq_id, rfq.market_ticker, "not_quoted", reason,
                                    strategy=strategy, detail=detail))

    @staticmethod
    def _needs(rfq: E.RfqReceived, market: MarketInfo | None) -> tuple[str, ...]:
        """Markets whose books price this RFQ: the combo's legs, else the market itself."""
        legs = rfq.legs or (market.legs if market is not None else ())
        if legs:
            return tuple(dict.fromkeys(leg.market_ticker for leg in legs))
        return (rfq.market_ticker,)

    def _book_problem(self, tickers: Iterable[str], lc: LifecycleParams, now: int) -> str | None:
        for t in tickers:
            age = self.md.age_ns(t, now)
            if age is None:
                return NO_BOOK
            if age >= lc.book_stale_after_ms * MS:
                return STALE_BOOK
        return None

    def _est_size(self, rfq: E.RfqReceived, yes: int = 0, no: int = 0) -> int:
        """Contracts a quote could trade; for target-cost RFQs a conservative estimate.

        Which price divides the target is undocumented (kalshi-api.md §5.3), so we take the
        lowest positive price involved (our bids and their complements): the most contracts.
        """
        if rfq.contracts_centi is not None:
            return rfq.contracts_centi
        target = rfq.target_cost_micros or 0
        prices = [p for b in (yes, no) if b > 0 for p in (b, MAX_PRICE_MICROS - b)]
        price = min(prices) if prices else MAX_PRICE_MICROS // 2
        return -(-target * 100 // price)

    def _price(
        self, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int, *, final: bool = True
    ) -> Pricing | Decline:
        """Run the strategy's modules; a pricing, or a decline carrying its final reason code."""
        inp = self._input(rec, market, now)
        budget_ns = st.config.quoting.pricer_budget_us * 1000
        res = run_pricing(st.pricer, st.overlays, inp, budget_ns=budget_ns, perf_ns=self._perf_ns)
        return self._conclude(st, market, res, final=final)

    def _input(
        self, rec: RfqRecord, market: MarketInfo, now: int, *, copy_books: bool = False
    ) -> PricingInput:
        """What the modules see; ``copy_books``: only the books needed, copied (for the pool)."""
        rfq = rec.rfq
        needs = self._needs(rfq, market)
        legs = {
            t: m for t in needs if t != market.ticker
            and (m := self.md.markets.get(t)) is not None
        }
        books: dict[str, OrderBook] = self.md.books
        if copy_books:
            books = {
                t: _copy_book(b) for t in dict.fromkeys((market.ticker, *needs))
                if (b := self.md.books.get(t)) is not None
            }
        return PricingInput(
            rfq=rfq, market=market, books=books, now_ns=now,
            position_centi=self.ledger.position_centi(market.ticker),
            event_position_centi=self.ledger.event_position_centi(market.event_ticker),
            size_centi=self._est_size(rfq), leg_markets=legs,
        )

    def _conclude(
        self, st: _Strategy, market: MarketInfo, res: Pricing | Decline, *, final: bool
    ) -> Pricing | Decline:
        """Turn the modules' answer into a final reason code, or a quotable pricing."""
        if isinstance(res, Decline):
            if res.reason in SHELL_REASONS:
                return res
            return Decline(f"{PRICER_DECLINED}:{res.reason}", res.detail)
        if not final:
            return res
        fin = finalize(res, market.grid, st.config.quoting.min_spread_micros)
        if isinstance(fin, Decline):
            return Decline(f"{PRICER_DECLINED}:{fin.reason}", fin.detail)
        return fin

    def _exposures(
        self, ticker: str | None, exclude_rfq: str | None = None
    ) -> dict[str, MarketExposure]:
        """Every market's exposure (``ticker`` always present), without ``exclude_rfq``'s quotes."""
        return self._risk_view(ticker, exclude_rfq)[0]

    def _risk_view(
        self, ticker: str | None, exclude_rfq: str | None
    ) -> tuple[dict[str, MarketExposure], int]:
        """Exposures per market and the number of RFQs with a quote that could be hit.

        Live quotes are those open or being cancelled plus submissions still in flight (a
        replaced quote is gone at the exchange; a racing accept of it is checked on its own).
        The full recomputation, O(RFQs): the risk checks use the running totals in ``book``
        (kept equal to this, see ``tests/engine/test_exposure_book.py``); this one serves the
        rare breach scan after a fill (for its exact market order) and status views.
        """
        exp: dict[str, MarketExposure] = {}
        ledger = self.ledger

        def get(t: str) -> MarketExposure:
            e = exp.get(t)
            if e is None:
                pos = ledger.market(t)
                e = exp[t] = MarketExposure(
                    t, ledger.event_of(t), ledger.series_of(t), pos.position_centi, pos.cost_micros
                )
            return e

        if ticker is not None:
            get(ticker)
        for t in ledger.tickers():
            e = get(t)
            for key in ledger.provisional_keys(t):
                q = self.quotes.get(key)
                if q is not None and q.accepted_side is not None:
                    left = abs(q.provisional_centi)
                    e.provisional.append(Trade(q.accepted_side, q.bid_for(q.accepted_side), left))
        quotes, n_open = self.quotes, 0
        for rfq_id, rec in self.rfqs.items():
            if rec.state is not RfqState.QUOTING or rfq_id == exclude_rfq:
                continue
            bids = [(s.yes_bid_micros, s.no_bid_micros) for s in rec.in_flight]
            for qid in rec.quote_ids:
                q = quotes[qid]
                if q.state in _RISK_LIVE:
                    bids.append((q.yes_bid_micros, q.no_bid_micros))
            if not bids:
                continue
            n_open += 1
            e = get(rec.market_ticker)
            size = rec.rfq.contracts_centi
            for yes, no in bids:
                e.quotes.append(QuoteExposure(
                    yes, no, size if size is not None else self._est_size(rec.rfq, yes, no)
                ))
        return exp, n_open

    # --- running risk totals (quoter.engine.exposure) ------------------------------------------
    # Every change to an RFQ's state, its in-flight submissions or its quotes' states is followed
    # by ``_sync(rec)``; every change to a quote's provisional exposure by ``_sync_prov(q)``; the
    # ledger reports position changes itself. ``_risk_view`` above is the full recomputation the
    # totals are tested against.

    def _load_of(self, rec: RfqRecord) -> tuple[str, int, int, int] | None:
        """What ``rec``'s hittable quotes put into the book (as in ``_risk_view``), or None."""
        if rec.state is not RfqState.QUOTING or self.rfqs.get(rec.rfq_id) is not rec:
            return None
        size = rec.rfq.contracts_centi
        loss_yes = loss_no = n = 0
        for s in rec.in_flight:
            sz = size if size is not None else self._est_size(rec.rfq, s.yes_bid_micros,
                                                              s.no_bid_micros)
            loss_yes += s.no_bid_micros * sz
            loss_no += s.yes_bid_micros * sz
            n += 1
        for qid in rec.quote_ids:
            q = self.quotes[qid]
            if q.state in _RISK_LIVE:
                sz = size if size is not None else self._est_size(rec.rfq, q.yes_bid_micros,
                                                                  q.no_bid_micros)
                loss_yes += q.no_bid_micros * sz
                loss_no += q.yes_bid_micros * sz
                n += 1
        return (rec.market_ticker, loss_yes, loss_no, n) if n else None

    def _sync(self, rec: RfqRecord) -> None:
        """Bring the book in line with ``rec``'s hittable quotes."""
        new = self._load_of(rec)
        old = self._rfq_load.get(rec.rfq_id)
        if new == old:
            return
        if old is not None:
            self.book.add_quotes(old[0], old[1], old[2], old[3], -1)
            del self._rfq_load[rec.rfq_id]
        if new is not None:
            self.book.add_quotes(new[0], new[1], new[2], new[3], 1)
            self._rfq_load[rec.rfq_id] = new

    def _sync_prov(self, q: QuoteRecord) -> None:
        """Bring the book in line with ``q``'s provisional trade (as in ``_risk_view``)."""
        new: tuple[str, int, int, int] | None = None
        entry = self._ledger.provisional_entry(q.quote_id)
        side = q.accepted_side
        if entry is not None and side is not None and self.quotes.get(q.quote_id) is q:
            trade = Trade(side, q.bid_for(side), abs(q.provisional_centi))
            yes, no = trade.pnl()
            new = (entry[0], trade.signed_centi, yes, no)
        old = self._prov_load.get(q.quote_id)
        if new == old:
            return
        if old is not None:
            self.book.add_provisional(old[0], old[1], old[2], old[3], -1)
            del self._prov_load[q.quote_id]
        if new is not None:
            self.book.add_provisional(new[0], new[1], new[2], new[3], 1)
            self._prov_load[q.quote_id] = new

    def _on_position_changed(self, ticker: str) -> None:
        pos = self._ledger.market(ticker)
        self.book.set_position(ticker, pos.position_centi, pos.cost_micros)

    def _check_quote(self, rec: RfqRecord, ticker: str, quote: QuoteExposure) -> str | None:
        """Risk-check a new quote on ``rec`` (replacing its current ones) against the totals."""
        load = self._rfq_load.get(rec.rfq_id)
        if load is None:
            return self.risk.check_quote_book(self.book, self.book.open_rfqs, ticker, quote)
        return self.risk.check_quote_book(
            self.book, self.book.open_rfqs - 1, ticker, quote, (load[1], load[2])
        )

    # --- retention ------------------------------------------------------------------------------

    def _retain(self, kind: str, key: str) -> None:
        """Look at ``key`` again ``RECORD_RETENTION_NS`` from now (drop it if it is finished)."""
        self._expiry.append((self._now + RECORD_RETENTION_NS, kind, key))

    def _sweep(self, now: int) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, kind, key = expiry.popleft()
            if kind == "rfq":
                self._expire_rfq(key)
            elif kind == "quote":
                self._expire_quote(key)
            elif self._early_until.get(key, now + 1) <= now:
                del self._early_until[key], self._early_fills[key]

    def _expire_rfq(self, rfq_id: str) -> None:
        """Forget a DONE RFQ and its finished quotes (committed ones wait for their fills)."""
        rec = self.rfqs.get(rfq_id)
        if rec is None or rec.state is not RfqState.DONE:
            return
        del self.rfqs[rfq_id]
        self._ctx.pop(rfq_id, None)
        self._replace_timers.pop(rfq_id, None)
        self._unbook(rfq_id)
        self._sync(rec)
        for qid in rec.quote_ids:
            q = self.quotes.get(qid)
            if q is None:
                continue
            if q.is_live or q.state is QuoteState.ACCEPTED:
                q.move(QuoteState.DEAD)  # the RFQ is over: nothing can happen on it any more
            self._expire_quote(qid)

    def _expire_quote(self, qid: str) -> None:
        """Forget a quote whose RFQ is gone once nothing more can happen on it; else wait."""
        q = self.quotes.get(qid)
        if q is None or q.rfq_id in self.rfqs:
            return
        if q.state in (QuoteState.CONFIRMING, QuoteState.CONFIRMED) or (
            self._ledger.provisional_entry(qid) is not None
        ):
            self._retain("quote", qid)  # fills or a confirm answer may still come
            return
        del self.quotes[qid]
        if q.order_id and self._orders.get(q.order_id) == qid:
            del self._orders[q.order_id]
        self._sync_prov(q)

    # === RFQs =====================================================================================

    def _on_rfq(self, ev: E.RfqReceived, now: int, out: list[C.Command]) -> None:
        """Route, park while metadata/books load, then price, risk-check and quote."""
        if ev.rfq_id in self.rfqs:
            out.append(C.RecordDecision(ev.rfq_id, ev.market_ticker, "ignored", "duplicate_rfq"))
            return
        if self.halted:
            self._not_quoted(ev, HALTED, out)
            return
        market = self.md.markets.get(ev.market_ticker)
        strategy, why = route(self.config, ev, market, self._wall_ms(now))
        if strategy is None:
            self._not_quoted(ev, why or "no_route", out)
            return
        st = self._strategies[strategy.name]
        rec = RfqRecord(ev, now)
        needs = self._needs(ev, market)
        missing_meta = [t for t in (ev.market_ticker, *needs) if t not in self.md.markets]
        if not missing_meta and all(self.md.is_ready(t) for t in needs):
            self.rfqs[ev.rfq_id] = rec
            self._ctx[ev.rfq_id] = st
            # Routed with its metadata already: routing again would give the same answer.
            self._quote_new(rec, now, out, routed=strategy if market is not None else None)
            return
        if len(self._pending) >= self._max_pending:
            self._not_quoted(ev, RATE_BUDGET, out, strategy.name, "too many RFQs waiting")
            return
        self.rfqs[ev.rfq_id] = rec
        self._ctx[ev.rfq_id] = st
        self._pending_n += 1
        self._pending[ev.rfq_id] = self._pending_n
        self._index_pending(ev.rfq_id, (ev.market_ticker, *needs))
        for t in dict.fromkeys((ev.market_ticker, *needs)):
            if t not in self.md.markets and t not in self._fetching:
                self._fetching[t] = None
                out.append(C.FetchMarket(t))
        self._subscribe((ev.market_ticker, *needs), out)
        out.append(C.ScheduleTimer(
            f"pending:{ev.rfq_id}", now + st.lifecycle.pending_rfq_timeout_ms * MS
        ))

    def _subscribe(self, tickers: Iterable[str], out: list[C.Command]) -> None:
        new = tuple(t for t in dict.fromkeys(tickers) if t not in self.md.subscribed)
        if new:
            for t in new:
                self.md.subscribed[t] = None
            out.append(C.SubscribeMarkets(new))

    def _index_pending(self, rfq_id: str, tickers: Iterable[str]) -> None:
        """Let a change on any of ``tickers`` find parked ``rfq_id`` (see ``_try_pending``)."""
        keys = self._pending_keys.setdefault(rfq_id, set())
        for t in tickers:
            if t not in keys:
                keys.add(t)
                self._pending_by.setdefault(t, {})[rfq_id] = None

    def _unpend(self, rfq_id: str) -> None:
        """Take ``rfq_id`` off the parked list and its index."""
        self._pending.pop(rfq_id, None)
        for t in self._pending_keys.pop(rfq_id, ()):
            ids = self._pending_by[t]
            del ids[rfq_id]
            if not ids:
                del self._pending_by[t]

    def _try_pending(self, tickers: Iterable[str], now: int, out: list[C.Command]) -> None:
        """Price parked RFQs whose market metadata and books are all here now.

        Only the parked RFQs indexed under ``tickers`` are visited (a superset of those the
        check below accepts), in arrival order: the cost of a book update does not grow with
        the number of RFQs parked on other markets.
        """
        touched = set(tickers)
        candidates: dict[str, None] = {}
        for t in touched:
            candidates.update(self._pending_by.get(t, {}))
        for rfq_id in sorted(candidates, key=self._pending.__getitem__):
            if rfq_id not in self._pending:
                continue
            rec = self.rfqs[rfq_id]
            market = self.md.markets.get(rec.market_ticker)
            needs = self._needs(rec.rfq, market)
            # With its market's metadata here, a combo may name its legs only now.
            self._index_pending(rfq_id, needs)
            if touched.isdisjoint((rec.market_ticker, *needs)):
                continue
            if market is None:
                continue
            # Filters that need metadata (series, status, close) can reject it right away.
            strategy, why = route(self.config, rec.rfq, market, self._wall_ms(now))
            if strategy is None:
                out.append(C.CancelTimer(f"pending:{rfq_id}"))
                self._drop(rec, why or "no_route", out)
                continue
            missing = [t for t in needs if t not in self.md.markets]
            for t in missing:
                if t not in self._fetching:
                    self._fetching[t] = None
                    out.append(C.FetchMarket(t))
            self._subscribe(needs, out)
            if missing or not all(self.md.is_ready(t) for t in needs):
                continue
            self._unpend(rfq_id)
            out.append(C.CancelTimer(f"pending:{rfq_id}"))
            self._quote_new(rec, now, out)

    def _drop(self, rec: RfqRecord, reason: str, out: list[C.Command], detail: str = "") -> None:
        """Give up on an RFQ we never quoted."""
        self._unpend(rec.rfq_id)
        self._forget_pool(rec.rfq_id, out)
        self.rfqs.pop(rec.rfq_id, None)
        self._sync(rec)
        st = self._ctx.pop(rec.rfq_id, None)
        self._not_quoted(rec.rfq, reason, out, st.config.name if st else "", detail)

    def _quote_new(
        self, rec: RfqRecord, now: int, out: list[C.Command],
        routed: StrategyConfig | None = None,
    ) -> None:
        """Price a routed RFQ whose market and books are known, and quote it if allowed."""
        rfq = rec.rfq
        market = self.md.markets[rfq.market_ticker]
        if self.halted:
            self._drop(rec, HALTED, out)
            return
        self._note_day(now)
        # Route again: now the filters that need metadata (status, series, close) apply.
        strategy, why = (
            (routed, None) if routed is not None
            else route(self.config, rfq, market, self._wall_ms(now))
        )
        if strategy is None:
            self._drop(rec, why or "no_route", out)
            return
        st = self._ctx[rec.rfq_id] = self._strategies[strategy.name]
        problem = self._unquotable(rec, st, market, now)
        if problem:
            self._drop(rec, problem, out)
            return
        if st.config.quoting.isolation == "process":
            rec.move(RfqState.PRICING)
            self._request_pool(rec, st, market, "new", now, out)
            return
        self._quote_priced(rec, st, market, self._price(rec, st, market, now), now, out)

    def _unquotable(
        self, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int
    ) -> str | None:
        """Why this RFQ cannot be quoted now (market status, close, books), else None."""
        if market.status is not MarketStatus.ACTIVE:
            return filtered("market_status")
        close_at = self._close_fire_ns(market, st.lifecycle)
        if close_at is not None and close_at <= now:
            return filtered("time_to_close")
        return self._book_problem(self._needs(rec.rfq, market), st.lifecycle, now)

    def _quote_priced(
        self, rec: RfqRecord, st: _Strategy, market: MarketInfo, res: Pricing | Decline,
        now: int, out: list[C.Command],
    ) -> None:
        """Risk-check a new RFQ's final pricing and quote it (or drop it with the reason)."""
        rfq, strategy, lc = rec.rfq, st.config, st.lifecycle
        needs = self._needs(rfq, market)
        if isinstance(res, Decline):
            self._drop(rec, res.reason, out, res.detail)
            return
        size = self._est_size(rfq, res.yes_bid_micros, res.no_bid_micros)
        reason = self._check_quote(
            rec, market.ticker, QuoteExposure(res.yes_bid_micros, res.no_bid_micros, size)
        )
        if reason:
            self._drop(rec, HALTED if reason == HALTED else risk(reason), out)
            return
        rec.strategy = strategy.name
        rec.move(RfqState.QUOTING)
        books = tuple(dict.fromkeys((*needs, market.ticker)))
        self._books_of[rec.rfq_id] = books
        for t in books:
            self._by_book.setdefault(t, {})[rec.rfq_id] = None
        self._submit(rec, st, res, now, out)
        out.append(C.RecordDecision(rfq.rfq_id, rfq.market_ticker, "quoted", "quoted",
                                    strategy=strategy.name))
        self._arm_timers(market, needs, lc, now, out)

    def _submit(
        self, rec: RfqRecord, st: _Strategy, p: Pricing, now: int, out: list[C.Command]
    ) -> None:
        q = st.config.quoting
        out.append(C.SubmitQuote(
            rec.rfq_id, rec.market_ticker, p.yes_bid_micros, p.no_bid_micros, st.config.name,
            fair_yes_micros=p.fair_yes_micros, rest_remainder=q.rest_remainder,
            post_only=q.post_only,
        ))
        rec.in_flight.append(Submission(p.yes_bid_micros, p.no_bid_micros, p.fair_yes_micros, now))
        rec.last_submit_ns = now
        self._sync(rec)

    def _close_fire_ns(self, market: MarketInfo, lc: LifecycleParams) -> int | None:
        if market.close_ts_ms is None:
            return None
        return (market.close_ts_ms - lc.cancel_before_close_ms) * MS - self._wall_offset_ns

    def _arm_timers(
        self, market: MarketInfo, needs: Iterable[str], lc: LifecycleParams, now: int,
        out: list[C.Command],
    ) -> None:
        """Make sure close and staleness timers run for markets we have quotes on."""
        close_at = self._close_fire_ns(market, lc)
        if close_at is not None and self._close_timers.get(market.ticker, close_at + 1) > close_at:
            self._close_timers[market.ticker] = close_at
            out.append(C.ScheduleTimer(f"close:{market.ticker}", close_at))
        for t in needs:
            at = self.md.books[t].updated_ns + lc.book_stale_after_ms * MS
            if self._stale_timers.get(t, at + 1) > at:
                self._stale_timers[t] = at
                out.append(C.ScheduleTimer(f"stale:{t}", at))

    def _on_rfq_deleted(self, ev: E.RfqDeleted, now: int, out: list[C.Command]) -> None:
        """The RFQ closed: its uncommitted quotes are dead (no command); forget it."""
        rec = self.rfqs.pop(ev.rfq_id, None)
        if rec is None:
            return
        st = self._ctx.pop(ev.rfq_id, None)
        if ev.rfq_id in self._pending:
            self._unpend(ev.rfq_id)
            out.append(C.CancelTimer(f"pending:{ev.rfq_id}"))
            self._not_quoted(rec.rfq, "rfq_deleted", out)
        req = self._forget_pool(ev.rfq_id, out)
        if rec.state is RfqState.PRICING:
            self._not_quoted(rec.rfq, "rfq_deleted", out, st.config.name if st else "")
        elif req is not None and req.purpose == "last_look":
            q = self.quotes.get(req.quote_id)
            if q is not None and q.state is QuoteState.ACCEPTED:
                out.append(C.RecordDecision(rec.rfq_id, rec.market_ticker, "declined",
                                            "rfq_deleted", strategy=rec.strategy,
                                            quote_id=q.quote_id))
        self._sync(rec)
        for qid in rec.quote_ids:
            q = self.quotes[qid]
            if q.is_live or q.state is QuoteState.ACCEPTED:
                q.move(QuoteState.DEAD)
            if q.state not in _COMMITTED:
                del self.quotes[qid]
            else:
                self._retain("quote", qid)
        self._unbook(ev.rfq_id)

    def _unbook(self, rfq_id: str) -> None:
        """Stop routing book changes to ``rfq_id``: O(its markets), not O(all books)."""
        for t in self._books_of.pop(rfq_id, ()):
            ids = self._by_book.get(t)
            if ids is not None:
                ids.pop(rfq_id, None)
                if not ids:
                    del self._by_book[t]

    # === our quotes ==============================================================================

    def _on_placed(self, ev: E.QuotePlaced, now: int, out: list[C.Command]) -> None:
        """The exchange named our quote: it supersedes our previous quote on the RFQ."""
        rec = self.rfqs.get(ev.rfq_id)
        if rec is None or not rec.in_flight:
            out.append(C.RecordDecision(ev.rfq_id, "", "ignored", "unknown_submission",
                                        quote_id=ev.quote_id))
            return
        sub = rec.in_flight.pop(0)
        for qid in rec.quote_ids:
            old = self.quotes[qid]
            if old.state is QuoteState.OPEN:
                old.move(QuoteState.REPLACED)
        q = QuoteRecord(ev.quote_id, rec.rfq_id, rec.market_ticker, sub.yes_bid_micros,
                        sub.no_bid_micros, sub.fair_yes_micros, now)
        self.quotes[ev.quote_id] = q
        rec.quote_ids.append(ev.quote_id)
        self._sync(rec)
        reason = rec.pull_reason or (HALTED if self.halted else "")
        if reason and rec.state in _ACTIVE_RFQ:
            q.move(QuoteState.CANCELLING)
            out.append(C.CancelQuote(rec.rfq_id, q.quote_id, reason))

    def _on_rejected(self, ev: E.QuoteRejected, now: int, out: list[C.Command]) -> None:
        """The exchange refused a SubmitQuote: record it; a previous live quote stays."""
        rec = self.rfqs.get(ev.rfq_id)
        if rec is None or not rec.in_flight:
            return
        rec.in_flight.pop(0)
        self._sync(rec)
        out.append(C.RecordDecision(rec.rfq_id, rec.market_ticker, "rejected", ev.code,
                                    strategy=rec.strategy, detail=ev.message))
        self._settle_rfq(rec)

    def _settle_rfq(self, rec: RfqRecord) -> None:
        """Mark the RFQ done when nothing of ours can happen on it any more."""
        if rec.state is not RfqState.QUOTING or rec.in_flight:
            return
        if any(self.quotes[q].is_live for q in rec.quote_ids):
            return
        rec.move(RfqState.DONE)
        self._sync(rec)
        self._retain("rfq", rec.rfq_id)

    def _pull(self, rec: RfqRecord, reason: str, out: list[C.Command]) -> None:
        """Cancel our live quote on an RFQ and never re-quote it."""
        if rec.state not in _ACTIVE_RFQ or rec.pull_reason:
            return
        rec.pull_reason = reason
        for qid in rec.quote_ids:
            q = self.quotes[qid]
            if q.state is QuoteState.OPEN:
                q.move(QuoteState.CANCELLING)
                out.append(C.CancelQuote(rec.rfq_id, qid, reason))
        out.append(C.RecordDecision(rec.rfq_id, rec.market_ticker, "pulled", reason,
                                    strategy=rec.strategy))

    def _pull_market(self, ticker: str, reason: str, out: list[C.Command]) -> None:
        for rfq_id in list(self._by_book.get(ticker, {})):
            rec = self.rfqs.get(rfq_id)
            if rec is not None:
                self._pull(rec, reason, out)

    def _on_cancelled(self, ev: E.QuoteCancelled, now: int, out: list[C.Command]) -> None:
        q = self.quotes.get(ev.quote_id)
        if q is None or not q.is_live:
            return
        q.move(QuoteState.CANCELLED)
        rec = self.rfqs.get(q.rfq_id)
        if rec is not None:
            self._sync(rec)
            self._settle_rfq(rec)

    def _on_cancel_failed(self, ev: E.QuoteCancelFailed, now: int, out: list[C.Command]) -> None:
        """A 404 after an accept: the quote stays accepted (kalshi-api.md §0a); just record."""
        out.append(C.RecordDecision(ev.rfq_id, "", "cancel_failed", ev.code,
                                    quote_id=ev.quote_id, detail=ev.message))

    def _maybe_replace(self, rec: RfqRecord, now: int, out: list[C.Command]) -> None:
        """Re-price a quoted RFQ after a book change; post again if fair moved enough."""
        st = self._ctx.get(rec.rfq_id)
        if st is None or rec.state is not RfqState.QUOTING or rec.pull_reason or self.halted:
            return
        last_fair = self._last_fair(rec)
        if last_fair is None:
            return
        lc = st.lifecycle
        interval_ns = lc.min_replace_interval_ms * MS
        if rec.last_submit_ns is not None and now - rec.last_submit_ns < interval_ns:
            # Too soon: look again when the interval is over, in case the book goes quiet.
            if rec.rfq_id not in self._replace_timers:
                self._replace_timers[rec.rfq_id] = None
                at = rec.last_submit_ns + interval_ns
                out.append(C.ScheduleTimer(f"replace:{rec.rfq_id}", at))
            return
        market = self.md.markets[rec.market_ticker]
        problem = self._book_problem(self._needs(rec.rfq, market), lc, now)
        if problem:
            self._pull(rec, problem, out)
            return
        if st.config.quoting.isolation == "process":
            req = self._pool_reqs.get(rec.rfq_id)
            if req is not None:
                req.dirty = True  # one request in flight per RFQ: look again when it answers
            else:
                self._request_pool(rec, st, market, "replace", now, out)
            return
        self._replace_priced(rec, st, market, last_fair, self._price(rec, st, market, now),
                             now, out)

    def _last_fair(self, rec: RfqRecord) -> int | None:
        """The fair value of our newest submission or open quote (None: nothing to replace)."""
        if rec.in_flight:
            return rec.in_flight[-1].fair_yes_micros
        cur = rec.current_quote_id
        if cur is None or self.quotes[cur].state is not QuoteState.OPEN:
            return None
        return self.quotes[cur].fair_yes_micros

    def _replace_priced(
        self, rec: RfqRecord, st: _Strategy, market: MarketInfo, last_fair: int,
        res: Pricing | Decline, now: int, out: list[C.Command],
    ) -> None:
        """Pull on a decline; post again if the fair moved by the tolerance and risk allows."""
        lc = st.lifecycle
        if isinstance(res, Decline):
            self._pull(rec, res.reason, out)
            return
        if abs(res.fair_yes_micros - last_fair) < lc.replace_tolerance_micros:
            return
        size = self._est_size(rec.rfq, res.yes_bid_micros, res.no_bid_micros)
        reason = self._check_quote(
            rec, market.ticker, QuoteExposure(res.yes_bid_micros, res.no_bid_micros, size)
        )
        if reason:
            self._pull(rec, risk(reason), out)
            return
        self._submit(rec, st, res, now, out)
        out.append(C.RecordDecision(rec.rfq_id, rec.market_ticker, "requoted", "fair_moved",
                                    strategy=rec.strategy,
                                    detail=f"{last_fair}->{res.fair_yes_micros}"))

    # === process-isolated pricing (quoting.isolation: process) =================================

    def _request_pool(
        self, rec: RfqRecord, st: _Strategy, market: MarketInfo, purpose: str, now: int,
        out: list[C.Command], quote_id: str = "", *, cap_ns: int | None = None,
    ) -> None:
        """Ask the pool to price ``rec``; its answer continues ``purpose`` (one per RFQ)."""
        self._pool_seq += 1
        deadline = now + st.config.quoting.pricer_timeout_ms * MS
        if cap_ns is not None:
            deadline = min(deadline, cap_ns)
        self._pool_reqs[rec.rfq_id] = _PoolRequest(self._pool_seq, purpose, quote_id)
        out.append(C.PriceInPool(
            rec.rfq_id, st.config.name, self._pool_seq,
            self._input(rec, market, now, copy_books=True),
            st.config.pricer, st.config.overlays, deadline,
        ))
        out.append(C.ScheduleTimer(f"pricing:{rec.rfq_id}", deadline + POOL_ANSWER_GRACE_NS))

    def _forget_pool(self, rfq_id: str, out: list[C.Command]) -> _PoolRequest | None:
        """Drop ``rfq_id``'s request in flight (its answer will be ignored) and its timer."""
        req = self._pool_reqs.pop(rfq_id, None)
        if req is not None:
            out.append(C.CancelTimer(f"pricing:{rfq_id}"))
        return req

    def _on_pricing_completed(
        self, ev: E.PricingCompleted, now: int, out: list[C.Command]
    ) -> None:
        """Continue where inline pricing would; a stale answer (not the current request) is
        ignored."""
        req = self._pool_reqs.get(ev.rfq_id)
        if req is None or req.request_id != ev.request_id:
            return
        self._forget_pool(ev.rfq_id, out)
        self._pool_answered(ev.rfq_id, req, result_of(ev), now, out)

    def _pool_answered(
        self, rfq_id: str, req: _PoolRequest, res: Pricing | Decline, now: int,
        out: list[C.Command],
    ) -> None:
        rec, st = self.rfqs.get(rfq_id), self._ctx.get(rfq_id)
        if rec is None or st is None:
            return
        market = self.md.markets[rec.market_ticker]
        if req.purpose == "new":
            if rec.state is not RfqState.PRICING:
                return
            # Time passed while the pool priced: what could have changed is checked again.
            problem = HALTED if self.halted else self._unquotable(rec, st, market, now)
            if problem:
                self._drop(rec, problem, out)
                return
            self._quote_priced(rec, st, market, self._conclude(st, market, res, final=True),
                               now, out)
        elif req.purpose == "replace":
            if rec.state is not RfqState.QUOTING or rec.pull_reason or self.halted:
                return
            problem = self._book_problem(self._needs(rec.rfq, market), st.lifecycle, now)
            if problem:
                self._pull(rec, problem, out)
                return
            last_fair = self._last_fair(rec)
            if last_fair is None:
                return
            self._replace_priced(rec, st, market, last_fair,
                                 self._conclude(st, market, res, final=True), now, out)
            if req.dirty:
                self._maybe_replace(rec, now, out)
        else:
            q = self.quotes.get(req.quote_id)
            if q is None or q.state is not QuoteState.ACCEPTED:
                return  # declined meanwhile (halt) or dead (RFQ deleted)
            reason, detail = self._pre_look(q, rec, st, market, now)
            if reason is None:
                reason, detail = self._post_look(
                    q, st, self._conclude(st, market, res, final=False)
                )
            self._finish_look(q, rec, reason, detail, out)

    def _on_pricing_timer(self, rfq_id: str, now: int, out: list[C.Command]) -> None:
        """The pool never answered (it always should): decline as a timeout."""
        req = self._pool_reqs.get(rfq_id)
        if req is None:
            return
        self._pool_reqs.pop(rfq_id)
        self._pool_answered(rfq_id, req, Decline(PRICER_TIMEOUT, "no answer from the pool"),
                            now, out)

    # === last look and execution =================================================================

    def _on_accepted(self, ev: E.QuoteAccepted, now: int, out: list[C.Command]) -> None:
        """Last look: confirm iff our edge on the hit side survives a re-price, risk and halt.

        ``accepted_side`` "yes" means we buy YES at our ``yes_bid`` (edge = fair - yes_bid);
        "no" means we buy NO at our ``no_bid`` (edge = (1 - fair) - no_bid), kalshi-api.md §0a.
        The prices are those of the quote that was accepted, even if we replaced it since.
        """
        q = self.quotes.get(ev.quote_id)
        if q is None:
            out.append(C.RecordDecision(ev.rfq_id, ev.market_ticker, "ignored", "unknown_quote",
                                        quote_id=ev.quote_id))
            return
        rec = self.rfqs.get(q.rfq_id)
        if not q.is_live or rec is None:
            out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "ignored",
                                        f"quote_{q.state.value}", quote_id=q.quote_id))
            return
        q.move(QuoteState.ACCEPTED)
        rec.move(RfqState.ACCEPTED)
        self._sync(rec)
        st = self._ctx[rec.rfq_id]
        lc = st.lifecycle
        market = self.md.markets[q.market_ticker]
        hvm = market.is_hvm or market.is_combo  # every combo is HVM (kalshi-api.md §6)
        window_ms = lc.hvm_confirm_window_ms if hvm else lc.confirm_window_ms
        q.deadline_ns = ev.ts_recv_ns + (window_ms - lc.confirm_safety_margin_ms) * MS
        q.accepted_side = ev.accepted_side
        q.size_centi = self._accepted_size(ev, rec.rfq)
        if st.config.quoting.isolation == "process":
            reason, detail = self._pre_look(q, rec, st, market, now)
            if reason is None:
                # Never later than the confirm deadline: a timeout is a decline, in time.
                self._request_pool(rec, st, market, "last_look", now, out, q.quote_id,
                                   cap_ns=q.deadline_ns)
                return
        else:
            reason, detail = self._last_look(q, rec, st, market, now)
        self._finish_look(q, rec, reason, detail, out)

    def _finish_look(
        self, q: QuoteRecord, rec: RfqRecord, reason: str | None, detail: str,
        out: list[C.Command],
    ) -> None:
        """Decline (do nothing at the exchange) or confirm an accepted quote."""
        side = q.accepted_side
        if reason is not None:
            q.move(QuoteState.DECLINED)
            rec.move(RfqState.QUOTING)
            self._sync(rec)
            self._settle_rfq(rec)
            out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "declined", reason,
                                        strategy=rec.strategy, quote_id=q.quote_id, detail=detail))
            return
        assert side is not None
        q.move(QuoteState.CONFIRMING)
        q.provisional_centi = q.size_centi if side is Side.YES else -q.size_centi
        self.ledger.add_provisional(q.quote_id, q.market_ticker, q.provisional_centi)
        self._sync_prov(q)
        out.append(C.ConfirmQuote(q.rfq_id, q.quote_id, q.deadline_ns))
        out.append(C.ScheduleTimer(f"confirm:{q.quote_id}", q.deadline_ns))
        out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "confirmed", "edge_ok",
                                    strategy=rec.strategy, quote_id=q.quote_id, detail=detail))

    @staticmethod
    def _accepted_size(ev: E.QuoteAccepted, rfq: E.RfqReceived) -> int:
        if ev.contracts_accepted_centi is not None:
            return ev.contracts_accepted_centi
        offered = (
            ev.yes_contracts_offered_centi if ev.accepted_side is Side.YES
            else ev.no_contracts_offered_centi
        )
        if offered is not None:
            return offered
        return rfq.contracts_centi or 0

    def _last_look(
        self, q: QuoteRecord, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int
    ) -> tuple[str | None, str]:
        """``(None, detail)`` to confirm, else ``(reason code, detail)``."""
        reason, detail = self._pre_look(q, rec, st, market, now)
        if reason is not None:
            return reason, detail
        return self._post_look(q, st, self._price(rec, st, market, now, final=False))

    def _pre_look(
        self, q: QuoteRecord, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int
    ) -> tuple[str | None, str]:
        """The last-look checks that need no pricing: ``(None, "")`` if they pass."""
        if q.accepted_side is None:
            return "no_accepted_side", ""
        if q.size_centi <= 0:
            return "unknown_size", ""
        if now >= q.deadline_ns:
            return "confirm_deadline_passed", f"late by {(now - q.deadline_ns) // MS} ms"
        if self.halted:
            return HALTED, self.risk.halt_reason
        problem = self._book_problem(self._needs(rec.rfq, market), st.lifecycle, now)
        if problem:
            return problem, ""
        return None, ""

    def _post_look(
        self, q: QuoteRecord, st: _Strategy, res: Pricing | Decline
    ) -> tuple[str | None, str]:
        """The last-look checks on the re-priced fair value: edge, then risk."""
        side = q.accepted_side
        assert side is not None  # checked by _pre_look
        if isinstance(res, Decline):
            return res.reason, res.detail
        fair = res.fair_yes_micros
        bid = q.bid_for(side)
        edge = (fair if side is Side.YES else MAX_PRICE_MICROS - fair) - bid
        detail = f"side={side.value} bid={bid} fair_yes={fair} edge={edge}"
        if bid <= 0 or edge < st.lifecycle.last_look_min_edge_micros:
            return "edge", detail
        reason = self.risk.check_fill_book(
            self.book, q.market_ticker, Trade(side, bid, q.size_centi)
        )
        if reason:
            return (HALTED if reason == HALTED else risk(reason)), detail
        return None, detail

    def _on_confirmed(self, ev: E.QuoteConfirmed, now: int, out: list[C.Command]) -> None:
        q = self.quotes.get(ev.quote_id)
        if q is None or q.state is not QuoteState.CONFIRMING:
            return
        q.move(QuoteState.CONFIRMED)
        out.append(C.CancelTimer(f"confirm:{q.quote_id}"))

    def _on_confirm_failed(self, ev: E.ConfirmFailed, now: int, out: list[C.Command]) -> None:
        """Our confirm failed (e.g. 400 ``expired``): no trade, drop the provisional exposure."""
        q = self.quotes.get(ev.quote_id)
        if q is None or q.state is not QuoteState.CONFIRMING:
            return
        q.move(QuoteState.EXPIRED)
        self.ledger.release_provisional(q.quote_id)
        q.provisional_centi = 0
        self._sync_prov(q)
        out.append(C.CancelTimer(f"confirm:{q.quote_id}"))
        out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "confirm_failed", ev.code,
                                    quote_id=q.quote_id, detail=ev.message))
        self._finish_accepted(q)

    def _finish_accepted(self, q: QuoteRecord) -> None:
        rec = self.rfqs.get(q.rfq_id)
        if rec is not None and rec.state is RfqState.ACCEPTED:
            rec.move(RfqState.DONE)
            self._sync(rec)
            self._retain("rfq", rec.rfq_id)

    def _on_executed(self, ev: E.QuoteExecuted, now: int, out: list[C.Command]) -> None:
        """Execution: learn the order id that joins fills to the quote."""
        q = self.quotes.get(ev.quote_id)
        if q is None:
            out.append(C.RecordDecision(ev.rfq_id, ev.market_ticker, "ignored", "unknown_quote",
                                        quote_id=ev.quote_id))
            return
        if q.state not in (QuoteState.CONFIRMING, QuoteState.CONFIRMED):
            return
        q.move(QuoteState.EXECUTED)
        q.order_id = ev.order_id
        self._orders[ev.order_id] = q.quote_id
        out.append(C.CancelTimer(f"confirm:{q.quote_id}"))
        early = self._early_fills.pop(ev.order_id, 0)
        self._early_until.pop(ev.order_id, None)
        if early:
            self._reduce(q, early)
        if q.provisional_centi:
            out.append(C.ScheduleTimer(f"exec:{q.quote_id}", now + EXECUTION_FILL_GRACE_NS))
        self._finish_accepted(q)

    def _reduce(self, q: QuoteRecord, count: int) -> None:
        left = self.ledger.reduce_provisional(q.quote_id, count)
        q.provisional_centi = left if q.provisional_centi > 0 else -left
        self._sync_prov(q)

    def _on_fill(self, ev: E.FillReceived, now: int, out: list[C.Command]) -> None:
        """Book a fill (authoritative); it replaces the provisional exposure of its quote."""
        if not self.ledger.book_fill(ev):
            return
        qid = self._orders.get(ev.order_id)
        if qid is not None and qid in self.quotes:
            self._reduce(self.quotes[qid], ev.count_centi)
        else:
            if ev.order_id not in self._early_fills:
                self._early_until[ev.order_id] = now + RECORD_RETENTION_NS
                self._retain("early", ev.order_id)
            self._early_fills[ev.order_id] = self._early_fills.get(ev.order_id, 0) + ev.count_centi
        self._note_day(now)
        if not self.halted and self.risk.daily_stop_hit():
            self._halt(f"daily_loss_stop: lost {self.risk.daily_loss_micros} micros today",
                       out, emit=True)
            return
        self._check_breaches(out)

    def _check_breaches(self, out: list[C.Command]) -> None:
        """Pull quotes on markets whose live quotes now break a loss limit."""
        if not self._by_book or not self.risk.may_breach(self.book):
            return
        for t in self.risk.breaches(self._exposures(None)):
            for rfq_id in list(self._by_book.get(t, {})):
                rec = self.rfqs.get(rfq_id)
                if rec is not None and rec.market_ticker == t:
                    self._pull(rec, risk("worst_case_loss"), out)

    def _on_position(self, ev: E.PositionReported, now: int, out: list[C.Command]) -> None:
        """Reconcile: a mismatch halts, unless fills are in flight on that market."""
        ours = self.ledger.position_centi(ev.market_ticker)
        if ours == ev.position_centi:
            return
        if self.ledger.provisional_keys(ev.market_ticker):
            out.append(C.RecordDecision(
                "", ev.market_ticker, "reconcile_deferred", "fills_in_flight",
                detail=f"ours={ours} exchange={ev.position_centi}",
            ))
            return
        if self.halted:
            return
        self._halt(
            f"position_mismatch {ev.market_ticker}: ours={ours} exchange={ev.position_centi}"
            f" (hundredths of a contract)", out, emit=True,
        )

    # === halts ===================================================================================

    def _halt(self, reason: str, out: list[C.Command], *, emit: bool) -> None:
        """Stop: cancel every live quote, drop parked RFQs, refuse confirms until resumed."""
        self.risk.halt(reason)
        if emit:
            out.append(C.Halt(reason))
        for rfq_id in list(self._pending):
            self._drop(self.rfqs[rfq_id], HALTED, out)
            out.append(C.CancelTimer(f"pending:{rfq_id}"))
        for rec in list(self.rfqs.values()):
            if rec.state is RfqState.PRICING:
                self._drop(rec, HALTED, out)
            else:
                self._pull(rec, HALTED, out)
        for q in self.quotes.values():
            if q.state is QuoteState.ACCEPTED:
                # Only a last look waiting for the pool is here: inline ones finish at once.
                q.move(QuoteState.DECLINED)
                out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "declined", HALTED,
                                            quote_id=q.quote_id))
                owner = self.rfqs.get(q.rfq_id)
                if owner is not None and owner.state is RfqState.ACCEPTED:
                    self._forget_pool(owner.rfq_id, out)
                    owner.move(RfqState.QUOTING)
                    self._sync(owner)
                    self._settle_rfq(owner)

    def _on_kill(self, ev: E.KillSwitchChanged, now: int, out: list[C.Command]) -> None:
        if ev.halted:
            if not self.halted:
                self._halt(ev.reason or "kill_switch", out, emit=False)
            out.append(C.RecordDecision("", "", "halted", "kill_switch", detail=ev.reason))
        elif self.halted:
            self.risk.resume()
            out.append(C.RecordDecision("", "", "resumed", "kill_switch", detail=ev.reason))

    # === market data =============================================================================

    def _on_market_loaded(self, ev: E.MarketLoaded, now: int, out: list[C.Command]) -> None:
        m = ev.market
        self.md.markets[m.ticker] = m
        self.ledger.register_market(m.ticker, m.event_ticker, m.series_ticker)
        self.book.set_meta(m.ticker, m.event_ticker, m.series_ticker)
        self._fetching.pop(m.ticker, None)
        self._try_pending((m.ticker,), now, out)

    def _on_market_failed(self, ev: E.MarketLoadFailed, now: int, out: list[C.Command]) -> None:
        self._fetching.pop(ev.market_ticker, None)
        for rfq_id in list(self._pending):
            rec = self.rfqs[rfq_id]
            if ev.market_ticker in (rec.market_ticker, *self._needs(rec.rfq, None)):
                out.append(C.CancelTimer(f"pending:{rfq_id}"))
                self._drop(rec, NO_MARKET, out, ev.reason)

    def _on_lifecycle(self, ev: E.MarketLifecycleChanged, now: int, out: list[C.Command]) -> None:
        """Keep metadata current; pull quotes when a market stops trading; settle positions."""
        t = ev.market_ticker
        m = self.md.markets.get(t)
        if m is not None:
            if ev.close_ts_ms is not None:
                m = replace(m, close_ts_ms=ev.close_ts_ms)
                self._close_timers.pop(t, None)
            if ev.price_ranges:
                # A broken grid keeps the old one rather than quoting on nonsense.
                with contextlib.suppress(MoneyError):
                    m = replace(m, grid=PriceGrid(tuple(Band(*b) for b in ev.price_ranges)))
            if ev.event_type in _CLOSING_EVENTS or ev.is_deactivated:
                status = MarketStatus.CLOSED
                if ev.event_type == "determined":
                    status = MarketStatus.DETERMINED
                m = replace(m, status=status)
            self.md.markets[t] = m
        if ev.event_type in _CLOSING_EVENTS or ev.is_deactivated:
            self._pull_market(t, "market_closed", out)
        if ev.settlement_value_micros is not None:
            self.ledger.settle(t, ev.settlement_value_micros)
        elif ev.result in ("yes", "no"):
            self.ledger.settle(t, MAX_PRICE_MICROS if ev.result == "yes" else 0)
        self._note_day(now)
        if m is not None and ev.close_ts_ms is not None and t in self._by_book:
            for rfq_id in self._by_book[t]:
                st = self._ctx.get(rfq_id)
                if st is not None:
                    self._arm_timers(m, (), st.lifecycle, now, out)
                    break

    def _on_snapshot(self, ev: E.BookSnapshotReceived, now: int, out: list[C.Command]) -> None:
        self._after_book(self.md.on_snapshot(ev), now, out)

    def _on_delta(self, ev: E.BookDeltaReceived, now: int, out: list[C.Command]) -> None:
        self._after_book(self.md.on_delta(ev), now, out)

    def _on_gap(self, ev: E.SequenceGap, now: int, out: list[C.Command]) -> None:
        if "orderbook" not in ev.channel:
            return
        self._after_book(self.md.on_gap(ev), now, out)

    def _after_book(self, upd: BookUpdate, now: int, out: list[C.Command]) -> None:
        """A gap pulls quotes and re-snapshots; a change prices parked RFQs and re-quotes."""
        for t in upd.gapped:
            out.append(C.RequestBookSnapshot(t))
            self._pull_market(t, "book_gap", out)
        if not upd.changed:
            return
        if self._pending:
            self._try_pending(upd.changed, now, out)
        for t in upd.changed:
            for rfq_id in list(self._by_book.get(t, {})):
                rec = self.rfqs.get(rfq_id)
                if rec is not None:
                    self._maybe_replace(rec, now, out)

    # === timers ==================================================================================

    def _on_timer(self, ev: E.TimerFired, now: int, out: list[C.Command]) -> None:
        kind, _, arg = ev.key.partition(":")
        if kind == "pending":
            self._on_pending_timeout(arg, out)
        elif kind == "close":
            self._close_timers.pop(arg, None)
            self._pull_market(arg, "market_closing", out)
        elif kind == "stale":
            self._on_stale_timer(arg, now, out)
        elif kind == "replace":
            self._replace_timers.pop(arg, None)
            rec = self.rfqs.get(arg)
            if rec is not None:
                self._maybe_replace(rec, now, out)
        elif kind == "confirm":
            q = self.quotes.get(arg)
            if q is not None and q.state is QuoteState.CONFIRMING:
                # The confirm was sent but not answered by its deadline; we may be committed,
                # so the provisional exposure stays until a fill or ConfirmFailed settles it.
                out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "confirm_unanswered",
                                            "confirm_deadline_passed", quote_id=q.quote_id))
        elif kind == "pricing":
            self._on_pricing_timer(arg, now, out)
        elif kind == "exec":
            q = self.quotes.get(arg)
            if q is not None:
                self.ledger.release_provisional(q.quote_id)
                q.provisional_centi = 0
                self._sync_prov(q)
                if q.rfq_id not in self.rfqs:
                    self._retain("quote", arg)  # late fills still join it meanwhile

    def _on_pending_timeout(self, rfq_id: str, out: list[C.Command]) -> None:
        if rfq_id not in self._pending:
            return
        rec = self.rfqs[rfq_id]
        market = self.md.markets.get(rec.market_ticker)
        needs = self._needs(rec.rfq, market)
        if market is None or any(t not in self.md.markets for t in needs):
            self._drop(rec, NO_MARKET, out, "metadata did not arrive in time")
        else:
            self._drop(rec, NO_BOOK, out, "book did not arrive in time")

    def _on_stale_timer(self, ticker: str, now: int, out: list[C.Command]) -> None:
        """Pull quotes relying on a book that has not changed for ``book_stale_after``."""
        self._stale_timers.pop(ticker, None)
        age = self.md.age_ns(ticker, now)
        next_at: int | None = None
        for rfq_id in list(self._by_book.get(ticker, {})):
            rec, st = self.rfqs.get(rfq_id), self._ctx.get(rfq_id)
            if rec is None or st is None or rec.state is not RfqState.QUOTING or rec.pull_reason:
                continue
            stale_ns = st.lifecycle.book_stale_after_ms * MS
            if age is None or age >= stale_ns:
                self._pull(rec, STALE_BOOK if age is not None else NO_BOOK, out)
            else:
                at = now - age + stale_ns
                next_at = at if next_at is None else min(next_at, at)
        if next_at is not None:
            self._stale_timers[ticker] = next_at
            out.append(C.ScheduleTimer(f"stale:{ticker}", next_at))
