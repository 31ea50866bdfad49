"""Exact parsing/formatting of Kalshi's fixed-point strings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quoter.domain.money import (
    MoneyError,
    check_bid,
    check_price,
    complement,
    contracts_to_centi,
    format_dollars,
    format_fp,
    micros_from_cents,
    notional_micros,
    parse_dollars,
    parse_fp,
)


@pytest.mark.parametrize(
    ("text", "micros"),
    [("0.48", 480_000), ("0.4800", 480_000), ("0.017500", 17_500), ("1", 1_000_000),
     ("-0.52", -520_000), (".5", 500_000), ("0.123456", 123_456), ("12.00000000", 12_000_000)],
)
def test_parse_dollars_exact(text: str, micros: int) -> None:
    assert parse_dollars(text) == micros


@pytest.mark.parametrize(
    "text", ["", "abc", "0.1234567", "1e-3", "0..1", "NaN", "inf", "0.4８", " - "]
)
def test_parse_dollars_rejects(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_dollars(text)


def test_parse_rejects_float() -> None:
    with pytest.raises(MoneyError):
        parse_dollars(0.48)  # type: ignore[arg-type]


def test_fp_quantities() -> None:
    assert parse_fp("100.00") == 10_000
    assert parse_fp("0.01") == 1
    assert format_fp(-150) == "-1.50"
    with pytest.raises(MoneyError):
        parse_fp("0.001")


def test_legacy_units() -> None:
    assert micros_from_cents(35) == parse_dollars("0.35")
    assert contracts_to_centi(100) == parse_fp("100.00")
    with pytest.raises(MoneyError):
        micros_from_cents(True)


def test_price_checks() -> None:
    assert check_price(1) == 1
    for bad in (0, 1_000_000, -5):
        with pytest.raises(MoneyError):
            check_price(bad)
    assert check_bid(0) == 0
    assert complement(480_000) == 520_000


def test_notional_exact_or_raises() -> None:
    assert notional_micros(480_000, 100) == 480_000
    assert notional_micros(480_100, 1) == 4_801
    with pytest.raises(MoneyError):
        notional_micros(480_001, 1)


@given(st.integers(min_value=-10**12, max_value=10**12), st.integers(min_value=2, max_value=6))
def test_dollars_round_trip(micros: int, places: int) -> None:
    scale = 10 ** (6 - places)
    value = micros - micros % scale
    assert parse_dollars(format_dollars(value, places)) == value


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_fp_round_trip(centi: int) -> None:
    assert parse_fp(format_fp(centi)) == centi


def test_format_refuses_inexact() -> None:
    with pytest.raises(MoneyError):
        format_dollars(480_001, 4)


def _outcome(fn: object, text: str) -> tuple[str, object]:
    try:
        return "ok", fn(text)  # type: ignore[operator]
    except MoneyError as exc:
        return "error", str(exc)


@given(st.one_of(
    st.text(alphabet="0123456789.-+ e٣", max_size=12),
    st.builds(lambda sign, whole, frac: f"{sign}{whole}.{frac}", st.sampled_from(["", "-", "+"]),
              st.text(alphabet="0123456789", min_size=0, max_size=45),
              st.text(alphabet="0123456789", min_size=0, max_size=4)),
))
def test_fp_fast_form_parses_as_the_general_parser(text: str) -> None:
    """The canonical ``*_fp`` shortcut gives exactly what the general parser gives."""
    from quoter.domain import money

    general = _outcome(lambda t: money._parse_fixed(t, 2, "quantity"), text)
    assert _outcome(money._parse_fp_str.__wrapped__, text) == general
