"""Exact money and quantities as integers.

Units (they are in every name that holds them):

* prices and cash: integer **micro-dollars** (``*_micros``): $0.4800 is ``480_000``;
* quantities: integer **hundredths of a contract** (``*_centi``): ``"1.00"`` is ``100``.

Kalshi sends prices as ``*_dollars`` strings with up to 6 decimals and quantities as ``*_fp``
strings with 2 decimals (kalshi-api.md §5.1); older frames carry integer cents (``yes_bid``)
and whole contracts (``contracts``). Everything is parsed here, exactly, or rejected with
``MoneyError``. ``float`` is never accepted: a float that reaches this module is a bug.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

__all__ = [
    "CENTI_PER_CONTRACT",
    "MAX_PRICE_MICROS",
    "MICROS_PER_CENT",
    "MICROS_PER_DOLLAR",
    "MoneyError",
    "check_bid",
    "check_price",
    "check_qty",
    "complement",
    "contracts_to_centi",
    "format_dollars",
    "format_fp",
    "micros_from_cents",
    "notional_micros",
    "parse_dollars",
    "parse_fp",
]

MICROS_PER_DOLLAR: Final = 1_000_000
MICROS_PER_CENT: Final = 10_000
MAX_PRICE_MICROS: Final = MICROS_PER_DOLLAR
CENTI_PER_CONTRACT: Final = 100
_DOLLAR_PLACES: Final = 6
_FP_PLACES: Final = 2
#: Distinct strings remembered per parser. Wire prices sit on a small grid and sizes repeat, so
#: a book replay parses the same few hundred strings over and over (benchmark B4: parsing was
#: ~40% of decode + book update). Bounded: an adversarial stream only evicts.
_PARSE_CACHE_SIZE: Final = 8192


class MoneyError(ValueError):
    """A price, quantity or amount that is malformed, inexact or out of range."""


def _parse_fixed(text: str, places: int, what: str) -> int:
    """Parse a plain decimal string into an integer scaled by ``10**places``, exactly."""
    if not isinstance(text, str):
        raise MoneyError(f"{what} must be a decimal string, got {type(text).__name__}")
    s = text.strip()
    if not s:
        raise MoneyError(f"{what} is empty")
    if len(s) > 40:
        # Also keeps int() from raising its own ValueError on enormous digit strings.
        raise MoneyError(f"{what} is too long ({len(s)} characters)")
    neg = s[0] == "-"
    if s[0] in "+-":
        s = s[1:]
    whole, dot, frac = s.partition(".")
    if not whole and not frac:
        raise MoneyError(f"{what} {text!r} has no digits")
    if not (whole or "0").isdigit() or (dot and frac and not frac.isdigit()):
        raise MoneyError(f"{what} {text!r} is not a decimal number")
    if not whole.isascii() or not frac.isascii():
        raise MoneyError(f"{what} {text!r} is not a decimal number")
    if len(frac) > places:
        extra = frac[places:]
        if extra.strip("0"):
            raise MoneyError(f"{what} {text!r} has more than {places} decimal places")
        frac = frac[:places]
    value: int = int(whole or "0") * 10**places + int((frac or "0").ljust(places, "0"))
    return -value if neg else value


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse_dollars_str(text: str) -> int:
    # Only results are cached: a string that raises is parsed (and refused) every time.
    return _parse_fixed(text, _DOLLAR_PLACES, "dollar amount")


#: The form Kalshi writes a ``*_fp`` in (``"-12.50"``): then the value is the digits without
#: the point. A third of ``_parse_fixed``'s cost, which sizes miss the cache often enough
#: for (a book's sizes drift over thousands of values).
_CANONICAL_FP: Final = re.compile(r"-?[0-9]{1,30}\.[0-9]{2}")


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse_fp_str(text: str) -> int:
    if _CANONICAL_FP.fullmatch(text) is not None:
        return int(text.replace(".", ""))
    return _parse_fixed(text, _FP_PLACES, "quantity")


def parse_dollars(text: str) -> int:
    """Parse a ``*_dollars`` string (e.g. ``"0.4800"``) into micro-dollars; may be negative."""
    if type(text) is str:  # exactly str: hashable, and what the wire decoder hands us
        return _parse_dollars_str(text)
    return _parse_fixed(text, _DOLLAR_PLACES, "dollar amount")


def format_dollars(micros: int, places: int = 4) -> str:
    """Format micro-dollars as a dollar string with ``places`` decimals (2..6), exactly."""
    if not 2 <= places <= _DOLLAR_PLACES:
        raise MoneyError(f"places must be 2..6, got {places}")
    scale = 10 ** (_DOLLAR_PLACES - places)
    if micros % scale:
        raise MoneyError(f"{micros} micro-dollars cannot be written with {places} decimals")
    sign = "-" if micros < 0 else ""
    units = abs(micros) // scale
    whole, frac = divmod(units, 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"


def parse_fp(text: str) -> int:
    """Parse a ``*_fp`` quantity string (e.g. ``"100.00"``) into hundredths of a contract."""
    if type(text) is str:
        return _parse_fp_str(text)
    return _parse_fixed(text, _FP_PLACES, "quantity")


def format_fp(centi: int) -> str:
    """Format hundredths of a contract as Kalshi's 2-decimal ``*_fp`` string."""
    sign = "-" if centi < 0 else ""
    whole, frac = divmod(abs(centi), CENTI_PER_CONTRACT)
    return f"{sign}{whole}.{frac:02d}"


