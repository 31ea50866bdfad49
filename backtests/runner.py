"""One backtest from names: the auction model by name (calibrated on the inputs if asked), the
run, and its result as plain data (what the reports and a sweep's workers hand around).

Auction specs are plain frozen data so a sweep can send them to other processes; each run
builds its own model from the spec, so every point of a sweep starts from the same seed.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backtests.engine import BacktestLoop, run_backtest
from backtests.logistic import LogisticAuction, fit_logistic
from backtests.models import (
    AuctionModel,
    BookAuction,
    CalibratedAuction,
    RecordedAuction,
    SideSample,
    SyntheticAuction,
    fit_calibrated,
)
from backtests.names import (
    AUCTION_ENTRY_POINTS,
    AUCTIONS,
    CALIBRATIONS,
    FALLBACKS,
    auction_names,
    user_auction_models,
)
from quoter.config import QuoterConfig, config_hash
from quoter.errors import ConfigError
from quoter.recording.format import RecordingError

__all__ = [
    "AUCTIONS",
    "AUCTION_ENTRY_POINTS",
    "FALLBACKS",
    "AuctionSpec",
    "BacktestResult",
    "auction_names",
    "auction_spec",
    "backtest",
    "make_auction",
    "result_of",
    "write_fills_csv",
]

def _user_model(name: str, seed: int) -> AuctionModel:
    """Build the user model ``name``; any failure to do so is a :class:`ConfigError`."""
    ep = user_auction_models().get(name)
    if ep is None:
        raise ConfigError(f"unknown auction model {name!r} (one of {', '.join(auction_names())};"
                          f" user models register in the {AUCTION_ENTRY_POINTS!r} entry-point "
                          "group)")
    try:
        model: AuctionModel = ep.load()(seed=seed)
    except Exception as exc:  # a third party's code: whatever it raises is a bad config
        raise ConfigError(f"auction model {name!r} ({ep.value}) could not be built: "
                          f"{type(exc).__name__}: {exc}") from None
    if not callable(getattr(model, "decide", None)):
        raise ConfigError(f"auction model {name!r} ({ep.value}) has no decide(ctx) method")
    return model


@dataclass(frozen=True, slots=True)
class AuctionSpec:
    """Which auction model, seeded how; ``bins`` is a calibrated model's fit."""

    name: str
    seed: int = 0
    fallback: str = "none"
    bin_micros: int = 10_000
    bins: tuple[tuple[int, int, int], ...] = ()  # (bin, quotes, accepts)
    unbooked: tuple[tuple[int, int, int], ...] = ()  # the same for markets without a book
    #: ``synthetic``: the intents file of the synthetic RFQs (``backtests.synthetic``).
    intents: str | None = None
    #: ``calibrated``: ``binned`` (by our edge) or ``logistic`` (edge, size, requester,
    #: series, time to close, side: ``backtests.logistic``), its weights, and the fit's
    #: quality as JSON (plain, frozen data for a sweep's workers).
    calibration: str = "binned"
    weights: tuple[tuple[str, float], ...] = ()
    quality: str = "{}"

    def fit_report(self) -> dict[str, object] | None:
        """The calibrated model's fit, or None for the others."""
        if self.name != "calibrated":
            return None
        report: dict[str, object]
        if self.calibration == "logistic":
            report = _logistic(self).fit_report()
        else:
            report = {"method": "binned", **CalibratedAuction(
                self.bin_micros, _bins(self.bins),
                unbooked_bins=_bins(self.unbooked)).fit_report()}
        report["quality"] = json.loads(self.quality)
        return report


def _bins(bins: Iterable[tuple[int, int, int]]) -> dict[int, tuple[int, int]]:
    return {b: (q, a) for b, q, a in bins}


def make_auction(spec: AuctionSpec) -> AuctionModel:
    """A fresh model for one run."""
    if spec.name == "recorded":
        if spec.fallback == "book":
            return RecordedAuction(fallback=BookAuction(seed=spec.seed))
        return RecordedAuction()
    if spec.name == "book":
        return BookAuction(seed=spec.seed)
    if spec.name == "calibrated" and spec.calibration == "logistic":
        return _logistic(spec)
    if spec.name == "calibrated":
        return CalibratedAuction(spec.bin_micros, _bins(spec.bins), seed=spec.seed,
                                 unbooked_bins=_bins(spec.unbooked))
    if spec.name == "synthetic":
        from backtests.synthetic import read_intents

        if spec.intents is None:
            raise ConfigError("--auction synthetic acts on synthetic RFQs: give --synthetic-rfqs")
        return SyntheticAuction(read_intents(Path(spec.intents)),
                                fallback=BookAuction(seed=spec.seed),
                                book=BookAuction(seed=spec.seed))
    return _user_model(spec.name, spec.seed)


def _logistic(spec: AuctionSpec) -> LogisticAuction:
    return LogisticAuction(tuple(n for n, _ in spec.weights), tuple(w for _, w in spec.weights),
                           json.loads(spec.quality), seed=spec.seed)


