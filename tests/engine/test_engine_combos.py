"""Combos with dependent legs through ``Engine.on_event`` (issue 9, item 1): quotes stay
outside the joint's proven bounds, determined legs price at their settlement value, and a leg
that does not trade declines the RFQ with a reason."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from engine_fixtures import Harness, config, decisions, market, of

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import ComboLeg, MarketInfo, Side

COMBO = "KXMVECOMBO-1-X"
EVENT = "KXGAME-26JAN01"
WIN = f"{EVENT}-WIN"  # the team wins (margin > 0)
WIN7 = f"{EVENT}-WIN7"  # the team wins by 7+ (margin > 6.5)
OTHER = "KXOTHER-26JAN01-A"


def combo_harness(params: str = '{edge_dollars: "0.02"}') -> Harness:
    return Harness(config(pricer=f"combo, params: {params}", match="{kind: combo}"))


def leg(ticker: str, side: Side = Side.YES) -> ComboLeg:
    return ComboLeg(ticker.rsplit("-", 1)[0], ticker, side)


def strike(ticker: str, floor: Fraction) -> MarketInfo:
    return replace(market(ticker), strike_type="greater", floor_strike=floor)


def quote_combo(h: Harness, legs: tuple[ComboLeg, ...], rfq_id: str = "c1") -> list[C.Command]:
    return h.rfq(rfq_id, COMBO, legs=legs, mve_collection_ticker="KXMVECOLL")


def setup_nested(h: Harness, legs: tuple[ComboLeg, ...]) -> None:
    h.load(market(COMBO, legs=legs))
    h.ready(WIN, strike(WIN, Fraction(0)), bid=590_000, ask=610_000)  # 0.60
    h.ready(WIN7, strike(WIN7, Fraction(13, 2)), bid=390_000, ask=410_000)  # 0.40


def test_nested_legs_are_priced_at_their_true_joint_not_the_product() -> None:
    # The example: true joint 0.40; the product 0.24 bid NO at 0.71 for a $0.60 NO.
    legs = (leg(WIN), leg(WIN7))
    h = combo_harness()
    setup_nested(h, legs)
    (sub,) = of(quote_combo(h, legs), C.SubmitQuote)
    assert sub.fair_yes_micros == 400_000
    assert (sub.yes_bid_micros, sub.no_bid_micros) == (380_000, 580_000)


def test_unproven_dependence_quotes_only_outside_the_frechet_bounds() -> None:
    # Two legs of one event with no structure to prove how they relate: 0.5 and 0.5 give
    # 0 <= P <= 0.5, so there is no YES bid at all and the NO bid is below 1 - 0.5.
    legs = (leg(WIN), leg(OTHER))
    h = combo_harness('{edge_dollars: "0.02", same_event_edge_dollars: "0"}')
    h.load(market(COMBO, legs=legs))
    h.ready(WIN, bid=490_000, ask=510_000)
    h.ready(OTHER, bid=490_000, ask=510_000)
    (sub,) = of(quote_combo(h, legs), C.SubmitQuote)
    assert (sub.yes_bid_micros, sub.no_bid_micros) == (0, 480_000)
    # A dependence model configured for both series narrows it back to independence.
    model = ('{edge_dollars: "0.02", dependence: {KXGAME: {min_rho: "0", max_rho: "0"}, '
             'KXOTHER: {min_rho: "0", max_rho: "0"}}}')
    h = combo_harness(model)
    h.load(market(COMBO, legs=legs))
    h.ready(WIN, bid=490_000, ask=510_000)
    h.ready(OTHER, bid=490_000, ask=510_000)
    (sub,) = of(quote_combo(h, legs), C.SubmitQuote)
    assert (sub.yes_bid_micros, sub.no_bid_micros) == (230_000, 730_000)


def test_last_look_measures_the_hit_side_against_its_end_of_the_interval() -> None:
    legs = (leg(WIN), leg(OTHER))
    h = combo_harness('{edge_dollars: "0.02", same_event_edge_dollars: "0"}')
    h.load(market(COMBO, legs=legs))
    h.ready(WIN, bid=590_000, ask=610_000)  # 0.60
    h.ready(OTHER, bid=590_000, ask=610_000)  # 0.60: 0.20 <= P <= 0.60
    (sub,) = of(quote_combo(h, legs), C.SubmitQuote)
    assert (sub.yes_bid_micros, sub.no_bid_micros) == (180_000, 380_000)
    h.placed("c1", "cq1")
    # OTHER drops to 0.50: P in [0.10, 0.50]. Our YES bid 0.18 is now above the low end; the
    # midpoint (0.30) would still have shown 0.12 of "edge".
    h.snapshot(OTHER, bid=490_000, ask=510_000)
    out = h.accept("cq1", Side.YES, rfq_id="c1", ticker=COMBO)
    assert of(out, C.ConfirmQuote) == []
    (d,) = of(out, C.RecordDecision)
    assert (d.decision, d.reason) == ("declined", "edge")


def test_determined_leg_prices_at_its_settlement_value() -> None:
    legs = (leg(WIN), leg(OTHER))
    h = combo_harness()
    h.load(market(COMBO, legs=legs))
    h.ready(WIN, bid=590_000, ask=610_000)
    h.ready(OTHER, bid=490_000, ask=510_000)
    # OTHER is determined YES (its book still shows 0.50): the combo is worth P(WIN) = 0.60.
    h.send(E.MarketLifecycleChanged(OTHER, "determined", h.now, result="yes"))
    (sub,) = of(quote_combo(h, legs), C.SubmitQuote)
    assert sub.fair_yes_micros == 600_000
    assert (sub.yes_bid_micros, sub.no_bid_micros) == (580_000, 380_000)


def test_leg_settlement_value_from_the_rfq_needs_no_book() -> None:
    settled = replace(leg(OTHER, Side.NO), yes_settlement_value_micros=0)  # NO leg: won
    legs = (leg(WIN), settled)
    h = combo_harness()
    h.load(market(COMBO, legs=legs))
    h.ready(WIN, bid=590_000, ask=610_000)
    h.load(market(OTHER))  # metadata, but no book: a determined market's book may be gone
    (sub,) = of(quote_combo(h, legs), C.SubmitQuote)
    assert (sub.fair_yes_micros, sub.yes_bid_micros, sub.no_bid_micros) == (
        600_000, 580_000, 380_000)


def test_closed_or_paused_leg_declines_the_rfq() -> None:
    legs = (leg(WIN), leg(OTHER))
    for event_type, reason in (("closed", "leg_closed"), ("deactivated", "leg_paused")):
        h = combo_harness()
        h.load(market(COMBO, legs=legs))
        h.ready(WIN, bid=590_000, ask=610_000)
        h.ready(OTHER, bid=490_000, ask=510_000)
        h.send(E.MarketLifecycleChanged(OTHER, event_type, h.now))
        out = quote_combo(h, legs)
        assert of(out, C.SubmitQuote) == []
        assert decisions(out) == [("not_quoted", f"pricer_declined:{reason}")]


def test_unknown_leg_declines_the_rfq() -> None:
    legs = (leg(WIN), leg(OTHER))
    h = combo_harness()
    quote_combo(h, legs)
    h.load(market(COMBO, legs=legs))
    h.ready(WIN, bid=590_000, ask=610_000)
    out = h.send(E.MarketLoadFailed(OTHER, "404 not_found", h.now))
    assert decisions(out) == [("not_quoted", "unknown_leg")]
