"""``quoter record`` against the simulator (real sockets on 127.0.0.1, the CLI in a subprocess)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from quoter.cli import main
from quoter.clock import LiveClock
from quoter.kalshi.frames import iter_frames
from quoter.recording.format import HeaderLine, InLine, WsOutLine, read_recordings, recording_files
from quoter.sim.config import SimConfig
from quoter.sim.exchange import ExchangeConfig, SimExchange
from quoter.sim.server import serve_sim
from quoter.sim.world import World

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Sim:
    base_url: str
    key_id: str
    key_path: Path
    ticker: str


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    clock = LiveClock()
    exchange = SimExchange(clock, ExchangeConfig(id_seed=3))
    world = World(exchange, clock, SimConfig().world, 3)
    key_path = tmp_path / "key.pem"
    key_id = world.register_demo_key(key_path)
    single = next(m.ticker for m in exchange.list_markets() if not m.ticker.startswith("KXMVE"))
    async with serve_sim(exchange, "127.0.0.1", 0, clock=clock) as running:
        task = asyncio.create_task(world.run(asyncio.sleep), name="sim-world")
        try:
            yield Sim(running.base_url, key_id, key_path, single)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def _record(sim: Sim, out: Path, *extra: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTER_")}
    env["QUOTER_LOG_FORMAT"] = "json"
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quoter.cli", "record", "--out", str(out),
        "--target", sim.base_url,
        "--key-id", sim.key_id, "--key-file", str(sim.key_path), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        cwd=str(out.parent),
    )


async def test_record_captures_rfqs_and_books_that_decode(
    sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rec"
    proc = await _record(sim, out, "--seconds", "2", "--shards", "2", "--markets", sim.ticker)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert b"frames in 1 file(s)" in stdout
    files = recording_files(out)
    assert len(files) == 1
    lines = list(read_recordings(files))
    header = lines[0]
    assert isinstance(header, HeaderLine)
    assert header.fields["mode"] == "record"
    channels = sorted(s["channel"] for s in header.fields["subscriptions"])
    assert channels == ["communications", "communications", "market_lifecycle_v2",
                        "orderbook_delta", "ticker", "trade"]
    frames = [line for line in lines if isinstance(line, InLine)]
    types = {f.frame.split('"type":"', 1)[1].split('"', 1)[0] for f in frames
             if '"type":"' in f.frame}
    assert "rfq_created" in types
    assert "orderbook_snapshot" in types
    # Both shards delivered frames; frame numbers are 0..N-1 in order.
    assert {f.conn.rsplit("-", 1)[0] for f in frames} >= {"comms-s0", "comms-s1", "data"}
    assert [f.n for f in frames] == list(range(len(frames)))
    # The subscribe commands we sent are in the recording, and nothing else was sent.
    sent = [line for line in lines if isinstance(line, WsOutLine)]
    assert sent
    assert all('"cmd":"subscribe"' in s.frame for s in sent)
    assert not [line for line in lines if type(line).__name__ == "OutLine"]  # no REST at all
    # `quoter decode` reads the recording cleanly and sees the same frames.
    assert len(list(iter_frames(files[0]))) == len(frames)
    capsys.readouterr()
    assert main(["decode", *map(str, files)]) == 0
    report = capsys.readouterr().out
    assert "rfq_created" in report
    assert f"{len(frames)} frames, 0 errors" in report


async def test_sigint_stops_the_capture_in_order(sim: Sim, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    proc = await _record(sim, out)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    # Wait until an RFQ frame is on disk (the recorder flushes about every second).
    while loop.time() < deadline:
        files = recording_files(out)
        if files and any(isinstance(x, InLine) and "rfq_created" in x.frame
                         for x in read_recordings(files)):
            break
        await asyncio.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert b"quoter record:" in stdout
    files = recording_files(out)
    assert files
    # Closed properly: plain gzip reads the whole file (no truncated tail).
    assert main(["decode", *map(str, files)]) == 0


def test_usage_errors(tmp_path: Path) -> None:
    base = ["record", "--out", str(tmp_path), "--key-id", "k", "--key-file", "missing.pem"]
    assert main([*base, "--shards", "0"]) == 2
    assert main([*base, "--seconds", "-1"]) == 2
    assert main([*base, "--markets", "KX-1", "--channels", "orderbook_delta,fills"]) == 2
    assert not list(tmp_path.iterdir())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_exchange_fails_with_one_line(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    World(SimExchange(LiveClock(), ExchangeConfig(id_seed=3)), LiveClock(), SimConfig().world,
          3).register_demo_key(key)
    url = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTER_")}
    env["QUOTER_LOG_LEVEL"] = "error"  # the connect-failure warnings are not the answer
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quoter.cli", "record", "--out", str(tmp_path / "rec"),
        "--target", url, "--key-id", "k", "--key-file", str(key),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        cwd=str(tmp_path),
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 1
    assert stdout == b""
    [line] = stderr.decode().splitlines()
    assert line.startswith("quoter record: cannot connect to ws://127.0.0.1:")
    assert "attempts failed" in line


@pytest.mark.parametrize("flag", [
    ["--mode", "live"], ["--i-understand-this-is-production"], ["--db", "x.db"],
    ["--control-port", "1"], ["--target", "staging"],
])
def test_record_has_no_trading_flags(
    tmp_path: Path, flag: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["record", "--out", str(tmp_path), *flag])
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
