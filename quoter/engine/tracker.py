"""Our quotes at the exchange (placed, rejected, cancelled) and how an RFQ ends for us:
dropped (never quoted), pulled (cancelled, never re-quoted) or settled (nothing left to do)."""

from __future__ import annotations

from typing import Final

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.engine.lifecycle import QuoteRecord, QuoteState, RfqRecord, RfqState
from quoter.engine.pool import PoolRequests
from quoter.engine.records import Records
from quoter.engine.retention import Retention
from quoter.engine.routing import (
    HALTED,
)
from quoter.engine.totals import Totals
from quoter.engine.valuation import Valuation

#: RFQ states in which we may have quotes out.
ACTIVE_RFQ: Final = (RfqState.QUOTING, RfqState.ACCEPTED)
#: Why a quote that landed after another of ours on its RFQ was accepted is cancelled at once.
SUPERSEDED_BY_ACCEPT: Final = "superseded_by_accept"
#: Why a quote placed on an RFQ we no longer follow is cancelled at once.
UNKNOWN_SUBMISSION: Final = "unknown_submission"
#: Why an accept the exchange reports after the fact (a backfill) was never confirmed.
ACCEPT_MISSED: Final = "accept_missed"


class QuoteTracker:
    """Follow our quotes through the exchange; end RFQs: drop, pull, settle."""

    def __init__(
        self,
        records: Records,
        valuation: Valuation,
        totals: Totals,
        retention: Retention,
        pool: PoolRequests,
    ) -> None:
        """Hand the part its collaborators (the records and the parts below it)."""
        self.r = records
        self.valuation = valuation
        self.totals = totals
        self.retention = retention
        self.pool = pool

    def on_placed(self, ev: E.QuotePlaced, now: int, out: list[C.Command]) -> None:
        """The exchange named our quote: it supersedes our previous quote on the RFQ."""
        rec = self.r.rfqs.get(ev.rfq_id)
        if rec is None or not rec.in_flight:
            out.append(C.RecordDecision(ev.rfq_id, "", "ignored", UNKNOWN_SUBMISSION,
                                        quote_id=ev.quote_id))
            # Nothing here would ever cancel it: a quote we cannot follow must not stay live.
            out.append(C.CancelQuote(ev.rfq_id, ev.quote_id, UNKNOWN_SUBMISSION))
            return
        sub = rec.in_flight.pop(0)
        for qid in rec.quote_ids:
            old = self.r.quotes[qid]
            if old.state is QuoteState.OPEN:
                old.move(QuoteState.REPLACED)
        q = QuoteRecord(ev.quote_id, rec.rfq_id, rec.market_ticker, sub.yes_bid_micros,
                        sub.no_bid_micros, sub.fair_yes_micros, now)
        self.r.quotes[ev.quote_id] = q
        rec.quote_ids.append(ev.quote_id)
        self.totals.sync(rec)
        reason = rec.pull_reason or (HALTED if self.r.halted else "")
        if rec.state in (RfqState.ACCEPTED, RfqState.DONE):
            # A replacement that raced an accept of our previous quote: one RFQ, one trade.
            reason = reason or SUPERSEDED_BY_ACCEPT
        if reason and rec.state in (*ACTIVE_RFQ, RfqState.DONE):
            q.move(QuoteState.CANCELLING)
            out.append(C.CancelQuote(rec.rfq_id, q.quote_id, reason))
            self.totals.sync(rec)

    def on_rejected(self, ev: E.QuoteRejected, now: int, out: list[C.Command]) -> None:
        """The exchange refused a SubmitQuote: record it; a previous live quote stays."""
        rec = self.r.rfqs.get(ev.rfq_id)
        if rec is None or not rec.in_flight:
            return
        rec.in_flight.pop(0)
        self.totals.sync(rec)
        out.append(C.RecordDecision(rec.rfq_id, rec.market_ticker, "rejected", ev.code,
                                    strategy=rec.strategy, detail=ev.message))
        self.settle_rfq(rec)

    def settle_rfq(self, rec: RfqRecord) -> None:
        """Mark the RFQ done when nothing of ours can happen on it any more."""
        if rec.state is not RfqState.QUOTING or rec.in_flight:
            return
        if any(self.r.quotes[q].is_live for q in rec.quote_ids):
            return
        rec.move(RfqState.DONE)
        self.totals.sync(rec)
        self.retention.retain("rfq", rec.rfq_id)

    def pull(self, rec: RfqRecord, reason: str, out: list[C.Command]) -> None:
        """Cancel our live quote on an RFQ and never re-quote it."""
        if rec.state not in ACTIVE_RFQ or rec.pull_reason:
            return
        rec.pull_reason = reason
        for qid in rec.quote_ids:
            q = self.r.quotes[qid]
            if q.state is QuoteState.OPEN:
                q.move(QuoteState.CANCELLING)
                out.append(C.CancelQuote(rec.rfq_id, qid, reason))
        out.append(C.RecordDecision(rec.rfq_id, rec.market_ticker, "pulled", reason,
                                    strategy=rec.strategy))

    def pull_market(self, ticker: str, reason: str, out: list[C.Command]) -> None:
        for rfq_id in list(self.r.by_book.get(ticker, {})):
            rec = self.r.rfqs.get(rfq_id)
            if rec is not None:
                self.pull(rec, reason, out)

    def on_cancelled(self, ev: E.QuoteCancelled, now: int, out: list[C.Command]) -> None:
        q = self.r.quotes.get(ev.quote_id)
        if q is None:
            return
        rec = self.r.rfqs.get(q.rfq_id)
        if ev.accepted_ts_ms is not None and (q.is_live or q.state is QuoteState.CANCELLED):
            # Accepted, then cancelled before we heard of the accept (its frame was lost with
            # the feed): a trade we never had the chance to confirm. Say so, never silently.
            out.append(C.RecordDecision(
                q.rfq_id, q.market_ticker, "missed", ACCEPT_MISSED,
                strategy=rec.strategy if rec is not None else "", quote_id=q.quote_id,
                detail=f"accepted at {ev.accepted_ts_ms} ms (exchange time); the accept notice "
                "never arrived and the quote was cancelled before a backfill saw it"))
        if not q.is_live:
            return
        q.move(QuoteState.CANCELLED)
        if rec is not None:
            self.totals.sync(rec)
            self.settle_rfq(rec)

    def on_cancel_failed(self, ev: E.QuoteCancelFailed, now: int, out: list[C.Command]) -> None:
        """A 404 after an accept: the quote stays accepted (kalshi-api.md §0a); just record."""
        out.append(C.RecordDecision(ev.rfq_id, "", "cancel_failed", ev.code,
                                    quote_id=ev.quote_id, detail=ev.message))

    def drop(self, rec: RfqRecord, reason: str, out: list[C.Command], detail: str = "") -> None:
        """Give up on an RFQ we never quoted."""
        self.r.unpend(rec.rfq_id)
        self.pool.forget(rec.rfq_id, out)
        self.r.rfqs.pop(rec.rfq_id, None)
        self.totals.sync(rec)
        st = self.r.ctx.pop(rec.rfq_id, None)
        self.valuation.not_quoted(rec.rfq, reason, out, st.config.name if st else "", detail)
