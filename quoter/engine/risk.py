"""Risk limits: contracts, worst-case loss, open-quote count, daily loss stop and kill state.

Contracts. A market's exposure is ``|position + provisional|`` (signed hundredths; provisional
is what we confirmed and have not yet seen filled). Event, series and total exposure are the
sums of the markets' absolute exposures (gross: different markets do not net), except for an
event whose markets are mutually exclusive (at most one resolves YES), which is measured per
outcome: see :func:`exclusive_event_centi`. Quoting is
checked against the worst case of *every* open quote: a market's worst-case gross is
``max(|c + Y|, |c - N|)`` with ``c`` its exposure and ``Y`` / ``N`` the sizes of the live
quotes whose YES / NO side could be hit (a 0 bid cannot be), i.e. all of them hit at once in
the direction that hurts; ``check_quote`` requires that, with the new quote, at every level.
A quote that breaks a contract limit only through one of its sides can still go out one-sided
(the side that reduces the position): :meth:`RiskManager.one_side_book`. ``check_fill`` checks
the exact side and size accepted against the committed exposure.

Worst-case loss of a binary market. For each outcome ``o`` in {YES, NO}::

    pnl_o = held_o + sum(provisional trades' pnl_o)
                   + sum over live quotes of min(0, pnl_o(yes side hit), pnl_o(no side hit))
    held_o = (payout of the held side if o is that side, else 0) - cost basis
    buying YES at y for s contracts: pnl_YES = (1 - y) * s, pnl_NO = -y * s
    buying NO  at n for s contracts: pnl_YES = -n * s,      pnl_NO = (1 - n) * s
    worst_case_loss = max(0, -min(pnl_YES, pnl_NO))

i.e. every live quote is accepted at once on whichever side hurts most in that outcome (for a
two-sided quote that is the side betting against ``o``; a one-sided quote whose only side wins
in ``o`` counts 0, as it may simply not be accepted). Fees
are not included (makers pay at most 0.0175 x C x P(1-P), small against the bids). The total is
the sum of the markets' worst cases (each market is assumed to go against us, which is
conservative for correlated markets and combos).

``check_quote`` / ``check_fill`` take the full picture of every market; ``check_quote_book`` /
``check_fill_book`` make the same decisions from the running totals of
:class:`~quoter.engine.exposure.ExposureBook` in O(1) (the engine's hot path).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from quoter.domain.money import CENTI_PER_CONTRACT, MAX_PRICE_MICROS, notional_micros
from quoter.domain.types import Side
from quoter.engine.exposure import ExposureBook
from quoter.engine.outcomes import exclusive_event_centi

__all__ = [
    "Limits",
    "MarketExposure",
    "QuoteExposure",
    "RiskManager",
    "Trade",
    "exclusive_event_centi",
    "worst_case_loss_micros",
]


class Limits(Protocol):
    """The risk limits the engine enforces (``quoter.config.RiskLimits`` has this shape)."""

    @property
    def max_position_centi_per_market(self) -> int | None:
        """Cap on |position + provisional| in one market."""
        ...

    @property
    def max_position_centi_per_event(self) -> int | None:
        """Cap on gross exposure summed over an event's markets."""
        ...

    @property
    def max_position_centi_per_series(self) -> int | None:
        """Cap on gross exposure summed over a series' markets."""
        ...

    @property
    def max_position_centi_total(self) -> int | None:
        """Cap on gross exposure over all markets."""
        ...

    @property
    def max_worst_case_loss_micros_per_market(self) -> int | None:
        """Cap on one market's worst-case loss."""
        ...

    @property
    def max_worst_case_loss_micros_total(self) -> int | None:
        """Cap on the sum of the markets' worst-case losses."""
        ...

    @property
    def max_open_quotes(self) -> int | None:
        """Cap on the number of live quotes."""
        ...

    @property
    def daily_realized_loss_stop_micros(self) -> int | None:
        """Stop quoting once today's realised loss reaches this."""
        ...


@dataclass(frozen=True, slots=True)
class QuoteExposure:
    """A live quote: either side may be hit for ``size_centi``."""

    yes_bid_micros: int
    no_bid_micros: int
    size_centi: int


@dataclass(frozen=True, slots=True)
class Trade:
    """A committed (or about to be) purchase of ``side`` at ``price_micros`` (that side's price)."""

    side: Side
    price_micros: int
    size_centi: int

    @property
    def signed_centi(self) -> int:
        """+size for YES, -size for NO."""
        return self.size_centi if self.side is Side.YES else -self.size_centi

    def pnl(self) -> tuple[int, int]:
        """PnL if YES, PnL if NO."""
        cost = notional_micros(self.price_micros, self.size_centi)
        win = notional_micros(MAX_PRICE_MICROS, self.size_centi) - cost
        return (win, -cost) if self.side is Side.YES else (-cost, win)


