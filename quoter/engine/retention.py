"""Retention: dropping finished records ``RECORD_RETENTION_NS`` after their life ends."""

from __future__ import annotations

from typing import Final

from quoter.engine.lifecycle import QuoteState, RfqState
from quoter.engine.records import MS, Records
from quoter.engine.totals import Totals

#: How long an ended RFQ / quote record (and an unjoined early fill) is kept for late events.
RECORD_RETENTION_NS: Final = 60_000 * MS


class Retention:
    """Drop finished records once late events can no longer need them."""

    def __init__(self, records: Records, totals: Totals) -> None:
        """Hand the part its collaborators (the records and the parts below it)."""
        self.r = records
        self.totals = totals

    # --- retention ------------------------------------------------------------------------------

    def retain(self, kind: str, key: str) -> None:
        """Look at ``key`` again ``RECORD_RETENTION_NS`` from now (drop it if it is finished)."""
        self.r.expiry.append((self.r.now + RECORD_RETENTION_NS, kind, key))

    def sweep(self, now: int) -> None:
        expiry = self.r.expiry
        while expiry and expiry[0][0] <= now:
            _, kind, key = expiry.popleft()
            if kind == "rfq":
                self.expire_rfq(key)
            elif kind == "quote":
                self.expire_quote(key)
            elif self.r.early_until.get(key, now + 1) <= now:
                del self.r.early_until[key], self.r.early_fills[key]

    def expire_rfq(self, rfq_id: str) -> None:
        """Forget a DONE RFQ and its finished quotes (committed ones wait for their fills)."""
        rec = self.r.rfqs.get(rfq_id)
        if rec is None or rec.state is not RfqState.DONE:
            return
        del self.r.rfqs[rfq_id]
        self.r.ctx.pop(rfq_id, None)
        self.r.replace_timers.pop(rfq_id, None)
        self.r.unbook(rfq_id)
        self.totals.sync(rec)
        for qid in rec.quote_ids:
            q = self.r.quotes.get(qid)
            if q is None:
                continue
            if q.is_live or q.state is QuoteState.ACCEPTED:
                q.move(QuoteState.DEAD)  # the RFQ is over: nothing can happen on it any more
            self.expire_quote(qid)

    def expire_quote(self, qid: str) -> None:
        """Forget a quote whose RFQ is gone once nothing more can happen on it; else wait."""
        q = self.r.quotes.get(qid)
        if q is None or q.rfq_id in self.r.rfqs:
            return
        if q.state in (QuoteState.CONFIRMING, QuoteState.CONFIRMED) or (
            self.r.ledger.provisional_entry(qid) is not None
        ):
            self.retain("quote", qid)  # fills or a confirm answer may still come
            return
        del self.r.quotes[qid]
        if q.order_id and self.r.orders.get(q.order_id) == qid:
            del self.r.orders[q.order_id]
        self.totals.sync_prov(q)
