"""``quoter sim``: help, host refusal, and a real run answering a signed request."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from quoter.cli import main
from quoter.commands.sim import is_loopback
from quoter.kalshi.auth import KalshiAuth, Signer, load_private_key, ws_headers

REPO = Path(__file__).resolve().parents[2]


def test_help_documents_the_knobs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sim", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for knob in ("--rfq-rate", "--burst", "--burst-rate", "--confirm-window-ms",
                 "--hvm-confirm-window-ms", "--faults", "--world", "--key-dir", "--seed",
                 "/sim/faults", "restart_lose_open_quotes"):
        assert knob in out


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com", "::"])
def test_refuses_non_loopback_hosts(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--host", host]) == 2
    assert "non-loopback" in capsys.readouterr().err


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.0.0.2")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("10.0.0.1")


def test_bad_world_file_is_a_usage_error(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    world = tmp_path / "w.yaml"
    world.write_text("world:\n  makers:\n    colour: blue\n")
    assert main(["sim", "--world", str(world)]) == 2
    assert f"{world}:3: world.makers.colour" in capsys.readouterr().err


def _read_banner(proc: subprocess.Popen[str]) -> dict[str, str]:
    """Read ``key: value`` lines up to ``ready`` (EOF if the process died); each ``account:``
    line is kept as ``account USER_ID``."""
    assert proc.stdout is not None
    info: dict[str, str] = {}
    for line in proc.stdout:
        if line.startswith("export "):
            # `export NAME=VALUE` (shell-quoted): collected as "$NAME".
            name, _, value = shlex.split(line)[1].partition("=")
            info["$" + name] = value
            continue
        key, _, value = line.partition(": ")
        if key == "account":
            user, _, value = value.partition(" ")
            key = f"account {user}"
        info[key.strip()] = value.strip()
        if line.startswith("ready"):
            break
    return info


def test_sim_runs_prints_how_to_connect_and_answers_a_signed_request(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "quoter.cli", "sim", "--port", "0", "--seed", "3",
         "--key-dir", str(tmp_path), "--log-level", "warning", "--rfq-rate", "1",
         "--requester-key", str(tmp_path / "req" / "requester.pem"), "--account", "bot-2",
         "--env-file", str(tmp_path / "sim.env")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        try:
            _exercise(proc, tmp_path)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                raise
        stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr


def _exercise(proc: subprocess.Popen[str], tmp_path: Path) -> None:
    info = _read_banner(proc)
    assert info.get("rest_base_url", "").startswith("http://127.0.0.1:"), info
    assert info["ws_url"].startswith("ws://127.0.0.1:")
    assert info["ws_url"].endswith("/trade-api/ws/v2")
    key_file = Path(info["private_key_file"])
    # The export lines set up a second terminal for `quoter run` in paper mode.
    assert info["$QUOTER_MODE"] == "paper"
    assert info["$QUOTER_SIM_URL"] == info["rest_base_url"].removesuffix("/trade-api/v2")
    assert info["$QUOTER_API_KEY_ID"] == info["api_key_id"]
    assert info["$QUOTER_PRIVATE_KEY_PATH"] == info["private_key_file"]
    # ... and the same lines are in --env-file, private, for `. sim.env` in a container.
    env_file = tmp_path / "sim.env"
    assert (env_file.stat().st_mode & 0o777) == 0o600
    sourced = dict(shlex.split(line)[1].partition("=")[::2]
                   for line in env_file.read_text().splitlines())
    assert sourced == {k[1:]: v for k, v in info.items() if k.startswith("$")}
    assert key_file.parent == tmp_path.resolve()
    assert (key_file.stat().st_mode & 0o777) == 0o600
    signer = Signer(info["api_key_id"], load_private_key(key_file))
    auth = KalshiAuth(signer, lambda: time.time_ns() // 1_000_000)
    base = info["rest_base_url"]
    with httpx.Client(auth=auth, timeout=10) as client:
        resp = client.get(f"{base}/portfolio/balance")
        assert resp.status_code == 200, resp.text
        assert resp.json()["balance_dollars"].startswith("10000.")
        markets = client.get(f"{base}/markets").json()["markets"]
        assert any(m["ticker"].startswith("KXMVE") for m in markets)
    unsigned = httpx.get(f"{base}/portfolio/balance", timeout=10)
    assert unsigned.status_code == 401
    origin = base.removesuffix("/trade-api/v2")
    faults = httpx.post(f"{origin}/sim/faults",
                        json={"rest": {"error_status": 503, "error_count": 1}}, timeout=10)
    assert faults.status_code == 200
    with httpx.Client(auth=auth, timeout=10) as client:
        assert client.get(f"{base}/portfolio/balance").status_code == 503
        assert client.get(f"{base}/portfolio/balance").status_code == 200
    stats = json.loads(httpx.get(f"{origin}/sim/faults", timeout=10).text)["stats"]
    assert stats["rest_errors"] == 1
    assert asyncio.run(_first_rfq(info["ws_url"], signer))["type"] == "rfq_created"
    _exercise_accounts(info, tmp_path)


def _exercise_accounts(info: dict[str, str], tmp_path: Path) -> None:
    """--requester-key and --account opened keyed accounts that sign their own requests."""
    base = info["rest_base_url"]
    fields = {user: dict(kv.split("=", 1) for kv in info[f"account {user}"].split())
              for user in ("quoter-requester", "bot-2")}
    req_key = Path(fields["quoter-requester"]["private_key_file"])
    assert req_key == (tmp_path / "req" / "requester.pem").resolve()
    assert Path(fields["bot-2"]["private_key_file"]) == (tmp_path / "bot-2.pem").resolve()
    for user, f in fields.items():
        key_file = Path(f["private_key_file"])
        assert (key_file.stat().st_mode & 0o777) == 0o600
        auth = KalshiAuth(Signer(f["api_key_id"], load_private_key(key_file)),
                          lambda: time.time_ns() // 1_000_000)
        with httpx.Client(auth=auth, timeout=10) as client:
            ticker = client.get(f"{base}/markets", params={"mve_filter": "exclude"}).json()[
                "markets"][0]["ticker"]
            r = client.post(f"{base}/communications/rfqs", json={
                "market_ticker": ticker, "contracts_fp": "1.00", "rest_remainder": False})
            assert r.status_code == 201, (user, r.text)
            mine = client.get(f"{base}/communications/rfqs",
                              params={"user_filter": "self", "status": "open"}).json()["rfqs"]
            assert r.json()["id"] in [x["id"] for x in mine]
    origin = base.removesuffix("/trade-api/v2")
    assert info["accounts"] == f"{origin}/sim/accounts"
    ledger = httpx.get(f"{origin}/sim/ledger", timeout=10).json()["accounts"]
    assert {"quoter-demo", "quoter-requester", "bot-2"} <= ledger.keys()
    assert ledger["quoter-requester"]["balance_micros"] == 10_000_000_000


async def _first_rfq(ws_url: str, signer: Signer) -> dict[str, Any]:
    """The live world's requesters post RFQs: the first one reaches a subscriber."""
    headers = ws_headers(signer, time.time_ns() // 1_000_000)
    async with websockets.connect(ws_url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"id": 1, "cmd": "subscribe",
                                  "params": {"channels": ["communications"]}}))
        while True:
            frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] != "subscribed":
                return frame


