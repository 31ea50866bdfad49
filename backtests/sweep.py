"""Parameter sweeps: a grid of config overrides, each point a backtest, ranked by an objective.

The grid is a YAML mapping of parameter paths to lists of values; the points are the
cartesian product, in the grid's order, or ``samples`` of them drawn at random (seeded,
without repeats; a point keeps its index in the full product, so its id is the same either
way). A path is dotted keys from the top of the config; in a
list, a segment picks the element whose ``name`` is that segment (or an integer index)::

    strategies.sim-singles.pricer.params.edge_dollars: ["0.008", "0.020", "0.040"]
    strategies.sim-singles.quoting.min_spread_dollars: ["0.01", "0.02"]

Every point's config is validated through :mod:`quoter.config` before anything runs (one bad
point fails the sweep up front). Points run on a ``ProcessPoolExecutor`` (``local``) or on Ray
(``ray``, if importable); each finished point is written to ``DIR/points/<id>.json`` at once,
so a sweep run again skips the points it already has (resumable).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import math
import multiprocessing
import os
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import yaml

from backtests.names import OBJECTIVE_NAMES
from backtests.runner import AuctionSpec, backtest
from quoter.config import parse_config
from quoter.errors import ConfigError, QuoterError

__all__ = [
    "OBJECTIVES",
    "BackendUnavailableError",
    "Point",
    "load_grid",
    "points_of",
    "rank",
    "run_point",
    "run_sweep",
    "write_sweep_reports",
]

def _markout_pnl(metrics: Mapping[str, Any]) -> int:
    """The fills' 60 s markouts net of fees: edge earned, without the inventory's luck."""
    markout = metrics["markouts_micros"].get("60s") or 0
    return int(markout) - int(metrics["fees_micros"])


def _pnl_per_worst_case(metrics: Mapping[str, Any]) -> int:
    """PnL marked per dollar of the largest worst-case loss the run carried, in millionths
    (a ratio, not micro-dollars); a run that never risked anything scores its PnL per $1."""
    worst = int(metrics["inventory"]["max_worst_case_loss_micros"])
    return int(metrics["pnl_marked_micros"]) * 1_000_000 // max(worst, 1_000_000)


#: Ranking objectives: the name and how it reads a point's summary metrics (an integer of
#: micro-dollars; higher is better).
OBJECTIVES: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "pnl_marked": lambda m: int(m["pnl_marked_micros"]),
    "pnl_realized": lambda m: int(m["pnl_realized_micros"]),
    "markout_60s_net": _markout_pnl,
    "pnl_per_worst_case": _pnl_per_worst_case,
}
assert tuple(OBJECTIVES) == OBJECTIVE_NAMES
#: Objectives that are ratios (millionths), not amounts of money.
RATIO_OBJECTIVES = frozenset({"pnl_per_worst_case"})


def objective_text(objective: str, value: int) -> str:
    """An objective's value as an operator reads it: dollars, or a ratio of dollars."""
    if objective in RATIO_OBJECTIVES:
        sign = "-" if value < 0 else ""
        whole, frac = divmod(abs(value), 1_000_000)
        return f"{sign}{whole}.{frac // 1000:03d} $/$"
    from backtests.report import usd

    return usd(value)


_log = structlog.get_logger("backtests.sweep")


class BackendUnavailableError(QuoterError):
    """The requested sweep backend cannot run here (Ray not installed)."""