@dataclass(slots=True)
class MarketExposure:
    """Everything that can move one market's PnL."""

    ticker: str
    event_ticker: str = ""
    series_ticker: str = ""
    position_centi: int = 0
    cost_micros: int = 0
    provisional: list[Trade] = field(default_factory=list)
    quotes: list[QuoteExposure] = field(default_factory=list)
    #: The event's markets are mutually exclusive (measured per outcome, not summed).
    exclusive: bool = False

    @property
    def committed_centi(self) -> int:
        """Signed position + provisional."""
        return self.position_centi + sum(t.signed_centi for t in self.provisional)

    def outcome_pnl(self) -> tuple[int, int]:
        """PnL if YES, PnL if NO, of the position and provisional trades (no open quotes)."""
        payout = notional_micros(MAX_PRICE_MICROS, abs(self.position_centi))
        if self.position_centi >= 0:
            yes, no = payout - self.cost_micros, -self.cost_micros
        else:
            yes, no = -self.cost_micros, payout - self.cost_micros
        for t in self.provisional:
            dy, dn = t.pnl()
            yes, no = yes + dy, no + dn
        return yes, no


def worst_case_loss_micros(exp: MarketExposure, extra: QuoteExposure | None = None) -> int:
    """Worst loss over the two outcomes with every live quote (and ``extra``) accepted.

    Per quote and outcome the worst case is the side that loses being hit: if YES wins, our NO
    bid being hit costs ``no_bid x size``; if NO wins, our YES bid costs ``yes_bid x size``
    (the other side being hit, or no accept at all, is never worse). A 0 bid cannot be hit.
    """
    yes, no = exp.outcome_pnl()
    lose_if_yes = lose_if_no = 0  # micro-dollars x hundredths
    for q in exp.quotes:
        lose_if_yes += q.no_bid_micros * q.size_centi
        lose_if_no += q.yes_bid_micros * q.size_centi
    if extra is not None:
        lose_if_yes += extra.no_bid_micros * extra.size_centi
        lose_if_no += extra.yes_bid_micros * extra.size_centi
    # Round losses up to the micro-dollar: never understate.
    yes += lose_if_yes // -CENTI_PER_CONTRACT
    no += lose_if_no // -CENTI_PER_CONTRACT
    return max(0, -min(yes, no))


def _over(value: int, limit: int | None) -> bool:
    return limit is not None and value > limit


