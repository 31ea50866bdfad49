"""What a backtest measures: decisions, quotes, accepts, fills, PnL and markouts.

All money is integer micro-dollars, quantities hundredths of a contract. A fill buys YES
(``book_side`` bid) or NO (ask) at its price; cash is what we paid (price x count and the fee).
PnL is reported three ways per market and per strategy:

* ``realized_micros``: cash plus the payout of markets that settled in the recording;
* ``marked_micros``: realized plus open positions valued at the last mid of the book (YES at
  mid, NO at $1 - mid; a market with no book is valued at cost);
* markouts of each fill at ``MARKOUT_HORIZONS_S`` against the mid: ``(mid_then - price) x
  count`` for a YES buy (NO: ``(price_no - (1 - mid))`` with the sign turned), so a positive
  markout means the price moved our way;
* markouts against our own fair, signed the same way: at the fill, against the fair of YES in
  the quote that filled (the edge our model kept), and at each horizon against the fair of the
  latest quote we sent in that market by then (our model's later view of the price).

Also, in bounded memory (``backtests.timeseries``): inventory (net contracts, YES minus NO, per
market and in total) and the worst-case loss of the open positions (per market: what it costs
less what it pays in the outcome worse for us; fees included, exact integers), sampled every
``INVENTORY_INTERVAL_NS`` of virtual time in which anything happened, at each fill and at each
settlement; latency distributions in virtual time (RFQ seen -> first quote sent, accept seen ->
confirm sent, and every round trip drawn from the latency model); and breakdowns of quotes,
accepts, fills, fees, PnL and markouts by strategy, series, market and requester.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from backtests.features import RfqFeatures
from backtests.models import FeaturedSample, SideSample, side_samples, side_samples_by_side
from backtests.timeseries import BoundedSeries, LatencyHistogram
from quoter.clock import VirtualClock
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.domain.book import OrderBook
from quoter.domain.money import CENTI_PER_CONTRACT, MAX_PRICE_MICROS
from quoter.domain.types import BookSide, Side
from quoter.sim.exchange import SimExchange


class _Venue(Protocol):
    exchange: SimExchange


class BacktestLoop(Protocol):
    """What the metrics read of the loop (``backtests.engine.BacktestLoop``)."""

    frames: int
    decode_errors: int

    @property
    def mirror(self) -> Mapping[str, OrderBook]:
        """The books of the replayed frames."""
        ...

    @property
    def clock(self) -> VirtualClock:
        """The virtual clock."""
        ...

    @property
    def venue(self) -> _Venue | None:
        """The venue."""
        ...

    def at(self, due_ns: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` at ``due_ns``."""
        ...

    def features_of(self, rfq_id: str) -> RfqFeatures | None:
        """The RFQ's features now."""
        ...

__all__ = ["BREAKDOWNS", "INVENTORY_INTERVAL_NS", "MARKET_SERIES_CAPACITY",
           "MARKOUT_HORIZONS_S", "FillRecord", "Metrics"]

MARKOUT_HORIZONS_S = (1, 10, 60, 300)
_NS = 1_000_000_000
#: Inventory and exposure are sampled at most once per this much virtual time (and at fills).
INVENTORY_INTERVAL_NS = _NS
#: Points kept per market's inventory series (the total keeps ``DEFAULT_CAPACITY``).
MARKET_SERIES_CAPACITY = 500
#: The breakdowns in the summary, by what they group on.
BREAKDOWNS = ("by_strategy", "by_series", "by_market", "by_requester")


@dataclass
class FillRecord:
    """One of our fills and its markouts."""

    ts_ns: int
    market_ticker: str
    strategy: str
    bought_yes: bool
    price_micros: int  # of the side bought
    count_centi: int
    fee_micros: int
    order_id: str = ""
    markouts_micros: dict[int, int | None] = field(default_factory=dict)
    #: Against our fair of YES at each horizon (the market's latest quote of ours by then).
    markouts_fair_micros: dict[int, int | None] = field(default_factory=dict)
    #: Against the fair of the quote that filled (known at the end: fills name only the order).
    markout_fair_at_fill_micros: int | None = None