@dataclass(frozen=True, slots=True)
class Point:
    """One grid point: its overrides, validated config text and stable id."""

    index: int
    overrides: tuple[tuple[str, Any], ...]
    config_text: str
    source: str
    base_dir: str

    @property
    def id(self) -> str:
        """Stable across runs: a hash of the overrides."""
        blob = json.dumps([list(o) for o in self.overrides], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_grid(path: Path) -> dict[str, list[Any]]:
    """Read a grid: a mapping of parameter paths to non-empty lists of values."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}:0: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: a grid is a mapping of parameter paths to lists of values")
    grid: dict[str, list[Any]] = {}
    for key, values in data.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{path}: {key!r}: a parameter path is a dotted string")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: {key}: give a non-empty list of values")
        grid[key] = values
    return grid


def _set(doc: Any, path: str, value: Any) -> None:
    parts = path.split(".")
    node = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, dict):
            if last:
                node[part] = value
                return
            if part not in node:
                raise ConfigError(f"grid: {where}: no such key in the config")
            node = node[part]
        elif isinstance(node, list):
            index = next((j for j, e in enumerate(node)
                          if isinstance(e, dict) and e.get("name") == part), None)
            if index is None and part.isdigit() and int(part) < len(node):
                index = int(part)
            if index is None:
                raise ConfigError(f"grid: {where}: no list element named {part!r}")
            if last:
                node[index] = value
                return
            node = node[index]
        else:
            raise ConfigError(f"grid: {where}: {type(node).__name__} has no fields")


def _combo(grid: Mapping[str, Sequence[Any]], keys: Sequence[str], index: int) -> tuple[Any, ...]:
    """The ``index``-th element of the cartesian product (``itertools.product`` order)."""
    values = []
    for key in reversed(keys):
        index, digit = divmod(index, len(grid[key]))
        values.append(grid[key][digit])
    return tuple(reversed(values))


def points_of(config_path: Path, grid: Mapping[str, Sequence[Any]], *,
              samples: int | None = None, seed: int = 0) -> list[Point]:
    """The cartesian product of ``grid`` applied to the config (or ``samples`` points of it
    drawn at random with ``seed``), each point validated."""
    try:
        base = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{config_path}:0: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not YAML: {str(exc).splitlines()[0]}") from None
    keys = list(grid)
    total = math.prod(len(grid[k]) for k in keys)
    if samples is None:
        chosen: Sequence[int] = range(total)
    elif samples < 1:
        raise ConfigError("--samples must be at least 1")
    else:
        # range() is sampled without building it: a grid of millions of points is fine.
        chosen = sorted(random.Random(seed).sample(range(total), min(samples, total)))
    points = []
    for index in chosen:
        values = _combo(grid, keys, index)
        doc = copy.deepcopy(base)
        overrides = tuple(zip(keys, values, strict=True))
        for key, value in overrides:
            _set(doc, key, value)
        text = yaml.safe_dump(doc, sort_keys=False)
        label = ", ".join(f"{k}={v}" for k, v in overrides)
        source = f"{config_path} [point {index}: {label}]"
        parse_config(text, source, base_dir=config_path.parent)  # raises ConfigError
        points.append(Point(index, overrides, text, source, str(config_path.parent)))
    return points


@dataclass(frozen=True, slots=True)
class _Job:
    point: Point
    inputs: tuple[str, ...]
    spec: AuctionSpec
    seed: int


def run_point(job: _Job) -> dict[str, Any]:
    """Run one point (in a worker process): its overrides and the summary's metrics."""
    p = job.point
    config = parse_config(p.config_text, p.source, base_dir=Path(p.base_dir))
    result = backtest([Path(i) for i in job.inputs], config, job.spec, seed=job.seed)
    return {"id": p.id, "index": p.index, "overrides": dict(p.overrides),
            "config_hash": result.summary["config_hash"], "metrics": result.summary["metrics"]}


def rank(rows: Sequence[Mapping[str, Any]], objective: str) -> list[dict[str, Any]]:
    """Rows best first by ``objective`` (ties: grid order), each with its rank and value."""
    value = OBJECTIVES[objective]
    ordered = sorted(rows, key=lambda r: (-value(r["metrics"]), int(r["index"])))
    return [{**r, "rank": n, "objective": objective, "value": value(r["metrics"])}
            for n, r in enumerate(ordered, start=1)]


def _local(jobs: Sequence[_Job], workers: int,
           done: Callable[[dict[str, Any]], None]) -> None:
    if workers <= 1:
        for job in jobs:
            done(run_point(job))
        return
    # spawn: workers start clean (no copied threads or locks of the parent's progress display).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(run_point, job) for job in jobs]
        for future in as_completed(futures):
            done(future.result())


#: Environment for a local Ray instance: Ray binds its servers to the node's address, which
#: on Linux is the primary interface unless "clusters" are off, then it is 127.0.0.1 (loopback
#: only, ``ray._private.services.get_node_ip_address``); no token file is written in ``~/.ray``
#: for a cluster nobody else can reach.
LOCAL_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def _ray(jobs: Sequence[_Job], address: str | None, workers: int,
         done: Callable[[dict[str, Any]], None]) -> None:
    if address is None:
        # Before the import: Ray reads these when its constants module loads.
        for key, value in LOCAL_RAY_ENV.items():
            os.environ.setdefault(key, value)
    try:
        ray: Any = importlib.import_module("ray")
    except ImportError:
        raise BackendUnavailableError(
            "the ray backend needs Ray, which is not installed here "
            "(pip install -e '.[ray]'), or use --backend local") from None
    started = not ray.is_initialized()
    if started:
        if address is None:
            # A local instance as wide as --workers, on loopback, no dashboard.
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
    nodes = sorted(str(n.get("NodeManagerAddress")) for n in ray.nodes() if n.get("Alive"))
    _log.info("sweep_ray_started", address=address or "local", nodes=nodes,
              cpus=int(ray.cluster_resources().get("CPU", 0)))
    try:
        remote = ray.remote(run_point)
        pending = [remote.remote(job) for job in jobs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done(ray.get(ready[0]))
    finally:
        if started:
            ray.shutdown()


def run_sweep(
    points: Sequence[Point], inputs: Sequence[Path], spec: AuctionSpec, out_dir: Path, *,
    seed: int = 0, workers: int = 2, backend: str = "local", address: str | None = None,
    objective: str = "pnl_marked", progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every point not already in ``out_dir/points``; return all rows ranked."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r} (one of {', '.join(OBJECTIVES)})")
    store = out_dir / "points"
    store.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    todo: list[_Job] = []
    for point in points:
        saved = store / f"{point.id}.json"
        if saved.is_file():
            try:
                row = json.loads(saved.read_text(encoding="utf-8"))
            except ValueError:
                row = None
            if isinstance(row, dict) and "metrics" in row:
                rows.append({**row, "index": point.index})
                continue
        todo.append(_Job(point, tuple(str(i) for i in inputs), spec, seed))

    def done(row: dict[str, Any]) -> None:
        (store / f"{row['id']}.json").write_text(json.dumps(row, sort_keys=True, indent=2)
                                                 + "\n", encoding="utf-8")
        rows.append(row)
        if progress is not None:
            progress(len(rows), len(points))

    if progress is not None:
        progress(len(rows), len(points))
    if backend == "ray":
        _ray(todo, address, workers, done)
    elif backend == "local":
        _local(todo, workers, done)
    else:
        raise ConfigError(f"unknown backend {backend!r} (local or ray)")
    return rank(rows, objective)


def write_sweep_reports(ranked: Sequence[Mapping[str, Any]], out_dir: Path) -> dict[str, Path]:
    """``sweep.json`` (the ranked rows) and ``sweep.html`` (table and a plot)."""
    from backtests.report import figure_png, html_page, new_figure, table, usd

    paths = {"table": out_dir / "sweep.json", "report": out_dir / "sweep.html"}
    paths["table"].write_text(json.dumps(list(ranked), sort_keys=True, indent=2) + "\n",
                              encoding="utf-8")
    objective = ranked[0]["objective"] if ranked else "pnl_marked"
    keys = list(ranked[0]["overrides"]) if ranked else []
    rows = [[r["rank"], *(r["overrides"][k] for k in keys), objective_text(objective, r["value"]),
             usd(r["metrics"]["pnl_realized_micros"]), r["metrics"]["quotes_placed"],
             r["metrics"]["accepts"], f"{r['metrics']['win_rate']:.1%}", r["metrics"]["fills"],
             usd(r["metrics"]["markouts_micros"].get("60s"))] for r in ranked]
    unit = "PnL per $ of worst-case loss" if objective in RATIO_OBJECTIVES else "USD"
    fig, ax = new_figure(f"Sweep ranked by {objective}", "rank", unit)
    ax.bar([str(r["rank"]) for r in ranked], [r["value"] / 1_000_000 for r in ranked])
    sections = [
        f"<p>{len(ranked)} points ranked by <b>{objective}</b>.</p>",
        table(["rank", *keys, objective, "PnL realised", "quotes", "accepts", "win rate",
                  "fills", "markout 60s"], rows),
        figure_png(fig),
    ]
    paths["report"].write_text(html_page("Sweep", sections), encoding="utf-8")
    return paths
