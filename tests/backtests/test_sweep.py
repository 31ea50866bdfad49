"""Sweeps: a 2x2 grid on 2 processes, ranking by PnL consistent with single runs, resume,
validation of every point up front, and the Ray backend (or its clean refusal)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

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


def test_8_configs_rank_the_same_on_2_processes_and_on_a_local_ray(
        small_world: Path, tmp_path: Path) -> None:
    assert importlib.util.find_spec("ray") is not None, (
        "Ray is not installed: `make test` installs the ray extra (pip install -e '.[ray]')")
    grid = {EDGE: ["0.002", "0.004", "0.008", "0.040"], SPREAD: ["0.01", "0.03"]}
    points = points_of(DEMO, grid)
    assert len(points) == 8
    local = run_sweep(points, [small_world], SPEC, tmp_path / "local", seed=5, workers=2)
    with capture_logs() as logs:
        via_ray = run_sweep(points, [small_world], SPEC, tmp_path / "ray", seed=5, workers=2,
                            backend="ray")
    started = [e for e in logs if e["event"] == "sweep_ray_started"]
    assert len(started) == 1
    assert started[0]["nodes"] == ["127.0.0.1"]  # a local instance on loopback only
    assert started[0]["cpus"] == 2
    assert len(via_ray) == len(local) == 8
    assert via_ray == local  # same ranks, ids, objective values and every metric
    assert len({r["value"] for r in local}) > 2  # a real ranking, not eight ties


def test_without_ray_the_ray_backend_is_refused_cleanly(small_world: Path, tmp_path: Path) -> None:
    # A fresh interpreter in which `import ray` fails, as on a machine without the extra.
    code = ("import sys; sys.modules['ray'] = None; from backtests.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    grid = _grid(tmp_path, f'{EDGE}: ["0.004", "0.040"]\n')
    done = subprocess.run(
        [sys.executable, "-c", code, "sweep", "--config", str(DEMO), "--grid", str(grid),
         "--input", str(small_world), "--out", str(tmp_path / "r"), "--backend", "ray",
         "--no-progress"],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)
    assert done.returncode == EXIT_BACKEND
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("quoter-backtest sweep: error: the ray backend needs Ray")
    assert not list((tmp_path / "r" / "points").glob("*.json"))  # nothing ran
