"""Quoting: pricing -> finalize -> risk -> ``SubmitQuote``, timers, and replacing on book moves."""

from __future__ import annotations

from collections.abc import Iterable

from quoter.config import LifecycleParams, StrategyConfig
from quoter.domain import commands as C
from quoter.domain.types import MarketInfo, MarketStatus
from quoter.engine.lifecycle import QuoteState, RfqRecord, RfqState, Submission
from quoter.engine.risk import QuoteExposure
from quoter.engine.routing import (
    HALTED,
    filtered,
    risk,
    route,
)
from quoter.engine.state import (
    MS,
    _EngineState,
    _Strategy,
)
from strategies.base import Decline, Pricing


class _Quoting(_EngineState):
    """Price an RFQ, risk-check and submit a quote; replace it when fair value moves."""

    def _quote_new(
        self, rec: RfqRecord, now: int, out: list[C.Command],
        routed: StrategyConfig | None = None,
    ) -> None:
        """Price a routed RFQ whose market and books are known, and quote it if allowed."""
        rfq = rec.rfq
        market = self.md.markets[rfq.market_ticker]
        if self.halted:
            self._drop(rec, HALTED, out)
            return
        self._note_day(now)
        # Route again: now the filters that need metadata (status, series, close) apply.
        strategy, why = (
            (routed, None) if routed is not None
            else route(self.config, rfq, market, self._wall_ms(now))
        )
        if strategy is None:
            self._drop(rec, why or "no_route", out)
            return
        st = self._ctx[rec.rfq_id] = self._strategies[strategy.name]
        problem = self._unquotable(rec, st, market, now)
        if problem:
            self._drop(rec, problem, out)
            return
        if st.config.quoting.isolation == "process":
            rec.move(RfqState.PRICING)
            self._request_pool(rec, st, market, "new", now, out)
            return
        self._quote_priced(rec, st, market, self._price(rec, st, market, now), now, out)

    def _unquotable(
        self, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int
    ) -> str | None:
        """Why this RFQ cannot be quoted now (market status, close, books), else None."""
        if market.status is not MarketStatus.ACTIVE:
            return filtered("market_status")
        close_at = self._close_fire_ns(market, st.lifecycle)
        if close_at is not None and close_at <= now:
            return filtered("time_to_close")
        return self._book_problem(self._needs(rec.rfq, market), st.lifecycle, now)

    def _quote_priced(
        self, rec: RfqRecord, st: _Strategy, market: MarketInfo, res: Pricing | Decline,
        now: int, out: list[C.Command],
    ) -> None:
        """Risk-check a new RFQ's final pricing and quote it (or drop it with the reason)."""
        rfq, strategy, lc = rec.rfq, st.config, st.lifecycle
        needs = self._needs(rfq, market)
        if isinstance(res, Decline):
            self._drop(rec, res.reason, out, res.detail)
            return
        size = self._est_size(rfq, res.yes_bid_micros, res.no_bid_micros)
        reason = self._check_quote(
            rec, market.ticker, QuoteExposure(res.yes_bid_micros, res.no_bid_micros, size)
        )
        if reason:
            self._drop(rec, HALTED if reason == HALTED else risk(reason), out)
            return
        rec.strategy = strategy.name
        rec.move(RfqState.QUOTING)
        books = tuple(dict.fromkeys((*needs, market.ticker)))
        self._books_of[rec.rfq_id] = books
        for t in books:
            self._by_book.setdefault(t, {})[rec.rfq_id] = None
        self._submit(rec, st, res, now, out)
        out.append(C.RecordDecision(rfq.rfq_id, rfq.market_ticker, "quoted", "quoted",
                                    strategy=strategy.name))
        self._arm_timers(market, needs, lc, now, out)

    def _submit(
        self, rec: RfqRecord, st: _Strategy, p: Pricing, now: int, out: list[C.Command]
    ) -> None:
        q = st.config.quoting
        out.append(C.SubmitQuote(
            rec.rfq_id, rec.market_ticker, p.yes_bid_micros, p.no_bid_micros, st.config.name,
            fair_yes_micros=p.fair_yes_micros, rest_remainder=q.rest_remainder,
            post_only=q.post_only,
        ))
        rec.in_flight.append(Submission(p.yes_bid_micros, p.no_bid_micros, p.fair_yes_micros, now))
        rec.last_submit_ns = now
        self._sync(rec)

    def _close_fire_ns(self, market: MarketInfo, lc: LifecycleParams) -> int | None:
        if market.close_ts_ms is None:
            return None
        return (market.close_ts_ms - lc.cancel_before_close_ms) * MS - self._wall_offset_ns

    def _arm_timers(
        self, market: MarketInfo, needs: Iterable[str], lc: LifecycleParams, now: int,
        out: list[C.Command],
    ) -> None:
        """Make sure close and staleness timers run for markets we have quotes on."""
        close_at = self._close_fire_ns(market, lc)
        if close_at is not None and self._close_timers.get(market.ticker, close_at + 1) > close_at:
            self._close_timers[market.ticker] = close_at
            out.append(C.ScheduleTimer(f"close:{market.ticker}", close_at))
        for t in needs:
            at = self.md.books[t].updated_ns + lc.book_stale_after_ms * MS
            if self._stale_timers.get(t, at + 1) > at:
                self._stale_timers[t] = at
                out.append(C.ScheduleTimer(f"stale:{t}", at))

    def _maybe_replace(self, rec: RfqRecord, now: int, out: list[C.Command]) -> None:
        """Re-price a quoted RFQ after a book change; post again if fair moved enough."""
        st = self._ctx.get(rec.rfq_id)
        if st is None or rec.state is not RfqState.QUOTING or rec.pull_reason or self.halted:
            return
        last_fair = self._last_fair(rec)
        if last_fair is None:
            return
        lc = st.lifecycle
        interval_ns = lc.min_replace_interval_ms * MS
        if rec.last_submit_ns is not None and now - rec.last_submit_ns < interval_ns:
            # Too soon: look again when the interval is over, in case the book goes quiet.
            if rec.rfq_id not in self._replace_timers:
                self._replace_timers[rec.rfq_id] = None
                at = rec.last_submit_ns + interval_ns
                out.append(C.ScheduleTimer(f"replace:{rec.rfq_id}", at))
            return
        market = self.md.markets[rec.market_ticker]
        problem = self._book_problem(self._needs(rec.rfq, market), lc, now)
        if problem:
            self._pull(rec, problem, out)
            return
        if st.config.quoting.isolation == "process":
            req = self._pool_reqs.get(rec.rfq_id)
            if req is not None:
                req.dirty = True  # one request in flight per RFQ: look again when it answers
            else:
                self._request_pool(rec, st, market, "replace", now, out)
            return
        self._replace_priced(rec, st, market, last_fair, self._price(rec, st, market, now),
                             now, out)

    def _last_fair(self, rec: RfqRecord) -> int | None:
        """The fair value of our newest submission or open quote (None: nothing to replace)."""
        if rec.in_flight:
            return rec.in_flight[-1].fair_yes_micros
        cur = rec.current_quote_id
        if cur is None or self.quotes[cur].state is not QuoteState.OPEN:
            return None
        return self.quotes[cur].fair_yes_micros

    def _replace_priced(
        self, rec: RfqRecord, st: _Strategy, market: MarketInfo, last_fair: int,
        res: Pricing | Decline, now: int, out: list[C.Command],
    ) -> None:
        """Pull on a decline; post again if the fair moved by the tolerance and risk allows."""
        lc = st.lifecycle
        if isinstance(res, Decline):
            self._pull(rec, res.reason, out)
            return
        if abs(res.fair_yes_micros - last_fair) < lc.replace_tolerance_micros:
            return
        size = self._est_size(rec.rfq, res.yes_bid_micros, res.no_bid_micros)
        reason = self._check_quote(
            rec, market.ticker, QuoteExposure(res.yes_bid_micros, res.no_bid_micros, size)
        )
        if reason:
            self._pull(rec, risk(reason), out)
            return
        self._submit(rec, st, res, now, out)
        out.append(C.RecordDecision(rec.rfq_id, rec.market_ticker, "requoted", "fair_moved",
                                    strategy=rec.strategy,
                                    detail=f"{last_fair}->{res.fair_yes_micros}"))
