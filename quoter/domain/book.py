"""An order book for one binary market, rebuilt from snapshots and deltas.

Kalshi books hold **bids only** on both sides: a NO bid at p is a YES offer at $1 - p
(kalshi-api.md §2.6). We keep YES bids and NO bids, each keyed by its own side's price.
Sequence checking lives with the subscription (the engine), not here.

The best price of each side is cached and kept up on every change: top of book is read after
every delta (replay, pricing), and ``max()`` over the levels made each read O(levels). Only
removing the best level costs a scan. Levels stay in dicts keyed by price, not arrays by tick:
snapshots are not grid-checked here, so any integer price must keep working.
"""

from __future__ import annotations

from collections.abc import Iterable

from quoter.domain.money import MAX_PRICE_MICROS, MoneyError

__all__ = ["OrderBook"]


class OrderBook:
    """Price levels of one market. Mutable, owned by the engine; pricers only read it."""

    __slots__ = ("_best_no", "_best_yes", "_no", "_yes", "market_ticker", "updated_ns")

    def __init__(self, market_ticker: str) -> None:
        self.market_ticker = market_ticker
        self._yes: dict[int, int] = {}
        self._no: dict[int, int] = {}
        # Best (highest) price of each side, None when the side is empty.
        self._best_yes: int | None = None
        self._best_no: int | None = None
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
        self._best_yes = max(self._yes) if self._yes else None
        self._best_no = max(self._no) if self._no else None
        self.updated_ns = ts_ns

    def apply_delta(
        self, side_is_yes: bool, price_micros: int, delta_centi: int, ts_ns: int,
        *, yes_priced: bool = False,
    ) -> None:
        """Add ``delta_centi`` at one level; a level that would go negative raises."""
        if side_is_yes:
            levels = self._yes
            price = price_micros
            best = self._best_yes
        else:
            levels = self._no
            price = MAX_PRICE_MICROS - price_micros if yes_priced else price_micros
            best = self._best_no
        qty = levels.get(price, 0) + delta_centi
        if qty < 0:
            raise MoneyError(f"{self.market_ticker}: level {price} would go negative ({qty})")
        if qty == 0:
            if levels.pop(price, None) is not None and price == best:
                best = max(levels) if levels else None
            else:
                self.updated_ns = ts_ns
                return
        else:
            levels[price] = qty
            if best is not None and price <= best:
                self.updated_ns = ts_ns
                return
            best = price
        if side_is_yes:
            self._best_yes = best
        else:
            self._best_no = best
        self.updated_ns = ts_ns

    def clear(self) -> None:
        """Forget all levels (the book is no longer trusted)."""
        self._yes.clear()
        self._no.clear()
        self._best_yes = self._best_no = None

    @property
    def is_empty(self) -> bool:
        """True if neither side has a level."""
        return not self._yes and not self._no

    def best_yes_bid(self) -> tuple[int, int] | None:
        """Best YES bid as ``(price_micros, qty_centi)``."""
        p = self._best_yes
        return None if p is None else (p, self._yes[p])

    def best_no_bid(self) -> tuple[int, int] | None:
        """Best NO bid as ``(no_price_micros, qty_centi)``."""
        p = self._best_no
        return None if p is None else (p, self._no[p])

    def best_yes_ask(self) -> tuple[int, int] | None:
        """Best YES offer (from the best NO bid) as ``(yes_price_micros, qty_centi)``."""
        p = self._best_no
        return None if p is None else (MAX_PRICE_MICROS - p, self._no[p])

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
