"""Fuzz profiles: ``fast`` (the default, inside ``make test``: a few seconds, derandomized so
pass/fail is deterministic) and ``long`` (``make fuzz``: QUOTER_FUZZ_PROFILE=long, 100,000+
inputs over all targets). Inputs run per target are printed at the end of the session."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fast", max_examples=150, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=int(os.environ.get("QUOTER_FUZZ_EXAMPLES", "21000")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("QUOTER_FUZZ_PROFILE", "fast")
settings.load_profile(PROFILE)

#: Inputs tried per target, and how they ended (value / typed error).
RUNS: Counter[tuple[str, str]] = Counter()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RUNS:
        return
    total = sum(RUNS.values())
    terminalreporter.write_line(f"fuzz profile {PROFILE}: {total} inputs")
    for (target, outcome), n in sorted(RUNS.items()):
        terminalreporter.write_line(f"  {target:<24} {outcome:<16} {n}")
