"""Execution venues of a backtest: the simulator's exchange core in virtual time.

Both venues wrap :class:`quoter.sim.exchange.SimExchange` driven synchronously on the backtest's
clock, so quote rules, replace, confirm windows, execution timers, fees, fills and settlement
are the simulator's (which the conformance tests hold against Kalshi). Whatever the exchange
says to our account is rendered as a Kalshi WebSocket frame (:class:`FrameRenderer`, the
envelope the simulator's server sends) and handed to the backtest loop, which decodes it with
the production decoder like any recorded frame.

* :class:`ModelledVenue` (a backtest): RFQs seen in the recording are opened on the modelled
  exchange by requester accounts (one per recorded creator), keyed by the recorded RFQ id both
  ways, so our quotes land on them; an **auction model** (``backtests.models``) decides what the
  requester does with each quote; recorded lifecycle results determine and settle markets.
* :class:`WorldVenue` (the proof): the simulator's synthetic world in virtual time, where its
  own requesters and competing makers decide; the loop records what it sees, so the run can be
  backtested afterwards.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from backtests.features import RfqFeatures
from backtests.models import AuctionContext, AuctionModel, RecordedQuote
from quoter.clock import Clock
from quoter.domain import events as ev
from quoter.domain.book import OrderBook
from quoter.domain.commands import SubmitQuote
from quoter.domain.grid import grid_for_structure
from quoter.domain.money import MAX_PRICE_MICROS
from quoter.domain.types import MarketInfo, MarketStatus, Side
from quoter.sim import wire
from quoter.sim.exchange import ExchangeConfig, OutMessage, SimError, SimExchange, SimMarket
from quoter.sim.world import World

__all__ = ["FrameRenderer", "ModelledVenue", "Venue", "WorldVenue", "market_info", "sim_market"]

#: Our account on a modelled exchange.
MAKER_USER_ID = "backtest-maker"
_BIG_BALANCE_MICROS = 10**15
_PRIVATE_TYPES = ("quote_created", "quote_accepted", "quote_executed", "fill",
                  "market_position")
_LIFECYCLE = ("market_lifecycle_v2", "multivariate_market_lifecycle")


def market_info(m: SimMarket) -> MarketInfo:
    """The engine's view of a simulator market (what ``GET /markets/{ticker}`` would give)."""
    return MarketInfo(
        ticker=m.ticker, event_ticker=m.event_ticker, series_ticker=m.series_ticker,
        status=m.status, grid=m.grid, close_ts_ms=m.close_ts_ms, fees=m.fees, is_hvm=m.is_hvm,
        mve_collection_ticker=m.mve_collection_ticker, legs=m.legs,
        exchange_index=m.exchange_index,
    )


def sim_market(info: MarketInfo) -> SimMarket:
    """A simulator market with the recorded metadata (grid, fees, HVM, close time, legs)."""
    return SimMarket(
        ticker=info.ticker, event_ticker=info.event_ticker, series_ticker=info.series_ticker,
        title=info.ticker, grid=info.grid, status=MarketStatus.ACTIVE,
        close_ts_ms=info.close_ts_ms, fees=info.fees, is_hvm=info.is_hvm,
        mve_collection_ticker=info.mve_collection_ticker, legs=info.legs,
        exchange_index=info.exchange_index,
    )


def default_market(ticker: str) -> MarketInfo:
    """Metadata for a market the recording never described: a 1-cent grid, default fees."""
    event = ticker.rsplit("-", 1)[0]
    return MarketInfo(ticker, event, ticker.split("-", 1)[0], MarketStatus.ACTIVE,
                      grid_for_structure("linear_cent"))


