"""Overlays: inventory skew, size edge, fee edge, requester profile."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from strat_fixtures import market, pricing_input

from quoter.domain.fees import FeeType
from strategies.base import Decline, Pricing, RequesterStats
from strategies.overlays import (
    FeeEdge,
    FeeEdgeParams,
    InventorySkew,
    InventorySkewParams,
    RequesterProfile,
    RequesterProfileParams,
    SizeEdge,
    SizeEdgeParams,
)

BASE = Pricing(fair_yes_micros=500_000, yes_bid_micros=480_000, no_bid_micros=480_000)


def skew(**params: object) -> InventorySkew:
    return InventorySkew(InventorySkewParams.model_validate(params))


def test_long_yes_lowers_yes_bid_and_raises_no_bid() -> None:
    s = skew(skew_per_contract_dollars="0.001", max_skew_dollars="0.05")
    out = s.adjust(pricing_input(position_centi=1_000), BASE)  # long 10 YES -> 0.01
    assert out == Pricing(490_000, 470_000, 490_000)
    out = s.adjust(pricing_input(position_centi=-1_000), BASE)  # long 10 NO
    assert out == Pricing(510_000, 490_000, 470_000)


def test_event_position_and_cap() -> None:
    s = skew(skew_per_contract_dollars="0.001", event_skew_per_contract_dollars="0.0005",
             max_skew_dollars="0.015")
    out = s.adjust(pricing_input(position_centi=500, event_position_centi=2_000), BASE)
    assert out == Pricing(485_000, 465_000, 495_000)  # 0.005 + 0.01 = 0.015 (the cap)
    out = s.adjust(pricing_input(position_centi=100_000), BASE)
    assert out == Pricing(485_000, 465_000, 495_000)


def test_skew_keeps_a_missing_side_missing() -> None:
    one_sided = Pricing(500_000, 480_000, 0)
    out = skew().adjust(pricing_input(position_centi=-10_000), one_sided)
    assert isinstance(out, Pricing)
    assert out.no_bid_micros == 0


bids = st.integers(0, 999_999)


@given(
    yes=bids, no=bids, fair=st.integers(1, 999_999),
    p1=st.integers(-10**6, 10**6), p2=st.integers(-10**6, 10**6),
    ev=st.integers(-10**6, 10**6), k=st.integers(0, 10_000),
)
def test_skew_is_monotonic_and_never_widens_the_sum(
    yes: int, no: int, fair: int, p1: int, p2: int, ev: int, k: int
) -> None:
    if yes + no > 1_000_000:
        no = 1_000_000 - yes
    base = Pricing(fair, yes, no)
    s = InventorySkew(InventorySkewParams.model_validate({}).model_copy(
        update={"skew_per_contract_micros": k, "event_skew_per_contract_micros": k // 2}))
    lo, hi = min(p1, p2), max(p1, p2)
    a = s.adjust(pricing_input(position_centi=lo, event_position_centi=ev), base)
    b = s.adjust(pricing_input(position_centi=hi, event_position_centi=ev), base)
    assert isinstance(a, Pricing)
    assert isinstance(b, Pricing)
    # Longer YES: YES bid never higher, NO bid never lower, fair never higher.
    assert b.yes_bid_micros <= a.yes_bid_micros
    assert b.no_bid_micros >= a.no_bid_micros
    assert b.fair_yes_micros <= a.fair_yes_micros
    for out in (a, b):
        assert 0 <= out.yes_bid_micros < 1_000_000
        assert 0 <= out.no_bid_micros < 1_000_000
        assert out.yes_bid_micros + out.no_bid_micros <= 1_000_000
        if out.yes_bid_micros and out.no_bid_micros:
            assert out.yes_bid_micros + out.no_bid_micros <= yes + no
        # Each bid keeps (at least) its edge against the shifted fair.
        if yes <= fair and out.yes_bid_micros:
            assert out.yes_bid_micros <= out.fair_yes_micros or out.fair_yes_micros == 1
        assert 0 < out.fair_yes_micros < 1_000_000


def test_size_edge_grows_with_size_and_caps() -> None:
    s = SizeEdge(SizeEdgeParams.model_validate(
        {"free_contracts": 10, "edge_per_contract_dollars": "0.0001",
         "max_extra_edge_dollars": "0.02"}))
    assert s.extra_micros(1_000) == 0
    assert s.extra_micros(11_000) == 10_000  # 100 contracts over the free 10
    assert s.extra_micros(1_000_000) == 20_000
    assert s.extra_micros(1_050) == 50  # half a contract over: exact, rounded up
    out = s.adjust(pricing_input(size_centi=11_000), BASE)
    assert out == Pricing(500_000, 470_000, 470_000)


@given(a=st.integers(0, 10**7), b=st.integers(0, 10**7))
def test_size_edge_monotonic(a: int, b: int) -> None:
    s = SizeEdge(SizeEdgeParams.model_validate({}))
    assert (s.extra_micros(a) <= s.extra_micros(b)) == (a <= b) or s.extra_micros(
        a) == s.extra_micros(b)


def test_size_edge_declines_oversize() -> None:
    s = SizeEdge(SizeEdgeParams.model_validate({"decline_above_contracts": 50}))
    out = s.adjust(pricing_input(size_centi=5_001), BASE)
    assert isinstance(out, Decline)
    assert out.reason == "too_large"


def test_fee_edge_uses_the_markets_maker_fee() -> None:
    f = FeeEdge(FeeEdgeParams())
    # Maker fee (0.25 x 0.07) at 0.48 on 100 contracts: 0.0175*100*0.48*0.52 = 0.4368 -> per
    # contract 0.004368; at the lowered price 0.475632 it is 0.004368-ish: charge the max.
    out = f.adjust(pricing_input(size_centi=10_000), BASE)
    assert isinstance(out, Pricing)
    assert out.yes_bid_micros == 480_000 - 4_368
    assert out.no_bid_micros == 480_000 - 4_368
    # No maker fee on plain quadratic series.
    free = pricing_input(size_centi=10_000, mkt=market(fee_type=FeeType.QUADRATIC))
    assert f.adjust(free, BASE) == BASE
    # Taker: 0.07*0.48*0.52 = 0.017472 per contract.
    taker = FeeEdge(FeeEdgeParams(assume_taker=True)).adjust(pricing_input(size_centi=100), BASE)
    assert isinstance(taker, Pricing)
    assert taker.yes_bid_micros == 480_000 - 17_500  # one contract: rounded up to $0.0001


@given(bid=st.integers(0, 999_999), size=st.integers(1, 10**6))
def test_fee_edge_bid_plus_fee_never_exceeds_the_original(bid: int, size: int) -> None:
    out = FeeEdge(FeeEdgeParams()).adjust(pricing_input(size_centi=size), Pricing(500_000, bid, 0))
    assert isinstance(out, Pricing)
    assert 0 <= out.yes_bid_micros <= bid
    if out.yes_bid_micros:
        fee = market().fees.fee_micros(out.yes_bid_micros, size, is_taker=False)
        assert out.yes_bid_micros + fee * 100 / size <= bid


def test_requester_profile() -> None:
    r = RequesterProfile(RequesterProfileParams.model_validate(
        {"min_accepts": 3, "widen_below_dollars": "0.00", "widen_factor_bps": 5_000,
         "max_widen_dollars": "0.03", "decline_below_dollars": "-0.05"}))
    unknown = RequesterStats(markout_count=2, markout_sum_micros=-1_000_000)
    assert r.adjust(pricing_input(requester=unknown), BASE) == BASE
    good = RequesterStats(markout_count=10, markout_sum_micros=50_000)
    assert r.adjust(pricing_input(requester=good), BASE) == BASE
    meh = RequesterStats(markout_count=10, markout_sum_micros=-200_000)  # avg -0.02 -> widen 0.01
    assert r.adjust(pricing_input(requester=meh), BASE) == Pricing(500_000, 470_000, 470_000)
    bad = RequesterStats(markout_count=4, markout_sum_micros=-240_000)  # avg -0.06
    out = r.adjust(pricing_input(requester=bad), BASE)
    assert isinstance(out, Decline)
    assert out.reason == "toxic_requester"
