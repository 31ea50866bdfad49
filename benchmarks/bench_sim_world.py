"""How many RFQ frames/s the simulator (world + exchange + WS server) sustains to one subscriber.

Runs ``quoter sim`` as a subprocess on 127.0.0.1 with an RFQ burst (short-lived RFQs: each one
is an ``rfq_created`` and an ``rfq_deleted`` frame), connects one signed WebSocket subscriber to
``communications`` and counts RFQ frames received over a bounded window (~5 s). The baseline is
a bare ``websockets`` server in another process sending the same recorded frames as fast as it
can to the same kind of client, measured in the same run: the ratio says how much of the
transport's capacity the simulator delivers. Target: 2,000 RFQ frames/s.

    .venv/bin/python benchmarks/bench_sim_world.py [--seconds 5] [--burst-rate 2500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets
from websockets.asyncio.server import ServerConnection, serve

from quoter.kalshi.auth import Signer, load_private_key, ws_headers

RFQ_TYPES = (b'"rfq_created"', b'"rfq_deleted"')


def _start_sim(
    seconds: float, burst_rate: float, tmp: Path
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    world = tmp / "world.yaml"
    world.write_text(json.dumps({"world": {
        "requesters": {"rfq_rate_per_s": 0.5},
        "burst": {"enabled": True, "rfq_rate_per_s": burst_rate, "start_after_ms": 1500,
                  "duration_ms": int((seconds + 3) * 1000), "lifetime_ms": 200, "accounts": 40},
    }}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "quoter.cli", "sim", "--port", "0", "--seed", "1",
         "--world", str(world), "--key-dir", str(tmp), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    info: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        key, _, value = line.partition(": ")
        info[key.strip()] = value.strip()
        if line.startswith("ready"):
            break
    return proc, info


async def _count(url: str, headers: dict[str, str] | None, seconds: float, warmup_s: float,
                 subscribe: bool, keep: list[str] | None = None) -> tuple[int, float]:
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        if subscribe:
            await ws.send(json.dumps({"id": 1, "cmd": "subscribe",
                                      "params": {"channels": ["communications"]}}))
        t0 = time.perf_counter() + warmup_s
        deadline = t0 + seconds
        n = 0
        while (remaining := deadline - time.perf_counter()) > 0:
            try:
                frame = await asyncio.wait_for(ws.recv(decode=False), timeout=remaining)
            except (TimeoutError, websockets.ConnectionClosed):
                break
            if time.perf_counter() < t0 or not any(t in frame for t in RFQ_TYPES):
                continue
            n += 1
            if keep is not None and len(keep) < 50_000:
                keep.append(frame.decode())
        return n, seconds


def _echo_server(frames: list[str], port_q: mp.Queue) -> None:  # type: ignore[type-arg]
    async def handler(ws: ServerConnection) -> None:
        i = 0
        try:
            while True:
                await ws.send(frames[i % len(frames)])
                i += 1
        except websockets.ConnectionClosed:
            return

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
            port_q.put(next(iter(server.sockets)).getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--burst-rate", type=float, default=2500.0, help="RFQs/s offered")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as d:
        tmp = Path(d)
        proc, info = _start_sim(args.seconds, args.burst_rate, tmp)
        try:
            signer = Signer(info["api_key_id"], load_private_key(Path(info["private_key_file"])))
            headers = ws_headers(signer, time.time_ns() // 1_000_000)
            frames: list[str] = []
            n, elapsed = asyncio.run(_count(info["ws_url"], headers, args.seconds, 2.0, True,
                                            frames))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=15)
    sim_rate = n / elapsed if elapsed else 0.0
    if not frames:
        print("no RFQ frames received", file=sys.stderr)
        return 1
    q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    echo = mp.Process(target=_echo_server, args=(frames, q), daemon=True)
    echo.start()
    try:
        port = q.get(timeout=10)
        bn, belapsed = asyncio.run(_count(f"ws://127.0.0.1:{port}", None, args.seconds, 0.5,
                                          False))
    finally:
        os.kill(echo.pid, signal.SIGTERM) if echo.pid else None
        echo.join(timeout=5)
    base_rate = bn / belapsed if belapsed else 0.0
    offered = 2 * args.burst_rate
    print(f"sim world -> 1 WS subscriber: {sim_rate:,.0f} RFQ frames/s "
          f"({n} frames in {elapsed:.2f} s; offered ~{offered:,.0f}/s; target 2,000/s)")
    print(f"baseline bare websockets send of the same frames: {base_rate:,.0f} frames/s")
    print(f"ratio sim/baseline: {sim_rate / base_rate:.3f}" if base_rate else "ratio: n/a")
    print(f"target met: {'yes' if sim_rate >= 2000 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
