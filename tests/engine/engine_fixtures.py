"""A small harness for engine tests: real config (YAML), real pricers, explicit engine time."""

from __future__ import annotations

from typing import Any, TypeVar

from quoter.config import QuoterConfig, parse_config
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import BookSide, ComboLeg, MarketInfo, MarketStatus, Side
from quoter.engine.engine import Engine

T = "KXTEST-26JAN01-A"
T2 = "KXTEST-26JAN01-B"
EVENT = "KXTEST-26JAN01"
SERIES = "KXTEST"
START_NS = 1_000_000_000_000
MS = 1_000_000

CmdT = TypeVar("CmdT")


FIXED = (
    'fixed, params: {edge_dollars: "0.02", '
    'fair_yes_dollars: {KXTEST-26JAN01-A: "0.50", KXTEST-26JAN01-B: "0.30"}}'
)


#: Contract limits with room for several 100-contract quotes per market (the demo's): limits
#: count every open quote, and tests that are not about limits quote more than once.
ROOMY = (
    "{max_position_contracts_per_market: 1000, max_position_contracts_per_event: 2000, "
    "max_position_contracts_per_series: 5000, max_position_contracts_total: 10000}"
)


def yaml_config(
    *,
    pricer: str = FIXED,
    match: str = "{series: [KXTEST]}",
    risk: str = ROOMY,
    lifecycle: str = "{}",
    quoting: str = "{}",
) -> str:
    """A one-strategy config in YAML, as an operator would write it."""
    return f"""
version: 1
strategies:
  - name: main
    match: {match}
    pricer: {{name: {pricer}}}
    quoting: {quoting}
risk: {risk}
lifecycle: {lifecycle}
"""


def config(**kw: Any) -> QuoterConfig:
    """Parse ``yaml_config(**kw)``."""
    return parse_config(yaml_config(**kw))


BOOK_MID = 'book_mid, params: {edge_dollars: "0.02", max_spread_dollars: "0.50"}'


def market(
    ticker: str = T,
    *,
    close_ts_ms: int | None = None,
    is_hvm: bool = False,
    status: MarketStatus = MarketStatus.ACTIVE,
    structure: str = "linear_cent",
    legs: tuple[ComboLeg, ...] = (),
) -> MarketInfo:
    """An active market in the test series."""
    return MarketInfo(
        ticker=ticker,
        event_ticker=ticker.rsplit("-", 1)[0],
        series_ticker=ticker.split("-", maxsplit=1)[0],
        status=status, grid=grid_for_structure(structure), close_ts_ms=close_ts_ms,
        is_hvm=is_hvm, legs=legs,
        mve_collection_ticker="KXMVECOLL" if legs else None,
    )


def of(cmds: list[C.Command], kind: type[CmdT]) -> list[CmdT]:
    """The commands of one type, in order."""
    return [c for c in cmds if isinstance(c, kind)]


def decisions(cmds: list[C.Command]) -> list[tuple[str, str]]:
    """``(decision, reason)`` of every RecordDecision, in order."""
    return [(d.decision, d.reason) for d in of(cmds, C.RecordDecision)]


class Harness:
    """Drives an engine with events stamped at the harness's current time."""

    def __init__(self, cfg: QuoterConfig | None = None, **kw: Any) -> None:
        self.engine = Engine(cfg if cfg is not None else config(), **kw)
        self.now = START_NS
        self.log: list[C.Command] = []

    def send(self, event: E.Event) -> list[C.Command]:
        """Feed one event at the current time."""
        out = self.engine.on_event(event, self.now)
        self.log.extend(out)
        return out

    def advance_ms(self, ms: int) -> None:
        """Move engine time forward."""
        self.now += ms * MS

    # --- event builders ---------------------------------------------------------------

    def load(self, m: MarketInfo | None = None) -> list[C.Command]:
        """Deliver market metadata."""
        return self.send(E.MarketLoaded(m or market(), self.now))

    def snapshot(
        self, ticker: str = T, *, bid: int = 480_000, ask: int = 520_000, qty: int = 10_000,
        seq: int | None = None, sid: int | None = None,
    ) -> list[C.Command]:
        """A one-level book: YES bid at ``bid``, YES ask at ``ask`` (NO bid at 1 - ask)."""
        return self.send(E.BookSnapshotReceived(
            ticker, ((bid, qty),), ((1_000_000 - ask, qty),), self.now, seq=seq, sid=sid,
        ))

    def delta(
        self, ticker: str = T, *, side: Side = Side.YES, price: int = 490_000, delta: int = 100,
        seq: int | None = None, sid: int | None = None,
    ) -> list[C.Command]:
        """A book delta."""
        ev = E.BookDeltaReceived(ticker, side, price, delta, self.now, seq=seq, sid=sid)
        return self.send(ev)

    def ready(self, ticker: str = T, m: MarketInfo | None = None, **kw: Any) -> None:
        """Load a market and give it a book."""
        self.load(m or market(ticker))
        self.snapshot(ticker, **kw)

    def rfq(
        self, rfq_id: str = "r1", ticker: str = T, contracts_centi: int | None = 10_000,
        **kw: Any,
    ) -> list[C.Command]:
        """An RFQ arrives."""
        return self.send(E.RfqReceived(rfq_id, ticker, self.now, creator_id="req",
                                       contracts_centi=contracts_centi, **kw))

    def placed(self, rfq_id: str = "r1", quote_id: str = "q1") -> list[C.Command]:
        """The exchange accepted our SubmitQuote."""
        return self.send(E.QuotePlaced(rfq_id, quote_id, self.now))

    def quote(self, rfq_id: str = "r1", quote_id: str = "q1", ticker: str = T) -> C.SubmitQuote:
        """RFQ in, SubmitQuote out, placed as ``quote_id``."""
        subs = of(self.rfq(rfq_id, ticker), C.SubmitQuote)
        assert len(subs) == 1
        self.placed(rfq_id, quote_id)
        return subs[0]

    def accept(
        self, quote_id: str = "q1", side: Side | None = Side.YES, *, rfq_id: str = "r1",
        ticker: str = T, size: int | None = None, ts_ns: int | None = None,
    ) -> list[C.Command]:
        """The requester accepts one side of a quote."""
        return self.send(E.QuoteAccepted(
            quote_id, rfq_id, ticker, 0, 0, side, self.now if ts_ns is None else ts_ns,
            contracts_accepted_centi=size,
        ))

    def fill(
        self, trade_id: str, order_id: str, side: Side, yes_price: int, count: int,
        ticker: str = T, fee: int = 0,
    ) -> list[C.Command]:
        """One of our fills."""
        book_side = BookSide.BID if side is Side.YES else BookSide.ASK
        return self.send(E.FillReceived(trade_id, order_id, ticker, side, book_side, yes_price,
                                        count, fee, False, self.now))
