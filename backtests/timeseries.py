"""Bounded-memory figures of a run: a downsampled time series and a latency histogram.

A backtest must stay constant-memory on multi-million-frame inputs, so neither keeps every
point. :class:`BoundedSeries` keeps at most ``capacity`` points and, when full, merges each
pair of neighbours into one that keeps, per value, the one of larger magnitude (a peak of
inventory or exposure is never smoothed away). :class:`LatencyHistogram` bins values with 7
significant bits (exact below 128 ns, otherwise within 1/64 of the value), so its memory is
bounded by the range of values, not their number; the maximum is exact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_CAPACITY", "BoundedSeries", "LatencyHistogram"]

#: Points kept per series (the report's plots need no more).
DEFAULT_CAPACITY = 2_000
_SIGNIFICANT_BITS = 7
#: Quantiles reported, in per-mille (p50, p90, p99).
QUANTILES_PERMILLE = (500, 900, 990)


def _wider(a: int, b: int) -> int:
    return a if abs(a) >= abs(b) else b


@dataclass
class BoundedSeries:
    """``(ts_ns, *values)`` points, oldest first, at most ``capacity`` of them."""

    capacity: int = DEFAULT_CAPACITY
    points: list[tuple[int, ...]] = field(default_factory=list)
    #: How many raw points each kept point stands for at most (doubles at each merge).
    span: int = 1

    def __post_init__(self) -> None:
        if self.capacity < 2:
            raise ValueError("a bounded series keeps at least 2 points")

    def add(self, ts_ns: int, *values: int) -> None:
        """Append a point; merge neighbours pairwise when the series is full."""
        if len(self.points) >= self.capacity:
            self._merge()
        self.points.append((ts_ns, *values))

    def _merge(self) -> None:
        # Each pair becomes one point at the earlier time with the larger-magnitude values;
        # an odd last point stays as it is. Deterministic: only integers are compared.
        pts = self.points
        merged = [(a[0], *(_wider(x, y) for x, y in zip(a[1:], b[1:], strict=True)))
                  for a, b in zip(pts[0::2], pts[1::2], strict=False)]
        if len(pts) % 2:
            merged.append(pts[-1])
        self.points = merged
        self.span *= 2


def _bucket(value: int) -> int:
    """The lower bound of ``value``'s bin (values below 2**7 have bins of one)."""
    shift = max(0, value.bit_length() - _SIGNIFICANT_BITS)
    return (value >> shift) << shift


def _bucket_top(lower: int) -> int:
    """The largest value in the bin whose lower bound is ``lower``."""
    shift = max(0, lower.bit_length() - _SIGNIFICANT_BITS)
    return lower + (1 << shift) - 1


@dataclass
class LatencyHistogram:
    """A distribution of non-negative nanosecond durations in bounded memory."""

    bins: Counter[int] = field(default_factory=Counter)
    count: int = 0
    max_ns: int = 0

    def add(self, value_ns: int) -> None:
        """Count one duration (a negative one, impossible in virtual time, counts as 0)."""
        value_ns = max(0, value_ns)
        self.bins[_bucket(value_ns)] += 1
        self.count += 1
        self.max_ns = max(self.max_ns, value_ns)

    def quantile_ns(self, permille: int) -> int | None:
        """The nearest-rank quantile, as its bin's top (capped at the exact maximum)."""
        if not self.count:
            return None
        rank = -(-permille * self.count // 1000)  # ceil, at least 1 for permille > 0
        seen = 0
        for lower in sorted(self.bins):
            seen += self.bins[lower]
            if seen >= max(rank, 1):
                return min(_bucket_top(lower), self.max_ns)
        return self.max_ns  # pragma: no cover - the ranks sum to count

    def summary(self) -> dict[str, Any]:
        """Count, p50/p90/p99 and max (ns), and the bins as ``[lower_ns, upper_ns, count]``
        (``upper_ns`` the largest value the bin holds)."""
        out: dict[str, Any] = {"count": self.count}
        for q in QUANTILES_PERMILLE:
            out[f"p{q // 10}_ns"] = self.quantile_ns(q)
        out["max_ns"] = self.max_ns if self.count else None
        out["bins_ns"] = [[lower, _bucket_top(lower), self.bins[lower]]
                          for lower in sorted(self.bins)]
        return out
