"""A backtest streams: its peak RSS on a book-heavy file ten times as long stays the same.

Each run is a fresh interpreter reporting its own peak RSS (``ru_maxrss``), so nothing the
test process did before counts. Holding the 135,000 extra frames in a list costs 43 MB
(measured: ``list(frames_of(...))`` peaks at 60 MB on the short file, 103 MB on the long one);
the bound is 8 MB. The
benchmark (B5, ``benchmarks/b_backtest.py``) does the same on 10 million frames.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from backtests.samples import write_book_flow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
CHILD = """
import json, logging, resource, sys
import structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
from backtests.engine import run_backtest
from backtests.models import BookAuction
from quoter.config import load_config
loop = run_backtest([sys.argv[1]], load_config(sys.argv[2]), auction=BookAuction(seed=1))
print(json.dumps({"frames": loop.frames, "decode_errors": loop.decode_errors,
                  "books": len(loop.mirror), "halts": loop.metrics.halts,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _backtest(path: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(DEMO)], cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_peak_rss_stays_flat_from_15k_to_150k_book_frames(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jsonl.gz", tmp_path / "big.jsonl.gz"
    assert write_book_flow(small, frames=15_000) == 15_000
    assert write_book_flow(big, frames=150_000) == 150_000
    a, b = _backtest(small), _backtest(big)
    assert (a["frames"], b["frames"]) == (15_000, 150_000)
    assert a["decode_errors"] == b["decode_errors"] == 0
    assert a["books"] == b["books"] == 8  # the same 8 markets' books, kept
    growth_mb = (b["maxrss_kb"] - a["maxrss_kb"]) / 1024
    assert growth_mb < 8, (a, b)
