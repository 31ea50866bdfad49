"""The suite's common shape: one ``Result`` per benchmark, the table and ``latest.json``.

Every benchmark reports its figure, its target, a baseline measured in the same run and the
ratio figure/baseline, so a result read on another machine still says how far we are from the
cheapest way to do the same work there. ``met`` compares the figure with the target in the
direction the unit implies (``higher_is_better``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Result:
    """One benchmark's figure against its target and a same-run baseline."""

    id: str
    what: str
    value: float | None
    unit: str
    target: float | None
    baseline: float | None = None
    baseline_name: str = ""
    higher_is_better: bool = False
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        """False when the benchmark could not run here (its part does not exist yet)."""
        return self.value is not None

    @property
    def ratio(self) -> float | None:
        """Figure / baseline (None without both)."""
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        """Whether the figure meets the target (None when either is missing)."""
        if self.value is None or self.target is None or math.isnan(self.value):
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def as_json(self) -> dict[str, Any]:
        """The entry written to ``latest.json``."""
        out = asdict(self)
        out["ratio"] = self.ratio
        out["met"] = self.met
        out["available"] = self.available
        return out


def percentile(samples: Sequence[float], p: float) -> float:
    """The ``p`` quantile (0..1) of ``samples`` by nearest rank; NaN when empty."""
    if not samples:
        return float("nan")
    s = sorted(samples)
    return float(s[min(len(s) - 1, int(p * len(s)))])


def best_rate(fn: Any, items: Sequence[Any], *, repeat: int = 5) -> float:
    """Best-of-``repeat`` items per second of ``fn`` over ``items`` (bounded loops)."""
    best_ns = math.inf
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for item in items:
            fn(item)
        best_ns = min(best_ns, time.perf_counter_ns() - start)
    return len(items) * 1e9 / best_ns if best_ns else math.inf


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{text} {unit}".strip()


def print_table(results: Sequence[Result], elapsed_s: float) -> None:
    """Print the results as a table (rich)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"quoter benchmarks ({elapsed_s:.0f} s)")
    for col in ("id", "what", "figure", "target", "baseline", "ratio", "met"):
        table.add_column(col, overflow="fold")
    for r in results:
        met = {True: "[green]yes[/]", False: "[red]NO[/]", None: "-"}[r.met]
        base = f"{_fmt(r.baseline, r.unit)} ({r.baseline_name})" if r.baseline_name else "-"
        ratio = "n/a" if r.ratio is None else f"{r.ratio:.3g}x"
        figure = _fmt(r.value, r.unit) if r.available else f"not available: {r.note}"
        target = ("≥ " if r.higher_is_better else "≤ ") + _fmt(r.target, r.unit) \
            if r.target is not None else "-"
        table.add_row(r.id, r.what, figure, target, base, ratio, met)
    Console(width=160).print(table)


def write_json(results: Sequence[Result], path: Path, meta: dict[str, Any]) -> None:
    """Write ``{"meta": ..., "results": [entry, ...]}`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"meta": meta, "results": [r.as_json() for r in results]}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
