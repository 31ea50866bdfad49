"""``quoter explain``: the real command in a subprocess on the shipped example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "examples" / "explain-rfq.json"


def _explain(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTER_")}
    return subprocess.run([sys.executable, "-m", "quoter.cli", "explain", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def test_explain_names_the_strategy_each_module_and_the_bids(tmp_path: Path) -> None:
    result = _explain("--config", "config/demo.yaml", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "RFQ rfq-example-1 on KXSIMA-26NOV01-M1: 25.00 contracts, single market"
    assert "  strategy sim-combos: skipped (kind)" in lines
    assert "strategy: sim-singles (the first whose filters pass)" in lines
    # book: YES bid 0.45, NO bid 0.51 (YES ask 0.49): mid 0.47, edge 0.008.
    assert "  pricer book_mid: fair 0.4700  yes 0.4620  no 0.5220" in lines
    overlays = [x.split(":")[0].strip() for x in lines if x.startswith("  overlay ")]
    assert overlays == ["overlay inventory_skew", "overlay size_edge", "overlay fee_edge",
                        "overlay requester_profile"]
    assert lines[-1] == "would quote: yes 0.4500  no 0.5100  (fair 0.4700)"

    as_json = _explain("--config", "config/demo.yaml", "--json", str(EXAMPLE), cwd=tmp_path)
    data = json.loads(as_json.stdout)
    assert data["strategy"] == "sim-singles"
    assert data["bids"]["yes_bid_micros"] == 450_000
    assert data["bids"]["no_bid_micros"] == 510_000
    assert [s["module"] for s in data["steps"]][:2] == ["book_mid", "inventory_skew"]


def test_explain_without_a_book_or_a_route(tmp_path: Path) -> None:
    rfq = json.loads(EXAMPLE.read_text())
    del rfq["orderbooks"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(rfq))
    out = _explain("--config", "config/demo.yaml", str(path), cwd=tmp_path).stdout
    assert "  pricer book_mid: declined: " in out
    assert "would not quote" in out
    assert "note: no order book given for KXSIMA-26NOV01-M1" in out
    rfq["rfq"]["msg"]["market_ticker"] = "KXOTHER-1"
    rfq["market"]["ticker"] = "KXOTHER-1"
    rfq["market"]["event_ticker"] = "KXOTHER"
    path.write_text(json.dumps(rfq))
    out = _explain("--config", "config/demo.yaml", str(path), cwd=tmp_path).stdout
    assert "  strategy sim-singles: skipped (series)" in out
    assert "no strategy takes it: no_route" in out


def test_a_bad_input_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"rfq": {"id": 5}}')
    result = _explain("--config", "config/demo.yaml", str(path), cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"quoter explain: {path}: rfq: ")
