"""What a backtest measures: decisions, quotes, accepts, fills, PnL and markouts.

All money is integer micro-dollars, quantities hundredths of a contract. A fill buys YES
(``book_side`` bid) or NO (ask) at its price; cash is what we paid (price x count and the fee).
PnL is reported three ways per market and per strategy:

* ``realized_micros``: cash plus the payout of markets that settled in the recording;
* ``marked_micros``: realized plus open positions valued at the last mid of the book (YES at
  mid, NO at $1 - mid; a market with no book is valued at cost);
* markouts of each fill at ``MARKOUT_HORIZONS_S`` against the mid: ``(mid_then - price) x
  count`` for a YES buy (NO: ``(price_no - (1 - mid))`` with the sign turned), so a positive
  markout means the price moved our way.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from backtests.features import RfqFeatures
from backtests.models import FeaturedSample, SideSample, side_samples, side_samples_by_side
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

__all__ = ["MARKOUT_HORIZONS_S", "FillRecord", "Metrics"]

MARKOUT_HORIZONS_S = (1, 10, 60, 300)
_NS = 1_000_000_000


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


@dataclass
class _Position:
    yes_centi: int = 0
    no_centi: int = 0
    cash_micros: int = 0
    settled_micros: int | None = None


def _value(price_micros: int, count_centi: int) -> int:
    return price_micros * count_centi // CENTI_PER_CONTRACT


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

    def decision(self, command: cmd.RecordDecision, now_ns: int) -> None:
        """Count an engine decision (quote / decline with its reason)."""
        self.decisions[command.decision] += 1
        if command.decision != "quote":
            self.decline_reasons[command.reason or command.decision] += 1

    def submitted(self, command: cmd.SubmitQuote, now_ns: int) -> None:
        """A quote left for the exchange."""
        self.quotes_sent += 1
        self._strategy_of_rfq[command.rfq_id] = command.strategy
        self._sent.setdefault(command.rfq_id, []).append(command)

    def observe(self, event: ev.Event, now_ns: int, loop: BacktestLoop) -> None:
        """Follow what the engine sees."""
        match event:
            case ev.RfqReceived():
                self.rfqs_seen += 1
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
                        pos.settled_micros = (_value(yes_value, pos.yes_centi)
                                              + _value(MAX_PRICE_MICROS - yes_value,
                                                       pos.no_centi))
                        self._sample(now_ns, loop)
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
        if bought_yes:
            pos.yes_centi += fill.count_centi
        else:
            pos.no_centi += fill.count_centi
        pos.cash_micros -= _value(price, fill.count_centi) + fill.fee_micros
        for h in MARKOUT_HORIZONS_S:
            rec.markouts_micros[h] = None
            loop.at(now_ns + h * _NS, functools.partial(self._markout, rec, h, loop))
        self._sample(now_ns, loop)

    def _sample(self, now_ns: int, loop: BacktestLoop) -> None:
        self.pnl_curve.append((now_ns, *self._pnl(loop)))

    def _markout(self, rec: FillRecord, horizon_s: int, loop: BacktestLoop) -> None:
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
        by_strategy: dict[str, dict[str, Any]] = {}
        for f in self.fills:
            quote_id = self._quote_of_order.get(f.order_id, "")
            f.strategy = self._strategy_of_rfq.get(self._rfq_of_quote.get(quote_id, ""), "")
            s = by_strategy.setdefault(f.strategy, {"fills": 0, "contracts_centi": 0,
                                                   "fees_micros": 0})
            s["fills"] += 1
            s["contracts_centi"] += f.count_centi
            s["fees_micros"] += f.fee_micros
            for h in MARKOUT_HORIZONS_S:
                v = f.markouts_micros.get(h)
                if v is not None:
                    s[f"markout_{h}s_micros"] = s.get(f"markout_{h}s_micros", 0) + v
        for name in set(self._quoted_by_strategy) | set(by_strategy):
            s = by_strategy.setdefault(name, {"fills": 0, "contracts_centi": 0,
                                              "fees_micros": 0})
            s["quotes"] = self._quoted_by_strategy.get(name, 0)
            s["accepts"] = self._accepted_by_strategy.get(name, 0)
            s["win_rate"] = round(s["accepts"] / s["quotes"], 6) if s["quotes"] else 0.0
            by_strategy[name] = dict(sorted(s.items()))
        markouts: dict[str, int | None] = {}
        for h in MARKOUT_HORIZONS_S:
            values = [v for f in self.fills if (v := f.markouts_micros.get(h)) is not None]
            markouts[f"{h}s"] = sum(values) if values else None
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
            "by_strategy": dict(sorted(by_strategy.items())),
            "engine_errors": self.engine_errors,
            "halts": self.halts,
        }