def _binned_quality(model: CalibratedAuction, samples: Sequence[SideSample]) -> dict[str, Any]:
    """In-sample log loss and Brier score of the binned fit, against the base rate's."""
    rows = [(model.probability(edge, booked=booked), taken)
            for edge, beats, taken, booked in samples if beats]
    if not rows:
        return {"samples": 0}
    base = sum(t for _, t in rows) / len(rows)

    def log_loss(p_of: Callable[[float], float]) -> float:
        total = 0.0
        for p, taken in rows:
            q = min(max(p_of(p), 1e-12), 1 - 1e-12)
            total -= math.log(q) if taken else math.log(1 - q)
        return round(total / len(rows), 6)

    return {"samples": len(rows), "taken": sum(t for _, t in rows),
            "base_rate": round(base, 6), "log_loss": log_loss(lambda p: p),
            "log_loss_base_rate": log_loss(lambda _: base),
            "brier": round(sum((p - t) ** 2 for p, t in rows) / len(rows), 6)}


def auction_spec(name: str, paths: Sequence[Path], config: QuoterConfig, *, seed: int,
                 fallback: str = "none", intents: Path | None = None,
                 calibration: str = "binned") -> AuctionSpec:
    """The spec for ``name``; ``calibrated`` is fitted here on our own quotes in ``paths``.

    The fit replays the inputs with ``config`` and the recorded outcomes, and learns, per side
    of our quotes that beat the book, P(taken | our edge over the mid) from the quotes the
    recording holds an outcome for.
    """
    if name != "calibrated":
        spec = AuctionSpec(name, seed, fallback,
                           intents=str(intents) if intents is not None else None)
        make_auction(spec)  # a user model that cannot be built fails here, before any run
        return spec
    if calibration not in CALIBRATIONS:
        raise ConfigError(f"unknown calibration {calibration!r} (one of "
                          f"{', '.join(CALIBRATIONS)})")
    loop = run_backtest(paths, config, auction=RecordedAuction(), seed=seed)
    samples = loop.metrics.side_samples()
    if not samples:
        raise RecordingError("cannot calibrate: the inputs hold none of our quotes and their "
                             "outcomes (use --auction book)")
    if calibration == "logistic":
        try:
            fitted = fit_logistic(loop.metrics.featured_samples(), seed=seed)
        except ValueError as exc:
            raise RecordingError(f"cannot calibrate: {exc}") from None
        return AuctionSpec(name, seed, fallback, calibration="logistic",
                           weights=tuple(zip(fitted.names, fitted.weights, strict=True)),
                           quality=json.dumps(fitted.quality, sort_keys=True))
    model = fit_calibrated(samples, seed=seed)
    return AuctionSpec(name, seed, fallback, model.bin_micros,
                       tuple((b, q, a) for b, (q, a) in sorted(model.bins.items())),
                       tuple((b, q, a) for b, (q, a) in sorted(model.unbooked_bins.items())),
                       quality=json.dumps(_binned_quality(model, samples), sort_keys=True))


@dataclass(frozen=True)
class BacktestResult:
    """A finished run as plain data: summary, PnL curve, fills, quotes' edges."""

    summary: dict[str, Any]
    pnl_curve: tuple[tuple[int, int, int], ...]
    #: (ts_ns, market, strategy, bought_yes, price_micros, count_centi, fee_micros,
    #:  {horizon_s: markout_micros or None})
    fills: tuple[tuple[Any, ...], ...]
    quote_edges: tuple[tuple[int, bool], ...]
    start_ns: int
    #: The report's bounded series (``Metrics.series``: inventory, markout curves).
    series: dict[str, Any] = field(default_factory=dict)


def result_of(loop: BacktestLoop, *, config: QuoterConfig, spec: AuctionSpec,
              inputs: Sequence[Path], start_ns: int) -> BacktestResult:
    """Collect what the reports need from a finished loop (deterministic content only)."""
    m = loop.metrics
    summary = {
        "metrics": m.summary,
        "latency": loop.latency.summary(),
        "round_trips_drawn_ns": m.round_trips_summary(),
        "auction": {"model": spec.name, "seed": spec.seed, "fallback": spec.fallback,
                    "fit": spec.fit_report()},
        "config_hash": config_hash(config),
        "inputs": [p.name for p in inputs],
    }
    fills = tuple((f.ts_ns, f.market_ticker, f.strategy, f.bought_yes, f.price_micros,
                   f.count_centi, f.fee_micros, dict(f.markouts_micros)) for f in m.fills)
    return BacktestResult(summary, tuple(m.pnl_curve), fills,
                          tuple(v for _, v in sorted(m.quote_edges.items())), start_ns,
                          m.series())


def backtest(paths: Sequence[Path], config: QuoterConfig, spec: AuctionSpec, *, seed: int,
             progress: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Run one backtest of ``config`` on ``paths`` with the auction of ``spec``."""
    loop = run_backtest(paths, config, auction=make_auction(spec), seed=seed,
                        progress=progress)
    return result_of(loop, config=config, spec=spec, inputs=paths, start_ns=loop.start_ns)


def write_fills_csv(result: BacktestResult, path: Path) -> None:
    """One row per fill, with its markouts (integers; empty when the book had no mid)."""
    from backtests.metrics import MARKOUT_HORIZONS_S

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ts_ns", "market", "strategy", "side", "price_micros", "count_centi",
                    "fee_micros", *(f"markout_{h}s_micros" for h in MARKOUT_HORIZONS_S)])
        for ts, market, strategy, yes, price, count, fee, marks in result.fills:
            w.writerow([ts, market, strategy, "yes" if yes else "no", price, count, fee,
                        *("" if marks.get(h) is None else marks[h] for h in MARKOUT_HORIZONS_S)])
