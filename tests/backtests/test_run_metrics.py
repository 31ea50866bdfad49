"""Inventory, worst-case exposure, markouts against our fair, latencies and breakdowns, on a
hand-built recording through the real loop, modelled exchange and engine (``config/demo.yaml``).

The scenario: two markets with one-level books (A at mid 0.50, B at mid 0.30); alice asks for
10 contracts of A at 1 s and 2 of B at 3 s, bob for 4 of A at 5 s; the requester takes YES
(we buy YES) from alice and NO (we buy NO) from bob 100 ms after each quote; at 30 s A's book
moves to mid 0.60; at 40 s B is determined YES (our 2 YES contracts pay $1 each). Round trips
are constants (submit 10 ms, confirm 30 ms, market 7 ms), so every latency below is known,
and the engine's fair is its book mid when it quoted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backtests.engine import BacktestLoop, run_backtest
from backtests.exchange import default_market
from backtests.inputs import MARKET_KIND
from backtests.metrics import INVENTORY_INTERVAL_NS, FillRecord
from backtests.models import AuctionContext, LatencyModel
from backtests.report_parts import breakdown_rows
from backtests.timeseries import BoundedSeries, LatencyHistogram
from backtests.world import WALL_OFFSET_NS, RecordingWriter
from quoter.config import load_config
from quoter.domain import events as ev
from quoter.domain.types import Side

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
MS = 1_000_000
S = 1_000_000_000
A, B = "KXSIMB-26JAN01-M1", "KXSIMC-26JAN01-M1"
FIRST_EVENT_NS = 1 * MS  # A's first snapshot: the inventory sampling grid starts here
DOLLAR = 1_000_000
SETTLED_NS = 40 * S


def _snapshot(ticker: str, yes_bid: str, yes_ask: str) -> dict[str, Any]:
    return {"type": "orderbook_snapshot", "sid": 1, "msg": {
        "market_ticker": ticker, "market_id": ticker,
        "yes_dollars_fp": [[yes_bid, "100.00"]], "no_dollars_fp": [[yes_ask, "100.00"]]}}


def _rfq(rfq_id: str, creator: str, ticker: str, contracts: str) -> dict[str, Any]:
    return {"type": "rfq_created", "sid": 2, "msg": {
        "id": rfq_id, "creator_id": creator, "market_ticker": ticker,
        "event_ticker": ticker.rsplit("-", 1)[0], "contracts_fp": contracts,
        "created_ts": "2026-01-01T00:00:01Z"}}


class _TakeAfter100Ms:
    """A user auction model: alice takes YES, bob takes NO, 100 ms after our quote."""

    name = "take-after-100ms"

    def __init__(self) -> None:
        self.seen: list[AuctionContext] = []

    def decide(self, ctx: AuctionContext) -> tuple[Side, int] | None:
        self.seen.append(ctx)
        return (Side.NO if ctx.rfq_id == "bob-1" else Side.YES, ctx.now_ns + 100 * MS)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestLoop, _TakeAfter100Ms]:
    path = tmp_path_factory.mktemp("scenario") / "scenario.jsonl.gz"
    frames = [(1 * MS, _snapshot(A, "0.4600", "0.5400")),
              (2 * MS, _snapshot(B, "0.2600", "0.3400")),
              (1 * S, _rfq("alice-1", "alice", A, "10.00")),
              (3 * S, _rfq("alice-2", "alice", B, "2.00")),
              (5 * S, _rfq("bob-1", "bob", A, "4.00")),
              (30 * S, _snapshot(A, "0.5600", "0.6400")),
              (SETTLED_NS, {"type": "market_lifecycle_v2", "sid": 5, "msg": {
                  "event_type": "determined", "market_ticker": B, "result": "yes",
                  "determination_ts": 1767225640, "settlement_value": "1.0000"}})]
    writer = RecordingWriter(path, wall_offset_ns=WALL_OFFSET_NS, start_ns=0)
    for ticker in (A, B):
        writer.fact(MARKET_KIND, ev.MarketLoaded(default_market(ticker), 0), 0)
    seqs: dict[int, int] = {}
    for ts_ns, frame in frames:
        seqs[frame["sid"]] = seqs.get(frame["sid"], 0) + 1
        writer.frame(json.dumps({**frame, "seq": seqs[frame["sid"]]}).encode(), ts_ns)
    writer.close()
    auction = _TakeAfter100Ms()
    latency = LatencyModel({"submit": 10 * MS, "confirm": 30 * MS, "cancel": 5 * MS,
                            "market": 7 * MS, "book": 3 * MS}, 0)
    loop = run_backtest([path], load_config(DEMO), auction=auction, latency=latency)
    return loop, auction


def _fills(loop: BacktestLoop) -> tuple[FillRecord, FillRecord, FillRecord]:
    fills = loop.metrics.fills
    assert [(f.market_ticker, f.bought_yes, f.count_centi) for f in fills] == [
        (A, True, 1000), (B, True, 200), (A, False, 400)]  # alice A, alice B, bob A
    return fills[0], fills[1], fills[2]


def _cost(f: FillRecord) -> int:
    return f.price_micros * f.count_centi // 100 + f.fee_micros


def test_inventory_and_worst_case_exposure_follow_the_fills(
        run: tuple[BacktestLoop, _TakeAfter100Ms]) -> None:
    loop, _ = run
    a_yes, b_yes, a_no = _fills(loop)
    assert a_yes.price_micros == a_no.price_micros == 480_000  # mid 0.50 less the edge
    # Worst case, by hand: A holds 10 YES and 4 NO, so it pays at least $4 whichever way it
    # settles; B holds 2 YES, which pay nothing if B settles NO.
    worst_1 = _cost(a_yes)
    worst_2 = worst_1 + _cost(b_yes)
    worst_3 = _cost(a_yes) + _cost(a_no) - 4 * DOLLAR + _cost(b_yes)
    assert worst_3 == 3_348_300  # $4.8437 + $1.9375 - $4 + $0.5671, fees included
    worst_4 = worst_3 - _cost(b_yes)  # B settled: nothing of it is at risk any more
    points = loop.metrics.series()["inventory"]
    changes = [p for p in points
               if p[0] in (a_yes.ts_ns, b_yes.ts_ns, a_no.ts_ns, SETTLED_NS)]
    assert changes == [(a_yes.ts_ns, 1000, worst_1), (b_yes.ts_ns, 1200, worst_2),
                       (a_no.ts_ns, 800, worst_3), (SETTLED_NS, 600, worst_4)]
    # Between the changes, samples on the 1 s grid repeat the values in force; the last
    # point is the end of the run.
    assert points[-1] == (loop.clock.now_ns(), 600, worst_4)
    grid = [p for p in points[:-1] if p not in changes]
    assert len(grid) >= 2
    for p in grid:
        assert (p[0] - FIRST_EVENT_NS) % INVENTORY_INTERVAL_NS == 0
        assert p[1:] == max((c for c in changes if c[0] <= p[0]), key=lambda c: c[0])[1:]
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    by_market = loop.metrics.series()["inventory_by_market"]
    assert by_market[A] == [(a_yes.ts_ns, 1000), (a_no.ts_ns, 600), (loop.clock.now_ns(), 600)]
    assert by_market[B] == [(b_yes.ts_ns, 200), (SETTLED_NS, 0), (loop.clock.now_ns(), 0)]
    inv = loop.metrics.summary["inventory"]
    assert inv["max_abs_net_centi"] == 1200
    assert inv["max_abs_net_by_market_centi"] == {A: 1000, B: 200}
    assert inv["max_worst_case_loss_micros"] == worst_2
    assert inv["max_worst_case_loss_at_ns"] == b_yes.ts_ns
    assert (inv["final_net_centi"], inv["final_worst_case_loss_micros"]) == (600, worst_4)
    assert loop.metrics.summary["positions_settled"] == 1


def test_markouts_against_our_fair_keep_the_quote_time_view_when_the_book_moves(
        run: tuple[BacktestLoop, _TakeAfter100Ms]) -> None:
    loop, auction = run
    assert [c.fair_yes_micros for c in auction.seen] == [500_000, 300_000, 500_000]
    a_yes, b_yes, a_no = _fills(loop)
    assert a_yes.markout_fair_at_fill_micros == 200_000  # (0.50 - 0.48) x 10
    assert a_no.markout_fair_at_fill_micros == 80_000  # (0.50 - 0.48) x 4, NO side
    assert b_yes.markout_fair_at_fill_micros == 40_000  # (0.30 - 0.28) x 2
    # A's book moves to mid 0.60 at 30 s; we sent no quote in A after it, so our fair of A
    # stays 0.50 while the mid markouts see the move.
    assert a_yes.ts_ns + 60 * S > 30 * S > a_yes.ts_ns + 10 * S
    assert a_yes.markouts_micros[60] == 1_200_000  # (0.60 - 0.48) x 10
    assert a_yes.markouts_fair_micros[60] == 200_000
    assert a_no.markouts_micros[10] == -320_000  # (0.40 - 0.48) x 4: NO lost value
    assert a_no.markouts_fair_micros[10] == 80_000
    assert a_yes.markouts_fair_micros[300] is None  # past the end of the run
    m = loop.metrics.summary
    assert m["markouts_fair_micros"] == {"at_fill": 320_000, "1s": 320_000, "10s": 320_000,
                                         "60s": 320_000, "300s": None}
    assert m["markouts_micros"]["60s"] == 1_200_000 + 40_000 - 320_000
    curves = loop.metrics.series()["markout_curves"]
    assert curves["fair"][0] == ("at_fill", 320_000, 1600)
    assert ("60s", 920_000, 1600) in curves["mid"]


def test_latencies_in_virtual_time_are_the_models(
        run: tuple[BacktestLoop, _TakeAfter100Ms]) -> None:
    loop, _ = run
    lat = loop.metrics.summary["latency_ns"]
    # alice's RFQs are each the first in their market: the engine loads the market first
    # (7 ms); bob's comes when A is known and is quoted at once.
    q = lat["rfq_to_quote"]
    assert (q["count"], q["p50_ns"], q["p90_ns"], q["max_ns"]) == (3, 7 * MS, 7 * MS, 7 * MS)
    assert sum(c for _, _, c in q["bins_ns"]) == 3
    assert [c for lower, _, c in q["bins_ns"] if lower == 0] == [1]
    assert [(lo <= 7 * MS <= hi, c) for lo, hi, c in q["bins_ns"] if lo] == [(True, 2)]
    # The engine confirms in the step that sees the accept.
    c = lat["accept_to_confirm"]
    assert (c["count"], c["max_ns"]) == (3, 0)
    trips = {k: (h["count"], h["p50_ns"], h["max_ns"])
             for k, h in loop.metrics.round_trips_summary().items()}
    assert trips == {"confirm": (3, 30 * MS, 30 * MS), "market": (2, 7 * MS, 7 * MS),
                     "submit": (3, 10 * MS, 10 * MS)}


def test_breakdowns_by_series_market_and_requester_sum_to_the_totals(
        run: tuple[BacktestLoop, _TakeAfter100Ms]) -> None:
    loop, _ = run
    m = loop.metrics.summary
    a_no = _fills(loop)[2]
    alice, bob = m["by_requester"]["alice"], m["by_requester"]["bob"]
    assert (alice["quotes"], alice["accepts"], alice["fills"], alice["contracts_centi"]) == (
        2, 2, 2, 1200)
    assert (bob["quotes"], bob["fills"], bob["contracts_centi"]) == (1, 1, 400)
    assert bob["fees_micros"] == a_no.fee_micros
    assert bob["pnl_realized_micros"] == -_cost(a_no)  # nothing settled: cash only
    assert bob["pnl_marked_micros"] == 400_000 * 4 - _cost(a_no)  # NO at 1 - 0.60
    assert set(m["by_series"]) == {"KXSIMB", "KXSIMC"}
    assert m["by_series"]["KXSIMC"] == {**m["by_market"][B]}
    assert m["by_market"][A]["fills"] == 2
    b_yes = _fills(loop)[1]
    assert m["by_market"][B]["pnl_realized_micros"] == 2 * DOLLAR - _cost(b_yes)  # paid out
    assert m["by_market"][B]["pnl_marked_micros"] == 2 * DOLLAR - _cost(b_yes)
    for name in ("by_strategy", "by_series", "by_market", "by_requester"):
        rows = m[name].values()
        for key in ("fills", "contracts_centi", "fees_micros", "pnl_realized_micros",
                    "pnl_marked_micros"):
            total = m["fills"] if key == "fills" else m[key]
            assert sum(r[key] for r in rows) == total, (name, key)
        assert sum(r["markout_fair_at_fill_micros"] for r in rows) == 320_000


def test_a_breakdown_table_shows_the_largest_by_pnl_and_sums_the_rest() -> None:
    table = {f"req-{i:02d}": {"quotes": 2, "accepts": 1, "fills": 1, "contracts_centi": 100,
                              "fees_micros": 10, "pnl_realized_micros": -i,
                              "pnl_marked_micros": (-1) ** i * i * 1000}
             for i in range(25)}
    rows = breakdown_rows(table, top=20)
    assert len(rows) == 21
    assert [r[0] for r in rows[:3]] == ["req-24", "req-23", "req-22"]  # by |PnL marked|
    assert rows[-1][0] == "other (5)"
    assert rows[-1][1] == 10  # quotes of req-00..04
    assert rows[-1][8] == "0.002000"  # 0 - 1000 + 2000 - 3000 + 4000 micro-dollars
    assert rows[-1][3] == "50.0%"


def test_a_bounded_series_keeps_peaks_and_at_most_its_capacity() -> None:
    series = BoundedSeries(capacity=8)
    for t in range(1000):
        series.add(t, 5 if t == 613 else 0, -t)
    assert len(series.points) <= 8
    assert max(p[1] for p in series.points) == 5  # the one-point spike survives the merges
    assert min(p[2] for p in series.points) == -999  # the latest extreme too
    assert series.points[0][0] == 0
    assert [p[0] for p in series.points] == sorted(p[0] for p in series.points)
    with pytest.raises(ValueError):
        BoundedSeries(capacity=1)


def test_the_latency_histogram_gives_nearest_rank_quantiles_within_its_bins() -> None:
    h = LatencyHistogram()
    for v in range(1, 101):  # below 128: exact bins
        h.add(v)
    assert (h.quantile_ns(500), h.quantile_ns(900), h.quantile_ns(990)) == (50, 90, 99)
    big = LatencyHistogram()
    for v in (1_000_000, 2_000_000, 3_000_000, 50_000_000):
        big.add(v)
    s = big.summary()
    assert s["max_ns"] == 50_000_000  # exact
    assert 2_000_000 <= s["p50_ns"] <= 2_000_000 * 65 // 64  # within its bin
    assert s["p99_ns"] == 50_000_000  # the top bin, capped at the maximum
    assert sum(c for _, _, c in s["bins_ns"]) == 4
    assert all(lo <= hi < lo * 65 // 64 for lo, hi, _ in s["bins_ns"])
    assert LatencyHistogram().summary()["p50_ns"] is None
