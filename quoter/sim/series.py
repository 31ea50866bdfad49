"""Series of the simulated exchange: their fee terms and scheduled fee changes.

Kalshi keeps ``fee_type`` and ``fee_multiplier`` on the series (kalshi-api.md §5.4, the SDK's
``Series`` model). Here too: a market listed in a registered series is charged by the
series' :class:`~quoter.domain.fees.FeeSchedule`, whatever ``SimMarket.fees`` said; a market
whose series is not registered registers it from its own fees. A scheduled fee change
(``GET /series/fee_changes``) replaces the schedule of the series and of every market in it
when it falls due (an exchange timer, so ``advance`` applies it).
"""

from __future__ import annotations

import dataclasses

from quoter.domain.fees import FeeSchedule
from quoter.sim.base import ExchangeBase
from quoter.sim.models import SeriesFeeChange, SimError, SimMarket, SimSeries

__all__ = ["SeriesMixin"]


class SeriesMixin(ExchangeBase):
    """Register series, answer their fee terms, schedule and apply fee changes."""

    def add_series(self, series: SimSeries) -> None:
        """Register a series (before its markets, so they are charged its fees)."""
        if series.ticker in self._series:
            raise SimError(409, "conflict", f"series {series.ticker} already exists")
        self._series[series.ticker] = series
        self._series_updated_wall_ns[series.ticker] = self._wall()

    def get_series(self, ticker: str) -> SimSeries:
        """The series, or 404."""
        s = self._series.get(ticker)
        if s is None:
            raise SimError(404, "not_found", f"series {ticker} not found")
        return s

    def list_series(self) -> list[SimSeries]:
        """Every series, in registration order."""
        return list(self._series.values())

    def series_updated_wall_ns(self, ticker: str) -> int:
        """When the series' terms last changed (wall ns)."""
        return self._series_updated_wall_ns[ticker]

    def schedule_fee_change(self, series_ticker: str, fees: FeeSchedule,
                            at_wall_ns: int) -> str:
        """Schedule new fee terms for a series at a wall time; returns the change id."""
        self.get_series(series_ticker)
        change = SeriesFeeChange(self._new_id(), series_ticker, fees, at_wall_ns)
        self._fee_changes.append(change)
        # Timers run on the monotonic clock: convert the wall deadline once, now.
        due_ns = self.clock.now_ns() + max(0, at_wall_ns - self._wall())
        self._schedule(due_ns, "fee_change", change.id)
        return change.id

    def fee_changes(self, series_ticker: str | None = None, *,
                    historical: bool = False) -> list[SeriesFeeChange]:
        """Scheduled fee changes (only those still ahead unless ``historical``)."""
        now = self._wall()
        return [c for c in self._fee_changes
                if (series_ticker is None or c.series_ticker == series_ticker)
                and (historical or c.scheduled_wall_ns > now)]

    def _series_for_market(self, m: SimMarket) -> SimMarket:
        """Register ``m``'s series if new; return ``m`` charged by its series' fees."""
        s = self._series.get(m.series_ticker)
        if s is None:
            self.add_series(SimSeries(m.series_ticker, title=m.series_ticker, fees=m.fees,
                                      exchange_index=m.exchange_index))
            return m
        return m if m.fees == s.fees else dataclasses.replace(m, fees=s.fees)

    def _apply_fee_change(self, change_id: str) -> None:
        change = next(c for c in self._fee_changes if c.id == change_id)
        s = self._series[change.series_ticker]
        self._series[s.ticker] = dataclasses.replace(s, fees=change.fees)
        self._series_updated_wall_ns[s.ticker] = self._wall()
        for ticker, m in self._markets.items():
            if m.series_ticker == s.ticker:
                self._markets[ticker] = dataclasses.replace(m, fees=change.fees)
