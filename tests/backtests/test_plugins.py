"""User auction models through the ``quoter.auction_models`` entry point, and the backtester
reached as ``quoter backtest`` / ``quoter sweep`` through ``quoter.commands``."""

from __future__ import annotations

import csv
import importlib
import json
from pathlib import Path

import pytest

from backtests.names import AUCTIONS, auction_names
from backtests.sweep import OBJECTIVES, load_grid, objective_text, points_of
from quoter import cli

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
EDGE = "strategies.sim-singles.pricer.params.edge_dollars"
SPREAD = "strategies.sim-singles.quoting.min_spread_dollars"


def test_installed_user_models_are_offered_after_the_built_ins() -> None:
    names = auction_names()
    assert names[: len(AUCTIONS)] == AUCTIONS
    assert {"take_every_yes", "broken_model"} <= set(names[len(AUCTIONS):])


def test_quoter_backtest_runs_a_user_auction_model(small_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "u"
    assert cli.main(["backtest", "--config", str(DEMO), "--frames", str(small_world),
                     "--out", str(out), "--auction", "take_every_yes", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["auction"]["model"] == "take_every_yes"
    with (out / "fills.csv").open() as f:
        sides = [row["side"] for row in csv.DictReader(f)]
    # The model sells YES to every YES bid: every fill of ours is a YES buy.
    assert sides
    assert set(sides) == {"yes"}
    assert summary["metrics"]["accepts"] >= len(sides)


def test_a_user_model_that_cannot_be_built_is_one_line_and_exit_2(
        small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["backtest", "--config", str(DEMO), "--frames", str(small_world),
                     "--out", str(tmp_path / "b"), "--auction", "broken_model",
                     "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("quoter backtest: error: auction model 'broken_model'")
    assert "RuntimeError: no model today" in err[0]
    assert not (tmp_path / "b" / "summary.json").exists()


def test_quoter_sweep_samples_points_of_the_grid_and_ranks_by_markouts(
        small_world: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(f'{EDGE}: ["0.004", "0.008", "0.020", "0.040"]\n'
                    f'{SPREAD}: ["0.01", "0.02", "0.03"]\n')
    full = {p.id: p for p in points_of(DEMO, load_grid(grid))}
    sampled = points_of(DEMO, load_grid(grid), samples=4, seed=3)
    assert len(sampled) == 4
    assert len({p.id for p in sampled}) == 4
    for p in sampled:  # a sampled point is the grid's point of that index, same id
        assert full[p.id].index == p.index
        assert full[p.id].overrides == p.overrides
    assert [p.id for p in points_of(DEMO, load_grid(grid), samples=4, seed=3)] == \
        [p.id for p in sampled]
    assert len(points_of(DEMO, load_grid(grid), samples=99, seed=3)) == len(full)

    out = tmp_path / "s"
    assert cli.main(["sweep", "--config", str(DEMO), "--grid", str(grid), "--frames",
                     str(small_world), "--out", str(out), "--samples", "3", "--seed", "3",
                     "--objective", "markout_60s_net", "--workers", "1", "--fallback", "book",
                     "--no-progress"]) == 0
    rows = json.loads((out / "sweep.json").read_text())
    assert len(rows) == 3
    assert {r["id"] for r in rows} == {p.id for p in
                                       points_of(DEMO, load_grid(grid), samples=3, seed=3)}
    for r in rows:
        m = r["metrics"]
        assert r["value"] == (m["markouts_micros"]["60s"] or 0) - m["fees_micros"]
        assert r["value"] == OBJECTIVES["markout_60s_net"](m)
    assert [r["value"] for r in rows] == sorted((r["value"] for r in rows), reverse=True)


def test_a_broken_command_plugin_leaves_the_quoter_command_line_working(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    dist = tmp_path / "badcmd-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: badcmd\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[quoter.commands]\nbadcmd = no_such_module_here:register\n"
        "run = no_such_module_here:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    captured = capsys.readouterr()
    assert "backtest" in captured.out
    assert "run the quoting service" in captured.out
    # One line for the plugin that failed; the one named like a built-in was never loaded.
    assert captured.err.strip().splitlines() == [
        "quoter: command plugin 'badcmd' (no_such_module_here:register) not loaded: "
        "ModuleNotFoundError: No module named 'no_such_module_here'"]


def test_pnl_per_worst_case_dollar_is_a_ratio_in_millionths() -> None:
    value = OBJECTIVES["pnl_per_worst_case"]
    metrics = {"pnl_marked_micros": 5_000_000,
               "inventory": {"max_worst_case_loss_micros": 20_000_000}}
    assert value(metrics) == 250_000  # $5 earned carrying at most $20 of risk: 0.25
    # A run that never carried a dollar of risk is scored per $1, not divided by ~0.
    assert value({"pnl_marked_micros": 3, "inventory": {"max_worst_case_loss_micros": 0}}) == 3


def test_a_ratio_objective_is_shown_as_a_ratio_and_money_as_dollars() -> None:
    assert objective_text("pnl_per_worst_case", 250_000) == "0.250 $/$"
    assert objective_text("pnl_per_worst_case", -1_500_000) == "-1.500 $/$"
    assert objective_text("pnl_marked", 250_000) != objective_text("pnl_per_worst_case", 250_000)