def micros_from_cents(cents: int) -> int:
    """Convert a legacy integer-cent field (``yes_bid: 35``) to micro-dollars."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise MoneyError(f"cent amount must be an integer, got {cents!r}")
    return cents * MICROS_PER_CENT


def contracts_to_centi(contracts: int) -> int:
    """Convert a legacy whole-contract count (``contracts: 100``) to hundredths."""
    if isinstance(contracts, bool) or not isinstance(contracts, int):
        raise MoneyError(f"contract count must be an integer, got {contracts!r}")
    return contracts * CENTI_PER_CONTRACT


def check_price(price_micros: int) -> int:
    """Return ``price_micros`` if it is a tradable price strictly between $0 and $1."""
    if isinstance(price_micros, bool) or not isinstance(price_micros, int):
        raise MoneyError(f"price must be integer micro-dollars, got {price_micros!r}")
    if not 0 < price_micros < MAX_PRICE_MICROS:
        raise MoneyError(f"price {price_micros} micro-dollars is outside (0, 1) dollars")
    return price_micros


def check_bid(bid_micros: int) -> int:
    """Return a quote bid if valid: 0 (no bid on this side) or a tradable price."""
    if bid_micros == 0 and not isinstance(bid_micros, bool):
        return 0
    return check_price(bid_micros)


def check_qty(qty_centi: int) -> int:
    """Return ``qty_centi`` if it is a positive integer quantity."""
    if isinstance(qty_centi, bool) or not isinstance(qty_centi, int):
        raise MoneyError(f"quantity must be integer hundredths, got {qty_centi!r}")
    if qty_centi <= 0:
        raise MoneyError(f"quantity {qty_centi} hundredths must be positive")
    return qty_centi


def complement(price_micros: int) -> int:
    """Return the other side's price: a YES at p is a NO at $1 - p."""
    return MAX_PRICE_MICROS - check_price(price_micros)


def notional_micros(price_micros: int, qty_centi: int) -> int:
    """Return price x quantity in micro-dollars; raises if not exact to the micro-dollar.

    Every valid Kalshi price is a multiple of $0.0001 (100 micros), so the product of a valid
    price and a quantity in hundredths is always exact.
    """
    product = price_micros * qty_centi
    if product % CENTI_PER_CONTRACT:
        raise MoneyError(
            f"{price_micros} micro-dollars x {qty_centi} hundredths is not exact in micro-dollars"
        )
    return product // CENTI_PER_CONTRACT
