"""Builders shared by the strategy tests: markets, books and pricing inputs from real parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from hypothesis import strategies as st

from quoter.domain.book import OrderBook
from quoter.domain.events import RfqReceived
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import ComboLeg, MarketInfo, MarketStatus
from strategies.base import PricingInput, RequesterStats

TICKER = "KXTEST-26JAN01-A"


def market(
    ticker: str = TICKER,
    *,
    fee_type: FeeType = FeeType.QUADRATIC_WITH_MAKER_FEES,
    legs: tuple[ComboLeg, ...] = (),
    collection: str | None = None,
) -> MarketInfo:
    """A plain active linear-cent market."""
    return MarketInfo(
        ticker=ticker,
        event_ticker=ticker.rsplit("-", 1)[0],
        series_ticker=ticker.split("-", 1)[0],
        status=MarketStatus.ACTIVE,
        grid=grid_for_structure("linear_cent"),
        fees=FeeSchedule(fee_type),
        legs=legs,
        mve_collection_ticker=collection,
        is_hvm=bool(legs),
    )


def book(
    ticker: str = TICKER,
    yes: tuple[tuple[int, int], ...] = ((400_000, 1_000),),
    no: tuple[tuple[int, int], ...] = ((550_000, 1_000),),
) -> OrderBook:
    """A book with YES bids and NO bids (NO prices), as the feed delivers them."""
    b = OrderBook(ticker)
    b.apply_snapshot(yes, no, ts_ns=1)
    return b


def rfq(
    ticker: str = TICKER,
    contracts_centi: int | None = 10_000,
    legs: tuple[ComboLeg, ...] = (),
    creator: str = "req-1",
) -> RfqReceived:
    """An RFQ for ``contracts_centi`` hundredths."""
    return RfqReceived(
        rfq_id="rfq-1",
        market_ticker=ticker,
        ts_recv_ns=1,
        creator_id=creator,
        contracts_centi=contracts_centi,
        legs=legs,
        mve_collection_ticker="KXMVECROSSCATEGORY-SHARD1-R" if legs else None,
    )


def pricing_input(
    books: Mapping[str, OrderBook] | None = None,
    *,
    ticker: str = TICKER,
    position_centi: int = 0,
    event_position_centi: int = 0,
    size_centi: int = 10_000,
    requester: RequesterStats | None = None,
    mkt: MarketInfo | None = None,
    legs: tuple[ComboLeg, ...] = (),
    leg_markets: Mapping[str, MarketInfo] | None = None,
) -> PricingInput:
    """A pricing input around one market (or a combo with ``legs``; their markets are plain
    active markets unless ``leg_markets`` says otherwise)."""
    return PricingInput(
        rfq=rfq(ticker, size_centi, legs),
        market=mkt or market(ticker, legs=legs),
        books=books if books is not None else {ticker: book(ticker)},
        now_ns=1,
        position_centi=position_centi,
        event_position_centi=event_position_centi,
        size_centi=size_centi,
        requester=requester or RequesterStats(),
        leg_markets=(
            leg_markets if leg_markets is not None
            else {leg.market_ticker: leg_market(leg) for leg in legs}
        ),
    )


def leg_market(leg: ComboLeg, **kw: object) -> MarketInfo:
    """An active market for a combo leg, in the leg's event (series = event up to "-")."""
    m = MarketInfo(
        ticker=leg.market_ticker, event_ticker=leg.event_ticker,
        series_ticker=leg.event_ticker.split("-", 1)[0], status=MarketStatus.ACTIVE,
        grid=grid_for_structure("linear_cent"),
    )
    return replace(m, **kw)  # type: ignore[arg-type]


@st.composite
def sane_books(draw: st.DrawFn, ticker: str = TICKER) -> OrderBook:
    """A two-sided, uncrossed book with a few levels per side."""
    bid = draw(st.integers(1, 999_998))
    ask = draw(st.integers(bid + 1, 999_999))
    qb = draw(st.integers(1, 1_000_000))
    qa = draw(st.integers(1, 1_000_000))
    deeper_yes = draw(st.lists(st.tuples(st.integers(1, bid), st.integers(1, 10_000)), max_size=3))
    deeper_no = draw(
        st.lists(st.tuples(st.integers(1, 1_000_000 - ask), st.integers(1, 10_000)), max_size=3)
    )
    yes = {p: q for p, q in deeper_yes if p < bid}
    yes[bid] = qb
    no = {p: q for p, q in deeper_no if p < 1_000_000 - ask}
    no[1_000_000 - ask] = qa
    return book(ticker, tuple(yes.items()), tuple(no.items()))
