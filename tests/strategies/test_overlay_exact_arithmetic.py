"""The overlays' integer arithmetic equals the exact-rational definition, input for input.

The overlays compute in scaled integers for speed (benchmark B6); the references below are the
definitions written with ``Fraction``, as the overlays were before. Any rounding slip (floor
against ceil, a sign, a scale) shows up as a difference on some drawn input.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from strat_fixtures import pricing_input

from quoter.domain.money import MAX_PRICE_MICROS, format_dollars
from strategies._common import bids_from_fair
from strategies.base import Decline, Pricing, RequesterStats
from strategies.overlays import (
    InventorySkew,
    InventorySkewParams,
    RequesterProfile,
    RequesterProfileParams,
    SizeEdge,
    SizeEdgeParams,
)


def _d(micros: int) -> str:
    return format_dollars(micros, 6)


def _floor(x: Fraction) -> int:
    return x.numerator // x.denominator


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def _ref_skew(pos: int, ev: int, k: int, ke: int, cap: int, p: Pricing) -> Pricing:
    s = max(min(Fraction(pos * k + ev * ke, 100), Fraction(cap)), Fraction(-cap))
    if not s:
        return p
    top = MAX_PRICE_MICROS - 1
    yes = min(max(_floor(p.yes_bid_micros - s), 0), top) if p.yes_bid_micros else 0
    no = min(max(_floor(p.no_bid_micros + s), 0), top) if p.no_bid_micros else 0
    fair = min(max(_floor(p.fair_yes_micros - s), 1), MAX_PRICE_MICROS - 1)
    low = None if p.fair_low_micros is None else min(max(_floor(p.fair_low_micros - s), 0), top)
    high = (None if p.fair_high_micros is None
            else min(max(_ceil(p.fair_high_micros - s), 0), MAX_PRICE_MICROS))
    return Pricing(fair, yes, no, low, high)


prices = st.integers(0, 999_999)
positions = st.integers(-10**7, 10**7)
per_contract = st.integers(0, 100_000)


@st.composite
def pricings(draw: st.DrawFn) -> Pricing:
    fair = draw(st.integers(1, 999_999))
    if draw(st.booleans()):
        low = draw(st.integers(0, fair))
        high = draw(st.integers(fair, MAX_PRICE_MICROS))
        return Pricing(fair, draw(prices), draw(prices), low, high)
    return Pricing(fair, draw(prices), draw(prices))


@settings(max_examples=1_000)  # an off-by-one in one residue of 100 needs many draws
@given(p=pricings(), pos=positions, ev=positions, k=per_contract, ke=per_contract,
       cap=st.integers(0, 1_000_000))
def test_inventory_skew_equals_the_rational_definition(
    p: Pricing, pos: int, ev: int, k: int, ke: int, cap: int
) -> None:
    overlay = InventorySkew(InventorySkewParams.model_validate({
        "skew_per_contract_dollars": _d(k), "event_skew_per_contract_dollars": _d(ke),
        "max_skew_dollars": _d(cap)}))
    inp = pricing_input(position_centi=pos, event_position_centi=ev)
    assert overlay.adjust(inp, p) == _ref_skew(pos, ev, k, ke, cap, p)
    assert overlay.skew(inp) == max(min(Fraction(pos * k + ev * ke, 100), cap), -cap)


@settings(max_examples=1_000)
@given(size=st.integers(0, 10**8), free=st.integers(0, 10**6), per=per_contract,
       cap=st.integers(0, 1_000_000))
def test_size_edge_equals_the_rational_definition(size: int, free: int, per: int,
                                                  cap: int) -> None:
    overlay = SizeEdge(SizeEdgeParams.model_validate({
        "free_contracts": f"{free // 100}.{free % 100:02d}",
        "edge_per_contract_dollars": _d(per), "max_extra_edge_dollars": _d(cap)}))
    assert overlay.extra_micros(size) == min(_ceil(Fraction(max(size - free, 0) * per, 100)),
                                             cap)


@settings(max_examples=1_000)
@given(p=pricings(), count=st.integers(1, 10_000), total=st.integers(-10**10, 10**10),
       widen_below=st.integers(-10**6, 10**6), bps=st.integers(0, 10_000),
       max_widen=st.integers(0, 1_000_000), decline_below=st.integers(-10**6, 10**6))
def test_requester_profile_equals_the_rational_definition(
    p: Pricing, count: int, total: int, widen_below: int, bps: int, max_widen: int,
    decline_below: int,
) -> None:
    overlay = RequesterProfile(RequesterProfileParams.model_validate({
        "min_accepts": 1, "widen_below_dollars": _d(widen_below), "widen_factor_bps": bps,
        "max_widen_dollars": _d(max_widen), "decline_below_dollars": _d(decline_below)}))
    inp = pricing_input(requester=RequesterStats(markout_count=count, markout_sum_micros=total))
    got = overlay.adjust(inp, p)
    avg = Fraction(total, count)
    if avg < decline_below:
        assert isinstance(got, Decline)
        assert got.reason == "toxic_requester"
    elif avg < widen_below:
        extra = min(_ceil((widen_below - avg) * bps / 10_000), max_widen)
        assert got == Pricing(p.fair_yes_micros, max(p.yes_bid_micros - extra, 0),
                              max(p.no_bid_micros - extra, 0), p.fair_low_micros,
                              p.fair_high_micros)
    else:
        assert got is p


@given(fair=st.integers(0, MAX_PRICE_MICROS), edge=st.integers(0, MAX_PRICE_MICROS))
def test_integer_fair_bids_equal_the_fraction_path(fair: int, edge: int) -> None:
    assert bids_from_fair(fair, edge) == bids_from_fair(Fraction(fair), edge)
