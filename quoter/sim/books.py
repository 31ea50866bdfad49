"""The simulator's resting order book and its matching (price, then time priority).

Kalshi books hold **bids only** on both sides (kalshi-api.md §2.6): a NO bid at q is a YES
offer at $1 - q. An order buying side S at limit p therefore takes liquidity from resting
bids on the other side at q >= $1 - p, best (highest) q first, oldest first within a level,
and pays $1 - q (the resting order's price decides, as on any limit book).
"""

from __future__ import annotations

from dataclasses import dataclass

from quoter.domain.money import MAX_PRICE_MICROS
from quoter.domain.types import Side

__all__ = ["MarketBook", "RestingOrder"]


@dataclass(slots=True)
class RestingOrder:
    """A limit bid resting on the book (mutable: ``remaining_centi`` shrinks as it fills)."""

    order_id: str
    user_id: str
    side: Side
    price_micros: int
    remaining_centi: int
    client_order_id: str
    seq: int
    created_ns: int


class MarketBook:
    """The resting bids of one market, YES and NO, each keyed by its own side's price."""

    __slots__ = ("_levels", "_orders", "market_ticker")

    def __init__(self, market_ticker: str) -> None:
        self.market_ticker = market_ticker
        self._levels: dict[Side, dict[int, list[RestingOrder]]] = {Side.YES: {}, Side.NO: {}}
        self._orders: dict[str, RestingOrder] = {}

    def add(self, order: RestingOrder) -> None:
        """Rest ``order`` at the back of its price level."""
        self._levels[order.side].setdefault(order.price_micros, []).append(order)
        self._orders[order.order_id] = order

    def get(self, order_id: str) -> RestingOrder | None:
        """The resting order with this id, if it is on the book."""
        return self._orders.get(order_id)

    def remove(self, order_id: str) -> RestingOrder | None:
        """Take an order off the book; returns it (None if it was not resting)."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        level = self._levels[order.side].get(order.price_micros, [])
        if order in level:
            level.remove(order)
        if not level:
            self._levels[order.side].pop(order.price_micros, None)
        return order

    def reduce(self, order: RestingOrder, qty_centi: int) -> None:
        """Fill ``qty_centi`` of a resting order; removes it when nothing remains."""
        order.remaining_centi -= qty_centi
        if order.remaining_centi <= 0:
            self.remove(order.order_id)

    def crosses(self, side: Side, price_micros: int) -> bool:
        """True if a bid for ``side`` at ``price_micros`` would take resting liquidity."""
        other = self._levels[side.other]
        return bool(other) and max(other) >= MAX_PRICE_MICROS - price_micros

    def matchable(self, side: Side, price_micros: int) -> list[RestingOrder]:
        """Resting orders a bid for ``side`` at ``price_micros`` can hit, in priority order."""
        floor = MAX_PRICE_MICROS - price_micros
        out: list[RestingOrder] = []
        for price in sorted(self._levels[side.other], reverse=True):
            if price < floor:
                break
            out.extend(self._levels[side.other][price])
        return out

    def levels(self, side: Side) -> list[tuple[int, int]]:
        """Aggregated ``(price_micros, qty_centi)`` bids of ``side``, best (highest) first."""
        return [
            (p, sum(o.remaining_centi for o in orders))
            for p, orders in sorted(self._levels[side].items(), reverse=True)
        ]

    def level_qty(self, side: Side, price_micros: int) -> int:
        """Total resting quantity at one level."""
        return sum(o.remaining_centi for o in self._levels[side].get(price_micros, []))

    def best(self, side: Side) -> tuple[int, int] | None:
        """Best bid of ``side`` as ``(price_micros, qty_centi)``."""
        levels = self._levels[side]
        if not levels:
            return None
        p = max(levels)
        return p, self.level_qty(side, p)

    def orders(self) -> list[RestingOrder]:
        """Every resting order, oldest first."""
        return sorted(self._orders.values(), key=lambda o: o.seq)
