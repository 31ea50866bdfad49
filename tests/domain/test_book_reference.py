"""The order book against a trivially correct reference: plain dicts and ``max()``.

``OrderBook`` caches each side's best price; these walks (seeded, thousands of steps) make
sure the cache never drifts from the levels: the best level removed, a side emptied, deltas
that would go negative, snapshots (YES- and NO-priced, with duplicate and empty levels) and
``clear()`` in between.
"""

from __future__ import annotations

import random

import pytest

from quoter.domain.book import OrderBook
from quoter.domain.money import MAX_PRICE_MICROS, MoneyError


class RefBook:
    """The original book: dicts, best price by ``max()`` on every read."""

    def __init__(self) -> None:
        self.yes: dict[int, int] = {}
        self.no: dict[int, int] = {}
        self.updated_ns = 0

    def snapshot(self, yes: list[tuple[int, int]], no: list[tuple[int, int]], ts: int,
                 yes_priced: bool) -> None:
        self.yes = {p: q for p, q in yes if q > 0}
        self.no = {(MAX_PRICE_MICROS - p if yes_priced else p): q for p, q in no if q > 0}
        self.updated_ns = ts

    def delta(self, side_is_yes: bool, price: int, delta: int, ts: int, yes_priced: bool) -> None:
        levels = self.yes if side_is_yes else self.no
        if not side_is_yes and yes_priced:
            price = MAX_PRICE_MICROS - price
        qty = levels.get(price, 0) + delta
        if qty < 0:
            raise MoneyError("negative")
        if qty == 0:
            levels.pop(price, None)
        else:
            levels[price] = qty
        self.updated_ns = ts

    def view(self) -> tuple[object, ...]:
        by = max(self.yes) if self.yes else None
        bn = max(self.no) if self.no else None
        bid = None if by is None else (by, self.yes[by])
        nb = None if bn is None else (bn, self.no[bn])
        ask = None if nb is None else (MAX_PRICE_MICROS - nb[0], nb[1])
        mid = micro = None
        if bid is not None and ask is not None:
            mid = (bid[0] + ask[0]) // 2
            micro = (bid[0] * ask[1] + ask[0] * bid[1]) // (ask[1] + bid[1])
        return (bid, nb, ask, mid, micro, sorted(self.yes.items(), reverse=True),
                sorted(self.no.items(), reverse=True), not self.yes and not self.no,
                self.updated_ns)


def view(b: OrderBook) -> tuple[object, ...]:
    return (b.best_yes_bid(), b.best_no_bid(), b.best_yes_ask(), b.mid_micros(),
            b.microprice_micros(), b.yes_levels(), b.no_levels(), b.is_empty, b.updated_ns)


def _levels(rng: random.Random, prices: list[int]) -> list[tuple[int, int]]:
    # Zero / negative sizes are dropped by both; of duplicate prices the last one wins.
    sizes = (0, 0, -5, 1, 50, 300)
    return [(rng.choice(prices), rng.choice(sizes)) for _ in range(rng.randint(0, 8))]


@pytest.mark.parametrize("seed", range(8))
def test_random_walk_matches_reference(seed: int) -> None:
    rng = random.Random(seed)
    # A narrow band, so levels (and the best one) are hit, emptied and refilled often; the
    # odd price off the $0.0001 grid too, which the book never checks.
    prices = [p * 10_000 for p in range(40, 48)] + [450_001]
    book, ref = OrderBook("M"), RefBook()
    removed_best = emptied = refused = 0
    for step in range(4_000):
        ts = step + 1
        roll = rng.random()
        yes_priced = rng.random() < 0.5
        if roll < 0.02:
            yes, no = _levels(rng, prices), _levels(rng, prices)
            book.apply_snapshot(iter(yes), iter(no), ts, yes_priced=yes_priced)
            ref.snapshot(yes, no, ts, yes_priced)
        elif roll < 0.025:
            book.clear()
            ref.yes.clear()
            ref.no.clear()
        else:
            side = rng.random() < 0.5
            price = rng.choice(prices)
            levels = ref.yes if side else ref.no
            key = MAX_PRICE_MICROS - price if (not side and yes_priced) else price
            have = levels.get(key, 0)
            r = rng.random()
            if have and r < 0.4:
                delta = -have  # remove the level
            elif have and r < 0.6:
                delta = -rng.randint(1, have)
            elif r < 0.65:
                delta = -(have + rng.randint(1, 10))  # would go negative: refused, no change
            elif r < 0.7:
                delta = 0
            else:
                delta = rng.randint(1, 100)
            best_before = max(levels) if levels else None
            try:
                ref.delta(side, price, delta, ts, yes_priced)
            except MoneyError:
                refused += 1
                with pytest.raises(MoneyError):
                    book.apply_delta(side, price, delta, ts, yes_priced=yes_priced)
            else:
                book.apply_delta(side, price, delta, ts, yes_priced=yes_priced)
                if key == best_before and key not in levels:
                    removed_best += 1
                    emptied += not levels
        assert view(book) == ref.view(), f"seed {seed} step {step}"
    # The walk did reach the cases the cache must handle.
    assert removed_best > 100
    assert emptied > 10
    assert refused > 50


def test_snapshot_then_deltas_on_empty_sides() -> None:
    b = OrderBook("M")
    b.apply_snapshot([], [], ts_ns=1)
    assert b.best_yes_bid() is None
    assert b.best_yes_ask() is None
    b.apply_delta(False, 600_000, 5, ts_ns=2, yes_priced=True)
    assert b.best_no_bid() == (400_000, 5)
    b.apply_delta(False, 700_000, 5, ts_ns=3, yes_priced=True)
    assert b.best_yes_ask() == (600_000, 5)
    b.apply_delta(False, 600_000, -5, ts_ns=4, yes_priced=True)
    assert b.best_yes_ask() == (700_000, 5)
    b.apply_delta(False, 700_000, -5, ts_ns=5, yes_priced=True)
    assert b.best_no_bid() is None
    assert b.is_empty
