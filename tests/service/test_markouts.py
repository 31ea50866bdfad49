"""Marked-to-mid PnL and markouts: exact integers, both sides, every horizon."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from quoter.service.live_view import render
from quoter.service.markouts import (
    MarkoutTracker,
    MarkoutView,
    marked_value_micros,
    side_value_micros,
)
from quoter.service.status import (
    PositionView,
    StatusSnapshot,
    from_json_dict,
    markouts_line,
    pnl_line,
    to_json_dict,
)
from quoter.service.summary import render_summary

S = 1_000_000_000


def test_positions_are_valued_at_the_mid_of_the_side_held() -> None:
    assert marked_value_micros(250, 600_000) == 1_500_000       # 2.50 YES at 0.60
    assert marked_value_micros(-250, 600_000) == 1_000_000      # 2.50 NO at 1 - 0.60
    assert marked_value_micros(0, 600_000) == 0
    assert side_value_micros("no", 455_000, 1) == 5_450          # 0.01 NO at 0.545


@given(st.integers(-10**6, 10**6), st.integers(1, 999_999))
def test_a_yes_and_a_no_of_the_same_size_are_worth_one_dollar(count: int, mid: int) -> None:
    pair = side_value_micros("yes", mid, abs(count) * 100) + side_value_micros(
        "no", mid, abs(count) * 100)
    assert pair == abs(count) * 1_000_000


def test_markouts_measure_each_fill_at_each_horizon() -> None:
    tracker = MarkoutTracker((1, 10))
    mids = {"A": 500_000}
    tracker.add_fill(0, "A", "yes", 480_000, 100)   # bought 1 YES at 0.48
    tracker.add_fill(0, "A", "no", 480_000, 200)    # bought 2 NO at 0.48
    tracker.poll(S - 1, mids.get)
    assert [m.fills for m in tracker.views()] == [0, 0]
    tracker.poll(S, mids.get)  # at 1 s: YES +0.02, NO +0.02 each
    assert tracker.views()[0] == MarkoutView(1, 2, 300, 20_000 + 40_000)
    assert tracker.views()[0].per_contract_micros == 20_000
    mids["A"] = 560_000  # the YES side rallies: the NO fill marks out badly at 10 s
    tracker.poll(10 * S, mids.get)
    assert tracker.views()[1] == MarkoutView(10, 2, 300, 80_000 - 80_000)
    tracker.poll(100 * S, mids.get)  # nothing left to measure
    assert [m.fills for m in tracker.views()] == [2, 2]


def test_a_market_without_a_mid_is_counted_not_guessed() -> None:
    tracker = MarkoutTracker((1,))
    tracker.add_fill(0, "A", "yes", 480_000, 100)
    tracker.poll(2 * S, lambda ticker: None)
    assert tracker.views() == (MarkoutView(1, 0, 0, 0),)
    assert tracker.unmarked == 1


def _snapshot() -> StatusSnapshot:
    return StatusSnapshot(
        mode="paper", env="demo", halted=False, halt_reason="", uptime_ms=1000, counts={},
        decline_reasons={}, no_quote_reasons={}, open_quotes=(), recent_decisions=(),
        positions=(
            # 2 YES bought at 0.48 (cost 0.96 + fee), marked at 0.55: +0.14 unrealized.
            PositionView("KX-A", 200, 960_000, -14_000, 14_000, None, None, 550_000),
            # 1 NO with no book: at cost.
            PositionView("KX-B", -100, 470_000, -7_000, 7_000),
        ),
        pnl_realized_micros=-21_000, exposure_worst_case_micros=0, latencies=(),
        markouts=(MarkoutView(1, 2, 300, 60_000), MarkoutView(10, 0, 0, 0)),
    )


def test_marked_pnl_and_markouts_in_status_view_and_summary() -> None:
    s = _snapshot()
    assert s.positions[0].unrealized_pnl_micros == 1_100_000 - 960_000
    assert s.pnl_marked_micros == -21_000 + 140_000
    assert s.unmarked_positions == 1
    assert pnl_line(s) == "realized PnL -$0.0210  marked to mid $0.1190 (1 at cost: no mid)"
    assert markouts_line(s) == "markouts 1s $0.0200/contract (n 2)"
    data = to_json_dict(s)
    assert (data["pnl_marked_micros"], data["pnl_marked_dollars"]) == (119_000, "0.1190")
    assert data["markouts"][0]["per_contract_dollars"] == "0.0200"
    again = from_json_dict(data)
    assert again.pnl_marked_micros == s.pnl_marked_micros
    assert again.markouts == s.markouts
    console = Console(record=True, width=150, color_system=None)
    console.print(render(s))
    text = console.export_text()
    assert "marked to mid $0.1190" in text
    assert "markouts 1s $0.0200/contract (n 2)" in text
    row = next(line for line in text.splitlines() if "KX-A" in line)
    assert "0.5500" in row
    assert "$0.1400" in row
    summary = render_summary(s, ledger_match=True, ledger_diff=())
    assert ("marked-to-mid PnL: $0.1190 (realized + $0.1400 unrealized at the mid; "
            "1 positions without a mid, at cost)") in summary
    assert "markouts 1s $0.0200/contract (n 2)" in summary


def test_markouts_and_pnl_are_kept_by_strategy() -> None:
    t = MarkoutTracker(horizons_s=(1,))
    t.attribute("o1", "combos")  # the execution may come before its fill ...
    t.add_fill(0, "A", "yes", 400_000, 100, order_id="o1", fee_micros=1_000)
    t.add_fill(0, "B", "no", 300_000, 200, order_id="o2", fee_micros=2_000)
    t.attribute("o2", "singles")  # ... or after it
    t.poll(2 * S, {"A": 500_000, "B": 600_000}.get)
    views = t.strategy_views()
    assert [m.total_micros for m in views["combos"]] == [100_000]   # YES 0.40 -> 0.50 x 1
    assert [m.total_micros for m in views["singles"]] == [200_000]  # NO 0.30 -> 0.40 x 2
    pnl = {p.strategy: p for p in t.strategy_pnl({"A": 300_000}.get)}
    assert pnl["combos"].pnl_micros == -100_000 - 1_000  # marked at 0.30 now, less its fee
    assert (pnl["singles"].pnl_micros, pnl["singles"].unmarked) == (-2_000, 1)
    snap = StatusSnapshot(
        mode="paper", env="demo", halted=False, halt_reason="", uptime_ms=1, counts={},
        decline_reasons={}, no_quote_reasons={}, open_quotes=(), recent_decisions=(),
        positions=(), pnl_realized_micros=0, exposure_worst_case_micros=0, latencies=(),
        strategy_pnl=tuple(pnl.values()), strategy_markouts=tuple(views.items()))
    assert from_json_dict(to_json_dict(snap)) == snap
    text = render_summary(snap, ledger_match=True, ledger_diff=[])
    assert "combos: fills 1" in text
    assert "PnL -$0.1010" in text
