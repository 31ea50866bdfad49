"""Market metadata and order books, rebuilt from snapshots and deltas with sequence checks.

Kalshi's ``seq`` is a per-*subscription* counter (kalshi-api.md §2.4): one ``orderbook_delta``
subscription (one ``sid``) can carry many markets, so a gap on a ``sid`` means any book fed by
it may be wrong. We therefore track the last ``seq`` per ``sid`` (per market when a frame has no
``sid``) and, on a gap, distrust every book last fed by that subscription. A distrusted book is
cleared and stays unusable until its next snapshot; the caller re-snapshots and pulls quotes.
"""

from __future__ import annotations

from dataclasses import dataclass

from quoter.domain.book import OrderBook
from quoter.domain.events import BookDeltaReceived, BookSnapshotReceived, SequenceGap
from quoter.domain.money import MoneyError
from quoter.domain.types import MarketInfo, Side

__all__ = ["BookUpdate", "MarketData"]


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """What a book frame did: which markets changed, which lost trust (a gap)."""

    changed: tuple[str, ...] = ()
    gapped: tuple[str, ...] = ()


class MarketData:
    """Markets we know and their books."""

    def __init__(self) -> None:
        self.markets: dict[str, MarketInfo] = {}
        self.books: dict[str, OrderBook] = {}
        self._ready: dict[str, bool] = {}
        self._stream_of: dict[str, str] = {}
        self._last_seq: dict[str, int] = {}
        self.subscribed: dict[str, None] = {}

    @staticmethod
    def _stream(ticker: str, sid: int | None) -> str:
        return f"sid:{sid}" if sid is not None else f"mkt:{ticker}"

    def is_ready(self, ticker: str) -> bool:
        """True if the market's book came from a snapshot and has no known gap since."""
        return self._ready.get(ticker, False)

    def book(self, ticker: str) -> OrderBook:
        """The market's book (created empty on first use)."""
        book = self.books.get(ticker)
        if book is None:
            book = self.books[ticker] = OrderBook(ticker)
        return book

    def age_ns(self, ticker: str, now_ns: int) -> int | None:
        """How long since the book last changed; None if it is not ready."""
        if not self.is_ready(ticker):
            return None
        return now_ns - self.books[ticker].updated_ns

    def on_snapshot(self, ev: BookSnapshotReceived) -> BookUpdate:
        """Replace a book; it becomes ready."""
        t = ev.market_ticker
        self.book(t).apply_snapshot(
            ev.yes_levels, ev.no_levels, ev.ts_recv_ns, yes_priced=ev.yes_priced
        )
        stream = self._stream(t, ev.sid)
        self._stream_of[t] = stream
        if ev.seq is not None:
            self._last_seq[stream] = ev.seq
        self._ready[t] = True
        return BookUpdate(changed=(t,))

    def on_delta(self, ev: BookDeltaReceived) -> BookUpdate:
        """Apply a delta; a sequence gap (or an impossible level) distrusts the stream's books."""
        t = ev.market_ticker
        stream = self._stream(t, ev.sid)
        if ev.seq is not None:
            last = self._last_seq.get(stream)
            self._last_seq[stream] = ev.seq
            if last is not None and ev.seq != last + 1:
                return BookUpdate(gapped=self._distrust(stream, t))
        if not self.is_ready(t):
            return BookUpdate()
        try:
            self.books[t].apply_delta(
                ev.side is Side.YES, ev.price_micros, ev.delta_centi, ev.ts_recv_ns,
                yes_priced=ev.yes_priced,
            )
        except MoneyError:
            # A level going negative means we missed frames even without a seq gap.
            return BookUpdate(gapped=self._distrust(stream, t))
        return BookUpdate(changed=(t,))

    def on_gap(self, ev: SequenceGap) -> BookUpdate:
        """A transport-detected gap: distrust that market, or every book on the ``sid``."""
        stream = f"sid:{ev.sid}"
        self._last_seq.pop(stream, None)
        if ev.market_ticker is not None:
            return BookUpdate(gapped=self._clear(ev.market_ticker))
        return BookUpdate(gapped=self._distrust(stream, None))

    def _distrust(self, stream: str, ticker: str | None) -> tuple[str, ...]:
        self._last_seq.pop(stream, None)
        hit = [t for t, s in self._stream_of.items() if s == stream]
        if ticker is not None and ticker not in hit:
            hit.append(ticker)
        out: list[str] = []
        for t in hit:
            out.extend(self._clear(t))
        return tuple(out)

    def _clear(self, ticker: str) -> tuple[str, ...]:
        was_ready = self._ready.get(ticker, False)
        self._ready[ticker] = False
        if ticker in self.books:
            self.books[ticker].clear()
        return (ticker,) if was_ready or ticker in self.books else ()
