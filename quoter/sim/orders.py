"""Resting orders of the simulated exchange: placing, cancelling, matching, trades, deltas."""

from __future__ import annotations

from quoter.domain.money import MAX_PRICE_MICROS, MoneyError, check_qty, notional_micros
from quoter.domain.types import Side
from quoter.sim import wire
from quoter.sim.base import ExchangeBase
from quoter.sim.books import MarketBook, RestingOrder
from quoter.sim.history import TradeRecord
from quoter.sim.models import OutMessage, SimError, SimMarket

__all__ = ["OrdersMixin"]


class OrdersMixin(ExchangeBase):
    """Limit orders on the resting books and the trades they make."""

    def place_order(
        self, user_id: str, ticker: str, side: Side, price_micros: int, qty_centi: int,
        *, client_order_id: str | None = None, post_only: bool = False,
    ) -> str:
        """Enter a limit bid: it trades with crossing liquidity, the rest rests. Returns its id."""
        m = self._active_market(ticker)
        acct = self._account(user_id)
        side = Side(side)
        price = self._grid_price(m, price_micros)
        try:
            check_qty(qty_centi)
        except MoneyError as exc:
            raise SimError(400, "invalid_parameters", str(exc)) from None
        if self.config.check_balance and acct.balance_micros < notional_micros(price, qty_centi):
            raise SimError(400, "insufficient_balance", "INSUFFICIENT_BALANCE")
        book = self._books[ticker]
        if post_only and book.crosses(side, price):
            raise SimError(400, "post_only_cross", "post-only order would take liquidity")
        order_id = self._new_id()
        coid = client_order_id or f"sim:{order_id}"
        self._record_order(order_id, user_id, coid, m, side, price, qty_centi)
        left = self._take(m, user_id, order_id, coid, side, price, qty_centi)
        if left > 0:
            self._rest(m, RestingOrder(order_id, user_id, side, price, left, coid,
                                       self._next_seq(), self.clock.now_ns()))
        return order_id

    def cancel_order(self, user_id: str, order_id: str) -> int:
        """Cancel a resting order; returns the quantity removed (404 if not resting)."""
        ticker = self._order_owner_market.get(order_id)
        order = None if ticker is None else self._books[ticker].get(order_id)
        if ticker is None or order is None or order.user_id != user_id:
            raise SimError(404, "not_found", f"order {order_id} not found")
        self._remove_order(ticker, order_id)
        return order.remaining_centi

    def book(self, ticker: str) -> MarketBook:
        """The market's resting book (read it; do not mutate it)."""
        self.get_market(ticker)
        return self._books[ticker]

    def _rest(self, m: SimMarket, order: RestingOrder) -> None:
        self._books[m.ticker].add(order)
        self._order_owner_market[order.order_id] = m.ticker
        self._book_delta(m, order.side, order.price_micros, order.remaining_centi,
                         order.user_id, order.client_order_id)

    def _remove_order(self, ticker: str, order_id: str) -> None:
        order = self._books[ticker].remove(order_id)
        self._order_owner_market.pop(order_id, None)
        if order is not None and order.remaining_centi > 0:
            self._book_delta(self._markets[ticker], order.side, order.price_micros,
                             -order.remaining_centi, order.user_id, order.client_order_id)

    def _book_delta(self, m: SimMarket, side: Side, price: int, delta: int, user_id: str,
                    coid: str) -> None:
        msg = wire.orderbook_delta_msg(m, side, price, delta, self._wall())
        # client_order_id is only shown to the owner (kalshi-api.md §2.6): owner gets its own copy.
        public = OutMessage("orderbook_delta", "orderbook_delta", msg, m.ticker,
                            frozenset(u for u in self._accounts if u != user_id))
        own = OutMessage("orderbook_delta", "orderbook_delta", {**msg, "client_order_id": coid},
                         m.ticker, frozenset({user_id}))
        self._emit(public)
        self._emit(own)
        self._ticker(m)

    def _ticker(self, m: SimMarket) -> None:
        book = self._books[m.ticker]
        yes, no = book.best(Side.YES), book.best(Side.NO)
        self.history.on_top(m.ticker, None if yes is None else yes[0],
                            None if no is None else MAX_PRICE_MICROS - no[0], self._wall())
        self._emit(OutMessage("ticker", "ticker", wire.ticker_msg(
            m, self._books[m.ticker], self._stats[m.ticker], self._wall()), m.ticker, None))

    def _take(self, m: SimMarket, user_id: str, order_id: str, coid: str, side: Side,
              price: int, qty: int, *, only: RestingOrder | None = None) -> int:
        """Trade a taker bid against resting liquidity (or one order); returns what is left."""
        book = self._books[m.ticker]
        candidates = [only] if only is not None else book.matchable(side, price)
        left = qty
        for resting in candidates:
            if left <= 0:
                break
            n = min(left, resting.remaining_centi)
            self._trade(m, taker=(user_id, order_id, coid, side), resting=resting, qty=n)
            book.reduce(resting, n)
            if resting.remaining_centi <= 0:
                self._order_owner_market.pop(resting.order_id, None)
            self._book_delta(m, resting.side, resting.price_micros, -n, resting.user_id,
                             resting.client_order_id)
            left -= n
        return left

    def _trade(self, m: SimMarket, *, taker: tuple[str, str, str, Side],
               resting: RestingOrder, qty: int) -> None:
        """Book one trade between a taker and a resting order at the resting order's price."""
        t_user, t_order, t_coid, t_side = taker
        yes_price = (resting.price_micros if resting.side == Side.YES
                     else MAX_PRICE_MICROS - resting.price_micros)
        trade_id = self._new_id()
        now = self._wall()
        oi_before = sum(abs(a.positions[m.ticker].position_centi)
                        for a in self._accounts.values() if m.ticker in a.positions)
        for user, order_id, coid, side, is_taker in (
            (resting.user_id, resting.order_id, resting.client_order_id, resting.side, False),
            (t_user, t_order, t_coid, t_side, True),
        ):
            self._book_fill(m, user, order_id, coid, side, yes_price, qty, is_taker,
                            trade_id, now)
        stats = self._stats[m.ticker]
        stats.volume_centi += qty
        stats.last_price_micros = yes_price
        stats.dollar_volume_micros += notional_micros(yes_price, qty)
        oi_after = sum(abs(a.positions[m.ticker].position_centi)
                       for a in self._accounts.values() if m.ticker in a.positions)
        stats.open_interest_centi += (oi_after - oi_before) // 2
        self.history.on_trade(TradeRecord(trade_id, m.ticker, yes_price, qty, t_side, now),
                              stats.open_interest_centi)
        self._emit(OutMessage("trade", "trade", wire.trade_msg(
            m, trade_id, yes_price, qty, t_side, now), m.ticker, None))
