"""Market metadata, lifecycle and order books."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Final

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.grid import Band, PriceGrid
from quoter.domain.money import MAX_PRICE_MICROS, MoneyError
from quoter.domain.types import MarketInfo, MarketStatus
from quoter.engine.intake import Intake
from quoter.engine.marketdata import BookUpdate
from quoter.engine.quoting import Quoting
from quoter.engine.records import MS, Records
from quoter.engine.routing import (
    NO_MARKET,
    UNKNOWN_LEG,
)
from quoter.engine.tracker import QuoteTracker
from quoter.engine.valuation import Valuation

#: Lifecycle events after which a market no longer trades.
CLOSING_EVENTS: Final = ("closed", "deactivated", "determined", "settled", "finalized")
#: Lifecycle events that pay out positions (``determined`` only fixes the result).
SETTLING_EVENTS: Final = ("settled", "finalized")
#: Statuses from which ``activated`` resumes trading (a pause, or not yet open).
REOPENABLE: Final = (MarketStatus.INACTIVE, MarketStatus.INITIALIZED)


class Market:
    """Follow market metadata, lifecycle changes and order books."""

    def __init__(
        self,
        records: Records,
        valuation: Valuation,
        tracker: QuoteTracker,
        quoting: Quoting,
        intake: Intake,
    ) -> None:
        """Hand the part its collaborators (the records and the parts below it)."""
        self.r = records
        self.valuation = valuation
        self.tracker = tracker
        self.quoting = quoting
        self.intake = intake

    def on_market_loaded(self, ev: E.MarketLoaded, now: int, out: list[C.Command]) -> None:
        m = ev.market
        self.r.md.markets[m.ticker] = m
        self.r.ledger.register_market(m.ticker, m.event_ticker, m.series_ticker)
        if m.mutually_exclusive and m.event_ticker:
            self.r.exclusive_events.add(m.event_ticker)
        self.r.book.set_meta(m.ticker, m.event_ticker, m.series_ticker,
                             m.event_ticker in self.r.exclusive_events)
        self.r.fetching.pop(m.ticker, None)
        self.intake.try_pending((m.ticker,), now, out)

    def on_market_failed(self, ev: E.MarketLoadFailed, now: int, out: list[C.Command]) -> None:
        self.r.fetching.pop(ev.market_ticker, None)
        for rfq_id in list(self.r.pending):
            rec = self.r.rfqs[rfq_id]
            legs = self.valuation.legs_of(rec.rfq, self.r.md.markets.get(rec.market_ticker))
            if ev.market_ticker in (rec.market_ticker, *legs):
                out.append(C.CancelTimer(f"pending:{rfq_id}"))
                # A combo whose leg the exchange does not know is declined as such.
                why = NO_MARKET if ev.market_ticker == rec.market_ticker else UNKNOWN_LEG
                self.tracker.drop(rec, why, out, f"{ev.market_ticker}: {ev.reason}")

    def on_lifecycle(self, ev: E.MarketLifecycleChanged, now: int, out: list[C.Command]) -> None:
        """Keep metadata and status current (kalshi-api.md §2.5; Kalshi's market lifecycle:
        ``deactivated`` pauses, ``activated`` resumes, ``close_date_updated`` can reopen a
        closed market, ``determined`` fixes the result while positions stay until ``settled``
        pays them out). Pull quotes when a market stops trading; settle on ``settled``."""
        t = ev.market_ticker
        m = self.r.md.markets.get(t)
        kind = ev.event_type
        if m is not None:
            if ev.close_ts_ms is not None:
                m = replace(m, close_ts_ms=ev.close_ts_ms)
                self.r.close_timers.pop(t, None)
            if ev.price_ranges:
                # A broken grid keeps the old one rather than quoting on nonsense.
                with contextlib.suppress(MoneyError):
                    m = replace(m, grid=PriceGrid(tuple(Band(*b) for b in ev.price_ranges)))
            status = self.status_after(m, ev, now)
            if status is not m.status:
                m = replace(m, status=status)
            self.r.md.markets[t] = m
        if (kind == "deactivated" and ev.is_deactivated is not False) or ev.is_deactivated:
            self.tracker.pull_market(t, "market_paused", out)
        elif kind in CLOSING_EVENTS and kind != "deactivated":
            self.tracker.pull_market(t, "market_closed", out)
        value = self.settlement_value(ev)
        if kind == "determined" and value is not None:
            # Positions stay (the exchange still lists them) until the settlement pays out.
            self.r.determined[t] = value
        elif kind in SETTLING_EVENTS:
            value = value if value is not None else self.r.determined.get(t)
            if value is not None:
                self.valuation.note_day(now)  # a new day starts before this settlement's PnL
                self.r.ledger.settle(t, value)
                self.r.determined.pop(t, None)
        self.valuation.note_day(now)
        if m is not None and ev.close_ts_ms is not None and t in self.r.by_book:
            for rfq_id in self.r.by_book[t]:
                st = self.r.ctx.get(rfq_id)
                if st is not None:
                    self.quoting.arm_timers(m, (), st.lifecycle, now, out)
                    break

    def status_after(self, m: MarketInfo, ev: E.MarketLifecycleChanged, now: int) -> MarketStatus:
        """The market's status once ``ev`` applies (unknown events leave it as it is)."""
        kind, status = ev.event_type, m.status
        if kind == "deactivated":  # a pause; ``is_deactivated: false`` would say it ended
            return MarketStatus.INACTIVE if ev.is_deactivated is not False else MarketStatus.ACTIVE
        if kind == "activated":
            return MarketStatus.ACTIVE if status in REOPENABLE else status
        if kind == "close_date_updated" and status is MarketStatus.CLOSED and (
            m.close_ts_ms is not None and m.close_ts_ms * MS > now + self.r.wall_offset_ns
        ):
            return MarketStatus.ACTIVE  # closed, then its close time moved into the future
        if kind == "closed":
            return MarketStatus.CLOSED
        if kind == "determined":
            return MarketStatus.DETERMINED
        if kind in SETTLING_EVENTS:
            return MarketStatus.FINALIZED
        return status

    @staticmethod
    def settlement_value(ev: E.MarketLifecycleChanged) -> int | None:
        """The YES payout the event states, if any (value, else result)."""
        if ev.settlement_value_micros is not None:
            return ev.settlement_value_micros
        if ev.result in ("yes", "no"):
            return MAX_PRICE_MICROS if ev.result == "yes" else 0
        return None

    def on_snapshot(self, ev: E.BookSnapshotReceived, now: int, out: list[C.Command]) -> None:
        self.after_book(self.r.md.on_snapshot(ev), now, out)

    def on_delta(self, ev: E.BookDeltaReceived, now: int, out: list[C.Command]) -> None:
        self.after_book(self.r.md.on_delta(ev), now, out)

    def on_gap(self, ev: E.SequenceGap, now: int, out: list[C.Command]) -> None:
        if "orderbook" not in ev.channel:
            return
        self.after_book(self.r.md.on_gap(ev), now, out)

    def after_book(self, upd: BookUpdate, now: int, out: list[C.Command]) -> None:
        """A gap pulls quotes and re-snapshots; a change prices parked RFQs and re-quotes."""
        for t in upd.gapped:
            out.append(C.RequestBookSnapshot(t))
            self.tracker.pull_market(t, "book_gap", out)
        if not upd.changed:
            return
        if self.r.pending:
            self.intake.try_pending(upd.changed, now, out)
        for t in upd.changed:
            for rfq_id in list(self.r.by_book.get(t, {})):
                rec = self.r.rfqs.get(rfq_id)
                if rec is not None:
                    self.quoting.maybe_replace(rec, now, out)
