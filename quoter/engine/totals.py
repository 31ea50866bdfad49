"""Risk views: the full exposure recomputation and the running totals kept in step with it."""

from __future__ import annotations

from typing import Final

from quoter.domain.money import notional_micros
from quoter.engine.lifecycle import QuoteRecord, QuoteState, RfqRecord
from quoter.engine.records import Load, Records
from quoter.engine.risk import MarketExposure, QuoteExposure, Trade
from quoter.engine.valuation import Valuation

#: Quote states that can still be hit (a submission in flight counts too).
RISK_LIVE: Final = (QuoteState.OPEN, QuoteState.CANCELLING)


class Totals:
    """Keep the running risk totals in step with RFQs, quotes and positions."""

    def __init__(self, records: Records, valuation: Valuation) -> None:
        """Hand the part its collaborators (the records and the parts below it)."""
        self.r = records
        self.valuation = valuation

    def exposures(
        self, ticker: str | None, exclude_rfq: str | None = None
    ) -> dict[str, MarketExposure]:
        """Every market's exposure (``ticker`` always present), without ``exclude_rfq``'s quotes."""
        return self.risk_view(ticker, exclude_rfq)[0]

    def risk_view(
        self, ticker: str | None, exclude_rfq: str | None
    ) -> tuple[dict[str, MarketExposure], int]:
        """Exposures per market and the number of RFQs with a quote that could be hit.

        Live quotes are those open or being cancelled plus submissions still in flight, in
        whatever state their RFQ is (a replacement that raced an accept is live until its
        cancel lands); a replaced quote is gone at the exchange (a racing accept of it is
        checked on its own).
        The full recomputation, O(RFQs): the risk checks use the running totals in ``book``
        (kept equal to this, see ``tests/engine/test_exposure_book.py``); this one serves the
        rare breach scan after a fill (for its exact market order) and status views.
        """
        exp: dict[str, MarketExposure] = {}
        ledger = self.r.ledger

        def get(t: str) -> MarketExposure:
            e = exp.get(t)
            if e is None:
                pos, event = ledger.market(t), ledger.event_of(t)
                e = exp[t] = MarketExposure(
                    t, event, ledger.series_of(t), pos.position_centi, pos.cost_micros,
                    exclusive=event in self.r.exclusive_events,
                )
            return e

        if ticker is not None:
            get(ticker)
        for t in ledger.tickers():
            e = get(t)
            for key in ledger.provisional_keys(t):
                q = self.r.quotes.get(key)
                if q is not None and q.accepted_side is not None:
                    left = abs(q.provisional_centi)
                    e.provisional.append(Trade(q.accepted_side, q.bid_for(q.accepted_side), left))
        quotes, n_open = self.r.quotes, 0
        for rfq_id, rec in self.r.rfqs.items():
            if rfq_id == exclude_rfq:
                continue
            bids = [(s.yes_bid_micros, s.no_bid_micros) for s in rec.in_flight]
            for qid in rec.quote_ids:
                q = quotes[qid]
                if q.state in RISK_LIVE:
                    bids.append((q.yes_bid_micros, q.no_bid_micros))
            if not bids:
                continue
            n_open += 1
            e = get(rec.market_ticker)
            for yes, no in bids:
                e.quotes.append(QuoteExposure(yes, no, self.valuation.est_size(rec.rfq, yes, no)))
        return exp, n_open

    # --- running risk totals (quoter.engine.exposure) ------------------------------------------
    # Every change to an RFQ's state, its in-flight submissions or its quotes' states is followed
    # by ``_sync(rec)``; every change to a quote's provisional exposure by ``_sync_prov(q)``; the
    # ledger reports position changes itself. ``_risk_view`` above is the full recomputation the
    # totals are tested against.

    def load_of(self, rec: RfqRecord) -> Load | None:
        """What ``rec``'s hittable quotes put into the book (as in ``_risk_view``), or None."""
        if self.r.rfqs.get(rec.rfq_id) is not rec:
            return None
        loss_yes = loss_no = n = yes_c = no_c = cash = 0
        est = self.valuation.est_size
        bids = [(s.yes_bid_micros, s.no_bid_micros) for s in rec.in_flight]
        for qid in rec.quote_ids:
            q = self.r.quotes[qid]
            if q.state in RISK_LIVE:
                bids.append((q.yes_bid_micros, q.no_bid_micros))
        for yes, no in bids:
            sz = est(rec.rfq, yes, no)
            loss_yes += no * sz
            loss_no += yes * sz
            yes_c += sz if yes > 0 else 0
            no_c += sz if no > 0 else 0
            cash = max(cash, notional_micros(max(yes, no), sz))
            n += 1
        return (rec.market_ticker, loss_yes, loss_no, n, yes_c, no_c, cash) if n else None

    def sync(self, rec: RfqRecord) -> None:
        """Bring the book in line with ``rec``'s hittable quotes."""
        new = self.load_of(rec)
        old = self.r.rfq_load.get(rec.rfq_id)
        if new == old:
            return
        if old is not None:
            self.r.book.add_quotes(old[0], old[1], old[2], old[3], -1, old[4], old[5], old[6])
            del self.r.rfq_load[rec.rfq_id]
        if new is not None:
            self.r.book.add_quotes(new[0], new[1], new[2], new[3], 1, new[4], new[5], new[6])
            self.r.rfq_load[rec.rfq_id] = new

    def sync_prov(self, q: QuoteRecord) -> None:
        """Bring the book in line with ``q``'s provisional trade (as in ``_risk_view``)."""
        new: tuple[str, int, int, int] | None = None
        entry = self.r.ledger.provisional_entry(q.quote_id)
        side = q.accepted_side
        if entry is not None and side is not None and self.r.quotes.get(q.quote_id) is q:
            trade = Trade(side, q.bid_for(side), abs(q.provisional_centi))
            yes, no = trade.pnl()
            new = (entry[0], trade.signed_centi, yes, no)
        old = self.r.prov_load.get(q.quote_id)
        if new == old:
            return
        if old is not None:
            self.r.book.add_provisional(old[0], old[1], old[2], old[3], -1)
            del self.r.prov_load[q.quote_id]
        if new is not None:
            self.r.book.add_provisional(new[0], new[1], new[2], new[3], 1)
            self.r.prov_load[q.quote_id] = new

    def on_position_changed(self, ticker: str) -> None:
        pos = self.r.ledger.market(ticker)
        self.r.book.set_position(ticker, pos.position_centi, pos.cost_micros)

    def free_cash_micros(self, rec: RfqRecord | None = None) -> int | None:
        """Cash not spoken for: the last reported balance, less what fills spent since, less
        what confirmed trades and every open quote could take (``rec``'s own quotes excluded,
        as a new quote replaces them). None while no balance was reported."""
        r = self.r
        if r.cash_micros is None:
            return None
        mine = r.rfq_load.get(rec.rfq_id) if rec is not None else None
        return (r.cash_micros - r.cash_spent_micros - r.book.provisional_cash_micros
                - r.book.quote_cash_micros + (mine[6] if mine is not None else 0))

    def check_quote(self, rec: RfqRecord, ticker: str, quote: QuoteExposure) -> str | None:
        """Risk-check a new quote on ``rec`` (replacing its current ones) against the totals."""
        load = self.r.rfq_load.get(rec.rfq_id)
        if load is None:
            return self.r.risk.check_quote_book(self.r.book, self.r.book.open_rfqs, ticker, quote)
        return self.r.risk.check_quote_book(
            self.r.book, self.r.book.open_rfqs - 1, ticker, quote, (load[1], load[2]),
            (load[4], load[5]),
        )
