"""The command line as an operator meets it: one clear line on failure, never a traceback.

Each test runs the real ``quoter`` command in a subprocess (``python -m quoter.cli``), with a
clean ``QUOTER_*`` environment, from a directory that is not the repository.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO / "tests" / "data" / "frames"


def quoter(*args: str, cwd: Path, stdin: bytes | None = None,
           timeout_s: float = 120) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTER_")}
    return subprocess.run(
        [sys.executable, "-m", "quoter.cli", *args], cwd=cwd, env=env, input=stdin,
        capture_output=True, timeout=timeout_s, check=False,
    )


def into_closed_pipe(*args: str, cwd: Path) -> tuple[int, bytes]:
    """Run quoter with stdout on a pipe whose reader is already gone (``| head`` that exited).

    The read end is closed before the child starts, so its first write fails with EPIPE
    whatever the pipe buffer size: deterministic, no timing.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTER_")}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "quoter.cli", *args], cwd=cwd, env=env,
                                stdout=write_end, stderr=subprocess.PIPE, timeout=120,
                                check=False)
    finally:
        os.close(write_end)
    return result.returncode, result.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prod_without_the_flag_is_one_line(tmp_path: Path) -> None:
    result = quoter("run", "--config", "config/demo.yaml", "--env", "prod", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "quoter run: invalid settings: env=prod needs the explicit "
        "--i-understand-this-is-production flag on the command line"
    ]


def test_paper_mode_without_a_simulator_names_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    key = tmp_path / "key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
                   check=True, capture_output=True)
    key.chmod(0o600)
    result = quoter(
        "run", "--config", "config/demo.yaml", "--mode", "paper", "--sim-url", url,
        "--key-id", "k", "--key-file", str(key), "--db", str(tmp_path / "q.db"),
        "--control-port", "0", "--view", "none", cwd=tmp_path,
    )
    assert result.returncode == 1
    last = result.stderr.decode().splitlines()[-1]
    assert last.startswith(f"quoter run: no simulator answering at {url} ")
    assert "`quoter sim`" in last
    assert "Traceback" not in result.stderr.decode()


def test_config_schema_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    status, err = into_closed_pipe("config", "schema", cwd=tmp_path)
    assert (status, err) == (0, b"")


def test_decode_json_into_a_closed_pipe_does_not_blame_the_file(tmp_path: Path) -> None:
    frames = FRAMES / "market_data.jsonl"
    status, err = into_closed_pipe("decode", "--json", str(frames), cwd=tmp_path)
    assert status == 0
    assert b"cannot read" not in err
    assert b"Traceback" not in err


def test_decode_a_recording_directory(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    lines = [x for x in (FRAMES / "market_data.jsonl").read_bytes().splitlines() if x.strip()]
    half = len(lines) // 2
    (rec_dir / "rec-9-0.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines[:half])))
    (rec_dir / "rec-10-0.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines[half:])))
    result = quoter("decode", str(rec_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stdout.decode()
    assert f"{len(lines)} frames, 0 errors" in result.stdout.decode()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = quoter("decode", str(empty), cwd=tmp_path)
    assert result.returncode == 1
    assert "no recording files" in result.stdout.decode()


@pytest.mark.parametrize("corrupt", [
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 64,  # gzip header, bad deflate data
    b"not gzip at all\n",
    gzip.compress(b'{"type":"ok"}\n' * 100)[:-30],  # truncated
])
def test_decode_a_corrupt_gz_is_one_line(tmp_path: Path, corrupt: bytes) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(corrupt)
    result = quoter("decode", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == b""
    errors = [x for x in result.stdout.decode().splitlines() if x.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {path}: cannot read: ")


def test_demo_runs_from_any_directory(tmp_path: Path) -> None:
    result = quoter("demo", "--seconds", "1", "--view", "none", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert b"positions match the simulator's ledger: yes" in result.stdout
    assert b"quoter demo: winding down: quoting stopped" in result.stdout
    assert quoter("config", "validate", "config/examples/combo-maker.yaml",
                  cwd=tmp_path).returncode == 0


def test_a_missing_demo_config_creates_nothing(tmp_path: Path) -> None:
    result = quoter("demo", "--seconds", "1", "--config", "mine.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines()[-1] == "quoter demo: mine.yaml: not found"
    assert list(tmp_path.iterdir()) == []
