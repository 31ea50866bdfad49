"""Shared timing helpers: best-of-N wall time per item, and a uniform report line."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any


def per_item_ns(fn: Callable[[Any], object], items: Sequence[Any], *, repeat: int = 5) -> float:
    """Best-of-``repeat`` nanoseconds per item for ``fn`` over ``items`` (bounded loops)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter_ns() - start) / len(items))
    return best


def report(name: str, value_ns: float, baseline_name: str, baseline_ns: float) -> dict[str, Any]:
    """Print one benchmark line and return it as a dict."""
    ratio = value_ns / baseline_ns if baseline_ns else float("nan")
    rate = 1e9 / value_ns if value_ns else float("inf")
    print(f"{name:<38} {value_ns / 1000:9.2f} us/item  {rate:12,.0f}/s  "
          f"{ratio:6.2f}x {baseline_name}")
    return {"name": name, "ns_per_item": value_ns, "per_s": rate,
            "baseline": baseline_name, "ratio": ratio}
