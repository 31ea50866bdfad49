"""Sweeps: a 2x2 grid on 2 processes, ranking by PnL consistent with single runs, resume,
validation of every point up front, and the Ray backend (or its clean refusal)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from backtests.cli import EXIT_BACKEND, EXIT_USAGE, main
from backtests.runner import AuctionSpec, backtest
from backtests.sweep import load_grid, points_of, run_sweep
from quoter.config import parse_config
from quoter.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
EDGE = "strategies.sim-singles.pricer.params.edge_dollars"
SPREAD = "strategies.sim-singles.quoting.min_spread_dollars"
SPEC = AuctionSpec("recorded", seed=5, fallback="book")


def _grid(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def test_a_2x2_sweep_on_2_workers_gives_4_ranked_rows(
        small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = _grid(tmp_path, f'{EDGE}: ["0.004", "0.040"]\n{SPREAD}: ["0.01", "0.02"]\n')
    out = tmp_path / "s"
    assert main(["sweep", "--config", str(DEMO), "--grid", str(grid), "--input",
                 str(small_world), "--out", str(out), "--workers", "2", "--fallback", "book",
                 "--seed", "5", "--no-progress"]) == 0
    assert "sweep ranked by pnl_marked" in capsys.readouterr().out
    rows = json.loads((out / "sweep.json").read_text())
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    values = [r["value"] for r in rows]
    assert values == sorted(values, reverse=True)
    assert all(type(v) is int for v in values)
    assert {(r["overrides"][EDGE], r["overrides"][SPREAD]) for r in rows} == {
        ("0.004", "0.01"), ("0.004", "0.02"), ("0.040", "0.01"), ("0.040", "0.02")}
    # The same points in one process rank the same, with the same figures.
    inline = run_sweep(points_of(DEMO, load_grid(grid)), [small_world], SPEC,
                       tmp_path / "inline", seed=5, workers=1)
    assert [(r["id"], r["value"]) for r in inline] == [(r["id"], r["value"]) for r in rows]
    page = (out / "sweep.html").read_text()
    assert page.count('src="data:image/png;base64,') == 1
    assert page.count("<tr>") == 5  # header and four points
    assert len(list((out / "points").glob("*.json"))) == 4


def test_a_wider_edge_ranks_by_pnl_as_its_single_runs_do(
        small_world: Path, tmp_path: Path) -> None:
    grid = {EDGE: ["0.004", "0.008", "0.040"]}
    ranked = run_sweep(points_of(DEMO, grid), [small_world], SPEC, tmp_path / "s", seed=5,
                       workers=1)
    single = {}
    for edge in grid[EDGE]:
        text = DEMO.read_text().replace('edge_dollars: "0.008"', f'edge_dollars: "{edge}"')
        cfg = parse_config(text, str(DEMO), base_dir=DEMO.parent)
        single[edge] = backtest([small_world], cfg, SPEC, seed=5).summary["metrics"]
    by_edge = {r["overrides"][EDGE]: r for r in ranked}
    for edge, metrics in single.items():
        assert by_edge[edge]["value"] == metrics["pnl_marked_micros"]
        assert by_edge[edge]["metrics"]["fills"] == metrics["fills"]
    expected = sorted(grid[EDGE], key=lambda e: (-single[e]["pnl_marked_micros"],
                                                 grid[EDGE].index(e)))
    assert [r["overrides"][EDGE] for r in ranked] == expected
    # The widest edge is the one the requesters take least.
    assert single["0.040"]["fills"] < single["0.004"]["fills"]
    assert single["0.040"]["win_rate"] < single["0.004"]["win_rate"]


def test_a_sweep_run_again_skips_the_points_it_has(small_world: Path, tmp_path: Path) -> None:
    points = points_of(DEMO, {EDGE: ["0.004", "0.040"]})
    out = tmp_path / "s"
    first = run_sweep(points, [small_world], SPEC, out, workers=1)
    saved = out / "points" / f"{points[0].id}.json"
    row = json.loads(saved.read_text())
    row["metrics"]["pnl_marked_micros"] = 10**12  # a marker: only a re-run would undo it
    saved.write_text(json.dumps(row))
    (out / "points" / f"{points[1].id}.json").unlink()  # this one runs again
    again = run_sweep(points, [small_world], SPEC, out, workers=1)
    assert again[0]["id"] == points[0].id
    assert again[0]["value"] == 10**12
    assert again[1]["value"] == next(r["value"] for r in first if r["id"] == points[1].id)


def test_every_point_is_validated_before_anything_runs(
        small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="no list element named 'nope'"):
        points_of(DEMO, {"strategies.nope.pricer.params.edge_dollars": ["0.01"]})
    with pytest.raises(ConfigError, match=r"point 1: risk.max_open_quotes=lots"):
        points_of(DEMO, {"risk.max_open_quotes": [10, "lots"]})
    grid = _grid(tmp_path, "risk.max_open_quotes: [10, lots]\n")
    out = tmp_path / "s"
    assert main(["sweep", "--config", str(DEMO), "--grid", str(grid), "--input",
                 str(small_world), "--out", str(out), "--no-progress"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert not out.exists()
    assert main(["sweep", "--config", str(DEMO), "--grid", str(_grid(tmp_path, "[1, 2]\n")),
                 "--input", str(small_world), "--out", str(out)]) == EXIT_USAGE
    assert "a grid is a mapping" in capsys.readouterr().err


def test_the_ray_backend_ranks_as_local_or_is_refused_cleanly(
        small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = _grid(tmp_path, f'{EDGE}: ["0.004", "0.040"]\n')
    args = ["sweep", "--config", str(DEMO), "--grid", str(grid), "--input", str(small_world),
            "--no-progress", "--fallback", "book"]
    if importlib.util.find_spec("ray") is None:
        assert main([*args, "--out", str(tmp_path / "r"), "--backend", "ray"]) == EXIT_BACKEND
        assert "Ray, which is not installed" in capsys.readouterr().err
        return  # without Ray (not a dependency) the refusal is what there is to test
    assert main([*args, "--out", str(tmp_path / "r"), "--backend", "ray"]) == 0
    assert main([*args, "--out", str(tmp_path / "l"), "--workers", "2"]) == 0
    ray_rows = json.loads((tmp_path / "r" / "sweep.json").read_text())
    local_rows = json.loads((tmp_path / "l" / "sweep.json").read_text())
    assert [(r["id"], r["value"]) for r in ray_rows] == [
        (r["id"], r["value"]) for r in local_rows]

