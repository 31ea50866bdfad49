"""Process-isolated pricing (``quoting.isolation: process``): PriceInPool, PricingCompleted."""

from __future__ import annotations

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import MarketInfo
from quoter.engine.lifecycle import QuoteState, RfqRecord, RfqState
from quoter.engine.pricing import PRICER_TIMEOUT, result_of
from quoter.engine.routing import (
    HALTED,
)
from quoter.engine.state import (
    MS,
    POOL_ANSWER_GRACE_NS,
    _EngineState,
    _PoolRequest,
    _Strategy,
)
from strategies.base import Decline, Pricing


class _PoolPricing(_EngineState):
    """Price in the worker pool and continue where inline pricing would."""

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
