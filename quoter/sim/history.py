"""What the simulated exchange remembers for the history endpoints: trades (``GET
/markets/trades``), every order with its fills (``GET /portfolio/orders``) and one-minute
candles of trades and top of book (the candlestick endpoints).

Plain records, updated by the exchange's order and fill paths; views render them. Trades are
kept up to ``max_trades`` (oldest dropped: a load world must not grow without bound).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from quoter.domain.types import Side

__all__ = ["Candle", "MarketHistory", "OrderRecord", "TradeRecord"]

_NS_PER_MIN = 60 * 10**9


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One trade (a taker order crossing a resting one)."""

    trade_id: str
    ticker: str
    yes_price_micros: int
    qty_centi: int
    taker_side: Side
    wall_ns: int


@dataclass(slots=True)
class OrderRecord:
    """An order (a limit order, or one leg of a quote execution) and what it filled."""

    order_id: str
    user_id: str
    client_order_id: str
    ticker: str
    side: Side
    #: The order's own-side bid price.
    price_micros: int
    initial_centi: int
    created_wall_ns: int
    exchange_index: int = 0
    filled_centi: int = 0
    taker_cost_micros: int = 0
    maker_cost_micros: int = 0
    taker_fees_micros: int = 0
    maker_fees_micros: int = 0
    updated_wall_ns: int = 0


@dataclass(slots=True)
class _Ohlc:
    open: int
    high: int
    low: int
    close: int

    def add(self, value: int) -> None:
        self.high = max(self.high, value)
        self.low = min(self.low, value)
        self.close = value

    def merge(self, later: _Ohlc) -> None:
        self.high = max(self.high, later.high)
        self.low = min(self.low, later.low)
        self.close = later.close


@dataclass(slots=True)
class Candle:
    """One period of a market: trade prices, top-of-book YES bid and ask, volume."""

    end_wall_ns: int
    yes_bid: _Ohlc | None = None
    yes_ask: _Ohlc | None = None
    price: _Ohlc | None = None
    volume_centi: int = 0
    open_interest_centi: int = 0

    def merge(self, later: Candle) -> None:
        """Fold a later candle of the same period into this one."""
        for name in ("yes_bid", "yes_ask", "price"):
            mine, theirs = getattr(self, name), getattr(later, name)
            if theirs is None:
                continue
            if mine is None:
                setattr(self, name, _Ohlc(theirs.open, theirs.high, theirs.low, theirs.close))
            else:
                mine.merge(theirs)
        self.volume_centi += later.volume_centi
        self.open_interest_centi = later.open_interest_centi
        self.end_wall_ns = max(self.end_wall_ns, later.end_wall_ns)


def _ohlc_add(current: _Ohlc | None, value: int) -> _Ohlc:
    if current is None:
        return _Ohlc(value, value, value, value)
    current.add(value)
    return current


@dataclass(slots=True)
class MarketHistory:
    """Trades, orders and minute candles of the whole exchange."""

    max_trades: int = 200_000
    trades: deque[TradeRecord] = field(default_factory=deque)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    #: ticker -> minute index -> candle (the minute ending at ``(index + 1) * 60 s``).
    minutes: dict[str, dict[int, Candle]] = field(default_factory=dict)

    def _minute(self, ticker: str, wall_ns: int) -> Candle:
        index = wall_ns // _NS_PER_MIN
        per = self.minutes.setdefault(ticker, {})
        candle = per.get(index)
        if candle is None:
            candle = per[index] = Candle((index + 1) * _NS_PER_MIN)
        return candle

    def on_trade(self, trade: TradeRecord, open_interest_centi: int) -> None:
        """Remember a trade and fold it into its minute."""
        self.trades.append(trade)
        if len(self.trades) > self.max_trades:
            self.trades.popleft()
        c = self._minute(trade.ticker, trade.wall_ns)
        c.price = _ohlc_add(c.price, trade.yes_price_micros)
        c.volume_centi += trade.qty_centi
        c.open_interest_centi = open_interest_centi

    def on_top(self, ticker: str, yes_bid_micros: int | None, yes_ask_micros: int | None,
               wall_ns: int) -> None:
        """Fold a top-of-book change into its minute."""
        c = self._minute(ticker, wall_ns)
        if yes_bid_micros is not None:
            c.yes_bid = _ohlc_add(c.yes_bid, yes_bid_micros)
        if yes_ask_micros is not None:
            c.yes_ask = _ohlc_add(c.yes_ask, yes_ask_micros)

    def candles(self, ticker: str, start_wall_ns: int, end_wall_ns: int,
                period_min: int) -> list[Candle]:
        """Candles of ``period_min`` minutes ending within ``[start, end]``, oldest first
        (periods without any activity are left out)."""
        out: dict[int, Candle] = {}
        for index, minute in sorted(self.minutes.get(ticker, {}).items()):
            period = index // period_min
            end_ns = (period + 1) * period_min * _NS_PER_MIN
            if not start_wall_ns <= end_ns <= end_wall_ns:
                continue
            candle = out.get(period)
            if candle is None:
                candle = out[period] = Candle(end_ns)
            candle.merge(minute)
            candle.end_wall_ns = end_ns
        return list(out.values())
