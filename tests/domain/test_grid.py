"""Price grids from price_ranges and every documented price_level_structure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quoter.domain.grid import STRUCTURES, PriceGrid, grid_for_structure
from quoter.domain.money import MoneyError

structures = st.sampled_from(sorted(STRUCTURES))
prices = st.integers(min_value=1, max_value=999_999)


@given(structures, prices)
def test_snap_down_is_largest_valid_below(name: str, p: int) -> None:
    g = grid_for_structure(name)
    if p < g.min_price_micros:
        with pytest.raises(MoneyError):
            g.snap_down(p)
        return
    s = g.snap_down(p)
    assert s <= p
    assert g.is_valid(s)
    # nothing valid strictly between s and p
    assert g.snap_up(s + 1) > p if s < g.max_price_micros else True


@given(structures, prices)
def test_snap_up_is_smallest_valid_above(name: str, p: int) -> None:
    g = grid_for_structure(name)
    if p > g.max_price_micros:
        with pytest.raises(MoneyError):
            g.snap_up(p)
        return
    s = g.snap_up(p)
    assert s >= p
    assert g.is_valid(s)


@given(structures, st.integers(min_value=1, max_value=99))
def test_whole_cents_valid_everywhere(name: str, cents: int) -> None:
    assert grid_for_structure(name).is_valid(cents * 10_000)


def test_tapered_deci_cent_bands() -> None:
    g = grid_for_structure("tapered_deci_cent")
    assert g.is_valid(51_000)       # 0.051 at the edge: 0.1c steps
    assert not g.is_valid(501_000)  # 0.501 in the centre: whole cents only
    assert g.is_valid(905_000)
    assert g.snap_down(505_000) == 500_000


def test_combo_grid() -> None:
    g = grid_for_structure("center_deci_edge_centi_cent")
    assert g.is_valid(5_100)        # 0.0051
    assert g.is_valid(995_500)      # 0.9955
    assert not g.is_valid(500_500)  # 0.5005: centre is 0.1c
    assert g.min_price_micros == 100
    assert g.max_price_micros == 999_900


def test_zero_and_one_never_valid() -> None:
    for g in STRUCTURES.values():
        assert not g.is_valid(0)
        assert not g.is_valid(1_000_000)


def test_from_price_ranges_round_trip() -> None:
    ranges = [{"start": "0.0000", "end": "0.1000", "step": "0.0010"},
              {"start": "0.1000", "end": "0.9000", "step": "0.0100"},
              {"start": "0.9000", "end": "1.0000", "step": "0.0010"}]
    g = PriceGrid.from_price_ranges(ranges)
    assert g == grid_for_structure("tapered_deci_cent")
    assert g.to_price_ranges() == ranges


def test_bad_ranges_raise() -> None:
    with pytest.raises(MoneyError):
        PriceGrid.from_price_ranges([{"start": "0.5", "end": "0.4", "step": "0.01"}])
    with pytest.raises(MoneyError):
        PriceGrid.from_price_ranges([{"start": "0", "end": "1"}])
    with pytest.raises(MoneyError):
        grid_for_structure("no_such_structure")
    with pytest.raises(MoneyError):
        grid_for_structure("linear_cent").check(505_000)