@dataclass
class _Position:
    yes_centi: int = 0
    no_centi: int = 0
    cash_micros: int = 0
    settled_micros: int | None = None
    settled_yes_micros: int | None = None

    def net_centi(self) -> int:
        """Net contracts held (YES minus NO); none once the market settled."""
        return 0 if self.settled_micros is not None else self.yes_centi - self.no_centi

    def worst_case_loss_micros(self) -> int:
        """The loss if the market settles the worse way for us: what the position cost (fees
        included) less what it pays in that outcome (the smaller of the YES and NO holdings,
        at $1 each); none once settled."""
        if self.settled_micros is not None:
            return 0
        paid_at_least = _value(MAX_PRICE_MICROS, min(self.yes_centi, self.no_centi))
        return max(0, -self.cash_micros - paid_at_least)


def _value(price_micros: int, count_centi: int) -> int:
    return price_micros * count_centi // CENTI_PER_CONTRACT


def _against(fair_yes_micros: int | None, rec: FillRecord) -> int | None:
    """The fill's markout against a fair of YES (positive: we paid less than it is worth)."""
    if fair_yes_micros is None:
        return None
    value = fair_yes_micros if rec.bought_yes else MAX_PRICE_MICROS - fair_yes_micros
    return _value(value - rec.price_micros, rec.count_centi)


