"""Running risk totals per market, event, series and overall, kept up to date incrementally.

``quoter.engine.risk`` defines exposure and worst-case loss over a full picture of every market
(:class:`~quoter.engine.risk.MarketExposure`). Rebuilding that picture for every RFQ costs time
proportional to the open quotes; this book keeps the same quantities as sums that the engine
adjusts whenever a quote, a provisional trade or a position changes, so a risk check costs
O(1). Everything is an exact integer sum, so the totals equal a full recomputation exactly
(checked by tests against ``Engine._exposures``).

Per market: position and cost (from the ledger), the provisional trades' signed size and PnL
per outcome, and the live quotes' loss per outcome (``sum bid x size`` in micro-dollars x
hundredths, the unit ``worst_case_loss_micros`` rounds once per market).
"""

from __future__ import annotations

from dataclasses import dataclass

from quoter.domain.money import CENTI_PER_CONTRACT, MAX_PRICE_MICROS, notional_micros
from quoter.engine.outcomes import exclusive_event_centi

__all__ = ["ExposureBook", "MarketTotals", "market_loss_micros"]


def market_loss_micros(
    position_centi: int, cost_micros: int, pnl_yes_micros: int, pnl_no_micros: int,
    loss_if_yes: int, loss_if_no: int,
) -> int:
    """Return the worst-case loss of one market from its sums (same as ``worst_case_loss``)."""
    payout = notional_micros(MAX_PRICE_MICROS, abs(position_centi))
    if position_centi >= 0:
        yes, no = payout - cost_micros, -cost_micros
    else:
        yes, no = -cost_micros, payout - cost_micros
    # Round the quotes' losses up to the micro-dollar: never understate.
    yes += pnl_yes_micros + loss_if_yes // -CENTI_PER_CONTRACT
    no += pnl_no_micros + loss_if_no // -CENTI_PER_CONTRACT
    return max(0, -min(yes, no))


@dataclass(slots=True)
class MarketTotals:
    """One market's sums; ``gross_centi`` and ``loss_micros`` are derived and cached."""

    ticker: str
    event_ticker: str = ""
    series_ticker: str = ""
    position_centi: int = 0
    cost_micros: int = 0
    provisional_centi: int = 0
    provisional_pnl_yes_micros: int = 0
    provisional_pnl_no_micros: int = 0
    # Live quotes: sum of no_bid x size (lost if YES wins) and yes_bid x size (if NO wins).
    quote_loss_if_yes: int = 0
    quote_loss_if_no: int = 0
    n_quotes: int = 0
    # Live quotes' sizes by the side a hit would buy (a 0 bid cannot be hit).
    quote_yes_centi: int = 0
    quote_no_centi: int = 0
    gross_centi: int = 0
    loss_micros: int = 0
    #: |committed| after every live quote is hit on the side that moves it furthest.
    worst_gross_centi: int = 0

    @property
    def committed_centi(self) -> int:
        """Signed position + provisional."""
        return self.position_centi + self.provisional_centi

    def worst_gross_with(self, add_yes_centi: int = 0, add_no_centi: int = 0) -> int:
        """Worst-case |position| if every live quote (and the extra sizes) were hit at once,
        all on the YES sides or all on the NO sides (a quote is hit at most once, on one
        side)."""
        c = self.committed_centi
        return max(abs(c + self.quote_yes_centi + add_yes_centi),
                   abs(c - self.quote_no_centi - add_no_centi))

    def loss_with(
        self, loss_if_yes: int = 0, loss_if_no: int = 0, pnl_yes: int = 0, pnl_no: int = 0
    ) -> int:
        """Worst-case loss with extra quote losses and extra provisional PnL added."""
        return market_loss_micros(
            self.position_centi, self.cost_micros,
            self.provisional_pnl_yes_micros + pnl_yes, self.provisional_pnl_no_micros + pnl_no,
            self.quote_loss_if_yes + loss_if_yes, self.quote_loss_if_no + loss_if_no,
        )


