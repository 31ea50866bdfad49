"""An order book for one binary market, rebuilt from snapshots and deltas.

Kalshi books hold **bids only** on both sides: a NO bid at p is a YES offer at $1 - p
(kalshi-api.md §2.6). We keep YES bids and NO bids, each keyed by its own side's price.
Sequence checking lives with the subscription (the engine), not here.
"""

from __future__ import annotations

from collections.abc import Iterable

from quoter.domain.money import MAX_PRICE_MICROS, MoneyError

__all__ = ["OrderBook"]


class OrderBook:
    """Price levels of one market. Mutable, owned by the engine; pricers only read it."""

    __slots__ = ("_no", "_yes", "market_ticker", "updated_ns")

    def __init__(self, market_ticker: str) -> None:
        self.market_ticker = market_ticker
        self._yes: dict[int, int] = {}
        self._no: dict[int, int] = {}
        self.updated_ns = 0

    def apply_snapshot(
        self,
        yes_levels: Iterable[tuple[int, int]],
        no_levels: Iterable[tuple[int, int]],
        ts_ns: int,
        *,
        yes_priced: bool = False,
    ) -> None:
        """Replace the whole book. ``yes_priced``: NO levels are given in YES prices."""
        self._yes = {p: q for p, q in yes_levels if q > 0}
        self._no = {
            (MAX_PRICE_MICROS - p if yes_priced else p): q for p, q in no_levels if q > 0
        }
        self.updated_ns = ts_ns

    def apply_delta(
        self, side_is_yes: bool, price_micros: int, delta_centi: int, ts_ns: int,
        *, yes_priced: bool = False,
    ) -> None:
        """Add ``delta_centi`` at one level; a level that would go negative raises."""
        levels = self._yes if side_is_yes else self._no
        price = price_micros if side_is_yes or not yes_priced else MAX_PRICE_MICROS - price_micros
        qty = levels.get(price, 0) + delta_centi
        if qty < 0:
            raise MoneyError(f"{self.market_ticker}: level {price} would go negative ({qty})")
        if qty == 0:
            levels.pop(price, None)
        else:
            levels[price] = qty
        self.updated_ns = ts_ns

    def clear(self) -> None:
        """Forget all levels (the book is no longer trusted)."""
        self._yes.clear()
        self._no.clear()

    @property
    def is_empty(self) -> bool:
        """True if neither side has a level."""
        return not self._yes and not self._no

    def best_yes_bid(self) -> tuple[int, int] | None:
        """Best YES bid as ``(price_micros, qty_centi)``."""
        if not self._yes:
            return None
        p = max(self._yes)
        return p, self._yes[p]

    def best_no_bid(self) -> tuple[int, int] | None:
        """Best NO bid as ``(no_price_micros, qty_centi)``."""
        if not self._no:
            return None
        p = max(self._no)
        return p, self._no[p]

    def best_yes_ask(self) -> tuple[int, int] | None:
        """Best YES offer (from the best NO bid) as ``(yes_price_micros, qty_centi)``."""
        nb = self.best_no_bid()
        return None if nb is None else (MAX_PRICE_MICROS - nb[0], nb[1])

    def yes_levels(self) -> list[tuple[int, int]]:
        """YES bids, best first."""
        return sorted(self._yes.items(), reverse=True)

    def no_levels(self) -> list[tuple[int, int]]:
        """NO bids (NO prices), best first."""
        return sorted(self._no.items(), reverse=True)

    def mid_micros(self) -> int | None:
        """Mid of best YES bid and ask, rounded down; None unless both sides exist."""
        bid, ask = self.best_yes_bid(), self.best_yes_ask()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) // 2

    def microprice_micros(self) -> int | None:
        """Size-weighted mid: leans toward the side with less size; None unless two-sided."""
        bid, ask = self.best_yes_bid(), self.best_yes_ask()
        if bid is None or ask is None:
            return None
        (pb, qb), (pa, qa) = bid, ask
        return (pb * qa + pa * qb) // (qa + qb)
