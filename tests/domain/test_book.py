"""The order book: snapshot + deltas, YES/NO price conventions, mid and microprice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quoter.domain.book import OrderBook
from quoter.domain.money import MoneyError


def test_snapshot_and_top_of_book() -> None:
    b = OrderBook("M")
    b.apply_snapshot([(400_000, 1_000), (390_000, 500)], [(550_000, 300)], ts_ns=1)
    assert b.best_yes_bid() == (400_000, 1_000)
    assert b.best_yes_ask() == (450_000, 300)
    assert b.mid_micros() == 425_000
    # microprice leans toward the thin side (the ask): (0.40*300 + 0.45*1000) / 1300
    assert b.microprice_micros() == (400_000 * 300 + 450_000 * 1_000) // 1_300


def test_yes_priced_no_levels() -> None:
    b = OrderBook("M")
    b.apply_snapshot([(400_000, 10)], [(450_000, 10)], ts_ns=1, yes_priced=True)
    assert b.best_no_bid() == (550_000, 10)
    b.apply_delta(False, 440_000, 5, ts_ns=2, yes_priced=True)
    assert b.best_yes_ask() == (440_000, 5)


def test_delta_removes_level_and_rejects_negative() -> None:
    b = OrderBook("M")
    b.apply_snapshot([(400_000, 10)], [], ts_ns=1)
    b.apply_delta(True, 400_000, -10, ts_ns=2)
    assert b.best_yes_bid() is None
    assert b.mid_micros() is None
    with pytest.raises(MoneyError):
        b.apply_delta(True, 300_000, -1, ts_ns=3)


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 99).map(lambda c: c * 10_000),
                          st.integers(1, 1_000)), max_size=40))
def test_deltas_equal_snapshot_of_sums(ops: list[tuple[bool, int, int]]) -> None:
    b = OrderBook("M")
    expect: dict[tuple[bool, int], int] = {}
    for yes, p, q in ops:
        b.apply_delta(yes, p, q, ts_ns=0)
        expect[(yes, p)] = expect.get((yes, p), 0) + q
    assert dict(b.yes_levels()) == {p: q for (y, p), q in expect.items() if y}
    assert dict(b.no_levels()) == {p: q for (y, p), q in expect.items() if not y}
    mid = b.mid_micros()
    if mid is not None:
        bid, ask = b.best_yes_bid(), b.best_yes_ask()
        assert bid is not None
        assert ask is not None
        assert min(bid[0], ask[0]) <= mid <= max(bid[0], ask[0])
