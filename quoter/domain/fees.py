"""Kalshi's trading fee, exactly (kalshi-api.md §5.4 and the worked case in §0a).

fee = rate x multiplier x C x P x (1 - P), rounded **up** to $0.0001, where the taker rate is
0.07 and makers pay 0.25x that (``quadratic_with_maker_fees``) or 0.5x on combos
(``quadratic_with_combo_maker_fees``), and nothing under plain ``quadratic``.
§0a: 0.07 x 1 x 0.48 x 0.52 = 0.017472 -> charged "0.017500".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache

from quoter.domain.money import MAX_PRICE_MICROS, MoneyError, check_price, check_qty

__all__ = ["FEE_ROUNDING_MICROS", "FeeSchedule", "FeeType", "trade_fee_micros"]

FEE_ROUNDING_MICROS = 100  # $0.0001
_TAKER_RATE = Fraction(7, 100)


class FeeType(StrEnum):
    """The series ``fee_type`` values."""

    QUADRATIC = "quadratic"
    QUADRATIC_WITH_MAKER_FEES = "quadratic_with_maker_fees"
    QUADRATIC_WITH_COMBO_MAKER_FEES = "quadratic_with_combo_maker_fees"
    # How "flat" is computed is not documented; we charge it like quadratic (an upper bound
    # for makers) until a demo fill pins it down.
    FLAT = "flat"


_MAKER_SHARE: dict[FeeType, Fraction] = {
    FeeType.QUADRATIC: Fraction(0),
    FeeType.QUADRATIC_WITH_MAKER_FEES: Fraction(1, 4),
    FeeType.QUADRATIC_WITH_COMBO_MAKER_FEES: Fraction(1, 2),
    FeeType.FLAT: Fraction(1, 4),
}


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """A series' fee terms: its type and multiplier (as an exact fraction, usually 1)."""

    fee_type: FeeType = FeeType.QUADRATIC_WITH_MAKER_FEES
    multiplier: Fraction = Fraction(1)
    # Exact rates as integer (numerator, denominator): pricing calls this per RFQ, and
    # Fraction arithmetic there cost more than the rest of pricing together.
    _taker: tuple[int, int] = field(init=False, repr=False, compare=False)
    _maker: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.multiplier < 0:
            raise MoneyError(f"fee multiplier {self.multiplier} is negative")
        for name, share in (("_taker", Fraction(1)), ("_maker", _MAKER_SHARE[self.fee_type])):
            rate = _TAKER_RATE * share * self.multiplier
            object.__setattr__(self, name, (rate.numerator, rate.denominator))

    def fee_micros(self, price_micros: int, qty_centi: int, *, is_taker: bool) -> int:
        """Fee in micro-dollars for one fill, rounded up to $0.0001."""
        num, den = self._taker if is_taker else self._maker
        return _fee(price_micros, qty_centi, num, den)


def trade_fee_micros(price_micros: int, qty_centi: int, rate: Fraction) -> int:
    """Return ``rate x C x P x (1-P)`` in micro-dollars, rounded up to $0.0001."""
    if rate < 0:
        raise MoneyError(f"fee rate {rate} is negative")
    return _fee(price_micros, qty_centi, rate.numerator, rate.denominator)


@lru_cache(maxsize=65_536, typed=True)  # typed: True must not hit the entry of 1
def _fee(price_micros: int, qty_centi: int, num: int, den: int) -> int:
    # Cached: ``fee_edge`` prices several candidate bids per RFQ on a grid of ~100 prices and
    # sizes that repeat (benchmark B6). Only results are cached; a bad input raises each time.
    check_price(price_micros)
    check_qty(qty_centi)
    # dollars = rate * (q/100) * (p/1e6) * ((1e6-p)/1e6); in units of $0.0001 that is
    # rate * q * p * (1e6-p) / 1e10, rounded up.
    units_num = num * qty_centi * price_micros * (MAX_PRICE_MICROS - price_micros)
    units_den = den * 10_000_000_000
    return -(-units_num // units_den) * FEE_ROUNDING_MICROS
