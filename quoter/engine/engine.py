"""The engine: ``on_event(event, now_ns) -> list[Command]``, pure and deterministic.

No IO and no clock reads: time arrives as ``now_ns`` (and, for pricer budgets only, the injected
``perf_ns``). Dicts are iterated in insertion order; there is no randomness. What the engine
decides about every RFQ and every accept is returned as ``RecordDecision`` commands with a
stable reason code (see ``quoter.engine.routing``). Decisions: ``quoted``, ``not_quoted``,
``requoted``, ``pulled``, ``rejected`` (exchange refused a quote), ``held`` (an accept that beat
our create response), ``declined`` / ``confirmed``
(last look), ``confirm_failed``, ``confirm_unanswered``, ``cancel_failed``, ``ignored``,
``missed`` (an accept we learned of only after its quote was cancelled: ``accept_missed``),
``halted`` / ``resumed``, ``reconcile_deferred``, ``config_applied`` / ``config_rejected``.

Built from parts by injection, lower parts first, around one cache (``records.Records``): the
lower parts ``Valuation`` (what the modules see, reason codes), ``Totals`` (running risk
totals), ``Retention`` (dropping finished records), ``PoolRequests`` (one pool request per
RFQ) and ``QuoteTracker`` (our quotes at the exchange; ending an RFQ: drop, pull, settle);
then the flows ``Quoting`` (new quotes, replacing), ``Intake`` (routing, parking, deletion),
``LastLook`` (accepts, confirms, executions, fills, reconciliation), ``Market`` (metadata,
lifecycle, books) and ``Control`` (config reloads). A part calls only parts below it. The
``Engine`` dispatches each event through its type -> handler table (timers by key kind),
routes a ``PricingCompleted`` to the flow that asked for it, and applies halts: a flow that
finds a reason to halt (daily loss stop, position mismatch) returns it.

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
* **Last look.** See :meth:`LastLook.on_accepted`; declining is "do nothing" (there is no
  decline call, kalshi-api.md §0a). An accept can beat our create-quote response: an accept of
  an unknown quote id while a create is in flight on its RFQ is ``held`` (a ``held:<quote_id>``
  timer at its confirm deadline) and gets its last look when ``QuotePlaced`` names the id; it
  is ``ignored``/``unknown_quote`` if the create fails or the deadline passes first.
* **Reconciliation.** A ``PositionReported`` that differs from our ledger halts the engine,
  but only when no fills are in flight for that market, i.e. no quote of ours on it holds
  provisional exposure (confirm sent and fills not all seen, or within
  ``EXECUTION_FILL_GRACE_NS`` after ``quote_executed``). Otherwise the report may simply be
  ahead of (or behind) our fills, and the check waits for the next report.
* **Risk totals.** Exposure per market / event / series / overall and the worst-case losses are
  running sums (``quoter.engine.exposure.ExposureBook``) adjusted whenever an RFQ's quotes, a
  provisional trade or a position changes, so a risk check costs O(1) however many quotes are
  open; they equal the full recomputation ``Totals.risk_view`` exactly.
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

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from quoter.config import QuoterConfig
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.engine.control import Control
from quoter.engine.exposure import ExposureBook
from quoter.engine.intake import Intake
from quoter.engine.lastlook import EXECUTION_FILL_GRACE_NS, LastLook
from quoter.engine.lifecycle import QuoteRecord, QuoteState, RfqRecord, RfqState
from quoter.engine.market import Market
from quoter.engine.marketdata import MarketData
from quoter.engine.pool import POOL_ANSWER_GRACE_NS, PoolRequests
from quoter.engine.positions import PositionLedger
from quoter.engine.pricing import PRICER_TIMEOUT, result_of
from quoter.engine.quoting import Quoting
from quoter.engine.records import PoolRequest, Records
from quoter.engine.requesters import MARKOUT_TIMER, RequesterBook
from quoter.engine.retention import RECORD_RETENTION_NS, Retention
from quoter.engine.risk import RiskManager
from quoter.engine.routing import HALTED
from quoter.engine.strategy_set import ModuleFactory, build_strategies, registry_build
from quoter.engine.totals import Totals
from quoter.engine.tracker import QuoteTracker
from quoter.engine.valuation import Valuation
from strategies.base import Decline, Pricing

__all__ = [
    "EXECUTION_FILL_GRACE_NS",
    "POOL_ANSWER_GRACE_NS",
    "RECORD_RETENTION_NS",
    "Engine",
    "ModuleFactory",
]


class _Creators(Mapping[str, str]):
    """RFQ id -> its creator, read through the records (no copy per event)."""

    def __init__(self, records: Records) -> None:
        self._r = records

    def __getitem__(self, rfq_id: str) -> str:
        return self._r.rfqs[rfq_id].rfq.creator_id

    def __iter__(self) -> Iterator[str]:
        return iter(self._r.rfqs)

    def __len__(self) -> int:
        return len(self._r.rfqs)


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
        factory = pricers or registry_build
        self.records = r = Records(
            config, build_strategies(config, factory), perf_ns=perf_ns,
            wall_offset_ns=wall_offset_ns, max_pending=max_pending,
        )
        self.valuation = Valuation(r)
        self.totals = Totals(r, self.valuation)
        self.retention = Retention(r, self.totals)
        self.pool = PoolRequests(r, self.valuation)
        self.tracker = QuoteTracker(r, self.valuation, self.totals, self.retention, self.pool)
        self.quoting = Quoting(r, self.valuation, self.totals, self.tracker, self.pool)
        self.intake = Intake(r, self.valuation, self.totals, self.retention, self.tracker,
                             self.pool, self.quoting)
        self.lastlook = LastLook(r, self.valuation, self.totals, self.retention, self.tracker,
                                 self.pool)
        self.market = Market(r, self.valuation, self.tracker, self.quoting, self.intake)
        self.control = Control(r, factory)
        self.ledger = r.ledger
        ll, mk, tr = self.lastlook, self.market, self.tracker
        self._handlers: dict[type[Any], Callable[[Any, int, list[C.Command]], None]] = {
            E.RfqReceived: self.intake.on_rfq,
            E.RfqDeleted: self.intake.on_rfq_deleted,
            E.QuotePlaced: self._on_placed,
            E.QuoteRejected: self._on_rejected,
            E.QuoteCancelled: tr.on_cancelled,
            E.QuoteCancelFailed: tr.on_cancel_failed,
            E.QuoteAccepted: ll.on_accepted,
            E.QuoteConfirmed: ll.on_confirmed,
            E.ConfirmFailed: self._on_confirm_failed,
            E.QuoteExecuted: ll.on_executed,
            E.FillReceived: self._on_fill,
            E.PositionReported: self._on_position,
            E.BalanceReported: self.lastlook.on_balance,
            E.BookSnapshotReceived: mk.on_snapshot,
            E.BookDeltaReceived: mk.on_delta,
            E.SequenceGap: mk.on_gap,
            E.MarketLoaded: mk.on_market_loaded,
            E.MarketLoadFailed: mk.on_market_failed,
            E.MarketLifecycleChanged: mk.on_lifecycle,
            E.TimerFired: self._on_timer,
            E.KillSwitchChanged: self._on_kill,
            E.ConfigReloaded: self.control.on_config,
            E.PricingCompleted: self._on_pricing_completed,
        }

    # === public ==================================================================================

    def on_event(self, event: E.Event, now_ns: int) -> list[C.Command]:
        """Handle one event at engine time ``now_ns``; return the commands to execute, in order."""
        out: list[C.Command] = []
        r = self.records
        r.now = now_ns
        if r.expiry and r.expiry[0][0] <= now_ns:
            self.retention.sweep(now_ns)
        new_rfq = isinstance(event, E.RfqReceived) and event.rfq_id not in r.rfqs
        ours = isinstance(event, E.QuoteAccepted) and (
            event.quote_id in r.quotes or event.quote_id in r.held)
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event, now_ns, out)
        r.requesters.observe(event, out, now_ns, new_rfq=new_rfq, is_ours=ours,
                             creator_of_rfq=_Creators(r))
        return out

    def live_quote_ids(self) -> list[str]:
        """Our quotes the requester could still accept (open, replaced or being cancelled)."""
        return [q.quote_id for q in self.records.quotes.values() if q.is_live]

    @property
    def ledger(self) -> PositionLedger:
        """The positions ledger."""
        return self.records.ledger

    @ledger.setter
    def ledger(self, ledger: PositionLedger) -> None:
        """Swap in a ledger (e.g. restored from a snapshot) and rebuild the risk totals."""
        r, totals = self.records, self.totals
        r.ledger = ledger
        ledger.on_position = totals.on_position_changed
        r.book = ExposureBook()
        r.rfq_load.clear()
        r.prov_load.clear()
        for t, event, series in ledger.registered():
            r.book.set_meta(t, event, series, event in r.exclusive_events)
        for t in ledger.tickers():
            totals.on_position_changed(t)
        for q in r.quotes.values():
            totals.sync_prov(q)
        for rec in r.rfqs.values():
            totals.sync(rec)

    @property
    def config(self) -> QuoterConfig:
        """The config in force."""
        return self.records.config

    @property
    def rfqs(self) -> dict[str, RfqRecord]:
        """RFQ records by id."""
        return self.records.rfqs

    @property
    def quotes(self) -> dict[str, QuoteRecord]:
        """Our quote records by id."""
        return self.records.quotes

    @property
    def book(self) -> ExposureBook:
        """The running risk totals."""
        return self.records.book

    @property
    def risk(self) -> RiskManager:
        """Limits, halt state and the daily loss stop."""
        return self.records.risk

    @property
    def requesters(self) -> RequesterBook:
        """Per-requester statistics (persisted by the service, read by the pricers)."""
        return self.records.requesters

    @property
    def md(self) -> MarketData:
        """Market metadata and order books."""
        return self.records.md

    @property
    def halted(self) -> bool:
        """True while quoting is stopped."""
        return self.records.risk.halted

    # === what no part can do alone: halts, pool answers, timers =================================

    def _on_placed(self, ev: E.QuotePlaced, now: int, out: list[C.Command]) -> None:
        self.tracker.on_placed(ev, now, out)
        self.lastlook.on_placed(ev, now, out)  # an accept that beat this response, if any

    def _on_rejected(self, ev: E.QuoteRejected, now: int, out: list[C.Command]) -> None:
        self.tracker.on_rejected(ev, now, out)
        self.lastlook.drop_orphans(ev.rfq_id, out)
        self.lastlook.on_cash_refused(ev.code, ev.message, out)

    def _on_confirm_failed(self, ev: E.ConfirmFailed, now: int, out: list[C.Command]) -> None:
        self.lastlook.on_confirm_failed(ev, now, out)
        self.lastlook.on_cash_refused(ev.code, ev.message, out)

    def _on_fill(self, ev: E.FillReceived, now: int, out: list[C.Command]) -> None:
        reason = self.lastlook.on_fill(ev, now, out)
        if reason is not None:
            self._halt(reason, out, emit=True)

    def _on_position(self, ev: E.PositionReported, now: int, out: list[C.Command]) -> None:
        reason = self.lastlook.on_position(ev, now, out)
        if reason is not None:
            self._halt(reason, out, emit=True)

    def _on_pricing_completed(
        self, ev: E.PricingCompleted, now: int, out: list[C.Command]
    ) -> None:
        """Continue where inline pricing would; a stale answer (not the current request) is
        ignored."""
        req = self.pool.take(ev, out)
        if req is not None:
            self._pool_answered(ev.rfq_id, req, result_of(ev), now, out)

    def _on_pricing_timer(self, rfq_id: str, now: int, out: list[C.Command]) -> None:
        """The pool never answered (it always should): decline as a timeout."""
        req = self.pool.expire(rfq_id)
        if req is not None:
            self._pool_answered(rfq_id, req, Decline(PRICER_TIMEOUT, "no answer from the pool"),
                                now, out)

    def _pool_answered(
        self, rfq_id: str, req: PoolRequest, res: Pricing | Decline, now: int,
        out: list[C.Command],
    ) -> None:
        """Hand a pool answer to the flow that asked for it."""
        if req.purpose == "last_look":
            self.lastlook.on_pool_answer(rfq_id, req, res, now, out)
        else:
            self.quoting.on_pool_answer(rfq_id, req, res, now, out)

    def _on_timer(self, ev: E.TimerFired, now: int, out: list[C.Command]) -> None:
        kind, _, arg = ev.key.partition(":")
        if kind == "pending":
            self.intake.on_pending_timeout(arg, out)
        elif kind == "close":
            self.quoting.on_close_timer(arg, out)
        elif kind == "stale":
            self.quoting.on_stale_timer(arg, now, out)
        elif kind == "replace":
            self.quoting.on_replace_timer(arg, now, out)
        elif kind == "confirm":
            self.lastlook.on_confirm_timer(arg, out)
        elif kind == "pricing":
            self._on_pricing_timer(arg, now, out)
        elif kind == "exec":
            self.lastlook.on_exec_timer(arg)
        elif kind == "held":
            self.lastlook.on_held_timer(arg, out)
        elif kind == MARKOUT_TIMER:
            self.records.requesters.on_timer(arg, self.records.md, self.records.determined)

    def _on_kill(self, ev: E.KillSwitchChanged, now: int, out: list[C.Command]) -> None:
        if ev.halted:
            if not self.halted:
                self._halt(ev.reason or "kill_switch", out, emit=False)
            out.append(C.RecordDecision("", "", "halted", "kill_switch", detail=ev.reason))
        elif self.halted:
            self.records.risk.resume()
            out.append(C.RecordDecision("", "", "resumed", "kill_switch", detail=ev.reason))

    def _halt(self, reason: str, out: list[C.Command], *, emit: bool) -> None:
        """Stop: cancel every live quote, drop parked RFQs, refuse confirms until resumed."""
        self.records.risk.halt(reason)
        if emit:
            out.append(C.Halt(reason))
        for rfq_id in list(self.records.pending):
            self.tracker.drop(self.records.rfqs[rfq_id], HALTED, out)
            out.append(C.CancelTimer(f"pending:{rfq_id}"))
        for rec in list(self.records.rfqs.values()):
            if rec.state is RfqState.PRICING:
                self.tracker.drop(rec, HALTED, out)
            else:
                self.tracker.pull(rec, HALTED, out)
        for q in self.records.quotes.values():
            if q.state is QuoteState.ACCEPTED:
                # Only a last look waiting for the pool is here: inline ones finish at once.
                q.move(QuoteState.DECLINED)
                out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "declined", HALTED,
                                            quote_id=q.quote_id))
                owner = self.records.rfqs.get(q.rfq_id)
                if owner is not None and owner.state is RfqState.ACCEPTED:
                    self.pool.forget(owner.rfq_id, out)
                    owner.move(RfqState.QUOTING)
                    self.totals.sync(owner)
                    self.tracker.settle_rfq(owner)
