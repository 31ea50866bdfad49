"""Checks on money events: values Kalshi never sends are refused before anything is booked.

Every decoder that builds a fill or a settlement runs these at the wire edge (a refusal is a
``DecodeError`` there, counted), and the ledger runs them again before it changes anything,
so booking is all or nothing whatever the source (a recording, the store, a test).
"""

from __future__ import annotations

from quoter.domain.events import FillReceived
from quoter.domain.money import MAX_PRICE_MICROS, MoneyError, check_price, check_qty

__all__ = ["PRICE_STEP_MICROS", "check_fill", "check_settlement_value"]

#: Every Kalshi price is a multiple of $0.0001 (kalshi-api.md §0): with it, price x any
#: quantity in hundredths is exact in micro-dollars, so any split of a fill books exactly.
PRICE_STEP_MICROS = 100


def check_fill(fill: FillReceived) -> FillReceived:
    """Return ``fill`` if Kalshi could have sent it; raise ``MoneyError`` naming the field."""
    if not fill.trade_id:
        raise MoneyError("fill has no trade_id")
    if not fill.market_ticker:
        raise MoneyError(f"fill {fill.trade_id} has no market_ticker")
    check_qty(fill.count_centi)
    check_price(fill.yes_price_micros)
    if fill.yes_price_micros % PRICE_STEP_MICROS:
        raise MoneyError(f"fill {fill.trade_id}: yes price {fill.yes_price_micros} "
                         "micro-dollars is not a multiple of $0.0001")
    if isinstance(fill.fee_micros, bool) or not isinstance(fill.fee_micros, int):
        raise MoneyError(f"fill {fill.trade_id}: fee must be integer micro-dollars")
    if fill.fee_micros < 0:
        raise MoneyError(f"fill {fill.trade_id}: negative fee {fill.fee_micros} micro-dollars")
    if fill.ts_ms is not None and fill.ts_ms < 0:
        raise MoneyError(f"fill {fill.trade_id}: negative time {fill.ts_ms} ms")
    return fill


def check_settlement_value(value_micros: int) -> int:
    """Return a settlement value per YES contract if it is within $0..$1."""
    if isinstance(value_micros, bool) or not isinstance(value_micros, int):
        raise MoneyError(f"settlement value must be integer micro-dollars, got {value_micros!r}")
    if not 0 <= value_micros <= MAX_PRICE_MICROS:
        raise MoneyError(f"settlement value {value_micros} micro-dollars is outside $0..$1")
    return value_micros
