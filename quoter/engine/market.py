"""Market metadata, lifecycle and order books."""

from __future__ import annotations

import contextlib
from dataclasses import replace

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.grid import Band, PriceGrid
from quoter.domain.money import MAX_PRICE_MICROS, MoneyError
from quoter.domain.types import MarketStatus
from quoter.engine.marketdata import BookUpdate
from quoter.engine.routing import (
    NO_MARKET,
)
from quoter.engine.state import (
    _CLOSING_EVENTS,
    _EngineState,
)


class _Market(_EngineState):
    """Follow market metadata, lifecycle changes and order books."""

    def _on_market_loaded(self, ev: E.MarketLoaded, now: int, out: list[C.Command]) -> None:
        m = ev.market
        self.md.markets[m.ticker] = m
        self.ledger.register_market(m.ticker, m.event_ticker, m.series_ticker)
        self.book.set_meta(m.ticker, m.event_ticker, m.series_ticker)
        self._fetching.pop(m.ticker, None)
        self._try_pending((m.ticker,), now, out)

    def _on_market_failed(self, ev: E.MarketLoadFailed, now: int, out: list[C.Command]) -> None:
        self._fetching.pop(ev.market_ticker, None)
        for rfq_id in list(self._pending):
            rec = self.rfqs[rfq_id]
            if ev.market_ticker in (rec.market_ticker, *self._needs(rec.rfq, None)):
                out.append(C.CancelTimer(f"pending:{rfq_id}"))
                self._drop(rec, NO_MARKET, out, ev.reason)

    def _on_lifecycle(self, ev: E.MarketLifecycleChanged, now: int, out: list[C.Command]) -> None:
        """Keep metadata current; pull quotes when a market stops trading; settle positions."""
        t = ev.market_ticker
        m = self.md.markets.get(t)
        if m is not None:
            if ev.close_ts_ms is not None:
                m = replace(m, close_ts_ms=ev.close_ts_ms)
                self._close_timers.pop(t, None)
            if ev.price_ranges:
                # A broken grid keeps the old one rather than quoting on nonsense.
                with contextlib.suppress(MoneyError):
                    m = replace(m, grid=PriceGrid(tuple(Band(*b) for b in ev.price_ranges)))
            if ev.event_type in _CLOSING_EVENTS or ev.is_deactivated:
                status = MarketStatus.CLOSED
                if ev.event_type == "determined":
                    status = MarketStatus.DETERMINED
                m = replace(m, status=status)
            self.md.markets[t] = m
        if ev.event_type in _CLOSING_EVENTS or ev.is_deactivated:
            self._pull_market(t, "market_closed", out)
        if ev.settlement_value_micros is not None:
            self.ledger.settle(t, ev.settlement_value_micros)
        elif ev.result in ("yes", "no"):
            self.ledger.settle(t, MAX_PRICE_MICROS if ev.result == "yes" else 0)
        self._note_day(now)
        if m is not None and ev.close_ts_ms is not None and t in self._by_book:
            for rfq_id in self._by_book[t]:
                st = self._ctx.get(rfq_id)
                if st is not None:
                    self._arm_timers(m, (), st.lifecycle, now, out)
                    break

    def _on_snapshot(self, ev: E.BookSnapshotReceived, now: int, out: list[C.Command]) -> None:
        self._after_book(self.md.on_snapshot(ev), now, out)

    def _on_delta(self, ev: E.BookDeltaReceived, now: int, out: list[C.Command]) -> None:
        self._after_book(self.md.on_delta(ev), now, out)

    def _on_gap(self, ev: E.SequenceGap, now: int, out: list[C.Command]) -> None:
        if "orderbook" not in ev.channel:
            return
        self._after_book(self.md.on_gap(ev), now, out)

    def _after_book(self, upd: BookUpdate, now: int, out: list[C.Command]) -> None:
        """A gap pulls quotes and re-snapshots; a change prices parked RFQs and re-quotes."""
        for t in upd.gapped:
            out.append(C.RequestBookSnapshot(t))
            self._pull_market(t, "book_gap", out)
        if not upd.changed:
            return
        if self._pending:
            self._try_pending(upd.changed, now, out)
        for t in upd.changed:
            for rfq_id in list(self._by_book.get(t, {})):
                rec = self.rfqs.get(rfq_id)
                if rec is not None:
                    self._maybe_replace(rec, now, out)
