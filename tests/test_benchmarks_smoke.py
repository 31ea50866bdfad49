"""The benchmark harness keeps working: ``python -m benchmarks --quick`` runs every benchmark
and writes one valid entry per benchmark. Figures are not checked (benchmarks measure; tests
never assert timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"id", "value", "unit", "target", "baseline", "ratio", "met"}
EXPECTED = {"B1", "B1-p99", "B2", "B2-p99", "B3", "B3-drop", "B4", "B5", "B5-rss", "B6", "B6-combo",
            "B7", "B8", "B9", "B9-ray"}


def test_quick_run_writes_one_entry_per_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = json.loads(out.read_text(encoding="utf-8"))
    entries = {e["id"]: e for e in body["results"]}
    assert set(entries) == EXPECTED
    assert body["meta"]["quick"] is True
    for entry in entries.values():
        assert set(entry) >= KEYS, entry
        if entry["available"]:
            assert isinstance(entry["value"], int | float), entry
            assert entry["met"] in (True, False), entry
        else:  # a part that is not in this checkout says so instead of a figure
            assert entry["value"] is None
            assert entry["note"]
    assert "B7" in proc.stdout  # the figures are printed as well as written


def test_an_unknown_benchmark_is_refused() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "B42"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "unknown benchmark" in proc.stderr