class ExposureBook:
    """Per-market sums and their totals by event, series and overall."""

    def __init__(self) -> None:
        self._markets: dict[str, MarketTotals] = {}
        self._event_gross: dict[str, int] = {}
        self._series_gross: dict[str, int] = {}
        self._event_worst: dict[str, int] = {}
        self._series_worst: dict[str, int] = {}
        self.total_worst_centi = 0
        # Markets by event, and the events whose markets are mutually exclusive (measured per
        # outcome, ``exclusive_event_centi``; an event's structure does not change).
        self._event_markets: dict[str, dict[str, None]] = {}
        self._exclusive: set[str] = set()
        # Markets with at least one live quote (for the breach pre-check), insertion ordered.
        self._quoted: dict[str, None] = {}
        self.total_gross_centi = 0
        self.total_loss_micros = 0
        #: RFQs with at least one quote that could be hit (the ``max_open_quotes`` count).
        self.open_rfqs = 0
        #: Cash the open quotes could take if hit (per RFQ its costliest side: one RFQ, one
        #: trade) and the cost of confirmed trades not filled yet, in micro-dollars.
        self.quote_cash_micros = 0
        self.provisional_cash_micros = 0

    # --- reads -----------------------------------------------------------------------------

    def market(self, ticker: str) -> MarketTotals:
        """The market's sums (an empty record, not stored, if nothing is known about it)."""
        m = self._markets.get(ticker)
        return m if m is not None else MarketTotals(ticker)

    def markets(self) -> dict[str, MarketTotals]:
        """Every market with a record (a shallow copy of the mapping)."""
        return dict(self._markets)

    def event_gross_centi(self, event_ticker: str) -> int:
        """Sum of |committed| over an event's markets."""
        return self._event_gross.get(event_ticker, 0)

    def series_gross_centi(self, series_ticker: str) -> int:
        """Sum of |committed| over a series' markets."""
        return self._series_gross.get(series_ticker, 0)

    def event_worst_centi(self, event_ticker: str) -> int:
        """Sum of the worst-case gross (every live quote hit) over an event's markets."""
        return self._event_worst.get(event_ticker, 0)

    def series_worst_centi(self, series_ticker: str) -> int:
        """Sum of the worst-case gross over a series' markets."""
        return self._series_worst.get(series_ticker, 0)

    def is_exclusive(self, event_ticker: str) -> bool:
        """True when the event's markets are known to be mutually exclusive."""
        return event_ticker in self._exclusive

    def event_centi_with(
        self, ticker: str, up_centi: int, down_centi: int, *, quotes: bool = True
    ) -> int:
        """The event contract measure of ``ticker``'s event with ``ticker`` moved up to
        ``+up_centi`` (YES hits) and down to ``+down_centi`` (NO hits, so usually <= 0).

        With ``quotes`` every live quote is hit too (the worst case), else only committed
        sizes count. Summed per market for an ordinary event (O(1) from the totals), per
        outcome for a mutually exclusive one (O(markets in the event)).
        """
        m = self.market(ticker)
        event = m.event_ticker
        if event not in self._exclusive:
            if quotes:
                worst = m.worst_gross_with(up_centi, -down_centi)
                return self.event_worst_centi(event) + worst - m.worst_gross_centi
            c = m.committed_centi
            gross = max(abs(c + up_centi), abs(c + down_centi))
            return self.event_gross_centi(event) + gross - m.gross_centi

        def point(t: MarketTotals) -> tuple[int, int]:
            c = t.committed_centi
            hi, lo = (c + t.quote_yes_centi, c - t.quote_no_centi) if quotes else (c, c)
            return (hi + up_centi, lo + down_centi) if t.ticker == ticker else (hi, lo)

        points = [point(self._markets[t]) for t in self._event_markets.get(event, {})]
        if ticker not in self._markets:
            points.append(point(m))
        return exclusive_event_centi(points)

    def quoted_markets(self) -> list[MarketTotals]:
        """Markets with at least one live quote."""
        return [self._markets[t] for t in self._quoted]

    # --- writes ----------------------------------------------------------------------------

    def _get(self, ticker: str) -> MarketTotals:
        m = self._markets.get(ticker)
        if m is None:
            m = self._markets[ticker] = MarketTotals(ticker)
        return m

    def _unlink(self, m: MarketTotals) -> None:
        self._event_gross[m.event_ticker] = self._event_gross.get(m.event_ticker, 0) - m.gross_centi
        self._series_gross[m.series_ticker] = (
            self._series_gross.get(m.series_ticker, 0) - m.gross_centi
        )
        self.total_gross_centi -= m.gross_centi
        self.total_loss_micros -= m.loss_micros
        self._event_worst[m.event_ticker] = (
            self._event_worst.get(m.event_ticker, 0) - m.worst_gross_centi
        )
        self._series_worst[m.series_ticker] = (
            self._series_worst.get(m.series_ticker, 0) - m.worst_gross_centi
        )
        self.total_worst_centi -= m.worst_gross_centi

    def _link(self, m: MarketTotals) -> None:
        m.gross_centi = abs(m.committed_centi)
        m.loss_micros = m.loss_with()
        m.worst_gross_centi = w = m.worst_gross_with()
        self._event_worst[m.event_ticker] = self._event_worst.get(m.event_ticker, 0) + w
        self._series_worst[m.series_ticker] = self._series_worst.get(m.series_ticker, 0) + w
        self.total_worst_centi += w
        self._event_gross[m.event_ticker] = self._event_gross.get(m.event_ticker, 0) + m.gross_centi
        self._series_gross[m.series_ticker] = (
            self._series_gross.get(m.series_ticker, 0) + m.gross_centi
        )
        self.total_gross_centi += m.gross_centi
        self.total_loss_micros += m.loss_micros
        if m.n_quotes:
            self._quoted[m.ticker] = None
        else:
            self._quoted.pop(m.ticker, None)

    def set_meta(
        self, ticker: str, event_ticker: str, series_ticker: str, exclusive: bool = False
    ) -> None:
        """Record which event and series a market belongs to (and that the event's markets
        are mutually exclusive, once known: a later call without the flag keeps it)."""
        m = self._get(ticker)
        self._unlink(m)
        self._event_markets.get(m.event_ticker, {}).pop(ticker, None)
        m.event_ticker, m.series_ticker = event_ticker, series_ticker
        self._event_markets.setdefault(event_ticker, {})[ticker] = None
        if exclusive and event_ticker:
            self._exclusive.add(event_ticker)
        self._link(m)

    def set_position(self, ticker: str, position_centi: int, cost_micros: int) -> None:
        """Record the market's authoritative position and cost basis."""
        m = self._get(ticker)
        self._unlink(m)
        m.position_centi, m.cost_micros = position_centi, cost_micros
        self._link(m)

    def add_provisional(
        self, ticker: str, signed_centi: int, pnl_yes_micros: int, pnl_no_micros: int, sign: int
    ) -> None:
        """Add (``sign`` = 1) or remove (-1) one provisional trade."""
        m = self._get(ticker)
        self._unlink(m)
        m.provisional_centi += sign * signed_centi
        m.provisional_pnl_yes_micros += sign * pnl_yes_micros
        m.provisional_pnl_no_micros += sign * pnl_no_micros
        # A trade's cost is what it loses if its side loses.
        self.provisional_cash_micros += sign * max(0, -min(pnl_yes_micros, pnl_no_micros))
        self._link(m)

    def add_quotes(
        self, ticker: str, loss_if_yes: int, loss_if_no: int, n_quotes: int, sign: int,
        yes_centi: int = 0, no_centi: int = 0, cash_micros: int = 0,
    ) -> None:
        """Add (``sign`` = 1) or remove (-1) one RFQ's live quotes on ``ticker``."""
        self.quote_cash_micros += sign * cash_micros
        m = self._get(ticker)
        self._unlink(m)
        m.quote_loss_if_yes += sign * loss_if_yes
        m.quote_loss_if_no += sign * loss_if_no
        m.n_quotes += sign * n_quotes
        m.quote_yes_centi += sign * yes_centi
        m.quote_no_centi += sign * no_centi
        self.open_rfqs += sign
        self._link(m)