@dataclass
class Metrics:
    """Counters and fills of one backtest run, and its summary."""

    auction: str = ""
    prefiltered: int = 0
    engine_errors: int = 0
    halts: int = 0
    rfqs_seen: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    decline_reasons: Counter[str] = field(default_factory=Counter)
    quotes_sent: int = 0
    quotes_placed: int = 0
    quotes_rejected: int = 0
    accepts: int = 0
    confirms: int = 0
    confirm_failures: int = 0
    fills: list[FillRecord] = field(default_factory=list)
    #: (ts_ns, realized PnL, marked PnL) sampled at each fill, markout probe and settlement,
    #: and at the end, for the report's plot.
    pnl_curve: list[tuple[int, int, int]] = field(default_factory=list)
    _strategy_of_rfq: dict[str, str] = field(default_factory=dict)
    #: Per RFQ, the quotes sent and not yet answered (placed or rejected), oldest first.
    _sent: dict[str, list[cmd.SubmitQuote]] = field(default_factory=dict)
    _rfq_of_quote: dict[str, str] = field(default_factory=dict)
    _quote_of_order: dict[str, str] = field(default_factory=dict)
    _positions: dict[str, _Position] = field(default_factory=dict)
    _quoted_by_strategy: Counter[str] = field(default_factory=Counter)
    _accepted_by_strategy: Counter[str] = field(default_factory=Counter)
    #: Our quotes and whether they were accepted: (our edge over the mid, accepted), for
    #: the report's win rate against edge.
    quote_edges: dict[str, tuple[int, bool]] = field(default_factory=dict)
    #: Our quotes as placed, for calibrating an auction model on a run: (mid, YES bid, NO
    #: bid, the book's best YES bid, best NO bid, the side taken or None, our fair of YES).
    quotes_seen: dict[str, tuple[int | None, int, int, int | None, int | None, Side | None,
                                 int | None]] = field(default_factory=dict)
    #: Per quote of ours, the RFQ's features when it was placed (for a logistic calibration).
    quote_features: dict[str, RfqFeatures | None] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    #: Per RFQ: its market and requester (``creator_id``), for the breakdowns.
    _rfq_info: dict[str, tuple[str, str]] = field(default_factory=dict)
    _series_of_market: dict[str, str] = field(default_factory=dict)
    _accepted_quotes: set[str] = field(default_factory=set)
    #: Our fair of YES in the latest quote sent per market (the fair markouts' reference).
    _fair_of_market: dict[str, int | None] = field(default_factory=dict)
    #: (ts_ns, net contracts in total, worst-case loss in total), downsampled.
    inventory: BoundedSeries = field(default_factory=BoundedSeries)
    #: Per market: (ts_ns, net contracts), downsampled.
    inventory_by_market: dict[str, BoundedSeries] = field(default_factory=dict)
    _net_total_centi: int = 0
    _worst_total_micros: int = 0
    _next_sample_ns: int | None = None
    _max_abs_net_total_centi: int = 0
    _max_worst_total_micros: int = 0
    _max_worst_at_ns: int | None = None
    _max_abs_net_by_market: dict[str, int] = field(default_factory=dict)
    #: Latency distributions (virtual ns): RFQ -> first quote, accept -> confirm, round trips.
    rfq_to_quote: LatencyHistogram = field(default_factory=LatencyHistogram)
    accept_to_confirm: LatencyHistogram = field(default_factory=LatencyHistogram)
    round_trips: dict[str, LatencyHistogram] = field(default_factory=dict)
    _rfq_seen_ns: dict[str, int] = field(default_factory=dict)
    _accept_seen_ns: dict[str, int] = field(default_factory=dict)

    def decision(self, command: cmd.RecordDecision, now_ns: int) -> None:
        """Count an engine decision (quote / decline with its reason)."""
        self.decisions[command.decision] += 1
        if command.decision != "quote":
            self.decline_reasons[command.reason or command.decision] += 1
            self._rfq_seen_ns.pop(command.rfq_id, None)  # never quoted: no time to quote

    def round_trip(self, kind: str, rtt_ns: int) -> None:
        """A round trip the loop drew from its latency model for a ``kind`` request."""
        self.round_trips.setdefault(kind, LatencyHistogram()).add(rtt_ns)

    def confirm_sent(self, command: cmd.ConfirmQuote, now_ns: int) -> None:
        """A confirm left for the exchange: the accept's time to confirm."""
        seen = self._accept_seen_ns.pop(command.quote_id, None)
        if seen is not None:
            self.accept_to_confirm.add(now_ns - seen)

    def submitted(self, command: cmd.SubmitQuote, now_ns: int) -> None:
        """A quote left for the exchange."""
        self.quotes_sent += 1
        self._strategy_of_rfq[command.rfq_id] = command.strategy
        self._sent.setdefault(command.rfq_id, []).append(command)
        self._fair_of_market[command.market_ticker] = command.fair_yes_micros
        seen = self._rfq_seen_ns.pop(command.rfq_id, None)
        if seen is not None:  # the first quote on the RFQ (a replace is not a time to quote)
            self.rfq_to_quote.add(now_ns - seen)

    def observe(self, event: ev.Event, now_ns: int, loop: BacktestLoop) -> None:
        """Follow what the engine sees."""
        self.tick(now_ns)
        match event:
            case ev.RfqReceived(rfq_id=rfq_id, market_ticker=ticker, creator_id=creator):
                self.rfqs_seen += 1
                self._rfq_info[rfq_id] = (ticker, creator)
                self._rfq_seen_ns.setdefault(rfq_id, now_ns)
            case ev.MarketLoaded(market=market):
                if market.series_ticker:
                    self._series_of_market[market.ticker] = market.series_ticker
            case ev.QuotePlaced(rfq_id=rfq_id, quote_id=quote_id):
                self.quotes_placed += 1
                self._rfq_of_quote[quote_id] = rfq_id
                self._quoted_by_strategy[self._strategy_of_rfq.get(rfq_id, "")] += 1
                self._edge(loop, rfq_id, quote_id)
            case ev.QuoteRejected(rfq_id=rfq_id):
                self.quotes_rejected += 1
                if self._sent.get(rfq_id):
                    self._sent[rfq_id].pop(0)
            case ev.QuoteAccepted(quote_id=quote_id):
                self.accepts += 1
                self._accepted_quotes.add(quote_id)
                self._accept_seen_ns.setdefault(quote_id, now_ns)
                rfq_id = self._rfq_of_quote.get(quote_id, "")
                self._accepted_by_strategy[self._strategy_of_rfq.get(rfq_id, "")] += 1
                if quote_id in self.quote_edges:
                    self.quote_edges[quote_id] = (self.quote_edges[quote_id][0], True)
                if quote_id in self.quotes_seen and event.accepted_side is not None:
                    mid, yes, no, best_yes, best_no, _, fair = self.quotes_seen[quote_id]
                    self.quotes_seen[quote_id] = (mid, yes, no, best_yes, best_no,
                                                  event.accepted_side, fair)
            case ev.QuoteConfirmed():
                self.confirms += 1
            case ev.ConfirmFailed():
                self.confirm_failures += 1
            case ev.QuoteExecuted(quote_id=quote_id, order_id=order_id):
                self._quote_of_order[order_id] = quote_id
            case ev.FillReceived():
                self._fill(event, now_ns, loop)
            case ev.MarketLifecycleChanged(market_ticker=ticker, settlement_value_micros=value,
                                           result=result):
                pos = self._positions.get(ticker)
                if pos is not None and event.event_type in ("determined", "settled"):
                    yes_value = value if value is not None else (
                        MAX_PRICE_MICROS if result == "yes" else 0 if result == "no" else None)
                    if yes_value is not None:
                        before = (pos.net_centi(), pos.worst_case_loss_micros())
                        pos.settled_micros = (_value(yes_value, pos.yes_centi)
                                              + _value(MAX_PRICE_MICROS - yes_value,
                                                       pos.no_centi))
                        pos.settled_yes_micros = yes_value
                        self._sample(now_ns, loop)
                        self._position_changed(ticker, pos, before, now_ns)
            case _:
                pass

    def _edge(self, loop: BacktestLoop, rfq_id: str, quote_id: str) -> None:
        # The prices are the quote we sent (the exchange places them as sent), not the venue's
        # copy: a recorded-answers run places recorded quotes the venue never sees.
        sent = self._sent.get(rfq_id)
        if not sent:
            return
        q = sent.pop(0)
        self.quote_features[quote_id] = loop.features_of(rfq_id)
        book = loop.mirror.get(q.market_ticker)
        mid = book.mid_micros() if book is not None else None
        if mid is None:
            self.quotes_seen[quote_id] = (None, q.yes_bid_micros, q.no_bid_micros, None, None,
                                          None, q.fair_yes_micros)
            return
        # Our edge: the smaller of what each side of our quote keeps below/above the mid.
        edges = []
        if q.yes_bid_micros:
            edges.append(mid - q.yes_bid_micros)
        if q.no_bid_micros:
            edges.append((MAX_PRICE_MICROS - mid) - q.no_bid_micros)
        if edges:
            self.quote_edges[quote_id] = (min(edges), False)
        assert book is not None  # a mid was read from it
        best_yes, best_no = book.best_yes_bid(), book.best_no_bid()
        self.quotes_seen[quote_id] = (mid, q.yes_bid_micros, q.no_bid_micros,
                                      best_yes[0] if best_yes else None,
                                      best_no[0] if best_no else None, None,
                                      q.fair_yes_micros)

    def side_samples(self) -> list[SideSample]:
        """Every side of every quote seen, for :func:`backtests.models.fit_calibrated`."""
        return [s for quote_id in sorted(self.quotes_seen)
                for s in side_samples(*self.quotes_seen[quote_id])]

    def featured_samples(self) -> list[FeaturedSample]:
        """:meth:`side_samples` with each side's RFQ features and side, for
        :func:`backtests.models.fit_logistic`."""
        return [(sample, self.quote_features.get(quote_id), side)
                for quote_id in sorted(self.quotes_seen)
                for sample, side in side_samples_by_side(*self.quotes_seen[quote_id])]

    def _fill(self, fill: ev.FillReceived, now_ns: int, loop: BacktestLoop) -> None:
        bought_yes = fill.book_side is BookSide.BID
        price = fill.yes_price_micros if bought_yes else MAX_PRICE_MICROS - fill.yes_price_micros
        # The strategy is known once the quote's execution notice (after its fills) names the order.
        rec = FillRecord(now_ns, fill.market_ticker, "", bought_yes, price,
                         fill.count_centi, fill.fee_micros, fill.order_id)
        self.fills.append(rec)
        pos = self._positions.setdefault(fill.market_ticker, _Position())
        before = (pos.net_centi(), pos.worst_case_loss_micros())
        if bought_yes:
            pos.yes_centi += fill.count_centi
        else:
            pos.no_centi += fill.count_centi
        pos.cash_micros -= _value(price, fill.count_centi) + fill.fee_micros
        for h in MARKOUT_HORIZONS_S:
            rec.markouts_micros[h] = None
            rec.markouts_fair_micros[h] = None
            loop.at(now_ns + h * _NS, functools.partial(self._markout, rec, h, loop))
        self._sample(now_ns, loop)
        self._position_changed(fill.market_ticker, pos, before, now_ns)

    # -- inventory and exposure --------------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        """Let time pass to ``now_ns`` (an event :meth:`observe` has nothing else to do with).

        Sample the inventory at the last interval boundary passed, if any: nothing changed
        since the last change point, so the values there are today's (a step, exactly)."""
        nxt = self._next_sample_ns
        if nxt is None:
            self._next_sample_ns = now_ns + INVENTORY_INTERVAL_NS
            return
        if now_ns < nxt:
            return
        boundary = nxt + (now_ns - nxt) // INVENTORY_INTERVAL_NS * INVENTORY_INTERVAL_NS
        if self._positions:  # nothing held yet: no line to draw
            self.inventory.add(boundary, self._net_total_centi, self._worst_total_micros)
        self._next_sample_ns = boundary + INVENTORY_INTERVAL_NS

    def _position_changed(self, ticker: str, pos: _Position, before: tuple[int, int],
                          now_ns: int) -> None:
        net, worst = pos.net_centi(), pos.worst_case_loss_micros()
        self._net_total_centi += net - before[0]
        self._worst_total_micros += worst - before[1]
        self.inventory.add(now_ns, self._net_total_centi, self._worst_total_micros)
        series = self.inventory_by_market.get(ticker)
        if series is None:
            series = self.inventory_by_market[ticker] = BoundedSeries(MARKET_SERIES_CAPACITY)
        series.add(now_ns, net)
        self._max_abs_net_by_market[ticker] = max(self._max_abs_net_by_market.get(ticker, 0),
                                                  abs(net))
        self._max_abs_net_total_centi = max(self._max_abs_net_total_centi,
                                            abs(self._net_total_centi))
        if self._worst_total_micros > self._max_worst_total_micros:
            self._max_worst_total_micros = self._worst_total_micros
            self._max_worst_at_ns = now_ns

    def _sample(self, now_ns: int, loop: BacktestLoop) -> None:
        self.pnl_curve.append((now_ns, *self._pnl(loop)))

    def _markout(self, rec: FillRecord, horizon_s: int, loop: BacktestLoop) -> None:
        rec.markouts_fair_micros[horizon_s] = _against(
            self._fair_of_market.get(rec.market_ticker), rec)
        book = loop.mirror.get(rec.market_ticker)
        mid = book.mid_micros() if book is not None else None
        if mid is None:
            return
        value = mid if rec.bought_yes else MAX_PRICE_MICROS - mid
        rec.markouts_micros[horizon_s] = _value(value - rec.price_micros, rec.count_centi)
        self._sample(rec.ts_ns + horizon_s * _NS, loop)

    def _mark(self, ticker: str, pos: _Position, loop: BacktestLoop) -> int:
        if pos.settled_micros is not None:
            return pos.settled_micros
        book = loop.mirror.get(ticker)
        mid = book.mid_micros() if book is not None else None
        if mid is None:
            return -pos.cash_micros  # at cost
        return _value(mid, pos.yes_centi) + _value(MAX_PRICE_MICROS - mid, pos.no_centi)

    def _pnl(self, loop: BacktestLoop) -> tuple[int, int]:
        realized = marked = 0
        for ticker, pos in self._positions.items():
            settled = pos.settled_micros if pos.settled_micros is not None else 0
            realized += pos.cash_micros + settled
            marked += pos.cash_micros + self._mark(ticker, pos, loop)
        return realized, marked

    def finish(self, loop: BacktestLoop) -> None:
        """Compute the summary (deterministic: sorted keys, integers)."""
        realized, marked = self._pnl(loop)
        self.pnl_curve.append((loop.clock.now_ns(), realized, marked))
        for f in self.fills:
            quote_id = self._quote_of_order.get(f.order_id, "")
            f.strategy = self._strategy_of_rfq.get(self._rfq_of_quote.get(quote_id, ""), "")
            seen = self.quotes_seen.get(quote_id)
            f.markout_fair_at_fill_micros = _against(seen[6], f) if seen is not None else None
        markouts: dict[str, int | None] = {}
        markouts_fair: dict[str, int | None] = {"at_fill": _total(
            f.markout_fair_at_fill_micros for f in self.fills)}
        for h in MARKOUT_HORIZONS_S:
            markouts[f"{h}s"] = _total(f.markouts_micros.get(h) for f in self.fills)
            markouts_fair[f"{h}s"] = _total(f.markouts_fair_micros.get(h) for f in self.fills)
        now = loop.clock.now_ns()
        if self._positions:  # the lines run to the end of the run
            self.inventory.add(now, self._net_total_centi, self._worst_total_micros)
            for ticker, series in self.inventory_by_market.items():
                series.add(now, self._positions[ticker].net_centi())
        self.summary = {
            "auction": self.auction,
            "frames": loop.frames,
            "prefiltered": self.prefiltered,
            "decode_errors": loop.decode_errors,
            "rfqs_seen": self.rfqs_seen,
            "decisions": dict(sorted(self.decisions.items())),
            "decline_reasons": dict(sorted(self.decline_reasons.items())),
            "quotes_sent": self.quotes_sent,
            "quotes_placed": self.quotes_placed,
            "quotes_rejected": self.quotes_rejected,
            "accepts": self.accepts,
            "win_rate": round(self.accepts / self.quotes_placed, 6) if self.quotes_placed
            else 0.0,
            "confirms": self.confirms,
            "confirm_failures": self.confirm_failures,
            "fills": len(self.fills),
            "contracts_centi": sum(f.count_centi for f in self.fills),
            "fees_micros": sum(f.fee_micros for f in self.fills),
            "pnl_realized_micros": realized,
            "pnl_marked_micros": marked,
            # Markets we held a position in that were determined in the inputs (paid out).
            "positions_settled": sum(1 for p in self._positions.values()
                                     if p.settled_micros is not None),
            "markouts_micros": markouts,
            "markouts_fair_micros": markouts_fair,
            **self._breakdowns(loop),
            "inventory": self._inventory_summary(),
            "latency_ns": {
                "rfq_to_quote": self.rfq_to_quote.summary(),
                "accept_to_confirm": self.accept_to_confirm.summary(),
            },
            "engine_errors": self.engine_errors,
            "halts": self.halts,
        }

    def round_trips_summary(self) -> dict[str, dict[str, Any]]:
        """The round trips drawn from the latency model, per request type. Not in
        :attr:`summary`: a recorded-answers run draws none (its answers keep the recorded
        times), so the live run and its parity backtest differ here and only here."""
        return {kind: h.summary() for kind, h in sorted(self.round_trips.items())}

    def series_of_market(self, ticker: str) -> str:
        """The market's series (its metadata's, else the ticker up to the first ``-``)."""
        return self._series_of_market.get(ticker) or ticker.split("-", 1)[0]

    def _fill_pnl(self, f: FillRecord, loop: BacktestLoop) -> tuple[int, int]:
        """One fill's share of the PnL, realised and marked, valued as :meth:`_pnl` values
        its market's position (the groups' sums match the totals to a micro-dollar per fill:
        each fill's value is rounded down on its own)."""
        cost = _value(f.price_micros, f.count_centi) + f.fee_micros
        pos = self._positions[f.market_ticker]
        if pos.settled_yes_micros is not None:
            yes = pos.settled_yes_micros
            paid = _value(yes if f.bought_yes else MAX_PRICE_MICROS - yes, f.count_centi)
            return paid - cost, paid - cost
        book = loop.mirror.get(f.market_ticker)
        mid = book.mid_micros() if book is not None else None
        if mid is None:
            return -cost, 0  # valued at cost, as the totals do
        value = mid if f.bought_yes else MAX_PRICE_MICROS - mid
        return -cost, _value(value, f.count_centi) - cost

    def _breakdowns(self, loop: BacktestLoop) -> dict[str, dict[str, dict[str, Any]]]:
        """Quotes, accepts, fills, fees, PnL and markouts by strategy, series, market and
        requester (all of them; the report shows the largest)."""
        groups: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in BREAKDOWNS}

        def rows(rfq_id: str, ticker: str) -> list[dict[str, Any]]:
            requester = self._rfq_info.get(rfq_id, ("", ""))[1]
            keys = (self._strategy_of_rfq.get(rfq_id, ""), self.series_of_market(ticker),
                    ticker, requester)
            return [groups[name].setdefault(key, _empty_row())
                    for name, key in zip(BREAKDOWNS, keys, strict=True)]

        for quote_id, rfq_id in self._rfq_of_quote.items():
            accepted = quote_id in self._accepted_quotes
            for row in rows(rfq_id, self._rfq_info.get(rfq_id, ("", ""))[0]):
                row["quotes"] += 1
                row["accepts"] += int(accepted)
        for f in self.fills:
            rfq_id = self._rfq_of_quote.get(self._quote_of_order.get(f.order_id, ""), "")
            realized, marked = self._fill_pnl(f, loop)
            marks = {f"markout_{h}s_micros": f.markouts_micros.get(h) for h in MARKOUT_HORIZONS_S}
            marks["markout_fair_at_fill_micros"] = f.markout_fair_at_fill_micros
            marks.update({f"markout_fair_{h}s_micros": f.markouts_fair_micros.get(h)
                          for h in MARKOUT_HORIZONS_S})
            for row in rows(rfq_id, f.market_ticker):
                row["fills"] += 1
                row["contracts_centi"] += f.count_centi
                row["fees_micros"] += f.fee_micros
                row["pnl_realized_micros"] += realized
                row["pnl_marked_micros"] += marked
                for key, v in marks.items():
                    if v is not None:  # absent: no mid (or no fair) at that horizon
                        row[key] = row.get(key, 0) + v
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for name, table in groups.items():
            for row in table.values():
                row["win_rate"] = (round(row["accepts"] / row["quotes"], 6) if row["quotes"]
                                   else 0.0)
            out[name] = {key: dict(sorted(row.items())) for key, row in sorted(table.items())}
        return out

    def _inventory_summary(self) -> dict[str, Any]:
        return {
            "interval_ns": INVENTORY_INTERVAL_NS,
            "final_net_centi": self._net_total_centi,
            "final_worst_case_loss_micros": self._worst_total_micros,
            "max_abs_net_centi": self._max_abs_net_total_centi,
            "max_abs_net_by_market_centi": dict(sorted(self._max_abs_net_by_market.items())),
            "max_worst_case_loss_micros": self._max_worst_total_micros,
            "max_worst_case_loss_at_ns": self._max_worst_at_ns,
        }

    def series(self) -> dict[str, Any]:
        """The report's bounded series: inventory in total and per market, markout curves
        (per horizon: total markout, contracts with one)."""
        curves: dict[str, list[tuple[str, int, int]]] = {"mid": [], "fair": []}
        fair_at_fill = [(f.markout_fair_at_fill_micros, f.count_centi) for f in self.fills
                        if f.markout_fair_at_fill_micros is not None]
        if fair_at_fill:
            curves["fair"].append(("at_fill", sum(v for v, _ in fair_at_fill),
                                   sum(c for _, c in fair_at_fill)))
        for h in MARKOUT_HORIZONS_S:
            for name, fair in (("mid", False), ("fair", True)):
                pairs = [(v, f.count_centi) for f in self.fills
                         if (v := (f.markouts_fair_micros if fair else f.markouts_micros)
                             .get(h)) is not None]
                if pairs:
                    curves[name].append((f"{h}s", sum(v for v, _ in pairs),
                                         sum(c for _, c in pairs)))
        return {"inventory": list(self.inventory.points),
                "inventory_by_market": {t: list(s.points)
                                        for t, s in sorted(self.inventory_by_market.items())},
                "markout_curves": curves}


def _total(values: Iterable[int | None]) -> int | None:
    kept = [v for v in values if v is not None]
    return sum(kept) if kept else None


def _empty_row() -> dict[str, Any]:
    return {"quotes": 0, "accepts": 0, "fills": 0, "contracts_centi": 0, "fees_micros": 0,
            "pnl_realized_micros": 0, "pnl_marked_micros": 0}
