"""What the strategy modules see and what their answers mean: inputs, sizes, reason codes."""

from __future__ import annotations

from collections.abc import Iterable

from quoter.config import LifecycleParams
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.book import OrderBook
from quoter.domain.money import MAX_PRICE_MICROS
from quoter.domain.types import MarketInfo
from quoter.engine.lifecycle import RfqRecord
from quoter.engine.pricing import SHELL_REASONS, finalize, run_pricing
from quoter.engine.routing import (
    NO_BOOK,
    PRICER_DECLINED,
    STALE_BOOK,
)
from quoter.engine.state import (
    DAY_NS,
    MS,
    _copy_book,
    _EngineState,
    _Strategy,
)
from strategies.base import Decline, Pricing, PricingInput


class _Valuation(_EngineState):
    """Build pricing inputs and turn module answers into reason codes."""

    def _wall_ms(self, now: int) -> int:
        return (now + self._wall_offset_ns) // MS

    def _note_day(self, now: int) -> None:
        """Tell risk today's realised PnL; UTC days on the wall clock (``wall_offset_ns``)."""
        self.risk.note_realized((now + self._wall_offset_ns) // DAY_NS,
                                self.ledger.realized_pnl_micros())

    def _not_quoted(
        self, rfq: E.RfqReceived, reason: str, out: list[C.Command], strategy: str = "",
        detail: str = "",
    ) -> None:
        out.append(C.RecordDecision(rfq.rfq_id, rfq.market_ticker, "not_quoted", reason,
                                    strategy=strategy, detail=detail))

    @staticmethod
    def _needs(rfq: E.RfqReceived, market: MarketInfo | None) -> tuple[str, ...]:
        """Markets whose books price this RFQ: the combo's legs, else the market itself."""
        legs = rfq.legs or (market.legs if market is not None else ())
        if legs:
            return tuple(dict.fromkeys(leg.market_ticker for leg in legs))
        return (rfq.market_ticker,)

    def _book_problem(self, tickers: Iterable[str], lc: LifecycleParams, now: int) -> str | None:
        for t in tickers:
            age = self.md.age_ns(t, now)
            if age is None:
                return NO_BOOK
            if age >= lc.book_stale_after_ms * MS:
                return STALE_BOOK
        return None

    def _est_size(self, rfq: E.RfqReceived, yes: int = 0, no: int = 0) -> int:
        """Contracts a quote could trade; for target-cost RFQs a conservative estimate.

        Which price divides the target is undocumented (kalshi-api.md §5.3), so we take the
        lowest positive price involved (our bids and their complements): the most contracts.
        """
        if rfq.contracts_centi is not None:
            return rfq.contracts_centi
        target = rfq.target_cost_micros or 0
        prices = [p for b in (yes, no) if b > 0 for p in (b, MAX_PRICE_MICROS - b)]
        price = min(prices) if prices else MAX_PRICE_MICROS // 2
        return -(-target * 100 // price)

    def _price(
        self, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int, *, final: bool = True
    ) -> Pricing | Decline:
        """Run the strategy's modules; a pricing, or a decline carrying its final reason code."""
        inp = self._input(rec, market, now)
        budget_ns = st.config.quoting.pricer_budget_us * 1000
        res = run_pricing(st.pricer, st.overlays, inp, budget_ns=budget_ns, perf_ns=self._perf_ns)
        return self._conclude(st, market, res, final=final)

    def _input(
        self, rec: RfqRecord, market: MarketInfo, now: int, *, copy_books: bool = False
    ) -> PricingInput:
        """What the modules see; ``copy_books``: only the books needed, copied (for the pool)."""
        rfq = rec.rfq
        needs = self._needs(rfq, market)
        legs = {
            t: m for t in needs if t != market.ticker
            and (m := self.md.markets.get(t)) is not None
        }
        books: dict[str, OrderBook] = self.md.books
        if copy_books:
            books = {
                t: _copy_book(b) for t in dict.fromkeys((market.ticker, *needs))
                if (b := self.md.books.get(t)) is not None
            }
        return PricingInput(
            rfq=rfq, market=market, books=books, now_ns=now,
            position_centi=self.ledger.position_centi(market.ticker),
            event_position_centi=self.ledger.event_position_centi(market.event_ticker),
            size_centi=self._est_size(rfq), leg_markets=legs,
        )

    def _conclude(
        self, st: _Strategy, market: MarketInfo, res: Pricing | Decline, *, final: bool
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
