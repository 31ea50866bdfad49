"""B5 (full backtest throughput, RSS flat) and B9 (sweep scaling over processes and Ray).

B5 writes an order-book-heavy interchange file (``backtests.samples.write_book_flow``: a
snapshot per market, then one level change per frame, 8 markets of ``config/demo.yaml``'s
series) and backtests it in a child process, which reports its own peak RSS: the figure is
frames/s of the whole run (both passes: the prepass and the run), the baseline the same
frames read and decoded by the production decoder only. ``B5-rss`` is the child's peak RSS
on the full file minus that on a file a tenth as long (flat memory: near 0).
Full: 10,000,000 frames (``QUOTER_B5_FRAMES`` to change); ``--quick``: 20,000.

B9 sweeps 8 configs (edge x min spread of ``sim-singles``) on 100,000 book frames with
synthetic RFQs (4 per market per minute, the ``book`` auction: ~3-4 s a point, so the figure
measures the sweep, not the start of a process): the figure is the time on 1 process over
the time on 2; ``B9-ray`` is a local Ray instance of 2 CPUs against the 2
local processes (time ratio, Ray started beforehand; its start-up time is in ``extra``).
``--quick`` runs 2 configs on 10,000 frames and no Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._suite import Result

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.yaml"
EDGE = "strategies.sim-singles.pricer.params.edge_dollars"
SPREAD = "strategies.sim-singles.quoting.min_spread_dollars"


def _child(path: str) -> None:
    """In a fresh process: backtest ``path``; print frames, seconds and peak RSS as JSON."""
    import logging
    import resource

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    from backtests.engine import run_backtest
    from backtests.models import BookAuction
    from quoter.config import load_config

    config = load_config(DEMO)
    start = time.perf_counter()
    loop = run_backtest([path], config, auction=BookAuction(seed=1))
    seconds = time.perf_counter() - start
    rss_kb = _peak_rss_kb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(json.dumps({"frames": loop.frames, "seconds": seconds,
                      "decode_errors": loop.decode_errors, "maxrss_kb": rss_kb}))


def _peak_rss_kb(ru_maxrss_kb: int) -> int:
    """This process's own peak RSS. Linux carries the parent's peak across fork + exec into
    ``ru_maxrss`` (a child of a 270 MB benchmark process reports 270 MB), so read the address
    space's high-water mark ``VmHWM`` instead where there is one."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return ru_maxrss_kb


def backtest_in_child(path: Path) -> dict[str, Any]:
    """Run :func:`_child` on ``path`` in a new interpreter; its JSON report."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.b_backtest", str(path)],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def _decode_rate(path: Path, limit: int) -> float:
    """Baseline: frames/s of reading and decoding the file's first ``limit`` frames."""
    from backtests.engine import frames_of
    from quoter.errors import DecodeError
    from quoter.kalshi.decode import decode

    n = 0
    start = time.perf_counter()
    for frame in frames_of([path]):
        with contextlib.suppress(DecodeError):
            decode(frame.data, frame.ts_recv_ns)
        n += 1
        if n >= limit:
            break
    return n / (time.perf_counter() - start)