class FrameRenderer:
    """Render exchange messages as the frames the simulator's WebSocket server would send."""

    def __init__(self) -> None:
        self._sids: dict[str, int] = {}
        self._seqs: dict[str, int] = {}

    def render(self, type_: str, channel: str, msg: Mapping[str, Any]) -> bytes:
        """One data frame: ``{"type", "sid", "seq", "msg"}`` (sid per channel)."""
        sid = self._sids.setdefault(channel, len(self._sids) + 1)
        seq = self._seqs[channel] = self._seqs.get(channel, 0) + 1
        return json.dumps({"type": type_, "sid": sid, "seq": seq, "msg": msg},
                          separators=(",", ":")).encode()


class Venue(Protocol):
    """What the backtest loop executes against."""

    exchange: SimExchange

    def submit(self, rfq_id: str, yes_bid_micros: int, no_bid_micros: int, *,
               rest_remainder: bool, post_only: bool) -> str:
        """Create (or replace) our quote; raises ``SimError``."""
        ...

    def confirm(self, rfq_id: str, quote_id: str) -> None:
        """Confirm an accepted quote; raises ``SimError``."""
        ...

    def cancel(self, rfq_id: str, quote_id: str) -> None:
        """Withdraw a quote; raises ``SimError``."""
        ...

    def market(self, ticker: str) -> MarketInfo | None:
        """The market's metadata, or None if unknown."""
        ...

    def book(self, ticker: str, now_ns: int) -> ev.BookSnapshotReceived:
        """A REST book snapshot of the market."""
        ...

    def subscribe(self, tickers: Iterable[str]) -> None:
        """Stream these markets' books to us."""
        ...

    def observe(self, event: ev.Event, now_ns: int) -> bool:
        """See a recorded event; False if it must not reach the engine (replaced by ours).

        Book deltas are not shown: they are public market data, which always reaches the
        engine and from which a venue replays nothing (the backtest loop's fast path).
        """
        ...


def _snapshot_of(ex: SimExchange, ticker: str, now_ns: int) -> ev.BookSnapshotReceived:
    book = ex.book(ticker)
    return ev.BookSnapshotReceived(ticker, tuple(book.levels(Side.YES)),
                                   tuple(book.levels(Side.NO)), now_ns)


class WorldVenue:
    """The simulator's world in virtual time: its agents decide; we are its demo account."""

    def __init__(self, world: World, exchange: SimExchange, user_id: str,
                 deliver: Callable[[bytes], None]) -> None:
        self.world, self.exchange, self.user_id = world, exchange, user_id
        self._deliver = deliver
        self._frames = FrameRenderer()
        self._subscribed: set[str] = set()
        exchange.add_listener(self._on_out)

    def _on_out(self, out: OutMessage) -> None:
        if out.recipients is not None and self.user_id not in out.recipients:
            return
        if out.channel == "orderbook_delta":
            if out.market_ticker not in self._subscribed:
                return
            msg = out.msg
            if msg["side"] == "no":  # we subscribe YES-priced (kalshi-api.md §2.6)
                msg = {**msg, "price_dollars": wire.dollars(
                    MAX_PRICE_MICROS - wire_price(msg["price_dollars"]))}
            self._deliver(self._frames.render(out.type, out.channel, msg))
        elif out.channel in ("communications", "fill", "market_positions", *_LIFECYCLE):
            self._deliver(self._frames.render(out.type, out.channel, out.msg))

    def submit(self, rfq_id: str, yes_bid_micros: int, no_bid_micros: int, *,
               rest_remainder: bool, post_only: bool) -> str:
        """Quote on the world's exchange."""
        return self.exchange.create_quote(self.user_id, rfq_id, yes_bid_micros, no_bid_micros,
                                          rest_remainder=rest_remainder, post_only=post_only)

    def confirm(self, rfq_id: str, quote_id: str) -> None:
        """Confirm on the world's exchange."""
        self.exchange.confirm_quote(self.user_id, quote_id, rfq_id)

    def cancel(self, rfq_id: str, quote_id: str) -> None:
        """Cancel on the world's exchange."""
        self.exchange.delete_quote(self.user_id, quote_id, rfq_id)

    def market(self, ticker: str) -> MarketInfo | None:
        """The world's market."""
        try:
            return market_info(self.exchange.get_market(ticker))
        except SimError:
            return None

    def book(self, ticker: str, now_ns: int) -> ev.BookSnapshotReceived:
        """The world's book now."""
        return _snapshot_of(self.exchange, ticker, now_ns)

    def subscribe(self, tickers: Iterable[str]) -> None:
        """Stream books: a snapshot frame first, then deltas (as the server does)."""
        for ticker in tickers:
            if ticker in self._subscribed:
                continue
            try:
                m = self.exchange.get_market(ticker)
            except SimError:
                continue
            self._subscribed.add(ticker)
            msg = wire.orderbook_snapshot_msg(m, self.exchange.book(ticker), use_yes_price=True)
            self._deliver(self._frames.render("orderbook_snapshot", "orderbook_delta", msg))

    def observe(self, event: ev.Event, now_ns: int) -> bool:
        """Everything the world says reaches the engine."""
        return True


