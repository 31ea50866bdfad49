"""``quoter-backtest run``: reports on a small recorded world, determinism, one-line errors."""

from __future__ import annotations

import base64
import csv
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backtests.cli import EXIT_INPUT, EXIT_USAGE, main
from quoter.domain.money import format_fp

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
PNG = b"\x89PNG\r\n\x1a\n"


def _run(rec: Path, out: Path, *extra: str) -> int:
    return main(["run", "--config", str(DEMO), "--input", str(rec), "--out", str(out),
                 "--no-progress", *extra])


def test_run_writes_the_summary_fills_and_an_html_report_with_plots(
        small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(small_world, tmp_path / "r") == 0
    assert "PnL marked" in capsys.readouterr().out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    m = summary["metrics"]
    assert m["fills"] > 3
    assert m["quotes_placed"] >= m["accepts"] > 0
    for key in ("pnl_realized_micros", "pnl_marked_micros", "fees_micros", "contracts_centi"):
        assert type(m[key]) is int  # integer money, never float
    assert all(v is None or type(v) is int for v in m["markouts_micros"].values())
    assert set(m["by_strategy"]) == {"sim-combos", "sim-singles"}
    assert m["by_strategy"]["sim-singles"]["fills"] == m["fills"]
    assert summary["auction"]["model"] == "recorded"
    rows = list(csv.DictReader((tmp_path / "r" / "fills.csv").read_text().splitlines()))
    assert len(rows) == m["fills"]
    page = (tmp_path / "r" / "report.html").read_text()
    images = re.findall(r'<img class="plot" alt="([^"]+)" src="data:image/png;base64,([^"]+)"',
                        page)
    assert [alt for alt, _ in images] == [
        "PnL over time", "Fills: contracts filled over time",
        "Markouts by horizon (against the mid)",
        "Markouts by horizon (against the mid and against our fair)",
        "Inventory over time", "Worst-case exposure over time",
        "Win rate against our edge over the mid",
        "Latency: RFQ to quote and accept to confirm (virtual time)",
        "Latency: round trips by request type"]
    assert all(base64.b64decode(data).startswith(PNG) for _, data in images)
    assert "<td>sim-singles</td>" in page  # the per-strategy table
    for title in ("By strategy", "By series", "By market", "By requester"):
        assert f"<h3>{title}" in page  # the breakdown tables
    assert 0 < len(m["by_series"]) <= 20
    for series in m["by_series"]:
        assert f"<td>{series}</td>" in page  # the per-series table names every series
    assert f"<td>{format_fp(m['inventory']['max_abs_net_centi'])}</td>" in page
    assert m["latency_ns"]["rfq_to_quote"]["count"] > 0


def test_the_same_inputs_and_seed_give_a_byte_identical_summary(
        small_world: Path, tmp_path: Path) -> None:
    assert _run(small_world, tmp_path / "a", "--auction", "book", "--seed", "4") == 0
    assert _run(small_world, tmp_path / "b", "--auction", "book", "--seed", "4") == 0
    a = (tmp_path / "a" / "summary.json").read_bytes()
    assert a == (tmp_path / "b" / "summary.json").read_bytes()
    assert json.loads(a)["auction"] == {"model": "book", "seed": 4, "fallback": "none",
                                        "fit": None}


def test_the_calibrated_auction_reports_its_fit(small_world: Path, tmp_path: Path) -> None:
    assert _run(small_world, tmp_path / "c", "--auction", "calibrated") == 0
    fit = json.loads((tmp_path / "c" / "summary.json").read_text())["auction"]["fit"]
    bins = fit["bins"]
    assert sum(b["quotes"] for b in bins) > 10
    assert sum(b["accepts"] for b in bins) > 0


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(("quoter-backtest run: error: ", "quoter-backtest sweep: error: "))
    return lines[0]


def test_bad_inputs_and_configs_are_one_line_errors_with_exit_codes(
        small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path / "nope.jsonl.gz", tmp_path / "o") == EXIT_INPUT
    assert "no such input file" in _error_line(capsys)
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    assert _run(broken, tmp_path / "o") == EXIT_INPUT
    assert "gzip" in _error_line(capsys).lower()
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("garbage\n{\"x\": 1}\n")
    assert _run(garbage, tmp_path / "o") == EXIT_INPUT
    assert "no frame of the inputs decoded" in _error_line(capsys)
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO.read_text().replace("max_open_quotes: 200", "max_open_quotes: lots"))
    assert main(["run", "--config", str(bad), "--input", str(small_world),
                 "--out", str(tmp_path / "o")]) == EXIT_USAGE
    assert "bad.yaml" in _error_line(capsys)
    assert not (tmp_path / "o").exists()  # nothing written before the inputs were good


