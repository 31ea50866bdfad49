"""What the strategy modules see and what their answers mean: inputs, sizes, reason codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Final

from quoter.config import LifecycleParams
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.book import OrderBook
from quoter.domain.money import MAX_PRICE_MICROS, notional_micros
from quoter.domain.types import MarketInfo
from quoter.engine.lifecycle import RfqRecord
from quoter.engine.pricing import SHELL_REASONS, finalize, run_pricing
from quoter.engine.records import MS, Records
from quoter.engine.routing import (
    NO_BOOK,
    PRICER_DECLINED,
    STALE_BOOK,
)
from quoter.engine.strategy_set import Strategy
from strategies.base import Decline, Pricing, PricingInput

#: Nanoseconds per day (the daily loss stop runs on UTC days).
DAY_NS: Final = 86_400 * 1_000_000_000



def copy_book(book: OrderBook) -> OrderBook:
    """A copy a worker can price later while the engine keeps updating the original."""
    copy = OrderBook(book.market_ticker)
    copy.apply_snapshot(book.yes_levels(), book.no_levels(), book.updated_ns)
    return copy


class Valuation:
    """Build pricing inputs and turn module answers into reason codes."""

    def __init__(self, records: Records) -> None:
        """Hand the part its collaborators (the records and the parts below it)."""
        self.r = records

    def wall_ms(self, now: int) -> int:
        return (now + self.r.wall_offset_ns) // MS

    def note_day(self, now: int) -> None:
        """Tell risk today's realised PnL; UTC days on the wall clock (``wall_offset_ns``)."""
        self.r.risk.note_realized((now + self.r.wall_offset_ns) // DAY_NS,
                                self.r.ledger.realized_pnl_micros())

    def not_quoted(
        self, rfq: E.RfqReceived, reason: str, out: list[C.Command], strategy: str = "",
        detail: str = "",
    ) -> None:
        out.append(C.RecordDecision(rfq.rfq_id, rfq.market_ticker, "not_quoted", reason,
                                    strategy=strategy, detail=detail))

    @staticmethod
    def legs_of(rfq: E.RfqReceived, market: MarketInfo | None) -> tuple[str, ...]:
        """The combo's leg markets (empty for a single market)."""
        legs = rfq.legs or (market.legs if market is not None else ())
        return tuple(dict.fromkeys(leg.market_ticker for leg in legs))

    def needs(self, rfq: E.RfqReceived, market: MarketInfo | None) -> tuple[str, ...]:
        """Markets whose books price this RFQ: the combo's legs, else the market itself.

        A determined leg needs no book (it prices at its settlement value) and may have none.
        """
        legs = rfq.legs or (market.legs if market is not None else ())
        if legs:
            return tuple(dict.fromkeys(
                leg.market_ticker for leg in legs
                if leg.yes_settlement_value_micros is None
                and self.leg_value(leg.market_ticker) is None
            ))
        return (rfq.market_ticker,)

    def leg_value(self, ticker: str) -> int | None:
        """A leg market's YES payout once it is determined (metadata or lifecycle), else None."""
        m = self.r.md.markets.get(ticker)
        if m is not None and m.settlement_value_micros is not None:
            return m.settlement_value_micros
        return self.r.determined.get(ticker)

    def close_fire_ns(self, market: MarketInfo, lc: LifecycleParams) -> int | None:
        """Engine time from which we stop trading a market (``cancel_before_close``)."""
        if market.close_ts_ms is None:
            return None
        return (market.close_ts_ms - lc.cancel_before_close_ms) * MS - self.r.wall_offset_ns

    def book_problem(self, tickers: Iterable[str], lc: LifecycleParams, now: int) -> str | None:
        for t in tickers:
            age = self.r.md.age_ns(t, now)
            if age is None:
                return NO_BOOK
            stale_ms = lc.book_stale_after_ms
            if stale_ms is not None and age >= stale_ms * MS:
                return STALE_BOOK
        return None

    def est_size(self, rfq: E.RfqReceived, yes: int = 0, no: int = 0) -> int:
        """Contracts a quote could trade; for target-cost RFQs a conservative estimate.

        Which price divides the target is undocumented (kalshi-api.md §5.3), so we take the
        lowest positive price involved (our bids and their complements): the most contracts.
        """
        if rfq.contracts_centi:  # zero or absent: a target-cost RFQ, sized from its target
            return rfq.contracts_centi
        target = rfq.target_cost_micros or 0
        prices = [p for b in (yes, no) if b > 0 for p in (b, MAX_PRICE_MICROS - b)]
        price = min(prices) if prices else MAX_PRICE_MICROS // 2
        return -(-target * 100 // price)

    def price(
        self, rec: RfqRecord, st: Strategy, market: MarketInfo, now: int, *, final: bool = True
    ) -> Pricing | Decline:
        """Run the strategy's modules; a pricing, or a decline carrying its final reason code."""
        inp = self.input(rec, market, now)
        budget_ns = st.config.quoting.pricer_budget_us * 1000
        res = run_pricing(st.pricer, st.overlays, inp, budget_ns=budget_ns, perf_ns=self.r.perf_ns)
        return self.conclude(st, market, res, final=final)

    def input(
        self, rec: RfqRecord, market: MarketInfo, now: int, *, copy_books: bool = False
    ) -> PricingInput:
        """What the modules see; ``copy_books``: only the books needed, copied (for the pool)."""
        rfq = rec.rfq
        needs = self.needs(rfq, market)
        legs: dict[str, MarketInfo] = {}
        for t in self.legs_of(rfq, market):
            m = self.r.md.markets.get(t)
            if m is None or t == market.ticker:
                continue
            value = self.leg_value(t)
            if m.settlement_value_micros is None and value is not None:
                m = replace(m, settlement_value_micros=value)  # determined by a lifecycle event
            legs[t] = m
        books: dict[str, OrderBook] = self.r.md.books
        if copy_books:
            books = {
                t: copy_book(b) for t in dict.fromkeys((market.ticker, *needs))
                if (b := self.r.md.books.get(t)) is not None
            }
        return PricingInput(
            rfq=rfq, market=market, books=books, now_ns=now,
            position_centi=self.r.ledger.position_centi(market.ticker),
            event_position_centi=self.r.ledger.event_position_centi(market.event_ticker),
            size_centi=self.est_size(rfq), leg_markets=legs,
            requester=self.r.requesters.stats(rfq.creator_id),
        )

    def conclude(
        self, st: Strategy, market: MarketInfo, res: Pricing | Decline, *, final: bool
    ) -> Pricing | Decline:
        """Turn the modules' answer into a final reason code, or a quotable pricing."""
        if isinstance(res, Decline):
            if res.reason in SHELL_REASONS:
                return res
            return Decline(f"{PRICER_DECLINED}:{res.reason}", res.detail)
        if not final:
            return res
        fin = finalize(res, market.grid, st.config.quoting.min_spread_micros)
        if isinstance(fin, Decline):
            return Decline(f"{PRICER_DECLINED}:{fin.reason}", fin.detail)
        return fin


def trade_cash_micros(market: MarketInfo, bid_micros: int, size_centi: int) -> int:
    """Cash that buying ``size_centi`` at ``bid_micros`` takes: the price plus our maker fee
    (0 for a side we do not bid on)."""
    if bid_micros <= 0 or size_centi <= 0:
        return 0
    fee = market.fees.fee_micros(bid_micros, size_centi, is_taker=False)
    return notional_micros(bid_micros, size_centi) + fee
