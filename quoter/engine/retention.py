"""Retention: dropping finished records ``RECORD_RETENTION_NS`` after their life ends."""

from __future__ import annotations

from quoter.engine.lifecycle import QuoteState, RfqState
from quoter.engine.state import (
    RECORD_RETENTION_NS,
    _EngineState,
)


class _Retention(_EngineState):
    """Drop finished records once late events can no longer need them."""

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