def wire_price(text: str) -> int:
    """Parse a ``_dollars`` string (exact)."""
    from quoter.domain.money import parse_dollars

    return parse_dollars(text)


class ModelledVenue:
    """A fresh simulator exchange that replays the recorded RFQs; an auction model decides."""

    def __init__(
        self, clock: Clock, auction: AuctionModel, *,
        markets: Mapping[str, MarketInfo], books: Mapping[str, list[ev.BookSnapshotReceived]],
        recorded_quotes: Mapping[str, list[RecordedQuote]], mirror: Mapping[str, OrderBook],
        deliver: Callable[[bytes], None], at: Callable[[int, Callable[[], None]], None],
        seed: int = 0, fair_of: Callable[[str], int | None] | None = None,
        features_of: Callable[[str], RfqFeatures | None] | None = None,
    ) -> None:
        self.exchange = SimExchange(clock, ExchangeConfig(check_balance=False, id_seed=seed,
                                                          max_open_rfqs=10**9))
        self.exchange.register_account(MAKER_USER_ID, balance_micros=_BIG_BALANCE_MICROS)
        self.auction = auction
        self._clock = clock
        self._markets = markets
        self._books = books
        self._recorded = recorded_quotes
        self._mirror = mirror
        self._deliver = deliver
        self._at = at
        self._fair_of = fair_of
        self._features_of = features_of
        self._frames = FrameRenderer()
        self._to_sim: dict[str, str] = {}
        self._to_rec: dict[str, str] = {}
        self._requester: dict[str, str] = {}
        # Quotes adopted from the recording (backtests.tape): the exchange's id <-> the
        # recorded id the engine knows them by.
        self._alias: dict[str, str] = {}
        self._sim_quote: dict[str, str] = {}
        self._quiet = False
        self.quotes_adopted = 0
        self.rfqs_replayed = 0
        self.rfqs_refused = 0
        self.accepts_refused = 0
        self.exchange.add_listener(self._on_out)

    # -- the recording's side ----------------------------------------------------------------

    def observe(self, event: ev.Event, now_ns: int) -> bool:
        """Replay RFQs and results into the exchange; our recorded private events are dropped."""
        match event:
            case ev.RfqReceived():
                self._open_rfq(event)
            case ev.RfqDeleted(rfq_id=rfq_id):
                sim_id = self._to_sim.get(rfq_id)
                if sim_id is not None:
                    with contextlib.suppress(SimError):
                        self.exchange.delete_rfq(self._requester[rfq_id], sim_id)
            case ev.MarketLifecycleChanged(market_ticker=ticker, event_type=kind, result=result):
                self._lifecycle(ticker, kind, result)
            case (ev.QuoteCreated() | ev.QuoteAccepted() | ev.QuoteExecuted()
                  | ev.FillReceived() | ev.PositionReported()):
                return False  # our own quotes' story is the modelled exchange's now
            case _:
                pass
        return True

    def _ensure_market(self, ticker: str) -> bool:
        try:
            self.exchange.get_market(ticker)
            return True
        except SimError:
            pass
        info = self._markets.get(ticker) or default_market(ticker)
        for leg in info.legs:
            if not self._ensure_market(leg.market_ticker):
                return False
        try:
            self.exchange.add_market(sim_market(info))
        except SimError:
            return False
        return True

    def _open_rfq(self, rfq: ev.RfqReceived) -> None:
        if rfq.rfq_id in self._to_sim or not self._ensure_market(rfq.market_ticker):
            self.rfqs_refused += rfq.rfq_id not in self._to_sim
            return
        user = f"requester:{rfq.creator_id or 'unknown'}"
        if not self.exchange.has_account(user):
            self.exchange.register_account(user, balance_micros=_BIG_BALANCE_MICROS)
        try:
            sim_id = self.exchange.create_rfq(
                user, rfq.market_ticker, contracts_centi=rfq.contracts_centi,
                target_cost_micros=rfq.target_cost_micros)
        except SimError:
            self.rfqs_refused += 1
            return
        self.rfqs_replayed += 1
        self._to_sim[rfq.rfq_id], self._to_rec[sim_id] = sim_id, rfq.rfq_id
        self._requester[rfq.rfq_id] = user

    def _lifecycle(self, ticker: str, kind: str, result: str | None) -> None:
        with contextlib.suppress(SimError, ValueError):
            if kind == "determined" and result in ("yes", "no"):
                self.exchange.determine_market(ticker, Side(result))
            elif kind == "settled":
                m = self.exchange.get_market(ticker)
                if m.result is None and result in ("yes", "no"):
                    self.exchange.determine_market(ticker, Side(result))
                self.exchange.finalize_market(ticker)

    # -- the exchange's side -----------------------------------------------------------------

    def _on_out(self, out: OutMessage) -> None:
        if out.recipients is None or MAKER_USER_ID not in out.recipients:
            return
        if out.type not in _PRIVATE_TYPES or self._quiet:
            return
        msg = dict(out.msg)
        if "rfq_id" in msg:
            msg["rfq_id"] = self._to_rec.get(str(msg["rfq_id"]), msg["rfq_id"])
        if "quote_id" in msg:
            msg["quote_id"] = self._alias.get(str(msg["quote_id"]), msg["quote_id"])
        self._deliver(self._frames.render(out.type, out.channel, msg))
        if out.type == "quote_created":
            self._auction(msg)

    def _auction(self, msg: Mapping[str, Any]) -> None:
        rec_id, quote_id = str(msg["rfq_id"]), str(msg["quote_id"])
        quote_id = self._sim_quote.get(quote_id, quote_id)
        q = self.exchange.get_quote(quote_id)
        book = self._mirror.get(q.market_ticker)
        best_yes = book.best_yes_bid() if book is not None else None
        best_no = book.best_no_bid() if book is not None else None
        now = self._clock.now_ns()
        ctx = AuctionContext(
            rec_id, q.market_ticker, q.yes_bid_micros, q.no_bid_micros, now,
            book.mid_micros() if book is not None else None,
            best_yes[0] if best_yes else None, best_no[0] if best_no else None,
            _matching(self._recorded.get(rec_id, ()), q.yes_bid_micros, q.no_bid_micros),
            self._fair_of(rec_id) if self._fair_of is not None else None,
            self._features_of(rec_id) if self._features_of is not None else None)
        decision = self.auction.decide(ctx)
        if decision is None:
            return
        side, at_ns = decision

        def accept() -> None:
            try:
                self.exchange.accept_quote(self._requester[rec_id], None, quote_id, side)
            except SimError:
                self.accepts_refused += 1  # replaced, withdrawn or the RFQ closed meanwhile

        self._at(at_ns, accept)

    def adopt(self, rfq_id: str, quote_id: str, command: SubmitQuote,
              accepted_side: Side | None, confirmed: bool) -> None:
        """Take over a quote the recording placed (``quote_id``) on a recorded RFQ.

        A recorded-answers run (``backtests.tape``) calls this when the RFQ's thread leaves the
        recording: the quote is created here with the recorded prices, and accepted (on the
        recorded side) and confirmed if the recording had got that far, without telling the
        engine again what it already saw. A quote not yet accepted goes to the auction model.
        """
        sim_rfq = self._to_sim.get(rfq_id)
        if sim_rfq is None:
            return
        self._quiet = True
        try:
            sim_id = self.exchange.create_quote(
                MAKER_USER_ID, sim_rfq, command.yes_bid_micros, command.no_bid_micros,
                rest_remainder=command.rest_remainder, post_only=command.post_only)
            self._alias[sim_id], self._sim_quote[quote_id] = quote_id, sim_id
            if accepted_side is not None:
                self.exchange.accept_quote(self._requester[rfq_id], None, sim_id, accepted_side)
                if confirmed:
                    self.exchange.confirm_quote(MAKER_USER_ID, sim_id, sim_rfq)
        except SimError:
            return  # the RFQ closed, or the exchange no longer takes it: nothing to adopt
        finally:
            self._quiet = False
        self.quotes_adopted += 1
        if accepted_side is None:
            self._auction({"rfq_id": rfq_id, "quote_id": quote_id})

    # -- our requests ------------------------------------------------------------------------

    def _sim_rfq(self, rfq_id: str) -> str:
        sim_id = self._to_sim.get(rfq_id)
        if sim_id is None:
            raise SimError(404, "not_found", f"rfq {rfq_id} not found")
        return sim_id

    def submit(self, rfq_id: str, yes_bid_micros: int, no_bid_micros: int, *,
               rest_remainder: bool, post_only: bool) -> str:
        """Quote on the replayed RFQ."""
        return self.exchange.create_quote(MAKER_USER_ID, self._sim_rfq(rfq_id), yes_bid_micros,
                                          no_bid_micros, rest_remainder=rest_remainder,
                                          post_only=post_only)

    def confirm(self, rfq_id: str, quote_id: str) -> None:
        """Confirm our accepted quote."""
        self.exchange.confirm_quote(MAKER_USER_ID, self._sim_quote.get(quote_id, quote_id),
                                    self._sim_rfq(rfq_id))

    def cancel(self, rfq_id: str, quote_id: str) -> None:
        """Withdraw our quote."""
        # A recorded quote never adopted here is unknown: a 404, as Kalshi answers for a
        # quote that is gone.
        self.exchange.delete_quote(MAKER_USER_ID, self._sim_quote.get(quote_id, quote_id),
                                   self._sim_rfq(rfq_id))

    def market(self, ticker: str) -> MarketInfo | None:
        """The recorded metadata (None: the recording never described the market)."""
        return self._markets.get(ticker)

    def book(self, ticker: str, now_ns: int) -> ev.BookSnapshotReceived:
        """The latest recorded REST book at or before now, else the replayed frames' book."""
        latest = None
        for snap in self._books.get(ticker, ()):
            if snap.ts_recv_ns <= now_ns:
                latest = snap
        if latest is not None:
            return ev.BookSnapshotReceived(ticker, latest.yes_levels, latest.no_levels, now_ns,
                                           yes_priced=latest.yes_priced)
        book = self._mirror.get(ticker)
        if book is None:
            return ev.BookSnapshotReceived(ticker, (), (), now_ns)
        return ev.BookSnapshotReceived(ticker, tuple(book.yes_levels()),
                                       tuple(book.no_levels()), now_ns)

    def subscribe(self, tickers: Iterable[str]) -> None:
        """Nothing to do: the recorded book frames are what the engine gets."""


def _matching(quotes: Iterable[RecordedQuote], yes_bid: int, no_bid: int) -> RecordedQuote | None:
    """The recorded quote of ours with these prices (an accepted one first), else the last."""
    last = None
    same = None
    for q in quotes:
        last = q
        if (q.yes_bid_micros, q.no_bid_micros) == (yes_bid, no_bid) and (
                same is None or q.accepted_side is not None):
            same = q
    return same or last
