"""Quoting: pricing -> finalize -> risk -> ``SubmitQuote``, timers, and replacing on book moves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Final

from quoter.config import LifecycleParams, StrategyConfig
from quoter.domain import commands as C
from quoter.domain.types import MarketInfo, MarketStatus
from quoter.engine.lifecycle import QuoteState, RfqRecord, RfqState, Submission
from quoter.engine.pool import PoolRequests
from quoter.engine.records import MS, PoolRequest, Records
from quoter.engine.risk import QuoteExposure
from quoter.engine.routing import (
    HALTED,
    INSUFFICIENT_BALANCE,
    NO_BOOK,
    STALE_BOOK,
    filtered,
    risk,
    route,
)
from quoter.engine.strategy_set import Strategy
from quoter.engine.totals import Totals
from quoter.engine.tracker import QuoteTracker
from quoter.engine.valuation import Valuation, trade_cash_micros
from strategies.base import Decline, Pricing

#: The reason of a ``quoted`` decision that went out on one side only (a contract limit).
ONE_SIDED: Final = "one_sided"


class Quoting:
    """Price an RFQ, risk-check and submit a quote; replace it when fair value moves."""

    def __init__(
        self,
        records: Records,
        valuation: Valuation,
        totals: Totals,
        tracker: QuoteTracker,
        pool: PoolRequests,
    ) -> None:
        """Hand the part its collaborators (the records and the parts below it)."""
        self.r = records
        self.valuation = valuation
        self.totals = totals
        self.tracker = tracker
        self.pool = pool

    def quote_new(
        self, rec: RfqRecord, now: int, out: list[C.Command],
        routed: StrategyConfig | None = None,
    ) -> None:
        """Price a routed RFQ whose market and books are known, and quote it if allowed."""
        rfq = rec.rfq
        market = self.r.md.markets[rfq.market_ticker]
        if self.r.halted:
            self.tracker.drop(rec, HALTED, out)
            return
        self.valuation.note_day(now)
        # Route again: now the filters that need metadata (status, series, close) apply.
        strategy, why = (
            (routed, None) if routed is not None
            else route(self.r.config, rfq, market, self.valuation.wall_ms(now))
        )
        if strategy is None:
            self.tracker.drop(rec, why or "no_route", out)
            return
        st = self.r.ctx[rec.rfq_id] = self.r.strategies[strategy.name]
        problem = self.unquotable(rec, st, market, now)
        if problem:
            self.tracker.drop(rec, problem, out)
            return
        if st.config.quoting.isolation == "process":
            rec.move(RfqState.PRICING)
            self.pool.request(rec, st, market, "new", now, out)
            return
        self.quote_priced(rec, st, market, self.valuation.price(rec, st, market, now), now, out)

    def unquotable(
        self, rec: RfqRecord, st: Strategy, market: MarketInfo, now: int
    ) -> str | None:
        """Why this RFQ cannot be quoted now (market status, close, books), else None."""
        if market.status is not MarketStatus.ACTIVE:
            return filtered("market_status")
        close_at = self.valuation.close_fire_ns(market, st.lifecycle)
        if close_at is not None and close_at <= now:
            return filtered("time_to_close")
        return self.valuation.book_problem(self.valuation.needs(rec.rfq, market), st.lifecycle, now)

    def quote_priced(
        self, rec: RfqRecord, st: Strategy, market: MarketInfo, res: Pricing | Decline,
        now: int, out: list[C.Command],
    ) -> None:
        """Risk-check a new RFQ's final pricing and quote it (or drop it with the reason)."""
        rfq, strategy, lc = rec.rfq, st.config, st.lifecycle
        needs = self.valuation.needs(rfq, market)
        if isinstance(res, Decline):
            self.tracker.drop(rec, res.reason, out, res.detail)
            return
        res, reason, trimmed = self.fit(rec, market.ticker, res)
        if reason:
            self.tracker.drop(rec, HALTED if reason == HALTED else risk(reason), out)
            return
        rec.strategy = strategy.name
        rec.move(RfqState.QUOTING)
        books = tuple(dict.fromkeys((*needs, market.ticker)))
        self.r.books_of[rec.rfq_id] = books
        for t in books:
            self.r.by_book.setdefault(t, {})[rec.rfq_id] = None
        self.submit(rec, st, res, now, out)
        out.append(C.RecordDecision(rfq.rfq_id, rfq.market_ticker, "quoted",
                                    ONE_SIDED if trimmed else "quoted", strategy=strategy.name,
                                    detail=trimmed))
        self.arm_timers(market, needs, lc, now, out)

    def fit(self, rec: RfqRecord, ticker: str, res: Pricing) -> tuple[Pricing, str | None, str]:
        """What risk lets us quote: ``(pricing, None, "")``; or one side of it when only the
        other side breaks a contract limit (the side that reduces the position stays
        quotable), with why in the third item; else ``(res, reason, "")``."""
        reason = self.check(rec, ticker, res)
        if (reason is None
                or not (reason.startswith("max_position") or reason == INSUFFICIENT_BALANCE)
                or not (res.yes_bid_micros and res.no_bid_micros)):
            return res, reason, ""
        for side, one in (("yes", replace(res, no_bid_micros=0)),
                          ("no", replace(res, yes_bid_micros=0))):
            if self.check(rec, ticker, one) is None:
                return one, None, f"{side} side only: both sides would break {reason}"
        return res, reason, ""

    def check(self, rec: RfqRecord, ticker: str, p: Pricing) -> str | None:
        size = self.valuation.est_size(rec.rfq, p.yes_bid_micros, p.no_bid_micros)
        return self.totals.check_quote(
            rec, ticker, QuoteExposure(p.yes_bid_micros, p.no_bid_micros, size)
        ) or self.collateral(rec, ticker, p, size)

    def collateral(self, rec: RfqRecord, ticker: str, p: Pricing, size: int) -> str | None:
        """Can we pay for this quote if it is hit (its costlier side, with our fee) on top of
        everything else that could be hit? Paused after the exchange refused us for cash."""
        if self.r.cash_paused:
            return INSUFFICIENT_BALANCE
        free = self.totals.free_cash_micros(rec)
        if free is None:
            return None  # no balance reported yet: the exchange is the judge
        market = self.r.md.markets[ticker]
        need = max(trade_cash_micros(market, bid, size)
                   for bid in (p.yes_bid_micros, p.no_bid_micros))
        return INSUFFICIENT_BALANCE if need > free else None

    def submit(
        self, rec: RfqRecord, st: Strategy, p: Pricing, now: int, out: list[C.Command]
    ) -> None:
        q = st.config.quoting
        out.append(C.SubmitQuote(
            rec.rfq_id, rec.market_ticker, p.yes_bid_micros, p.no_bid_micros, st.config.name,
            fair_yes_micros=p.fair_yes_micros, rest_remainder=q.rest_remainder,
            post_only=q.post_only,
        ))
        rec.in_flight.append(Submission(p.yes_bid_micros, p.no_bid_micros, p.fair_yes_micros, now))
        rec.last_submit_ns = now
        self.totals.sync(rec)

    def arm_timers(
        self, market: MarketInfo, needs: Iterable[str], lc: LifecycleParams, now: int,
        out: list[C.Command],
    ) -> None:
        """Make sure close and staleness timers run for markets we have quotes on."""
        close_at = self.valuation.close_fire_ns(market, lc)
        if close_at is not None and self.r.close_timers.get(market.ticker, close_at + 1) > close_at:
            self.r.close_timers[market.ticker] = close_at
            out.append(C.ScheduleTimer(f"close:{market.ticker}", close_at))
        if lc.book_stale_after_ms is None:
            return  # quiet books stay trusted: gaps and lost connections pull instead
        for t in needs:
            at = self.r.md.books[t].updated_ns + lc.book_stale_after_ms * MS
            if self.r.stale_timers.get(t, at + 1) > at:
                self.r.stale_timers[t] = at
                out.append(C.ScheduleTimer(f"stale:{t}", at))

    def maybe_replace(self, rec: RfqRecord, now: int, out: list[C.Command]) -> None:
        """Re-price a quoted RFQ after a book change; post again if fair moved enough."""
        st = self.r.ctx.get(rec.rfq_id)
        if st is None or rec.state is not RfqState.QUOTING or rec.pull_reason or self.r.halted:
            return
        last_fair = self.last_fair(rec)
        if last_fair is None:
            return
        lc = st.lifecycle
        interval_ns = lc.min_replace_interval_ms * MS
        if rec.last_submit_ns is not None and now - rec.last_submit_ns < interval_ns:
            # Too soon: look again when the interval is over, in case the book goes quiet.
            if rec.rfq_id not in self.r.replace_timers:
                self.r.replace_timers[rec.rfq_id] = None
                at = rec.last_submit_ns + interval_ns
                out.append(C.ScheduleTimer(f"replace:{rec.rfq_id}", at))
            return
        market = self.r.md.markets[rec.market_ticker]
        problem = self.valuation.book_problem(self.valuation.needs(rec.rfq, market), lc, now)
        if problem:
            self.tracker.pull(rec, problem, out)
            return
        if st.config.quoting.isolation == "process":
            req = self.r.pool_reqs.get(rec.rfq_id)
            if req is not None:
                req.dirty = True  # one request in flight per RFQ: look again when it answers
            else:
                self.pool.request(rec, st, market, "replace", now, out)
            return
        self.replace_priced(rec, st, market, last_fair, self.valuation.price(rec, st, market, now),
                             now, out)

    def last_fair(self, rec: RfqRecord) -> int | None:
        """The fair value of our newest submission or open quote (None: nothing to replace)."""
        if rec.in_flight:
            return rec.in_flight[-1].fair_yes_micros
        cur = rec.current_quote_id
        if cur is None or self.r.quotes[cur].state is not QuoteState.OPEN:
            return None
        return self.r.quotes[cur].fair_yes_micros

    def replace_priced(
        self, rec: RfqRecord, st: Strategy, market: MarketInfo, last_fair: int,
        res: Pricing | Decline, now: int, out: list[C.Command],
    ) -> None:
        """Pull on a decline; post again if the fair moved by the tolerance and risk allows."""
        lc = st.lifecycle
        if isinstance(res, Decline):
            self.tracker.pull(rec, res.reason, out)
            return
        if abs(res.fair_yes_micros - last_fair) < lc.replace_tolerance_micros:
            return
        res, reason, trimmed = self.fit(rec, market.ticker, res)
        if reason:
            self.tracker.pull(rec, risk(reason), out)
            return
        self.submit(rec, st, res, now, out)
        detail = f"{last_fair}->{res.fair_yes_micros}" + (f"; {trimmed}" if trimmed else "")
        out.append(C.RecordDecision(rec.rfq_id, rec.market_ticker, "requoted", "fair_moved",
                                    strategy=rec.strategy, detail=detail))

    def on_stale_timer(self, ticker: str, now: int, out: list[C.Command]) -> None:
        """Pull quotes relying on a book that has not changed for ``book_stale_after`` (only
        for strategies that opt into an age limit)."""
        self.r.stale_timers.pop(ticker, None)
        age = self.r.md.age_ns(ticker, now)
        next_at: int | None = None
        for rfq_id in list(self.r.by_book.get(ticker, {})):
            rec, st = self.r.rfqs.get(rfq_id), self.r.ctx.get(rfq_id)
            if rec is None or st is None or rec.state is not RfqState.QUOTING or rec.pull_reason:
                continue
            if st.lifecycle.book_stale_after_ms is None:
                continue  # this strategy trusts quiet books (its config changed since)
            stale_ns = st.lifecycle.book_stale_after_ms * MS
            if age is None or age >= stale_ns:
                self.tracker.pull(rec, STALE_BOOK if age is not None else NO_BOOK, out)
            else:
                at = now - age + stale_ns
                next_at = at if next_at is None else min(next_at, at)
        if next_at is not None:
            self.r.stale_timers[ticker] = next_at
            out.append(C.ScheduleTimer(f"stale:{ticker}", next_at))

    def on_close_timer(self, ticker: str, out: list[C.Command]) -> None:
        """A market we quote is about to close: pull every quote on it."""
        self.r.close_timers.pop(ticker, None)
        self.tracker.pull_market(ticker, "market_closing", out)

    def on_replace_timer(self, rfq_id: str, now: int, out: list[C.Command]) -> None:
        """The minimum replace interval is over: look at the RFQ again."""
        self.r.replace_timers.pop(rfq_id, None)
        rec = self.r.rfqs.get(rfq_id)
        if rec is not None:
            self.maybe_replace(rec, now, out)

    def on_pool_answer(
        self, rfq_id: str, req: PoolRequest, res: Pricing | Decline, now: int,
        out: list[C.Command],
    ) -> None:
        """The pool priced a new RFQ or re-priced a quoted one: continue where inline pricing
        would, after checking again what may have changed meanwhile."""
        rec, st = self.r.rfqs.get(rfq_id), self.r.ctx.get(rfq_id)
        if rec is None or st is None:
            return
        market = self.r.md.markets[rec.market_ticker]
        if req.purpose == "new":
            if rec.state is not RfqState.PRICING:
                return
            # Time passed while the pool priced: what could have changed is checked again.
            problem = HALTED if self.r.halted else self.unquotable(rec, st, market, now)
            if problem:
                self.tracker.drop(rec, problem, out)
                return
            self.quote_priced(rec, st, market, self.valuation.conclude(st, market, res, final=True),
                               now, out)
        elif req.purpose == "replace":
            if rec.state is not RfqState.QUOTING or rec.pull_reason or self.r.halted:
                return
            va = self.valuation
            problem = va.book_problem(va.needs(rec.rfq, market), st.lifecycle, now)
            if problem:
                self.tracker.pull(rec, problem, out)
                return
            last_fair = self.last_fair(rec)
            if last_fair is None:
                return
            self.replace_priced(rec, st, market, last_fair,
                                 self.valuation.conclude(st, market, res, final=True), now, out)
            if req.dirty:
                self.maybe_replace(rec, now, out)
