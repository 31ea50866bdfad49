"""RFQ intake: arrival, routing, parking until market metadata and books arrive, deletion."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.engine.lifecycle import QuoteState, RfqRecord, RfqState
from quoter.engine.pool import PoolRequests
from quoter.engine.quoting import Quoting
from quoter.engine.records import MS, Records
from quoter.engine.retention import Retention
from quoter.engine.routing import (
    HALTED,
    NO_BOOK,
    NO_MARKET,
    RATE_BUDGET,
    route,
)
from quoter.engine.totals import Totals
from quoter.engine.tracker import QuoteTracker
from quoter.engine.valuation import Valuation

#: Quote states that commit us (kept after their RFQ is deleted, for fills).
COMMITTED: Final = (QuoteState.CONFIRMING, QuoteState.CONFIRMED, QuoteState.EXECUTED)


class Intake:
    """Take RFQs in: route, park, quote or decline, forget."""

    def __init__(
        self,
        records: Records,
        valuation: Valuation,
        totals: Totals,
        retention: Retention,
        tracker: QuoteTracker,
        pool: PoolRequests,
        quoting: Quoting,
    ) -> None:
        """Hand the part its collaborators (the records and the parts below it)."""
        self.r = records
        self.valuation = valuation
        self.totals = totals
        self.retention = retention
        self.tracker = tracker
        self.pool = pool
        self.quoting = quoting

    def on_rfq(self, ev: E.RfqReceived, now: int, out: list[C.Command]) -> None:
        """Route, park while metadata/books load, then price, risk-check and quote."""
        if ev.rfq_id in self.r.rfqs:
            out.append(C.RecordDecision(ev.rfq_id, ev.market_ticker, "ignored", "duplicate_rfq"))
            return
        if self.r.halted:
            self.valuation.not_quoted(ev, HALTED, out)
            return
        market = self.r.md.markets.get(ev.market_ticker)
        strategy, why = route(self.r.config, ev, market, self.valuation.wall_ms(now))
        if strategy is None:
            self.valuation.not_quoted(ev, why or "no_route", out)
            return
        st = self.r.strategies[strategy.name]
        rec = RfqRecord(ev, now)
        needs = self.valuation.needs(ev, market)
        missing_meta = [t for t in (ev.market_ticker, *needs) if t not in self.r.md.markets]
        if not missing_meta and all(self.r.md.is_ready(t) for t in needs):
            self.r.rfqs[ev.rfq_id] = rec
            self.r.ctx[ev.rfq_id] = st
            # Routed with its metadata already: routing again would give the same answer.
            self.quoting.quote_new(rec, now, out, routed=strategy if market is not None else None)
            return
        if len(self.r.pending) >= self.r.max_pending:
            self.valuation.not_quoted(ev, RATE_BUDGET, out, strategy.name, "too many RFQs waiting")
            return
        self.r.rfqs[ev.rfq_id] = rec
        self.r.ctx[ev.rfq_id] = st
        self.r.pending_n += 1
        self.r.pending[ev.rfq_id] = self.r.pending_n
        self.r.index_pending(ev.rfq_id, (ev.market_ticker, *needs))
        for t in dict.fromkeys((ev.market_ticker, *needs)):
            if t not in self.r.md.markets and t not in self.r.fetching:
                self.r.fetching[t] = None
                out.append(C.FetchMarket(t))
        self.subscribe((ev.market_ticker, *needs), out)
        out.append(C.ScheduleTimer(
            f"pending:{ev.rfq_id}", now + st.lifecycle.pending_rfq_timeout_ms * MS
        ))

    def subscribe(self, tickers: Iterable[str], out: list[C.Command]) -> None:
        new = tuple(t for t in dict.fromkeys(tickers) if t not in self.r.md.subscribed)
        if new:
            for t in new:
                self.r.md.subscribed[t] = None
            out.append(C.SubscribeMarkets(new))

    def try_pending(self, tickers: Iterable[str], now: int, out: list[C.Command]) -> None:
        """Price parked RFQs whose market metadata and books are all here now.

        Only the parked RFQs indexed under ``tickers`` are visited (a superset of those the
        check below accepts), in arrival order: the cost of a book update does not grow with
        the number of RFQs parked on other markets.
        """
        touched = set(tickers)
        candidates: dict[str, None] = {}
        for t in touched:
            candidates.update(self.r.pending_by.get(t, {}))
        for rfq_id in sorted(candidates, key=self.r.pending.__getitem__):
            if rfq_id not in self.r.pending:
                continue
            rec = self.r.rfqs[rfq_id]
            market = self.r.md.markets.get(rec.market_ticker)
            needs = self.valuation.needs(rec.rfq, market)
            # With its market's metadata here, a combo may name its legs only now.
            self.r.index_pending(rfq_id, needs)
            if touched.isdisjoint((rec.market_ticker, *needs)):
                continue
            if market is None:
                continue
            # Filters that need metadata (series, status, close) can reject it right away.
            strategy, why = route(self.r.config, rec.rfq, market, self.valuation.wall_ms(now))
            if strategy is None:
                out.append(C.CancelTimer(f"pending:{rfq_id}"))
                self.tracker.drop(rec, why or "no_route", out)
                continue
            missing = [t for t in needs if t not in self.r.md.markets]
            for t in missing:
                if t not in self.r.fetching:
                    self.r.fetching[t] = None
                    out.append(C.FetchMarket(t))
            self.subscribe(needs, out)
            if missing or not all(self.r.md.is_ready(t) for t in needs):
                continue
            self.r.unpend(rfq_id)
            out.append(C.CancelTimer(f"pending:{rfq_id}"))
            self.quoting.quote_new(rec, now, out)

    def on_rfq_deleted(self, ev: E.RfqDeleted, now: int, out: list[C.Command]) -> None:
        """The RFQ closed: its uncommitted quotes are dead (no command); forget it."""
        rec = self.r.rfqs.pop(ev.rfq_id, None)
        if rec is None:
            return
        st = self.r.ctx.pop(ev.rfq_id, None)
        if ev.rfq_id in self.r.pending:
            self.r.unpend(ev.rfq_id)
            out.append(C.CancelTimer(f"pending:{ev.rfq_id}"))
            self.valuation.not_quoted(rec.rfq, "rfq_deleted", out)
        req = self.pool.forget(ev.rfq_id, out)
        if rec.state is RfqState.PRICING:
            self.valuation.not_quoted(rec.rfq, "rfq_deleted", out, st.config.name if st else "")
        elif req is not None and req.purpose == "last_look":
            q = self.r.quotes.get(req.quote_id)
            if q is not None and q.state is QuoteState.ACCEPTED:
                out.append(C.RecordDecision(rec.rfq_id, rec.market_ticker, "declined",
                                            "rfq_deleted", strategy=rec.strategy,
                                            quote_id=q.quote_id))
        self.totals.sync(rec)
        for qid in rec.quote_ids:
            q = self.r.quotes[qid]
            if q.is_live or q.state is QuoteState.ACCEPTED:
                q.move(QuoteState.DEAD)
            if q.state not in COMMITTED:
                del self.r.quotes[qid]
            else:
                self.retention.retain("quote", qid)
        self.r.unbook(ev.rfq_id)

    def on_pending_timeout(self, rfq_id: str, out: list[C.Command]) -> None:
        """A parked RFQ waited too long for its metadata or books: decline it."""
        if rfq_id not in self.r.pending:
            return
        rec = self.r.rfqs[rfq_id]
        market = self.r.md.markets.get(rec.market_ticker)
        needs = self.valuation.needs(rec.rfq, market)
        if market is None or any(t not in self.r.md.markets for t in needs):
            self.tracker.drop(rec, NO_MARKET, out, "metadata did not arrive in time")
        else:
            self.tracker.drop(rec, NO_BOOK, out, "book did not arrive in time")