def test_flags_override_the_world_file_and_faults_file_loads(tmp_path: Path) -> None:
    from quoter.cli import build_parser
    from quoter.commands.sim import _build_config

    world = tmp_path / "w.yaml"
    world.write_text("world:\n  makers:\n    count: 5\n    edge_dollars: \"0.03\"\n")
    faults = tmp_path / "f.yaml"
    faults.write_text("accept_notice_delay_ms: 700\nrest: {error_status: 429, error_count: 3}\n")
    args = build_parser().parse_args([
        "sim", "--world", str(world), "--faults", str(faults), "--makers", "1",
        "--burst", "--burst-rate", "2000", "--rfq-rate", "0.25",
    ])
    cfg = _build_config(args)
    assert cfg.world.makers.count == 1
    assert cfg.world.makers.edge_micros == 30_000  # kept from the file
    assert cfg.world.burst.enabled
    assert cfg.world.burst.rfq_rate_per_s == 2000
    assert cfg.world.requesters.rfq_rate_per_s == 0.25
    assert cfg.faults.accept_notice_delay_ms == 700
    assert cfg.faults.rest.error_count == 3


def test_account_that_exists_is_a_usage_error(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # Refused before anything starts (no logging set up, no port bound).
    assert main(["sim", "--port", "0", "--key-dir", str(tmp_path),
                 "--account", "quoter-demo"]) == 2
    assert "['quoter-demo'] already exist" in capsys.readouterr().err
    assert main(["sim", "--port", "0", "--account", "../etc"]) == 2
    assert "--account '../etc': user_id must be" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bad_faults_file_is_a_usage_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    faults = tmp_path / "f.yaml"
    faults.write_text("rest: {error_status: 200}\n")
    assert main(["sim", "--faults", str(faults)]) == 2
    assert "error_status" in capsys.readouterr().err
