"""RFQ intake: arrival, routing, parking until market metadata and books arrive, deletion."""

from __future__ import annotations

from collections.abc import Iterable

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.engine.lifecycle import QuoteState, RfqRecord, RfqState
from quoter.engine.routing import (
    HALTED,
    RATE_BUDGET,
    route,
)
from quoter.engine.state import (
    _COMMITTED,
    MS,
    _EngineState,
)


class _Intake(_EngineState):
    """Take RFQs in: route, park, quote or decline, forget."""

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
