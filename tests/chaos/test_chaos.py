"""The chaos soak (``tests/chaos/soak.py``): the fast profile in ``make test``; the long one is
``make soak`` (``tests/chaos/long_soak.py``, ``SOAK_SECONDS``, default 1,500)."""

from __future__ import annotations

from pathlib import Path

import pytest
from soak import FAST, run_soak

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
