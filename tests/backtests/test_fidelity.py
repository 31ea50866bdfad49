"""Counterfactual fidelity: the ``calibrated`` auction model, fitted on config A's recording,
predicts what configs B-D actually did when they ran live in the same seeded world.

A (``config/demo.yaml``), B (the singles' edge doubled), C (halved) and D (the size overlay
four times steeper) each run live in the simulator's world (seed 3, 300 s of virtual time:
its requesters, competing makers and liquidity provider decide). The model is calibrated on
A's recording only, then each config is backtested on A's recording. The error bound, per
figure, is three standard deviations of what chance alone gives when the model is right:

* accepts (and fills): the live count and the predicted count are each a sum of Bernoulli
  draws, so each has variance about its mean (Poisson); the fitted rates carry A's own
  binomial noise, a relative error of about ``1/sqrt(accepts_A)`` on the prediction. So
  ``sd = sqrt(actual + predicted + predicted**2 / accepts_A)``;
* win rate: that accept sd over the quotes placed;
* PnL marked to the mid: a sum over fills, so its sd is the root mean square of one fill's
  marked PnL (measured on A's live fills) times ``sqrt(fills_actual + fills_predicted)``.
  Marked at the last mid, a fill's PnL is mostly where the price drifted afterwards, so this
  bound is wide (the configs' live PnLs are within it of each other too);
* the spread captured (each fill's 1 s markout less its fee, summed) is reported beside them
  but not held to a bound: the model's fills are adversely selected at 1 s where the live
  fills are not (docs/backtests.md, "Counterfactual fidelity"), a known gap.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from backtests.engine import run_backtest
from backtests.loop import BacktestLoop
from backtests.models import LatencyModel, RecordedAuction, fit_calibrated
from backtests.world import run_world
from quoter.config import QuoterConfig, parse_config
from quoter.domain.money import MAX_PRICE_MICROS

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
SEED = 3
SECONDS = 300.0
SIGMAS = 3

Summary = dict[str, Any]
Runs = dict[str, tuple[Summary, Summary]]

_BASE = DEMO.read_text(encoding="utf-8")
_SIZE = '''      - name: size_edge
        params: {free_contracts: 20, edge_per_contract_dollars: "0.00005",
                 max_extra_edge_dollars: "0.005"}'''
CONFIGS = {
    "A": _BASE,
    "B-wider-edge": _BASE.replace('edge_dollars: "0.008"', 'edge_dollars: "0.016"'),
    "C-narrower-edge": _BASE.replace('edge_dollars: "0.008"', 'edge_dollars: "0.004"'),
    "D-steeper-size-overlay": _BASE.replace(_SIZE, '''      - name: size_edge
        params: {free_contracts: 5, edge_per_contract_dollars: "0.0002",
                 max_extra_edge_dollars: "0.02"}'''),
}


def _config(text: str) -> QuoterConfig:
    return parse_config(text, str(DEMO), base_dir=DEMO.parent)


def _rms(values: list[int]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values))


def _fill_pnl_rms(loop: BacktestLoop) -> tuple[float, float]:
    """RMS of one fill's PnL marked to the last mid, and of its 1 s markout less fee."""
    marked, spread = [], []
    for f in loop.metrics.fills:
        book = loop.mirror.get(f.market_ticker)
        mid = book.mid_micros() if book is not None else None
        if mid is not None:
            value = mid if f.bought_yes else MAX_PRICE_MICROS - mid
            marked.append((value - f.price_micros) * f.count_centi // 100 - f.fee_micros)
        markout = f.markouts_micros.get(1)
        if markout is not None:
            spread.append(markout - f.fee_micros)
    return _rms(marked), _rms(spread)


def _spread(summary: Summary) -> int:
    """The spread captured: 1 s markouts of every fill, less the fees."""
    return int(summary["markouts_micros"]["1s"] or 0) - int(summary["fees_micros"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Runs, tuple[float, float]]:
    """Per config (live summary, predicted summary), and A's per-fill PnL RMS figures."""
    out = tmp_path_factory.mktemp("fidelity")
    live = {name: run_world(_config(text), seed=SEED, seconds=SECONDS,
                            record=out / f"{name}.jsonl.gz", latency=LatencyModel(seed=1),
                            config_text=text, config_path=str(DEMO))
            for name, text in CONFIGS.items()}
    recording = out / "A.jsonl.gz"
    # Calibrate on A alone: A's config on A's recording, the recorded outcomes of our quotes.
    fitted = run_backtest([recording], _config(CONFIGS["A"]), auction=RecordedAuction(),
                          latency=LatencyModel(seed=1))
    samples = fitted.metrics.side_samples()
    result: Runs = {}
    for name, text in CONFIGS.items():
        model = fit_calibrated(samples, seed=SEED)
        predicted = run_backtest([recording], _config(text), auction=model,
                                 latency=LatencyModel(seed=1))
        actual, guess = live[name].metrics.summary, predicted.metrics.summary
        result[name] = ({**actual, "spread_micros": _spread(actual)},
                        {**guess, "spread_micros": _spread(guess)})
    return result, _fill_pnl_rms(live["A"])


def _bounds(actual: Summary, predicted: Summary, accepts_a: int,
            rms: tuple[float, float]) -> dict[str, float]:
    sd_accepts = math.sqrt(actual["accepts"] + predicted["accepts"]
                           + predicted["accepts"] ** 2 / accepts_a)
    sd_fills = math.sqrt(actual["fills"] + predicted["fills"]
                         + predicted["fills"] ** 2 / accepts_a)
    return {
        "accepts": SIGMAS * sd_accepts,
        "fills": SIGMAS * sd_fills,
        "win_rate": SIGMAS * sd_accepts / max(actual["quotes_placed"], 1),
        "pnl_marked_micros": SIGMAS * rms[0] * math.sqrt(actual["fills"] + predicted["fills"]),
    }


def test_the_calibrated_model_predicts_other_configs(
    runs: tuple[Runs, tuple[float, float]],
) -> None:
    by_config, rms = runs
    accepts_a = by_config["A"][0]["accepts"]
    assert accepts_a > 50  # enough of A's own outcomes to calibrate on
    rows = []
    for name, (actual, predicted) in by_config.items():
        bounds = _bounds(actual, predicted, accepts_a, rms)
        for key, bound in bounds.items():
            error = abs(predicted[key] - actual[key])
            rows.append((name, key, actual[key], predicted[key], round(bound, 3)))
            assert error <= bound, (name, key, actual[key], predicted[key], bound)
        spread_bound = SIGMAS * rms[1] * math.sqrt(actual["fills"] + predicted["fills"])
        rows.append((name, "spread_micros (not asserted)", actual["spread_micros"],
                     predicted["spread_micros"], round(spread_bound, 3)))
    # The configs do differ in the live world, so the check is not vacuous: B (wider) wins
    # clearly less than A, and the prediction says so too.
    a_live, a_pred = by_config["A"]
    b_live, b_pred = by_config["B-wider-edge"]
    assert b_live["win_rate"] < a_live["win_rate"] / 2
    assert b_pred["win_rate"] < a_pred["win_rate"] / 2
    # And the bound has teeth: "B does what A did" is outside it.
    naive = _bounds(b_live, a_live, accepts_a, rms)
    assert abs(a_live["accepts"] - b_live["accepts"]) > naive["accepts"]
    print("\n".join(str(r) for r in rows))  # the figures for docs/backtests.md (pytest -s)
