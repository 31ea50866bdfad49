"""Requester profiles through ``Engine.on_event`` (issue 9, item 2): the engine counts each
requester's RFQs, quotes, accepts and fills, marks our fills out against the book mid at the
configured horizons, and hands the result to the pricers (``requester_profile`` then changes
the price)."""

from __future__ import annotations

import pytest
from engine_fixtures import MS, Harness, T, config, decisions, of

from quoter.config import parse_config
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import Side
from quoter.errors import ConfigError
from strategies.base import RequesterStats

PROFILED = """
version: 1
strategies:
  - name: main
    match: {series: [KXTEST]}
    pricer: {name: book_mid, params: {edge_dollars: "0.02", max_spread_dollars: "0.50"}}
    overlays:
      - name: requester_profile
        params: {min_accepts: 1, widen_below_dollars: "0.00", max_widen_dollars: "0.05",
                 decline_below_dollars: "-0.10"}
requesters: {markout_horizons_ms: [1000, 5000]}
"""


def harness() -> Harness:
    h = Harness(parse_config(PROFILED))
    h.ready(bid=480_000, ask=520_000)  # mid 0.50
    return h


def trade(h: Harness, n: int, creator: str = "req", side: Side = Side.YES) -> list[C.Command]:
    """RFQ -> quote -> accept -> confirm -> executed -> one fill; returns the fill's commands."""
    rfq_id, qid = f"r{n}", f"q{n}"
    (sub,) = of(h.send(E.RfqReceived(rfq_id, T, h.now, creator_id=creator,
                                     contracts_centi=1_000)), C.SubmitQuote)
    h.placed(rfq_id, qid)
    assert of(h.accept(qid, side, rfq_id=rfq_id, size=1_000), C.ConfirmQuote)
    h.send(E.QuoteConfirmed(rfq_id, qid, h.now))
    h.send(E.QuoteExecuted(qid, rfq_id, T, f"o{n}", h.now))
    price = sub.yes_bid_micros if side is Side.YES else 1_000_000 - sub.no_bid_micros
    return h.fill(f"t{n}", f"o{n}", side, price, 1_000)


def fire(h: Harness, key: str) -> list[C.Command]:
    return h.send(E.TimerFired(key, h.now))


def test_counts_and_markouts_at_each_horizon() -> None:
    h = harness()
    unrouted = E.RfqReceived("r0", "KXELSE-1-A", h.now, creator_id="req", contracts_centi=100)
    h.send(unrouted)  # parked while its metadata loads: seen, not quoted
    h.send(unrouted)  # a duplicate counts once
    out = trade(h, 1)
    assert of(out, C.ScheduleTimer) == [
        C.ScheduleTimer("markout:t1:1000", h.now + 1000 * MS),
        C.ScheduleTimer("markout:t1:5000", h.now + 5000 * MS),
    ]
    # We bought YES at 0.48. One second later the mid is 0.40: -0.08 a contract for us.
    h.advance_ms(1000)
    h.snapshot(bid=380_000, ask=420_000)
    fire(h, "markout:t1:1000")
    # Five seconds later it is back at 0.53: +0.05.
    h.advance_ms(4000)
    h.snapshot(bid=510_000, ask=550_000)
    fire(h, "markout:t1:5000")
    fire(h, "markout:t1:5000")  # a timer twice counts once
    assert h.engine.requesters.stats("req") == RequesterStats(
        accepts=1, markout_sum_micros=-80_000, markout_count=1, rfqs=2, quotes=1, fills=1,
        markouts=((1000, 1, -80_000), (5000, 1, 50_000)),
    )
    assert h.engine.requesters.stats("someone-else") == RequesterStats()


def test_a_requester_who_picks_us_off_gets_a_wider_price_then_none() -> None:
    h = harness()
    trade(h, 1, side=Side.NO)  # we buy NO at 0.48 (YES price 0.52)
    h.advance_ms(1000)
    h.snapshot(bid=530_000, ask=570_000)  # mid 0.55: NO worth 0.45, -0.03 for us
    fire(h, "markout:t1:1000")
    h.snapshot(bid=480_000, ask=520_000)  # the book is back at 0.50
    # Same book, two requesters: the one that marked out badly is quoted 0.03 wider a side.
    (sub,) = of(h.send(E.RfqReceived("r2", T, h.now, creator_id="other",
                                     contracts_centi=1_000)), C.SubmitQuote)
    assert (sub.yes_bid_micros, sub.no_bid_micros) == (480_000, 480_000)
    (sub,) = of(h.send(E.RfqReceived("r3", T, h.now, creator_id="req",
                                     contracts_centi=1_000)), C.SubmitQuote)
    assert (sub.yes_bid_micros, sub.no_bid_micros) == (450_000, 450_000)
    # A second fill that marks out at -0.19: average -0.11 -> below decline_below -0.10.
    h.placed("r3", "q3")
    assert of(h.accept("q3", Side.NO, rfq_id="r3", size=1_000), C.ConfirmQuote)
    h.send(E.QuoteExecuted("q3", "r3", T, "o3", h.now))
    h.fill("t3", "o3", Side.NO, 1_000_000 - 450_000, 1_000)
    h.advance_ms(1000)
    h.snapshot(bid=720_000, ask=760_000)  # mid 0.74: NO worth 0.26, bought at 0.45: -0.19
    fire(h, "markout:t3:1000")
    assert h.engine.requesters.stats("req").markout(1000) == (2, -220_000)
    out = h.send(E.RfqReceived("r4", T, h.now, creator_id="req", contracts_centi=1_000))
    assert decisions(out) == [("not_quoted", "pricer_declined:toxic_requester")]


def test_fill_before_its_execution_notice_is_still_attributed() -> None:
    h = harness()
    (sub,) = of(h.send(E.RfqReceived("r1", T, h.now, creator_id="req",
                                     contracts_centi=1_000)), C.SubmitQuote)
    h.placed("r1", "q1")
    h.accept("q1", Side.YES, rfq_id="r1", size=1_000)
    h.fill("t1", "o1", Side.YES, sub.yes_bid_micros, 1_000)
    out = h.send(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
    assert [t.key for t in of(out, C.ScheduleTimer)][-2:] == ["markout:t1:1000",
                                                              "markout:t1:5000"]
    assert h.engine.requesters.stats("req").fills == 1


def test_default_horizons_and_validation() -> None:
    assert config().requesters.markout_horizons_ms == (5_000, 60_000)
    for bad in ("[]", "[0]", "[1000, 1000]"):
        text = PROFILED.replace("[1000, 5000]", bad)
        with pytest.raises(ConfigError, match="markout_horizons_ms"):
            parse_config(text)
