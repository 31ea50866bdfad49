"""A logistic auction model: P(a side of our quote is taken | our edge, the RFQ's size, its
requester, its series, the time to close, the side), fitted on our own recorded quotes.

The binned model (``backtests.models.CalibratedAuction``) conditions on our edge alone; real
requesters also differ by size (a large RFQ shops harder), by who they are, by series, and by
how close the market is to closing. This fits one L2-regularised logistic regression by
Newton's method (a few dozen features; numpy) on every side of our quotes that beat the
book (the others are never taken, the rule both models apply), and reports how good the fit
is: log loss and Brier score in sample and 5-fold cross-validated, against the base rate's,
with a calibration table (predicted against observed rate per fifth of the predictions).

Features (named in the fit report next to their weights):

* ``edge_cents``: our edge on the side, over the mid (over our fair without a book), clipped
  to ±20¢; ``unbooked`` and ``unbooked_x_edge`` let markets without a book (combos) differ;
* ``side_yes``; ``log_contracts`` (log1p of the RFQ's contracts) and ``size_unknown``;
  ``log_minutes_to_close`` and ``close_unknown``;
* ``series=S`` and ``requester=R`` indicators for those with at least ``min_category``
  samples (the rest share the baseline).

Probabilities are floats (they are not money); what the backtest does with them is one
seeded draw per quote, as in the binned model.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from backtests.features import RfqFeatures
from backtests.models import NS_PER_MS, AuctionContext, FeaturedSample, sides_of
from quoter.domain.types import Side

__all__ = ["LogisticAuction", "fit_logistic"]

_EDGE_CLIP_CENTS = 20.0
_FOLDS = 5


@dataclass(frozen=True, slots=True)
class _Encoder:
    """Turns one side of a quote into the feature vector (the names are the report's)."""

    series: tuple[str, ...]
    requesters: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return ("bias", "edge_cents", "unbooked", "unbooked_x_edge", "side_yes",
                "log_contracts", "size_unknown", "log_minutes_to_close", "close_unknown",
                *(f"series={s}" for s in self.series),
                *(f"requester={r}" for r in self.requesters))

    def row(self, edge_micros: int, booked: bool, side: Side,
            features: RfqFeatures | None) -> list[float]:
        edge = max(-_EDGE_CLIP_CENTS, min(_EDGE_CLIP_CENTS, edge_micros / 10_000))
        unbooked = 0.0 if booked else 1.0
        contracts = features.contracts_centi if features is not None else None
        close_in = features.close_in_s if features is not None else None
        series = features.series if features is not None else ""
        requester = features.requester if features is not None else ""
        return [1.0, edge, unbooked, unbooked * edge, 1.0 if side is Side.YES else 0.0,
                math.log1p(contracts / 100) if contracts else 0.0,
                0.0 if contracts else 1.0,
                math.log1p(close_in / 60) if close_in is not None else 0.0,
                0.0 if close_in is not None else 1.0,
                *(1.0 if series == s else 0.0 for s in self.series),
                *(1.0 if requester == r else 0.0 for r in self.requesters)]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))
    return out


def _newton(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> np.ndarray:
    """L2-regularised logistic regression (no penalty on the bias) by Newton's method."""
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = _sigmoid(x @ w)
        grad = x.T @ (p - y) + penalty * w
        hess = (x.T * (p * (1.0 - p))) @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return w


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@dataclass
class LogisticAuction:
    """Per side of our quote that beats the book: taken with the fitted probability."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    quality: dict[str, object] = field(default_factory=dict)
    accept_delay_ns: int = 300 * NS_PER_MS
    seed: int = 0
    name: str = "calibrated"

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        prefix = len("series=")
        self._encoder = _Encoder(
            tuple(n[prefix:] for n in self.names if n.startswith("series=")),
            tuple(n[len("requester="):] for n in self.names if n.startswith("requester=")))
        if self._encoder.names != self.names:
            raise ValueError("logistic auction: feature names out of order")
        self._w = np.array(self.weights)

    def probability(self, edge_micros: int, *, booked: bool, side: Side,
                    features: RfqFeatures | None) -> float:
        """The fitted P(taken) of one side."""
        row = np.array(self._encoder.row(edge_micros, booked, side, features))
        return float(_sigmoid(np.array([row @ self._w]))[0])

    def decide(self, ctx: AuctionContext) -> tuple[Side, int] | None:
        """One draw: each side that beats the book is taken with its fitted probability."""
        draw = self._rng.random()
        at = 0.0
        for side, edge, beats, booked in sides_of(ctx):
            if not beats:
                continue
            at += self.probability(edge, booked=booked, side=side, features=ctx.features)
            if draw < at:
                return side, ctx.now_ns + self.accept_delay_ns
        return None

    def fit_report(self) -> dict[str, object]:
        """The weights by feature name and the fit's quality."""
        return {"method": "logistic",
                "weights": {n: round(w, 6) for n, w in zip(self.names, self.weights,
                                                            strict=True)},
                "quality": self.quality}


def fit_logistic(samples: Sequence[FeaturedSample], *, l2: float = 1.0,
                 min_category: int = 10, seed: int = 0,
                 accept_delay_ns: int = 300 * NS_PER_MS) -> LogisticAuction:
    """Fit the model on the sides of our quotes that beat the book; ``ValueError`` if there
    is nothing to fit (no such side, or none taken)."""
    rows = [(s, f, side) for s, f, side in samples if s[1]]
    if not rows or not any(s[2] for s, _, _ in rows):
        raise ValueError("nothing to calibrate on: none of our quotes that beat the book "
                         "was taken")
    series = Counter(f.series for _, f, _ in rows if f is not None)
    requesters = Counter(f.requester for _, f, _ in rows if f is not None)
    enc = _Encoder(tuple(sorted(k for k, n in series.items() if n >= min_category and k)),
                   tuple(sorted(k for k, n in requesters.items() if n >= min_category and k)))
    x = np.array([enc.row(s[0], s[3], side, f) for s, f, side in rows])
    y = np.array([1.0 if s[2] else 0.0 for s, _, _ in rows])
    w = _newton(x, y, l2)
    p = _sigmoid(x @ w)
    base = float(np.mean(y))
    # Cross-validated: each fifth predicted by a model fitted on the other four.
    folds = np.arange(len(y)) % _FOLDS
    p_cv = np.empty_like(y)
    for k in range(_FOLDS):
        test = folds == k
        if test.all() or not test.any():
            p_cv[test] = base
            continue
        p_cv[test] = _sigmoid(x[test] @ _newton(x[~test], y[~test], l2))
    order = np.argsort(p, kind="stable")
    calibration = []
    for chunk in np.array_split(order, min(5, len(order))):
        calibration.append({"n": len(chunk), "predicted": round(float(np.mean(p[chunk])), 6),
                            "observed": round(float(np.mean(y[chunk])), 6)})
    quality = {
        "samples": len(y), "taken": int(y.sum()), "base_rate": round(base, 6),
        "log_loss": round(_log_loss(y, p), 6),
        "log_loss_cv": round(_log_loss(y, p_cv), 6),
        "log_loss_base_rate": round(_log_loss(y, np.full_like(y, base)), 6),
        "brier": round(float(np.mean((p - y) ** 2)), 6),
        "brier_cv": round(float(np.mean((p_cv - y) ** 2)), 6),
        "calibration": calibration,
    }
    return LogisticAuction(enc.names, tuple(round(float(v), 9) for v in w), quality,
                           accept_delay_ns=accept_delay_ns, seed=seed)