def b5(quick: bool) -> list[Result]:
    """B5 and B5-rss."""
    from backtests.samples import write_book_flow

    frames = 20_000 if quick else int(os.environ.get("QUOTER_B5_FRAMES", "10000000"))
    with tempfile.TemporaryDirectory(prefix="quoter-b5-") as tmp:
        small, big = Path(tmp) / "small.jsonl.gz", Path(tmp) / "big.jsonl.gz"
        t0 = time.perf_counter()
        write_book_flow(big, frames=frames)
        write_s = time.perf_counter() - t0
        write_book_flow(small, frames=frames // 10)
        big_run = backtest_in_child(big)
        small_run = backtest_in_child(small)
        baseline = _decode_rate(big, min(frames, 500_000))
        size_mb = big.stat().st_size / 1e6
    rate = big_run["frames"] / big_run["seconds"]
    growth_mb = (big_run["maxrss_kb"] - small_run["maxrss_kb"]) / 1024
    extra = {"frames": big_run["frames"], "seconds": round(big_run["seconds"], 1),
             "file_mb_gzip": round(size_mb, 1), "write_s": round(write_s, 1),
             "peak_rss_mb": round(big_run["maxrss_kb"] / 1024, 1),
             "peak_rss_mb_tenth": round(small_run["maxrss_kb"] / 1024, 1),
             "decode_errors": big_run["decode_errors"],
             # Other jobs on the machine: a scaling or rate figure means little above ~1.5.
             "load_avg_1m": round(os.getloadavg()[0], 2)}
    return [
        Result("B5", f"full backtest, {frames:,} book frames", rate, "frames/s", 200_000,
               baseline, "read + decode only", higher_is_better=True, extra=extra),
        Result("B5-rss", f"peak RSS growth, {frames // 10:,} -> {frames:,} frames", growth_mb,
               "MB", 16.0, note=f"peak RSS {extra['peak_rss_mb']} MB", extra=extra),
    ]


def _sweep_seconds(points: list[Any], inputs: list[Path], out: Path,
                   **kw: Any) -> tuple[float, list[Any]]:
    from backtests.runner import AuctionSpec
    from backtests.sweep import run_sweep

    spec = AuctionSpec("book", seed=5)
    start = time.perf_counter()
    ranked = run_sweep(points, inputs, spec, out, seed=5, **kw)
    return time.perf_counter() - start, ranked


def _b9_inputs(tmp: Path, quick: bool) -> list[Path]:
    """Book flow with synthetic RFQs: a point costs seconds, not the start of a process."""
    from backtests.samples import write_book_flow
    from backtests.synthetic import SyntheticRfqs, write_synthetic_rfqs

    flow, rfqs = tmp / "flow.jsonl.gz", tmp / "rfqs.jsonl.gz"
    write_book_flow(flow, frames=10_000 if quick else 100_000)
    write_synthetic_rfqs([flow], rfqs, SyntheticRfqs(4.0, seed=1))
    return [flow, rfqs]


def b9(quick: bool) -> list[Result]:
    """B9 (2 processes vs 1) and B9-ray (local Ray vs 2 processes)."""
    from backtests.sweep import LOCAL_RAY_ENV, points_of

    grid = ({EDGE: ["0.004", "0.040"]} if quick else
            {EDGE: ["0.002", "0.004", "0.008", "0.040"], SPREAD: ["0.01", "0.03"]})
    points = points_of(DEMO, grid)
    with tempfile.TemporaryDirectory(prefix="quoter-b9-") as tmp:
        inputs = _b9_inputs(Path(tmp), quick)
        one, ranked_one = _sweep_seconds(points, inputs, Path(tmp) / "one", workers=1)
        two, ranked_two = _sweep_seconds(points, inputs, Path(tmp) / "two", workers=2)
        same = ranked_one == ranked_two
        rows = [Result("B9", f"sweep of {len(points)} configs: 2 processes vs 1", one / two,
                       "x", 1.8, higher_is_better=True,
                       note="" if same else "rankings differ between 1 and 2 processes",
                       extra={"one_process_s": round(one, 2), "two_processes_s": round(two, 2),
                              "identical_rankings": same,
                              "fills_per_point": [r["metrics"]["fills"] for r in ranked_one],
                              "load_avg_1m": round(os.getloadavg()[0], 2)})]
        if quick:
            rows.append(Result("B9-ray", "sweep on a local Ray (2 CPUs) vs 2 processes", None,
                               "x", 1.10, note="not run with --quick (Ray takes ~5 s to start)"))
            return rows
        try:
            for key, value in LOCAL_RAY_ENV.items():
                os.environ.setdefault(key, value)
            import ray
        except ImportError:
            rows.append(Result("B9-ray", "sweep on a local Ray (2 CPUs) vs 2 processes", None,
                               "x", 1.10, note="Ray not installed (pip install -e '.[ray]')"))
            return rows
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - t0
        try:
            on_ray, ranked_ray = _sweep_seconds(points, inputs, Path(tmp) / "ray", workers=2,
                                                backend="ray")
        finally:
            ray.shutdown()
    rows.append(Result("B9-ray", f"sweep of {len(points)} configs: local Ray (2 CPUs) / "
                       "2 processes", on_ray / two, "x", 1.10,
                       note="" if ranked_ray == ranked_two else "rankings differ from local",
                       extra={"ray_s": round(on_ray, 2), "ray_init_s": round(init_s, 2),
                              "two_processes_s": round(two, 2),
                              "identical_rankings": ranked_ray == ranked_two,
                              "load_avg_1m": round(os.getloadavg()[0], 2)}))
    return rows


def run(quick: bool) -> list[Result]:
    """Report B5, B5-rss, B9 and B9-ray."""
    return [*b5(quick), *b9(quick)]


if __name__ == "__main__":
    _child(sys.argv[1])
