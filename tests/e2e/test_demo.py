"""``quoter demo`` in-process: its books match the simulator's and its recording is clean.

The recording must decode completely with ``quoter decode``, hold the REST exchanges (bodies
and statuses) and contain no secret: not the private key, not a request signature or the
headers that carry it, not the control token.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import sys
from pathlib import Path

from quoter.kalshi.auth import Signer
from quoter.recording.format import HeaderLine, InLine, OutLine, read_recordings, recording_files
from quoter.service.demo import run_demo
from quoter.sim.exchange import ExchangeConfig

REPO = Path(__file__).resolve().parents[2]
#: An RSA-2048 PSS signature is 256 bytes: 344 characters of base64.
_LONG_BASE64 = re.compile(rb"[A-Za-z0-9+/]{300,}={0,2}")


def _decompressed(path: Path) -> bytes:
    # A complete file (the recorder closed it): plain gzip reads it whole.
    with gzip.open(path, "rb") as f:
        return f.read()


async def test_demo_matches_the_exchange_and_records_no_secret(tmp_path: Path) -> None:
    # Kalshi's 15 s execution timer would make the wind-down wait; 1 s keeps fills in view.
    result = await run_demo(seconds=8.0, config_path=REPO / "config" / "demo.yaml",
                            workdir=tmp_path, seed=3, view="none", install_signals=False,
                            exchange_config=ExchangeConfig(id_seed=3, execution_timer_ms=1_000))
    assert result.ledger_diff == []
    assert result.ledger_match is True
    counts = result.snapshot.counts
    assert counts["rfqs_seen"] > 0
    assert counts["quoted"] > 0

    files = recording_files(result.run_dir / "recordings")
    assert files
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quoter.cli", "decode", *map(str, files), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out_b, err_b = await asyncio.wait_for(proc.communicate(), 60)
    stdout = out_b.decode()
    assert proc.returncode == 0, stdout + err_b.decode()
    report = {line.split()[1]: int(line.split()[0]) for line in stdout.splitlines()
              if len(line.split()) == 2 and line.split()[0].isdigit()}
    assert report.get("rfq_created", 0) > 0, stdout
    assert ", 0 errors" in stdout

    lines = list(read_recordings(files))
    assert isinstance(lines[0], HeaderLine)
    assert lines[0].fields["mode"] == "paper"
    inbound = [line for line in lines if isinstance(line, InLine)]
    assert sum('"rfq_created"' in line.frame for line in inbound) == report["rfq_created"]
    posts = [line for line in lines if isinstance(line, OutLine)
             and (line.method, line.path) == ("POST", "/trade-api/v2/communications/quotes")]
    assert posts
    assert all(line.status == 201 for line in posts[:1])
    created = [line for line in posts if line.status == 201]
    assert len(created) >= counts["quoted"]
    assert all(line.body and '"rfq_id"' in line.body for line in created)
    assert all(line.response_body and '"id"' in line.response_body for line in created)

    # The detector finds a real signature made with the demo key (they are randomized, so
    # no recorded one can be compared byte for byte).
    signer = Signer.from_pem_file("demo", result.run_dir / "demo-key.pem")
    signature = signer.sign("1700000000000GET/trade-api/v2/portfolio/balance").encode()
    assert len(signature) == 344
    assert _LONG_BASE64.findall(b'{"x":"' + signature + b'"}') == [signature]

    secrets = _secrets(result.run_dir)
    for path in files:
        data = _decompressed(path)
        for name, secret in secrets.items():
            assert secret not in data, f"{name} leaked into {path.name}"
        lowered = data.lower()
        for header in (b"kalshi-access-signature", b"kalshi-access-key",
                       b"kalshi-access-timestamp", b"authorization", b"bearer "):
            assert header not in lowered, f"{header!r} in {path.name}"
        runs = _LONG_BASE64.findall(data)
        assert runs == [], f"base64 runs of signature length in {path.name}: {runs[:1]!r}"


def _secrets(run_dir: Path) -> dict[str, bytes]:
    """Every secret the demo run had: the PEM body lines and the control token."""
    pem = (run_dir / "demo-key.pem").read_bytes()
    body = [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    assert len(body) > 20  # a real 2048-bit key
    out = {f"private key line {i}": line for i, line in enumerate(body)}
    token = (run_dir / "control.token").read_bytes().strip()
    assert len(token) >= 16
    out["control token"] = token
    return out


async def test_a_full_cli_demo_leaves_no_secret_in_logs_recordings_database_or_reports(
    tmp_path: Path,
) -> None:
    """``quoter demo`` as a user runs it (debug logs on stderr, the summary JSON report): no
    secret in any byte it printed or left on disk (recordings decompressed, the database and
    its WAL as raw pages)."""
    workdir = tmp_path / "demo"
    summary = tmp_path / "summary.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quoter.cli", "demo", "--seconds", "5", "--seed", "4",
        "--workdir", str(workdir), "--view", "activity", "--log-level", "debug",
        "--summary-json", str(summary), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out_b, err_b = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, (out_b + err_b).decode(errors="replace")[-3000:]
    [run_dir] = workdir.glob("run-*")
    secrets = _secrets(run_dir)
    outputs: dict[str, bytes] = {"stdout": out_b, "stderr (logs)": err_b,
                                 "summary.json": summary.read_bytes()}
    assert b"fill" in err_b.lower() or b"quote" in err_b.lower()  # the logs are there
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        if path.name in ("demo-key.pem", "control.token"):
            continue  # where the secrets live, 0600
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = _decompressed(path)
        outputs[str(path.relative_to(run_dir))] = data
    assert any(name.startswith("recordings") for name in outputs)
    assert "quoter.db" in outputs
    for where, data in outputs.items():
        for name, secret in secrets.items():
            assert secret not in data, f"{name} leaked into {where}"
        lowered = data.lower()
        for header in (b"kalshi-access-signature", b"kalshi-access-key",
                       b"kalshi-access-timestamp", b"authorization", b"bearer "):
            assert header not in lowered, f"{header!r} in {where}"
        runs = _LONG_BASE64.findall(data)
        assert runs == [], f"base64 runs of signature length in {where}: {runs[:1]!r}"
