"""The chaos soak (``tests/chaos/soak.py``): the fast profile in ``make test``, the long one in
``make soak`` (``SOAK_SECONDS``, default 1,500)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from soak import FAST, long_profile, run_soak

pytestmark = pytest.mark.chaos


async def test_chaos_fast_profile_holds_every_invariant(tmp_path: Path) -> None:
    report = await run_soak(tmp_path, FAST)
    print("\n" + report.table())
    assert report.violations == []
    # The run did what it says: load, accepts, fills, every kind of discrete fault.
    assert report.rfqs > 100
    assert report.fills > 10
    assert report.restarts >= 3
    for kind in ("kill_random", "confirm_kill_arrival", "confirm_kill_applied", "halts",
                 "sim_restarts", "cuts", "lose_quotes", "burst_429", "burst_5xx",
                 "overflowed", "dropped", "duplicated", "delayed", "reordered", "nested",
                 "bodies_corrupted", "rest_errors", "confirm_responses_lost"):
        assert report.faults[kind] >= 1, kind
    assert report.meant_to_confirm > 0


@pytest.mark.skipif(os.environ.get("QUOTER_SOAK") != "long", reason="make soak runs it")
async def test_chaos_long_soak(tmp_path: Path) -> None:
    seconds = float(os.environ.get("SOAK_SECONDS", "1500"))
    report = await run_soak(tmp_path, long_profile(seconds))
    table = report.table()
    print("\n" + table)
    out = os.environ.get("SOAK_REPORT")
    if out:
        Path(out).write_text(table + "\n")  # noqa: ASYNC240 (once, at the end)
    assert report.violations == []
    assert report.confirm_success_rate >= 0.999
