"""Run the benchmark suite: ``python -m benchmarks [--quick] [ID ...]`` (``make bench``).

IDs: B1..B9 (each module may report several rows, e.g. ``B3`` and ``B3-drop``). ``--quick``
runs every benchmark with a few iterations (the smoke test and CI use it: it proves the
harness works, its figures mean nothing). Each figure is printed with its target, a baseline
measured in the same run and the ratio, then the table; all of it goes to
``benchmarks/results/latest.json`` (``--out`` to change). The older in-process reports run by
name: ``python -m benchmarks decode | engine | sim_world | stages | lean_http``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from benchmarks._suite import RESULTS_DIR, Result, print_table, write_json

#: Suite order: cheap in-process benchmarks first, loopback ones after.
SUITE: tuple[tuple[str, str], ...] = (
    ("B3", "benchmarks.b_firehose"),
    ("B4", "benchmarks.b_book"),
    ("B6", "benchmarks.b_pricing"),
    ("B7", "benchmarks.b_kill"),
    ("B1", "benchmarks.b_loopback"),  # B1, B2 and B8 share a simulator process
    ("B5", "benchmarks.b_backtest"),  # B5 and B9
)
ALIASES = {"B2": "B1", "B8": "B1", "B9": "B5"}
LEGACY = ("decode", "engine", "sim_world", "stages", "lean_http")


def _line(r: Result) -> str:
    if not r.available:
        return f"{r.id:<9} not available: {r.note}"
    ratio = "n/a" if r.ratio is None else f"{r.ratio:.3g}x"
    met = {True: "met", False: "NOT met", None: "-"}[r.met]
    return (f"{r.id:<9} {r.what}: {r.value:,.4g} {r.unit} (target {r.target:,.4g}; "
            f"baseline {r.baseline_name} {r.baseline or float('nan'):,.4g}; ratio {ratio}) "
            f"{met}{'  [' + r.note + ']' if r.note else ''}")


def _profiled(key: str, run: Callable[[bool], list[Result]], quick: bool) -> list[Result]:
    """Run one benchmark under a profiler; write its report next to the results."""
    path = RESULTS_DIR / f"profile-{key}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from pyinstrument import Profiler
    except ImportError:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        rows = prof.runcall(run, quick)
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(60)
        path.write_text(text.getvalue(), encoding="utf-8")
        return rows
    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        rows = run(quick)
    finally:
        profiler.stop()
    path.write_text(profiler.output_text(unicode=True, show_all=False), encoding="utf-8")
    return rows


def main(argv: list[str]) -> int:
    """Run the chosen benchmarks (all by default); return an exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("ids", nargs="*", help="B1..B9 (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny iteration counts")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json")
    parser.add_argument("--profile", action="store_true",
                        help="profile each benchmark (pyinstrument, else cProfile) into "
                             "benchmarks/results/profile-<ID>.txt")
    args = parser.parse_args(argv)
    if len(args.ids) == 1 and args.ids[0] in LEGACY:
        importlib.import_module(f"benchmarks.bench_{args.ids[0]}").main()
        return 0
    wanted = {ALIASES.get(i.upper(), i.upper()) for i in args.ids}
    unknown = wanted - {key for key, _ in SUITE}
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; have B1..B9 or {', '.join(LEGACY)}",
              file=sys.stderr)
        return 2
    # The service's info lines would drown the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    started = time.perf_counter()
    results: list[Result] = []
    for key, module in SUITE:
        if wanted and key not in wanted:
            continue
        run: Callable[[bool], list[Result]] = importlib.import_module(module).run
        t0 = time.perf_counter()
        rows = _profiled(key, run, args.quick) if args.profile else run(args.quick)
        for r in rows:
            print(_line(r), flush=True)
        print(f"          ({module.rsplit('.', 1)[1]}: {time.perf_counter() - t0:.1f} s)",
              flush=True)
        results += rows
    elapsed = time.perf_counter() - started
    print_table(results, elapsed)
    meta = {"quick": args.quick, "elapsed_s": round(elapsed, 2),
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "processor": platform.processor()}
    write_json(results, args.out, meta)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
