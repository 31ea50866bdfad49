"""Our quotes at the exchange: placed, rejected, cancelled; pulling them."""

from __future__ import annotations

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.engine.lifecycle import QuoteRecord, QuoteState, RfqRecord, RfqState
from quoter.engine.routing import (
    HALTED,
)
from quoter.engine.state import (
    _ACTIVE_RFQ,
    _EngineState,
)


class _Quotes(_EngineState):
    """Follow our quotes through the exchange and pull them when needed."""

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
