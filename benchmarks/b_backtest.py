"""B5 (full backtest throughput, RSS flat) and B9 (sweep scaling over processes / Ray).

Both need the backtest engine (``backtests/`` driver, modelled exchange, sweeps), which is
being written; until it is in this checkout they report "not available" instead of a figure.
"""

from __future__ import annotations

import importlib.util

from benchmarks._suite import Result

#: Modules the backtest benchmarks need; any missing one makes them "not available".
NEEDED = ("backtests.engine", "backtests.sweep")


def _missing() -> list[str]:
    out = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            out.append(name)
    return out


def run(quick: bool) -> list[Result]:
    """Report B5 and B9 (not available until the backtest engine lands)."""
    missing = _missing()
    note = f"backtest engine not in this checkout ({', '.join(missing)} missing)"
    if not missing:
        note = "backtest engine present but its benchmark is not written yet"
    return [
        Result("B5", "full backtest on book-heavy recordings", None, "frames/s", 200_000,
               higher_is_better=True, note=note),
        Result("B9", "sweep of 8 configs: 2 processes vs 1", None, "x", 1.8,
               higher_is_better=True, note=note),
    ]
