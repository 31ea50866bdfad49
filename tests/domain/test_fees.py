"""Kalshi's fee formula and its rounding."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.money import MoneyError, format_dollars


def test_ground_truth_taker_fee() -> None:
    # kalshi-api.md §0a: requester paid "0.017500" on 1 contract at 0.48.
    fee = FeeSchedule(FeeType.QUADRATIC).fee_micros(480_000, 100, is_taker=True)
    assert format_dollars(fee, 6) == "0.017500"


def test_ground_truth_maker_fee_zero_under_quadratic() -> None:
    assert FeeSchedule(FeeType.QUADRATIC).fee_micros(480_000, 100, is_taker=False) == 0


def test_maker_multipliers() -> None:
    # 0.0175 x 100 x 0.4 x 0.6 = 0.42 exactly; combo makers pay 0.035 x ... = 0.84
    assert FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES).fee_micros(
        400_000, 10_000, is_taker=False) == 420_000
    assert FeeSchedule(FeeType.QUADRATIC_WITH_COMBO_MAKER_FEES).fee_micros(
        400_000, 10_000, is_taker=False) == 840_000
    assert FeeSchedule(multiplier=Fraction(1, 2)).fee_micros(
        400_000, 10_000, is_taker=True) == 840_000


@given(st.integers(min_value=100, max_value=999_900).map(lambda p: p - p % 100),
       st.integers(min_value=1, max_value=10**7),
       st.sampled_from(list(FeeType)), st.booleans())
def test_fee_never_undercharges_and_rounds_to_a_hundredth_cent(
        price: int, qty: int, fee_type: FeeType, taker: bool) -> None:
    sched = FeeSchedule(fee_type)
    fee = sched.fee_micros(price, qty, is_taker=taker)
    share = {FeeType.QUADRATIC: Fraction(0), FeeType.QUADRATIC_WITH_MAKER_FEES: Fraction(1, 4),
             FeeType.QUADRATIC_WITH_COMBO_MAKER_FEES: Fraction(1, 2), FeeType.FLAT: Fraction(1, 4)}
    rate = Fraction(7, 100) * (1 if taker else share[fee_type])
    p = Fraction(price, 10**6)
    exact_dollars = rate * Fraction(qty, 100) * p * (1 - p)
    assert fee % 100 == 0
    assert Fraction(fee, 10**6) >= exact_dollars
    assert Fraction(fee, 10**6) - exact_dollars < Fraction(1, 10_000)


def test_bad_inputs_raise() -> None:
    with pytest.raises(MoneyError):
        FeeSchedule().fee_micros(0, 100, is_taker=True)
    with pytest.raises(MoneyError):
        FeeSchedule().fee_micros(500_000, 0, is_taker=True)
    with pytest.raises(MoneyError):
        FeeSchedule(multiplier=Fraction(-1))


def test_a_cached_fee_never_answers_for_a_bad_input() -> None:
    # The fee is memoized; a bool that hashes like a cached int must still be refused, and a
    # refused input stays refused on every call.
    schedule = FeeSchedule()
    assert schedule.fee_micros(1, 1, is_taker=True) >= 0
    assert schedule.fee_micros(500_000, 1, is_taker=False) >= 0
    for _ in range(2):
        with pytest.raises(MoneyError):
            schedule.fee_micros(True, 1, is_taker=True)  # type: ignore[arg-type]
        with pytest.raises(MoneyError):
            schedule.fee_micros(500_000, True, is_taker=False)  # type: ignore[arg-type]
        with pytest.raises(MoneyError):
            schedule.fee_micros(1_000_000, 100, is_taker=True)
