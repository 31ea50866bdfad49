"""A small recorded world (20 s of virtual time), shared by the CLI, report and sweep tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtests.models import LatencyModel
from backtests.world import run_world
from quoter.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rec = tmp_path_factory.mktemp("small-world") / "world.jsonl.gz"
    loop = run_world(load_config(DEMO), seed=3, seconds=20.0, record=rec,
                     latency=LatencyModel(seed=1))
    assert loop.metrics.summary["fills"] > 3  # the world traded with us
    return rec
