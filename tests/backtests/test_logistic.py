"""The logistic calibration: it recovers how acceptance depends on edge, size and requester
from samples drawn with a known law, reports its quality, and drives the backtest."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from backtests.cli import main
from backtests.features import FeatureBook, RfqFeatures
from backtests.logistic import LogisticAuction, fit_logistic
from backtests.models import AuctionContext, FeaturedSample
from quoter.domain import events as ev
from quoter.domain.types import Side

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"


def _law(edge_micros: int, contracts_centi: int, requester: str) -> float:
    # The truth: more edge for us and bigger RFQs are taken less; requester "sharp" more.
    z = (-1.0 - 0.5 * edge_micros / 10_000 - 0.8 * math.log1p(contracts_centi / 100)
         + (1.5 if requester == "sharp" else 0.0))
    return 1 / (1 + math.exp(-z))


def _samples(n: int, seed: int) -> list[FeaturedSample]:
    rng = random.Random(seed)
    out: list[FeaturedSample] = []
    for _ in range(n):
        edge = rng.randrange(-30_000, 30_000, 5_000)
        contracts = rng.choice([100, 1_000, 10_000])
        requester = rng.choice(["sharp", "slow", "other"])
        taken = rng.random() < _law(edge, contracts, requester)
        features = RfqFeatures(contracts, requester, "KXSER", 3_600)
        out.append(((edge, True, taken, True), features, Side.YES))
    return out


def test_the_fit_recovers_the_law_it_was_drawn_from_and_beats_the_base_rate() -> None:
    model = fit_logistic(_samples(4_000, seed=1), min_category=10)
    w = dict(zip(model.names, model.weights, strict=True))
    assert w["edge_cents"] == pytest.approx(-0.5, abs=0.12)
    assert w["log_contracts"] == pytest.approx(-0.8, abs=0.2)
    assert w["requester=sharp"] - w["requester=slow"] == pytest.approx(1.5, abs=0.3)
    q = model.quality
    assert q["samples"] == 4_000
    assert q["log_loss_cv"] < q["log_loss_base_rate"]  # type: ignore[operator]
    assert q["log_loss"] <= q["log_loss_cv"]  # type: ignore[operator]
    for row in q["calibration"]:  # type: ignore[attr-defined]
        assert row["predicted"] == pytest.approx(row["observed"], abs=0.06)
    # Same samples, same fit (a sweep's points must agree).
    assert fit_logistic(_samples(4_000, seed=1), min_category=10).weights == model.weights


def test_sides_that_do_not_beat_the_book_are_not_fitted_and_nothing_taken_is_an_error() -> None:
    samples = _samples(200, seed=2)
    never_taken: list[FeaturedSample] = [((e, b, False, bk), f, s)
                                         for (e, b, _, bk), f, s in samples]
    with pytest.raises(ValueError, match="nothing to calibrate on"):
        fit_logistic(never_taken)
    behind_the_book: list[FeaturedSample] = [((e, False, t, bk), f, s)
                                             for (e, _, t, bk), f, s in samples]
    with pytest.raises(ValueError, match="nothing to calibrate on"):
        fit_logistic(behind_the_book)


def test_the_model_reads_the_rfq_features_it_is_given() -> None:
    model = LogisticAuction(
        ("bias", "edge_cents", "unbooked", "unbooked_x_edge", "side_yes", "log_contracts",
         "size_unknown", "log_minutes_to_close", "close_unknown", "requester=sharp"),
        (0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0))
    small = RfqFeatures(100, "slow", "S", 60)
    large = RfqFeatures(10_000, "slow", "S", 60)
    sharp = RfqFeatures(10_000, "sharp", "S", 60)
    p = [model.probability(0, booked=True, side=Side.YES, features=f)
         for f in (small, large, sharp)]
    assert p[0] == pytest.approx(1 / (1 + math.exp(math.log(2))))
    assert p[1] < p[0] < p[2]
    # In decide(), a side behind the book is never taken, whatever the features.
    ctx = AuctionContext("r", "M", 400_000, 0, 0, 450_000, 400_000, None, None,
                         features=sharp)
    assert all(model.decide(ctx) is None for _ in range(50))


def test_the_feature_book_answers_what_the_kernel_saw() -> None:
    book = FeatureBook()
    book.observe(ev.RfqReceived("r1", "KXA-26-M1", 0, creator_id="c1", contracts_centi=2_500))
    assert book.of("r1", 0) == RfqFeatures(2_500, "c1", "KXA", None)  # no metadata yet
    assert book.of("nope", 0) is None


def test_a_logistic_calibration_runs_end_to_end_and_reports_its_quality(
        small_world: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["run", "--config", str(DEMO), "--frames", str(small_world), "--out",
                     str(tmp_path / name), "--auction", "calibrated", "--calibration",
                     "logistic", "--no-progress"]) == 0
    a = (tmp_path / "a" / "summary.json").read_bytes()
    assert a == (tmp_path / "b" / "summary.json").read_bytes()
    fit = json.loads(a)["auction"]["fit"]
    assert fit["method"] == "logistic"
    assert {"edge_cents", "log_contracts", "log_minutes_to_close"} <= set(fit["weights"])
    assert any(k.startswith("requester=") for k in fit["weights"])
    quality = fit["quality"]
    assert quality["samples"] > 10
    assert quality["taken"] > 0
    assert {"log_loss", "log_loss_cv", "log_loss_base_rate", "brier", "calibration"} <= set(
        quality)


def test_the_binned_calibration_reports_its_quality_too(small_world: Path,
                                                       tmp_path: Path) -> None:
    assert main(["run", "--config", str(DEMO), "--frames", str(small_world), "--out",
                 str(tmp_path / "c"), "--auction", "calibrated", "--no-progress"]) == 0
    fit = json.loads((tmp_path / "c" / "summary.json").read_text())["auction"]["fit"]
    assert fit["method"] == "binned"
    q = fit["quality"]
    assert q["samples"] == sum(b["quotes"] for b in fit["bins"] + fit["unbooked_bins"])
    assert 0 < q["log_loss"] <= q["log_loss_base_rate"]
