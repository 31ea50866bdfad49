"""fixed: inline and CSV fair values, read once at validation, exact."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from strat_fixtures import TICKER, pricing_input

from strategies.base import Decline, Pricing
from strategies.fixed import Fixed, FixedParams


def test_inline_fair_values_case_insensitive() -> None:
    params = FixedParams.model_validate(
        {"edge_dollars": "0.03", "fair_yes_dollars": {"kxtest-26jan01-a": "0.6123"}}
    )
    out = Fixed(params).price(pricing_input())
    assert out == Pricing(612_300, 582_300, 357_700)


def test_unknown_market_declines() -> None:
    params = FixedParams.model_validate({"fair_yes_dollars": {"OTHER": "0.5"}})
    out = Fixed(params).price(pricing_input())
    assert out == Decline("no_fair_value", "KXTEST-26JAN01-A")


def test_csv_is_read_at_validation_relative_to_config_dir(tmp_path: Path) -> None:
    (tmp_path / "fv.csv").write_text(
        "ticker,fair_yes_dollars\nKXTEST-26JAN01-A,0.25\nKXB,0.75\n", encoding="utf-8"
    )
    params = FixedParams.model_validate(
        {"csv": "fv.csv", "fair_yes_dollars": {"KXB": "0.70"}},
        context={"config_dir": tmp_path},
    )
    assert params.fair_yes_micros == {"KXTEST-26JAN01-A": 250_000, "KXB": 700_000}
    (tmp_path / "fv.csv").unlink()  # pricing is pure afterwards: no file access
    assert isinstance(Fixed(params).price(pricing_input()), Pricing)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("ticker,fair\nA,0.5\n", "fv.csv:1: the header must be exactly ticker,fair_yes_dollars"),
        ("ticker,fair_yes_dollars\nA,0.5\nB,1.00\n", "fv.csv:3: fair value '1.00' must be"),
        ("ticker,fair_yes_dollars\nA,0.5\nA,0.4\n", "fv.csv:3: duplicate ticker"),
        ("ticker,fair_yes_dollars\nA,zero\n", "fv.csv:2: dollar amount 'zero'"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "fv.csv").write_text(body, encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        FixedParams.model_validate({"csv": "fv.csv"}, context={"config_dir": tmp_path})
    assert message in str(info.value)


@pytest.mark.parametrize(
    "fair", ["0", "1", "1.5", "-0.2", 0.5, "0.5000001"],
)
def test_bad_fair_values_rejected(fair: object) -> None:
    with pytest.raises(ValidationError):
        FixedParams.model_validate({"fair_yes_dollars": {"A": fair}})


def test_needs_some_fair_value() -> None:
    with pytest.raises(ValidationError, match="give fair values"):
        FixedParams.model_validate({})


@given(fair=st.integers(1, 999_999), edge=st.integers(0, 1_000_000))
def test_properties(fair: int, edge: int) -> None:
    params = FixedParams.model_validate({"fair_yes_dollars": {TICKER: "0.5"}}).model_copy(
        update={"fair_yes_micros": {TICKER: fair}, "edge_micros": edge}
    )
    out = Fixed(params).price(pricing_input())
    assert isinstance(out, Pricing)
    assert out.fair_yes_micros == fair
    assert 0 <= out.yes_bid_micros < 1_000_000
    assert 0 <= out.no_bid_micros < 1_000_000
    assert out.yes_bid_micros + out.no_bid_micros <= 1_000_000
    assert out.yes_bid_micros == max(fair - edge, 0)
    assert out.no_bid_micros == max(1_000_000 - fair - edge, 0)
