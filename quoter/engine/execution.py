"""Execution: executed quotes, fills, position reports and reconciliation."""

from __future__ import annotations

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.engine.lifecycle import QuoteRecord, QuoteState
from quoter.engine.routing import (
    risk,
)
from quoter.engine.state import (
    EXECUTION_FILL_GRACE_NS,
    RECORD_RETENTION_NS,
    _EngineState,
)


class _Execution(_EngineState):
    """Book executions and fills; reconcile reported positions."""

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