def test_python_m_backtests_runs_without_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "backtests", "run", "--config", str(DEMO), "--input",
         str(missing), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=60)
    assert done.returncode == EXIT_INPUT
    assert done.stderr.strip() == f"quoter-backtest run: error: no such input file: {missing}"


def test_an_interchange_capture_runs_too(small_world: Path, tmp_path: Path) -> None:
    # The recording's frames, rewritten as {"ts_recv_ns", "frame"} lines (other people's form).
    capture = tmp_path / "capture.jsonl"
    with gzip.open(small_world, "rt") as src, capture.open("w") as dst:
        for line in src:
            obj = json.loads(line)
            if obj.get("k") == "in":
                dst.write(json.dumps({"ts_recv_ns": obj["ts_recv_ns"],
                                      "frame": json.loads(obj["frame"])}) + "\n")
    assert _run(capture, tmp_path / "i", "--auction", "book") == 0
    m = json.loads((tmp_path / "i" / "summary.json").read_text())["metrics"]
    assert m["rfqs_seen"] > 0
    assert m["decode_errors"] == 0


def test_a_market_data_only_capture_with_synthetic_rfqs_yields_quotes_fills_and_markouts(
        tmp_path: Path) -> None:
    # The sample capture holds books and lifecycle frames in the interchange form: no RFQs.
    capture = ROOT / "backtests" / "data" / "market-data.jsonl.gz"
    with gzip.open(capture, "rt") as f:
        types = {json.loads(line)["frame"]["type"] for line in f}
    assert "orderbook_delta" in types
    assert not any(t.startswith(("rfq_", "quote_")) for t in types)
    assert _run(capture, tmp_path / "bare") == 0
    bare = json.loads((tmp_path / "bare" / "summary.json").read_text())["metrics"]
    assert bare["rfqs_seen"] == 0  # without synthetic arrivals there is nothing to quote

    out = tmp_path / "syn"
    assert _run(capture, out, "--synthetic-rfqs", "6", "--seed", "2") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["auction"]["model"] == "synthetic"  # their requesters act on intents
    assert summary["inputs"] == ["market-data.jsonl.gz", "synthetic-rfqs.jsonl.gz"]
    m = summary["metrics"]
    assert m["rfqs_seen"] > 20
    assert m["quotes_placed"] > 0
    assert m["fills"] > 0
    assert m["decode_errors"] == 0
    assert any(v is not None for v in m["markouts_micros"].values())
    rows = list(csv.DictReader((out / "fills.csv").read_text().splitlines()))
    assert len(rows) == m["fills"]
    assert any(r["markout_10s_micros"] for r in rows)
    # Seeded: the same seed gives the same arrivals and the same summary, byte for byte.
    assert _run(capture, tmp_path / "again", "--synthetic-rfqs", "6", "--seed", "2") == 0
    again = (tmp_path / "again" / "summary.json").read_bytes()
    assert again == (out / "summary.json").read_bytes()


def test_a_bad_synthetic_rate_is_a_one_line_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = ROOT / "backtests" / "data" / "market-data.jsonl.gz"
    for rate in ("0", "-1", "nan"):
        assert _run(capture, tmp_path / "o", "--synthetic-rfqs", rate) == EXIT_USAGE
        assert "--synthetic-rfqs" in _error_line(capsys)
    assert not (tmp_path / "o").exists()
