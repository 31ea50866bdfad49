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

from collections.abc import Callable
from typing import Any

from quoter.config import QuoterConfig
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.engine.control import _Control
from quoter.engine.execution import _Execution
from quoter.engine.intake import _Intake
from quoter.engine.lastlook import _LastLook
from quoter.engine.market import _Market
from quoter.engine.pool_pricing import _PoolPricing
from quoter.engine.quotes import _Quotes
from quoter.engine.quoting import _Quoting
from quoter.engine.retention import _Retention
from quoter.engine.state import (
    EXECUTION_FILL_GRACE_NS,
    POOL_ANSWER_GRACE_NS,
    RECORD_RETENTION_NS,
    ModuleFactory,
)
from quoter.engine.totals import _Totals
from quoter.engine.valuation import _Valuation

__all__ = [
    "EXECUTION_FILL_GRACE_NS",
    "POOL_ANSWER_GRACE_NS",
    "RECORD_RETENTION_NS",
    "Engine",
    "ModuleFactory",
]


class Engine(
    _Intake,
    _Quoting,
    _Quotes,
    _PoolPricing,
    _LastLook,
    _Execution,
    _Market,
    _Control,
    _Totals,
    _Retention,
    _Valuation,
):
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
        super().__init__(
            config, pricers=pricers, perf_ns=perf_ns, wall_offset_ns=wall_offset_ns,
            max_pending=max_pending,
        )
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

    def live_quote_ids(self) -> list[str]:
        """Our quotes the requester could still accept (open, replaced or being cancelled)."""
        return [q.quote_id for q in self.quotes.values() if q.is_live]
