"""B6: pricing an RFQ with its books cached: ``book_mid`` + the demo overlays, and a 4-leg combo.

The modules are built from ``config/demo.yaml`` the way the engine builds them
(``build_strategies`` + ``registry_build``) and run the way it runs them
(``quoter.engine.pricing.run_pricing``, then ``finalize`` onto the grid); the
``PricingInput`` is built per RFQ, as the engine does. Targets: <= 10 µs (single) and <= 30 µs
(4-leg combo) per priced RFQ. Baseline in the same run: the base pricer alone, without
overlays, sanity checks or grid snapping (what the pipeline adds on top of the arithmetic).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks._suite import Result, best_rate
from quoter.config import load_config
from quoter.domain.book import OrderBook
from quoter.domain.events import RfqReceived
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import ComboLeg, MarketInfo, MarketStatus, Side
from quoter.engine.pricing import finalize, run_pricing
from quoter.engine.strategy_set import build_strategies, registry_build
from strategies.base import Pricing, PricingInput, RequesterStats

CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.yaml"
GRID = grid_for_structure("linear_cent")
COMBO = "KXMVECROSSCATEGORY-S1-ABCD"
COLLECTION = "KXMVECROSSCATEGORY-SHARD1-R"


def _market(ticker: str, legs: tuple[ComboLeg, ...] = ()) -> MarketInfo:
    return MarketInfo(ticker=ticker, event_ticker=ticker.rsplit("-", 1)[0],
                      series_ticker=ticker.split("-", 1)[0], status=MarketStatus.ACTIVE,
                      grid=GRID, fees=FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES),
                      legs=legs, mve_collection_ticker=COLLECTION if legs else None,
                      is_hvm=bool(legs))


def _book(ticker: str, bid: int) -> OrderBook:
    book = OrderBook(ticker)
    book.apply_snapshot(((bid, 5_000), (bid - 10_000, 10_000)),
                        ((1_000_000 - bid - 20_000, 5_000), (1_000_000 - bid - 30_000, 10_000)),
                        1)
    return book


def run(quick: bool) -> list[Result]:
    """Measure B6 (single) and B6-combo."""
    built = build_strategies(load_config(CONFIG), registry_build)
    single, combo = built["sim-singles"], built["sim-combos"]
    ticker = "KXSIMA-26NOV01-M1"
    books = {ticker: _book(ticker, 480_000)}
    market = _market(ticker)
    stats = RequesterStats(accepts=10, rfqs=40, quotes=30, fills=10, markout_count=10,
                           markout_sum_micros=20_000)
    legs = tuple(ComboLeg(f"KXSIM{c}-26NOV01", f"KXSIM{c}-26NOV01-M{i + 1}",
                          Side.YES if i % 2 == 0 else Side.NO)
                 for i, c in enumerate("ABCD"))
    leg_books = {leg.market_ticker: _book(leg.market_ticker, 300_000 + 100_000 * i)
                 for i, leg in enumerate(legs)}
    leg_markets = {leg.market_ticker: _market(leg.market_ticker) for leg in legs}
    combo_market = _market(COMBO, legs)
    n = 500 if quick else 20_000
    repeat = 1 if quick else 5
    rfqs = [RfqReceived(f"r{i}", ticker, 1, creator_id="req", contracts_centi=1_000 + i % 50)
            for i in range(n)]
    combo_rfqs = [RfqReceived(f"c{i}", COMBO, 1, creator_id="req", contracts_centi=1_000,
                              legs=legs, mve_collection_ticker=COLLECTION)
                  for i in range(n // 2)]

    def price_single(rfq: RfqReceived) -> None:
        inp = PricingInput(rfq, market, books, 1, position_centi=500, event_position_centi=800,
                           size_centi=rfq.contracts_centi or 0, requester=stats)
        out = run_pricing(single.pricer, single.overlays, inp, budget_ns=1 << 60, perf_ns=None)
        assert isinstance(out, Pricing), out
        finalize(out, GRID, 20_000)

    def price_combo(rfq: RfqReceived) -> None:
        inp = PricingInput(rfq, combo_market, leg_books, 1, size_centi=1_000,
                           leg_markets=leg_markets, requester=stats)
        out = run_pricing(combo.pricer, combo.overlays, inp, budget_ns=1 << 60, perf_ns=None)
        assert isinstance(out, Pricing), out
        finalize(out, GRID, 20_000)

    def bare_single(rfq: RfqReceived) -> None:
        single.pricer.price(PricingInput(rfq, market, books, 1, size_centi=1_000))

    def bare_combo(rfq: RfqReceived) -> None:
        combo.pricer.price(PricingInput(rfq, combo_market, leg_books, 1, size_centi=1_000,
                                        leg_markets=leg_markets))

    us = lambda rate: 1e6 / rate  # noqa: E731
    return [
        Result("B6", "pricing: book_mid + demo overlays", us(best_rate(price_single, rfqs,
               repeat=repeat)), "µs", 10.0, us(best_rate(bare_single, rfqs, repeat=repeat)),
               "book_mid alone"),
        Result("B6-combo", "pricing: 4-leg combo + demo overlays",
               us(best_rate(price_combo, combo_rfqs, repeat=repeat)), "µs", 30.0,
               us(best_rate(bare_combo, combo_rfqs, repeat=repeat)), "combo alone"),
    ]