class RiskManager:
    """Applies ``Limits`` to exposures; holds the kill state and the daily loss stop."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.halted = False
        self.halt_reason = ""
        self._day_key: int | None = None
        self._day_start_realized_micros = 0
        self._realized_micros = 0

    # --- kill state and day ----------------------------------------------------------------

    def halt(self, reason: str) -> None:
        """Stop everything: no new quotes, no confirms."""
        self.halted, self.halt_reason = True, reason

    def resume(self) -> None:
        """Lift a halt."""
        self.halted, self.halt_reason = False, ""

    def note_realized(self, day_key: int, realized_total_micros: int) -> None:
        """Record total realised PnL now; a new ``day_key`` starts a new day from here."""
        if self._day_key != day_key:
            self._day_key = day_key
            self._day_start_realized_micros = realized_total_micros
        self._realized_micros = realized_total_micros

    def day_state(self) -> tuple[int | None, int]:
        """``(day_key, realised PnL at the day's start)``: what a restart must carry over."""
        return self._day_key, self._day_start_realized_micros

    def restore_day(self, day_key: int, start_realized_micros: int) -> None:
        """Resume a day begun before a restart, so its losses so far still count."""
        self._day_key, self._day_start_realized_micros = day_key, start_realized_micros

    @property
    def daily_loss_micros(self) -> int:
        """Today's realised loss (positive = lost money; fees included)."""
        return self._day_start_realized_micros - self._realized_micros

    def daily_stop_hit(self) -> bool:
        """True once today's realised loss reached the stop."""
        stop = self.limits.daily_realized_loss_stop_micros
        return stop is not None and self.daily_loss_micros >= stop

    # --- checks ----------------------------------------------------------------------------

    def _contracts(
        self, exposures: Mapping[str, MarketExposure], ticker: str, add_centi: int,
        signed: bool,
    ) -> str | None:
        """Check contract limits with ``add_centi`` more on ``ticker`` (signed or either side)."""
        target = exposures[ticker]

        def gross(e: MarketExposure) -> tuple[int, int]:
            base = e.committed_centi
            if e.ticker != ticker:
                return base, base
            if signed:
                return base + add_centi, base + add_centi
            return base + abs(add_centi), base - abs(add_centi)

        return self._scope_limits(exposures, target, gross)

    def _loss(
        self, exposures: Mapping[str, MarketExposure], ticker: str, extra: QuoteExposure | None
    ) -> str | None:
        """Check worst-case loss limits with ``extra`` quoted on ``ticker``."""
        lim = self.limits
        here = worst_case_loss_micros(exposures[ticker], extra)
        if _over(here, lim.max_worst_case_loss_micros_per_market):
            return "max_worst_case_loss_per_market"
        if lim.max_worst_case_loss_micros_total is not None:
            total = here + sum(
                worst_case_loss_micros(e) for t, e in exposures.items() if t != ticker
            )
            if _over(total, lim.max_worst_case_loss_micros_total):
                return "max_worst_case_loss_total"
        return None

    def _quote_contracts(
        self, exposures: Mapping[str, MarketExposure], ticker: str, quote: QuoteExposure
    ) -> str | None:
        """Contract limits against the worst case of every open quote plus ``quote``."""
        target = exposures[ticker]

        def worst(e: MarketExposure) -> tuple[int, int]:
            quotes = [*e.quotes, quote] if e.ticker == ticker else e.quotes
            c = e.committed_centi
            y = sum(q.size_centi for q in quotes if q.yes_bid_micros > 0)
            n = sum(q.size_centi for q in quotes if q.no_bid_micros > 0)
            return c + y, c - n

        return self._scope_limits(exposures, target, worst)

    def _scope_limits(
        self, exposures: Mapping[str, MarketExposure], target: MarketExposure,
        measure: Callable[[MarketExposure], tuple[int, int]],
    ) -> str | None:
        """The contract limits with each market's ``(high, low)`` signed size: its worst
        ``max(|high|, |low|)`` summed by scope, or an exclusive event per outcome."""
        values = [(e, measure(e)) for e in exposures.values()]
        same_event = [(e, v) for e, v in values if e.event_ticker == target.event_ticker]
        if target.exclusive:
            event = exclusive_event_centi(v for _, v in same_event)
        else:
            event = sum(max(abs(h), abs(lo)) for _, (h, lo) in same_event)
        here = measure(target)
        return self._over_scope(
            max(abs(here[0]), abs(here[1])),
            event,
            sum(max(abs(h), abs(lo)) for e, (h, lo) in values
                if e.series_ticker == target.series_ticker),
            sum(max(abs(h), abs(lo)) for _, (h, lo) in values),
        )

    def _over_scope(self, market: int, event: int, series: int, total: int) -> str | None:
        """The first contract limit (market, event, series, total) these sizes break."""
        lim = self.limits
        if _over(market, lim.max_position_centi_per_market):
            return "max_position_per_market"
        if _over(event, lim.max_position_centi_per_event):
            return "max_position_per_event"
        if _over(series, lim.max_position_centi_per_series):
            return "max_position_per_series"
        if _over(total, lim.max_position_centi_total):
            return "max_position_total"
        return None

    def check_quote(
        self,
        exposures: Mapping[str, MarketExposure],
        open_quotes: int,
        ticker: str,
        quote: QuoteExposure,
    ) -> str | None:
        """Reason the new ``quote`` on ``ticker`` breaks a limit, or None if it may be sent.

        ``exposures`` must hold ``ticker`` and must not include the quote being replaced;
        ``open_quotes`` counts RFQs with a live quote of ours, not counting this one.
        """
        if self.halted:
            return "halted"
        if self.daily_stop_hit():
            return "daily_loss_stop"
        if _over(open_quotes + 1, self.limits.max_open_quotes):
            return "max_open_quotes"
        return self._quote_contracts(exposures, ticker, quote) or self._loss(
            exposures, ticker, quote
        )

    def check_fill(
        self, exposures: Mapping[str, MarketExposure], ticker: str, trade: Trade
    ) -> str | None:
        """Reason committing ``trade`` on ``ticker`` breaks a limit, or None if it may go ahead.

        ``exposures`` must not include the accepted quote as a live quote.
        """
        if self.halted:
            return "halted"
        if self.daily_stop_hit():
            return "daily_loss_stop"
        reason = self._contracts(exposures, ticker, trade.signed_centi, signed=True)
        if reason:
            return reason
        exp = exposures[ticker]
        with_trade = MarketExposure(
            exp.ticker, exp.event_ticker, exp.series_ticker, exp.position_centi,
            exp.cost_micros, [*exp.provisional, trade], exp.quotes, exp.exclusive,
        )
        return self._loss({**exposures, ticker: with_trade}, ticker, None)

    def breaches(self, exposures: Mapping[str, MarketExposure]) -> list[str]:
        """Markets whose live quotes currently break a loss limit (their quotes should go)."""
        lim = self.limits
        per_market = lim.max_worst_case_loss_micros_per_market
        out = [
            t for t, e in exposures.items()
            if e.quotes and _over(worst_case_loss_micros(e), per_market)
        ]
        if lim.max_worst_case_loss_micros_total is not None:
            total = sum(worst_case_loss_micros(e) for e in exposures.values())
            if total > lim.max_worst_case_loss_micros_total:
                out.extend(t for t, e in exposures.items() if e.quotes and t not in out)
        return out

    # --- the same checks on running totals (O(1); see quoter.engine.exposure) ---------------

    def _contracts_book(
        self, book: ExposureBook, ticker: str, add_centi: int, signed: bool
    ) -> str | None:
        """``_contracts`` on the book's totals: only ``ticker``'s gross changes."""
        m = book.market(ticker)
        base = abs(m.committed_centi)
        gross = abs(m.committed_centi + add_centi) if signed else base + abs(add_centi)
        delta = gross - base
        up, down = (add_centi, add_centi) if signed else (abs(add_centi), -abs(add_centi))
        return self._over_scope(gross, book.event_centi_with(ticker, up, down, quotes=False),
                                book.series_gross_centi(m.series_ticker) + delta,
                                book.total_gross_centi + delta)

    def _quote_contracts_book(
        self, book: ExposureBook, ticker: str, quote: QuoteExposure, less: tuple[int, int]
    ) -> str | None:
        """``_quote_contracts`` on the book's totals (``less``: the replaced quotes' sizes)."""
        m = book.market(ticker)
        size = quote.size_centi
        add_yes = (size if quote.yes_bid_micros > 0 else 0) - less[0]
        add_no = (size if quote.no_bid_micros > 0 else 0) - less[1]
        worst = m.worst_gross_with(add_yes, add_no)
        delta = worst - m.worst_gross_centi
        return self._over_scope(worst, book.event_centi_with(ticker, add_yes, -add_no),
                                book.series_worst_centi(m.series_ticker) + delta,
                                book.total_worst_centi + delta)

    def _loss_book(
        self, book: ExposureBook, ticker: str, loss_if_yes: int, loss_if_no: int,
        pnl: tuple[int, int] = (0, 0),
    ) -> str | None:
        """``_loss`` on the book's totals with extra quote losses / provisional PnL on ticker."""
        lim = self.limits
        m = book.market(ticker)
        here = m.loss_with(loss_if_yes, loss_if_no, pnl[0], pnl[1])
        if _over(here, lim.max_worst_case_loss_micros_per_market):
            return "max_worst_case_loss_per_market"
        if _over(book.total_loss_micros - m.loss_micros + here,
                 lim.max_worst_case_loss_micros_total):
            return "max_worst_case_loss_total"
        return None

    def check_quote_book(
        self, book: ExposureBook, open_quotes: int, ticker: str, quote: QuoteExposure,
        less: tuple[int, int] = (0, 0), less_centi: tuple[int, int] = (0, 0),
    ) -> str | None:
        """``check_quote`` on running totals, less the quotes being replaced on ``ticker``:
        ``less`` their ``(loss if YES, loss if NO)``, ``less_centi`` their (YES-side,
        NO-side) sizes. ``open_quotes`` must not count the RFQ being quoted.
        """
        if self.halted:
            return "halted"
        if self.daily_stop_hit():
            return "daily_loss_stop"
        if _over(open_quotes + 1, self.limits.max_open_quotes):
            return "max_open_quotes"
        return self._quote_contracts_book(book, ticker, quote, less_centi) or (
            self._loss_book(
                book, ticker, quote.no_bid_micros * quote.size_centi - less[0],
                quote.yes_bid_micros * quote.size_centi - less[1],
            )
        )

    def check_fill_book(self, book: ExposureBook, ticker: str, trade: Trade) -> str | None:
        """``check_fill`` on running totals (the accepted quote must not be in the book)."""
        if self.halted:
            return "halted"
        if self.daily_stop_hit():
            return "daily_loss_stop"
        reason = self._contracts_book(book, ticker, trade.signed_centi, signed=True)
        if reason:
            return reason
        return self._loss_book(book, ticker, 0, 0, trade.pnl())

    def may_breach(self, book: ExposureBook) -> bool:
        """False when :meth:`breaches` would surely find nothing (cheap pre-check)."""
        quoted = book.quoted_markets()
        if not quoted:
            return False
        per_market = self.limits.max_worst_case_loss_micros_per_market
        if per_market is not None and any(m.loss_micros > per_market for m in quoted):
            return True
        return _over(book.total_loss_micros, self.limits.max_worst_case_loss_micros_total)
