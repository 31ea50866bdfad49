"""Operator views: snapshot JSON, latency percentiles, live rendering, activity lines, summary."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from quoter.domain.money import MoneyError, parse_dollars, parse_fp
from quoter.service.live_view import (
    ActivityPrinter,
    LiveView,
    format_duration_ms,
    is_tty,
    render,
)
from quoter.service.status import (
    DecisionView,
    FillView,
    LatencyRecorder,
    LatencyView,
    PositionView,
    QuoteView,
    StatusSnapshot,
    dollars,
    from_json_dict,
    nearest_rank,
    to_json_dict,
    usd,
)
from quoter.service.summary import (
    compare_ledgers,
    dump_summary_json,
    ledger_line,
    render_summary,
    summary_json,
)

T0 = 1_752_000_000_000_000_000  # 2025-07-08T18:40:00Z


def decision(i: int, decision: str = "quoted", reason: str = "quoted") -> DecisionView:
    return DecisionView(T0 + i * 1_000_000, f"rfq-{i}", "KXRAIN-25-T1", decision, reason, "mid")


def snapshot(**over: object) -> StatusSnapshot:
    base: dict[str, object] = {
        "mode": "sim",
        "env": "demo",
        "halted": False,
        "halt_reason": "",
        "uptime_ms": 3_723_456,
        "counts": {"rfqs_seen": 120, "routed": 100, "quoted": 80, "accepted": 9,
                   "confirmed": 7, "declined": 2, "fills": 7, "decode_errors": 1,
                   "reconnects": 3},
        "decline_reasons": {"price_moved": 1, "halted": 1},
        "no_quote_reasons": {"no_book": 15, "filtered": 5},
        "open_quotes": (
            QuoteView("rfq-7", "q-7", "KXRAIN-25-T1", 480_000, 505_000, "open", 1_250, "mid"),
        ),
        "recent_decisions": (decision(1), decision(2, "declined", "price_moved")),
        "positions": (
            PositionView("KXRAIN-25-T1", 1_000, 4_800_000, 123_400, 70_000, 1_000),
            PositionView("KXSNOW-25-T2", -250, 1_262_500, -5_000, 17_500, 200),
        ),
        "pnl_realized_micros": 118_400,
        "exposure_worst_case_micros": 6_062_500,
        "latencies": (LatencyView("frame_to_decision", 500, 41, 88, 230, 1_024),),
        "recording_path": "runs/demo/frames.jsonl",
        "db_path": "runs/demo/quoter.db",
        "recent_fills": (
            FillView(T0 + 5_000_000, "t-1", "KXRAIN-25-T1", "yes", 480_000, 1_000, 70_000),
        ),
    }
    base.update(over)
    return StatusSnapshot(**base)  # type: ignore[arg-type]


def text_of(renderable: object) -> str:
    console = Console(record=True, width=120, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.export_text()


# -- money formatting --------------------------------------------------------------------


def test_dollars_uses_four_places_and_six_when_finer() -> None:
    assert dollars(480_000) == "0.4800"
    assert dollars(-5_000) == "-0.0050"
    assert dollars(12_345_678) == "12.345678"
    assert usd(-5_000) == "-$0.0050"
    assert usd(6_062_500) == "$6.0625"


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_dollars_round_trip_exactly(micros: int) -> None:
    assert parse_dollars(dollars(micros)) == micros


# -- latency -----------------------------------------------------------------------------


def test_nearest_rank_on_one_to_hundred() -> None:
    values = list(range(1, 101))
    assert [nearest_rank(values, p) for p in (1, 50, 90, 99, 100)] == [1, 50, 90, 99, 100]
    assert nearest_rank([7, 9], 50) == 7  # ceil(0.5 * 2) = rank 1
    assert nearest_rank([7, 9], 51) == 9
    with pytest.raises(ValueError, match="no samples"):
        nearest_rank([], 50)


def test_latency_recorder_percentiles_exact_in_microseconds() -> None:
    rec = LatencyRecorder()
    for i in range(1, 11):  # 10..100 us, added out of order
        rec.add("confirm_rtt", (11 - i) * 10_000)
    rec.add("decide", 1_499)  # rounds to 1 us
    rec.add("decide", 1_500)  # rounds half up to 2 us
    confirm, decide = rec.views()
    assert confirm == LatencyView("confirm_rtt", 10, 50, 90, 100, 100)
    assert decide == LatencyView("decide", 2, 1, 2, 2, 2)


def test_latency_recorder_window_is_bounded_but_counts_everything() -> None:
    rec = LatencyRecorder(capacity=3)
    for ns in (1_000_000, 2_000, 3_000, 4_000):  # the 1 ms outlier falls out of the window
        rec.add("x", ns)
    (view,) = rec.views()
    assert view.count == 4
    assert (view.p50_us, view.max_us) == (3, 4)


def test_latency_recorder_rejects_float_samples() -> None:
    rec = LatencyRecorder()
    with pytest.raises(TypeError):
        rec.add("x", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capacity"):
        LatencyRecorder(capacity=0)
    assert rec.views() == ()


# -- JSON --------------------------------------------------------------------------------


def test_json_round_trip_keeps_exact_money() -> None:
    snap = snapshot()
    data = json.loads(json.dumps(to_json_dict(snap)))
    assert data["pnl_realized_dollars"] == "0.1184"
    assert data["exposure_worst_case_dollars"] == "6.0625"
    snow = data["positions"][1]
    assert (snow["position_fp"], snow["realized_pnl_dollars"], snow["cost_dollars"]) == (
        "-2.50", "-0.0050", "1.2625")
    assert parse_fp(snow["exchange_position_fp"]) == 200
    assert data["open_quotes"][0]["no_bid_dollars"] == "0.5050"
    assert data["recent_fills"][0]["fee_dollars"] == "0.0700"
    assert from_json_dict(data) == snap


def test_json_of_sub_tick_amount_is_still_exact() -> None:
    data = to_json_dict(snapshot(pnl_realized_micros=1))
    assert data["pnl_realized_dollars"] == "0.000001"


# -- live view ---------------------------------------------------------------------------


def test_render_shows_header_counts_and_tables() -> None:
    out = text_of(render(snapshot()))
    assert "mode sim  env demo  QUOTING  uptime 1:02:03.456" in out
    assert "rfqs_seen 120  routed 100  quoted 80  accepted 9  confirmed 7  declined 2" in out
    assert "declined: halted 1, price_moved 1" in out
    assert "not quoted: no_book 15, filtered 5" in out
    assert "realized PnL $0.1184  marked to mid $0.1184" in out
    assert "worst-case exposure $6.0625" in out
    rain = next(line for line in out.splitlines() if "KXRAIN-25-T1" in line and "$4.8000" in line)
    assert "10.00" in rain
    assert "$0.1234" in rain
    assert "$0.0700" in rain
    snow = next(line for line in out.splitlines() if "KXSNOW-25-T2" in line)
    assert "-2.50" in snow
    assert "-$0.0050" in snow
    assert "2.00" in snow
    quote = next(line for line in out.splitlines() if "q-7" in line)
    assert "0.4800" in quote
    assert "0.5050" in quote
    assert "1250 ms" in quote
    lat = next(line for line in out.splitlines() if "frame_to_decision" in line)
    assert [c for c in lat.replace("│", " ").split() if c.isdigit()] == [
        "500", "41", "88", "230", "1024"]
    assert "18:40:00.002" in out
    assert "price_moved" in out


def test_render_shows_halt_and_only_last_twelve_decisions() -> None:
    snap = snapshot(halted=True, halt_reason="reconciliation", open_quotes=(),
                    recent_decisions=tuple(decision(i) for i in range(20)))
    out = text_of(render(snap))
    assert "HALTED (reconciliation)" in out
    assert "rfq-19" in out
    assert "rfq-8" in out
    assert "rfq-7 " not in out
    assert "rfq-0 " not in out


def test_render_empty_snapshot() -> None:
    snap = snapshot(counts={}, decline_reasons={}, no_quote_reasons={}, open_quotes=(),
                    recent_decisions=(), positions=(), latencies=(), recent_fills=())
    out = text_of(render(snap))
    assert "open quotes (0)" in out
    assert "declined:" not in out


def test_format_duration_ms() -> None:
    assert format_duration_ms(0) == "0:00:00.000"
    assert format_duration_ms(90_061_001) == "25:01:01.001"


async def test_live_view_redraws_from_snapshot_fn_until_stopped() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True, color_system=None)
    calls: list[int] = []
    stop = asyncio.Event()

    def snap_fn() -> StatusSnapshot:
        calls.append(1)
        if len(calls) == 4:  # enter + 3 timed redraws
            stop.set()
        return snapshot(counts={"rfqs_seen": len(calls)})

    with LiveView(snap_fn, console=console, refresh_per_second=200) as view:
        async with asyncio.timeout(5):
            await view.run(stop)
    assert len(calls) >= 5  # enter, >=3 loop redraws, exit
    assert f"rfqs_seen {len(calls)}" in buf.getvalue()
    with pytest.raises(ValueError, match="refresh_per_second"):
        LiveView(snap_fn, refresh_per_second=0)


def test_is_tty() -> None:
    assert not is_tty(io.StringIO())


# -- activity printer --------------------------------------------------------------------


def test_activity_printer_prints_only_new_items_in_time_order() -> None:
    buf = io.StringIO()
    printer = ActivityPrinter(buf)
    first = printer.update(snapshot())
    assert first == [
        "18:40:00.001 quoted KXRAIN-25-T1 rfq=rfq-1 reason=quoted strategy=mid",
        "18:40:00.002 declined KXRAIN-25-T1 rfq=rfq-2 reason=price_moved strategy=mid",
        "18:40:00.005 fill KXRAIN-25-T1 yes 10.00 @ 0.4800 fee $0.0700 trade=t-1",
    ]
    assert printer.update(snapshot()) == []
    # The window slides: rfq-1 drops out, rfq-3 and a halt arrive; only those print.
    later = snapshot(recent_decisions=(decision(2, "declined", "price_moved"), decision(3)),
                     halted=True, halt_reason="operator")
    assert printer.update(later) == [
        "HALTED: operator",
        "18:40:00.003 quoted KXRAIN-25-T1 rfq=rfq-3 reason=quoted strategy=mid",
    ]
    assert printer.update(snapshot()) == ["RESUMED"]
    assert buf.getvalue().splitlines() == [
        *first,
        "HALTED: operator",
        "18:40:00.003 quoted KXRAIN-25-T1 rfq=rfq-3 reason=quoted strategy=mid",
        "RESUMED",
    ]


def test_activity_printer_memory_is_bounded() -> None:
    printer = ActivityPrinter(io.StringIO(), memory=2)
    for i in range(3):
        printer.update(snapshot(recent_decisions=(decision(i),), recent_fills=()))
    # decision(0) was forgotten, so it prints again; decision(2) is remembered.
    assert len(printer.update(snapshot(recent_decisions=(decision(0),), recent_fills=()))) == 1
    assert printer.update(snapshot(recent_decisions=(decision(2),), recent_fills=())) == []


# -- summary -----------------------------------------------------------------------------


def test_summary_text_has_every_figure() -> None:
    text = render_summary(snapshot(), ledger_match=True, ledger_diff=[])
    lines = text.splitlines()
    assert lines[0] == "quoter summary: mode sim, env demo, ran 3723.456 s"
    assert lines[1] == ("RFQs seen 120, routed 100, quoted 80, accepted 9, confirmed 7, "
                        "declined 2, fills 7")
    assert "declined: halted 1, price_moved 1" in lines
    assert "not quoted: no_book 15, filtered 5" in lines
    assert "other counts: decode_errors 1, reconnects 3" in lines
    assert ("  KXRAIN-25-T1  position 10.00  cost $4.8000  realized PnL $0.1234  fees $0.0700"
            "  exchange 10.00") in lines
    assert ("  KXSNOW-25-T2  position -2.50  cost $1.2625  realized PnL -$0.0050  fees $0.0175"
            "  exchange 2.00") in lines
    assert "realized PnL: $0.1184 (fees $0.0875)" in lines
    assert "worst-case exposure: $6.0625" in lines
    assert "  frame_to_decision  n 500  p50 41  p90 88  p99 230  max 1024" in lines
    assert "recording: runs/demo/frames.jsonl" in lines
    assert "database: runs/demo/quoter.db" in lines
    assert lines[-1] == "positions match the simulator's ledger: yes"
    assert text.endswith("\n")


def test_summary_text_mismatch_and_missing_paths() -> None:
    diff = ["KXSNOW-25-T2: ours -2.50, simulator 2.00"]
    text = render_summary(snapshot(recording_path=None, db_path=None, latencies=(),
                                   positions=(), halted=True, halt_reason="mismatch"),
                          ledger_match=False, ledger_diff=diff)
    lines = text.splitlines()
    assert lines[0].endswith(", HALTED (mismatch)")
    assert "positions (0 markets):" in lines
    assert "  none" in lines
    assert "latency (us): none" in lines
    assert "recording: not recorded" in lines
    assert "database: not stored" in lines
    assert lines[-1] == ("positions match the simulator's ledger: NO "
                         "(KXSNOW-25-T2: ours -2.50, simulator 2.00)")
    assert ledger_line(None, []) == "positions match the simulator's ledger: not checked"
    assert ledger_line(False, []) == "positions match the simulator's ledger: NO (no details)"


def test_summary_json_stable_keys_and_exact_money() -> None:
    data = json.loads(dump_summary_json(summary_json(snapshot(counts={"rfqs_seen": 5}),
                                                     False, ["x"])))
    assert list(data) == [
        "summary_version", "mode", "env", "uptime_ms", "halted", "halt_reason", "funnel",
        "counts", "decline_reasons", "no_quote_reasons", "positions", "pnl_realized_micros",
        "pnl_realized_dollars", "pnl_marked_micros", "pnl_marked_dollars", "markouts",
        "by_strategy", "fees_micros", "fees_dollars", "exposure_worst_case_micros",
        "exposure_worst_case_dollars", "latencies", "recording_path", "db_path",
        "ledger_match", "ledger_diff",
    ]
    assert data["funnel"] == {"rfqs_seen": 5, "routed": 0, "quoted": 0, "accepted": 0,
                              "confirmed": 0, "declined": 0, "fills": 0}
    assert (data["pnl_realized_dollars"], data["fees_dollars"]) == ("0.1184", "0.0875")
    assert parse_dollars(data["exposure_worst_case_dollars"]) == 6_062_500
    assert data["positions"][0]["position_fp"] == "10.00"
    assert data["latencies"][0]["p99_us"] == 230
    assert (data["ledger_match"], data["ledger_diff"]) == (False, ["x"])


def test_money_formatting_never_rounds() -> None:
    with pytest.raises(MoneyError):
        parse_dollars("0.1234567")
    assert usd(1) == "$0.000001"


def test_compare_ledgers_treats_missing_as_flat() -> None:
    assert compare_ledgers({"A": 100, "B": 0}, {"A": 100}) == (True, [])
    match, diff = compare_ledgers({"B": -250, "A": 100}, {"A": 100, "C": 5})
    assert not match
    assert diff == ["B: ours -2.50, simulator 0.00", "C: ours 0.00, simulator 0.05"]


def test_render_caps_open_quote_rows() -> None:
    quotes = tuple(
        QuoteView(f"r{i}", f"quote-{i}", "KXRAIN-25-T1", 10_000, 0, "open", i) for i in range(20)
    )
    out = text_of(render(snapshot(open_quotes=quotes)))
    assert "open quotes (20)" in out
    assert "quote-14" in out
    assert "quote-15" not in out
    assert "... and 5 more" in out


def test_paper_header_names_the_simulator_not_the_env() -> None:
    paper = text_of(render(snapshot(mode="paper", env="demo",
                                    venue="sim http://127.0.0.1:8765")))
    assert "mode paper  sim http://127.0.0.1:8765" in paper
    assert "env demo" not in paper
    shadow = text_of(render(snapshot(mode="shadow", env="demo",
                                     venue="external-api.demo.kalshi.co")))
    assert "env demo (external-api.demo.kalshi.co)" in shadow
    assert from_json_dict(to_json_dict(snapshot(venue="sim x"))).venue == "sim x"


def test_only_quotes_resting_at_the_exchange_are_listed() -> None:
    from quoter.engine.lifecycle import QuoteRecord, QuoteState
    from quoter.service.app import resting_quote_views

    def quote(qid: str, state: QuoteState) -> QuoteRecord:
        return QuoteRecord(qid, "r1", "KX-A", 480_000, 480_000, 500_000, placed_ns=0,
                           state=state)

    quotes = [quote("open", QuoteState.OPEN), quote("replaced", QuoteState.REPLACED),
              quote("cancelling", QuoteState.CANCELLING),
              quote("cancelled", QuoteState.CANCELLED), quote("accepted", QuoteState.ACCEPTED)]
    views = resting_quote_views(quotes, {}, now_ns=2_000_000)
    assert [(v.quote_id, v.state, v.age_ms) for v in views] == [
        ("open", "open", 2), ("cancelling", "cancelling", 2)]
