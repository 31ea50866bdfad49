"""B1, B2, B8: the real service against the simulator over loopback, stamped at the sockets.

The simulator runs in a child process (its own core: a real exchange is not in our process)
on 127.0.0.1:0, with permessage-deflate off so frames cross the socket as plain JSON. The
benchmark process runs the real service (``quoter.service.app.Service``: Runtime + KalshiRest +
KalshiFeed, paper mode, an Ed25519 key) on an event loop whose ``create_connection`` wraps every
connection it opens: ``data_received`` and ``transport.write`` are stamped with
``perf_counter_ns`` when the bytes cross the socket, below websockets and httpx/httpcore.

* **B1**: ``rfq_created`` bytes received -> create-quote request body written, for RFQs on one
  market (fixed pricer, market metadata cached after the first), 1,000 RFQ/s offered by
  requester accounts round-robin, each RFQ deleted after 50 ms. Baseline: the official async SDK
  (``kalshi_python_async``) ``create_quote`` against the same simulator, from the call to its
  body written (request path only; it signs RSA-PSS, which is what it supports).
* **B2**: ``quote_accepted`` bytes received -> confirm request written, while the simulator
  floods the same connection with ~5,000 ``rfq_created``/``rfq_deleted`` frames/s on markets no
  strategy routes; a probe RFQ every 20 ms is quoted, accepted by its requester, confirmed.
  Baseline: ``benchmarks/plain_loop.py``, the same parts (feed, REST client, kernel, engine)
  in a plain asyncio loop with one FIFO and no priority lane, under the same flood; the same
  probes with no flood are in ``extra`` (``quiet_p50_us``).
* **B8**: the simulator's Basic-tier write budget (100 tokens/s, a quote costs 2); quotable RFQs
  offered at 95% of it for ``B8_SECONDS`` (default 10 s; the issue's figure is 60 s:
  ``B8_SECONDS=60 make bench``); the figure is the count of HTTP 429 responses read off the
  socket. No baseline.

Bounded: every phase has a fixed duration and the child is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from benchmarks._suite import Result, percentile

SERIES, EVENT = "KXBENCH", "KXBENCH-26DEC31"
T1, T2, T3 = f"{EVENT}-A", f"{EVENT}-B", f"{EVENT}-C"
FLOOD = "KXFLOOD-26DEC31-X"
CONFIG_YAML = f"""
version: 1
strategies:
  - name: bench
    match: {{series: [{SERIES}]}}
    pricer:
      name: fixed
      params:
        edge_dollars: "0.02"
        fair_yes_dollars: {{{T1}: "0.50", {T2}: "0.50", {T3}: "0.50"}}
risk:
  max_position_contracts_per_market: 100000
  max_position_contracts_per_event: 100000
  max_position_contracts_per_series: 100000
  max_position_contracts_total: 100000
  max_worst_case_loss_dollars_per_market: "1000000.00"
  max_worst_case_loss_dollars_total: "1000000.00"
  max_open_quotes: 100000
  daily_loss_stop_dollars: "1000000.00"
"""
REQUESTERS = 200

# ---------------------------------------------------------------- socket stamps (parent) --

_RFQ_CREATED = re.compile(rb'"type":\s*"rfq_created".{0,400}?"id":\s*"([^"]+)"', re.S)
_ACCEPTED = re.compile(rb'"type":\s*"quote_accepted".{0,400}?"quote_id":\s*"([^"]+)"', re.S)
_BODY_RFQ = re.compile(rb'"rfq_id":\s*"([^"]+)"')
_CONFIRM = re.compile(rb"/quotes/([^/ ]+)/confirm")


@dataclass
class Stamps:
    """Bytes of interest as they crossed the sockets, with ``perf_counter_ns``."""

    on: bool = False
    recv: list[tuple[int, bytes]] = field(default_factory=list)
    sent: list[tuple[int, bytes]] = field(default_factory=list)
    responses_429: int = 0
    write_requests: int = 0  # POST / PUT / DELETE request lines written (write budget)

    def reset(self) -> None:
        self.recv.clear()
        self.sent.clear()
        self.responses_429 = 0
        self.write_requests = 0

    def count(self, needle: bytes) -> int:
        """Occurrences of ``needle`` in the chunks received."""
        return sum(chunk.count(needle) for _, chunk in self.recv)

    def first_recv(self, pattern: re.Pattern[bytes]) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        for t, chunk in self.recv:
            for m in pattern.finditer(chunk):
                out.setdefault(m.group(1), t)
        return out

    def first_sent(self, pattern: re.Pattern[bytes], marker: bytes) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        for t, chunk in self.sent:
            if marker in chunk:
                for m in pattern.finditer(chunk):
                    out.setdefault(m.group(1), t)
        return out


STAMPS = Stamps()


class StampingLoop(asyncio.SelectorEventLoop):
    """An event loop that stamps the bytes of every connection it opens."""

    async def create_connection(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], *args: Any, **kwargs: Any
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        def factory() -> asyncio.BaseProtocol:
            proto = protocol_factory()
            inner = proto.data_received  # type: ignore[attr-defined]

            def data_received(data: bytes) -> None:
                t = time.perf_counter_ns()
                if STAMPS.on:
                    if b'"rfq_created"' in data or b'"quote_accepted"' in data:
                        STAMPS.recv.append((t, bytes(data)))
                    if b"HTTP/1.1 429" in data:
                        STAMPS.responses_429 += data.count(b"HTTP/1.1 429")
                inner(data)

            proto.data_received = data_received  # type: ignore[attr-defined]
            return proto

        transport, proto = await super().create_connection(factory, *args, **kwargs)
        write = transport.write

        def stamped_write(data: Any) -> None:
            write(data)
            if STAMPS.on:
                chunk = bytes(data)
                if chunk.startswith((b"POST ", b"PUT ", b"DELETE ")):
                    STAMPS.write_requests += 1
                if b'"rfq_id"' in chunk or b"/confirm" in chunk:
                    STAMPS.sent.append((time.perf_counter_ns(), chunk))

        transport.write = stamped_write  # type: ignore[method-assign]
        return transport, proto  # type: ignore[return-value]


# ------------------------------------------------------------------ the simulator (child) --


def _sim_child(conn: Any, bot_pub_pem: bytes, sdk_pub_pem: bytes, write_per_s: int) -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    asyncio.run(_sim_main(conn, bot_pub_pem, sdk_pub_pem, write_per_s))


async def _sim_main(conn: Any, bot_pub_pem: bytes, sdk_pub_pem: bytes, write_per_s: int) -> None:
    import uvicorn

    from quoter.clock import LiveClock
    from quoter.domain.fees import FeeSchedule, FeeType
    from quoter.domain.grid import grid_for_structure
    from quoter.domain.types import MarketStatus
    from quoter.sim.app import RateLimits, create_app
    from quoter.sim.exchange import ExchangeConfig, SimExchange, SimMarket

    clock = LiveClock()
    ex = SimExchange(clock, ExchangeConfig(execution_timer_ms=300, confirm_window_ms=30_000))
    users = ["bot", "sdk"] + [f"req{i}" for i in range(REQUESTERS)]
    for u in users:
        ex.register_account(u, balance_micros=10**13)
    ex.register_key("bot", "key-bot", serialization.load_pem_public_key(bot_pub_pem))
    ex.register_key("sdk", "key-sdk", serialization.load_pem_public_key(sdk_pub_pem))
    close_ms = clock.wall_ns() // 1_000_000 + 24 * 3600 * 1000
    for ticker in (T1, T2, T3, FLOOD):
        event = ticker.rsplit("-", 1)[0]
        ex.add_market(SimMarket(ticker=ticker, event_ticker=event,
                                series_ticker=ticker.split("-", 1)[0], title=ticker,
                                grid=grid_for_structure("linear_cent"),
                                status=MarketStatus.ACTIVE, close_ts_ms=close_ms,
                                fees=FeeSchedule(FeeType.QUADRATIC)))
    limits = RateLimits(write_capacity=write_per_s, write_refill_per_s=write_per_s,
                        read_capacity=100_000, read_refill_per_s=100_000)
    app = create_app(ex, clock=clock, rate_limits=limits)
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", access_log=False, lifespan="on",
        ws="websockets-sansio", ws_ping_interval=None, ws_per_message_deflate=False))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    conn.send(port)
    rr = iter(range(10**12))

    def requester() -> str:
        return f"req{next(rr) % REQUESTERS}"

    async def paced(rate: float, seconds: float, each: Callable[[int], None]) -> int:
        start = loop.time()
        done = 0
        while (now := loop.time()) - start < seconds:
            due = int((now - start) * rate) + 1
            while done < due:
                each(done)
                done += 1
            await asyncio.sleep(0.0005)
        return done

    while True:
        cmd, args = await loop.run_in_executor(None, conn.recv)
        if cmd == "stop":
            break
        if cmd == "open_rfqs":  # for the SDK baseline
            conn.send([ex.create_rfq(f"req{i}", args["ticker"], contracts_centi=100)
                       for i in range(args["n"])])
            continue
        ph = _Phase(ex, loop, args, requester)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        n = await paced(args["rate"], args["seconds"], ph.rfq if cmd == "rfqs" else ph.flood)
        # The simulator's share of one core while it offered the load: near 1.0 means the
        # exchange, not the service, set the pace.
        sim_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        for _ in range(400):  # let the last probes be quoted and accepted
            if not ph.probes:
                break
            await asyncio.sleep(0.005)
            ph.reap()
        await asyncio.sleep(0.3)
        ph.reap()
        conn.send({"offered": n, "accepted": ph.accepted, "sim_cpu_share": round(sim_cpu, 2)})
    server.should_exit = True
    await task


class _Phase:
    """One load phase in the simulator: RFQs on our market, or a flood with probe RFQs that
    the requester accepts as soon as the bot's quote is on the exchange."""

    def __init__(self, ex: Any, loop: asyncio.AbstractEventLoop, args: dict[str, Any],
                 requester: Callable[[], str]) -> None:
        self.ex, self.loop, self.args, self.requester = ex, loop, args, requester
        self.lifetime_s: float = args.get("lifetime_s", 0.05)
        self.live: list[tuple[float, str, str]] = []
        self.probes: dict[str, str] = {}
        self.accepted = 0

    def reap(self) -> None:
        from quoter.domain.types import Side

        now = self.loop.time()
        while self.live and self.live[0][0] <= now:
            _, user, rid = self.live.pop(0)
            with contextlib.suppress(Exception):
                self.ex.delete_rfq(user, rid)
        for rid, user in list(self.probes.items()):
            quotes = self.ex.list_quotes(rfq_id=rid, creator_user_id="bot")
            if quotes:
                with contextlib.suppress(Exception):
                    self.ex.accept_quote(user, rid, quotes[-1].id, Side.YES)
                    self.accepted += 1
                del self.probes[rid]

    def rfq(self, i: int, ticker: str = T1, probe: bool = False) -> None:
        user = self.requester()
        try:
            rid = self.ex.create_rfq(user, ticker, contracts_centi=100)
        except Exception:
            return  # this requester still has one open here: skip the slot
        if probe:
            self.probes[rid] = user
        self.live.append((self.loop.time() + (1.0 if probe else self.lifetime_s), user, rid))
        self.reap()

    def flood(self, i: int) -> None:
        # One rfq_created + one rfq_deleted per call; every probe_every-th a probe RFQ.
        with contextlib.suppress(Exception):
            rid = self.ex.create_rfq("req0", FLOOD, contracts_centi=100)
            self.ex.delete_rfq("req0", rid)
        if i % self.args.get("probe_every", 100) == 0:
            self.rfq(i, T1 if (i // 100) % 2 == 0 else T2, probe=True)
        self.reap()


# ---------------------------------------------------------------------- the phases (parent) --


@dataclass
class Env:
    conn: Any
    port: int
    workdir: Path
    bot_key: Path
    sdk_pem: str

    def ask(self, cmd: str, **args: Any) -> Any:
        self.conn.send((cmd, args))
        return self.conn.recv()

    async def ask_async(self, cmd: str, **args: Any) -> Any:
        self.conn.send((cmd, args))
        return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)


def _service(env: Env) -> Any:
    from quoter.service.app import Service, ServiceOptions
    from quoter.service.environment import Settings

    (env.workdir / "strategy.yaml").write_text(CONFIG_YAML)
    settings = Settings(  # type: ignore[call-arg]
        env="demo", mode="paper", sim_url=f"http://127.0.0.1:{env.port}",
        api_key_id="key-bot", private_key_path=env.bot_key,
        db_path=env.workdir / f"q-{uuid.uuid4().hex[:6]}.db",
        record_dir=env.workdir / "rec", control_port=0,
        control_token_file=env.workdir / "control.token")
    return Service(settings, ServiceOptions(
        config_path=env.workdir / "strategy.yaml", view="none", reconcile_interval_s=3600.0,
        housekeeping_interval_s=1.0, kill_file=env.workdir / "KILL", http=False,
        pricing_workers=1))


async def _with_service(env: Env, body: Callable[[Any], Any]) -> Any:
    svc = _service(env)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        async with asyncio.timeout(30):
            while not (task.done() or svc.notices.backfills >= 1):  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # polling: startup spans sockets and tasks
        if task.done():
            await task
        return await body(svc)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _latencies(start: dict[bytes, int], end: dict[bytes, int]) -> list[float]:
    return [(end[k] - t) / 1000 for k, t in start.items() if k in end and end[k] >= t]


async def _b1_b2(env: Env, quick: bool) -> dict[str, Any]:
    seconds = 0.2 if quick else 4.0
    out: dict[str, Any] = {}

    async def idle(svc: Any) -> None:
        """Wait (bounded) until the service has drained what the last phase left queued."""
        async with asyncio.timeout(60):
            while (svc.runtime.inbox_depth  # noqa: ASYNC110 - spans tasks, sockets, processes
                   or svc.runtime.stats.frames != frames_seen(svc)):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.05 if quick else 0.5)

    last: dict[str, int] = {}

    def frames_seen(svc: Any) -> int:
        n = svc.runtime.stats.frames
        changed = last.get("n") != n
        last["n"] = n
        return -1 if changed else n

    svc_ref: list[Any] = []

    async def phase(cmd: str, **args: Any) -> Any:
        runtime = svc_ref[0].runtime
        frames0, t0, cpu0 = runtime.stats.frames, time.perf_counter(), time.process_time()
        STAMPS.reset()
        STAMPS.on = True
        r = await env.ask_async(cmd, **args)
        STAMPS.on = False
        # What the service took in while the phase ran: below the offered rate, the rest
        # waits in the feed's queue (ahead of the priority lane, which starts after decode).
        elapsed = time.perf_counter() - t0
        r["ingested_frames_per_s"] = (runtime.stats.frames - frames0) / elapsed
        # The service process's share of one core over the phase (its loop is one thread).
        r["service_cpu_share"] = round((time.process_time() - cpu0) / elapsed, 2)
        r["received_rfq_created_per_s"] = STAMPS.count(b'"rfq_created"') / elapsed
        return r

    async def body(svc: Any) -> None:
        svc_ref.append(svc)
        # Warm-up: market metadata fetched and cached, connections open.
        await env.ask_async("rfqs", rate=50, seconds=0.3)
        await idle(svc)
        # B2 first (a B1 backlog would sit in front of its accepts): probes alone, then the
        # same probes inside the flood (2,500 RFQs/s -> 5,000 frames/s).
        r = await phase("flood", rate=50.0, seconds=seconds, probe_every=1)
        out["b2_quiet"] = (_latencies(STAMPS.first_recv(_ACCEPTED),
                                      STAMPS.first_sent(_CONFIRM, b"PUT")), r)
        await idle(svc)
        r = await phase("flood", rate=2500.0, seconds=seconds, probe_every=50)
        out["b2"] = (_latencies(STAMPS.first_recv(_ACCEPTED),
                                STAMPS.first_sent(_CONFIRM, b"PUT")), r)
        await idle(svc)
        for label, rate in (("b1_100", 100), ("b1", 1000)):
            r = await phase("rfqs", rate=rate, seconds=seconds)
            out[label] = (_latencies(STAMPS.first_recv(_RFQ_CREATED),
                                     STAMPS.first_sent(_BODY_RFQ, b'"yes_bid"')), r)
            await idle(svc)

    # The baseline first: the simulator then is in the same fresh state for both floods.
    out["b2_plain"] = await _plain_b2(env, seconds)
    await _with_service(env, body)
    return out


async def _plain_b2(env: Env, seconds: float) -> tuple[list[float], dict[str, Any]]:
    """B2's baseline: the same flood against a plain asyncio loop (no priority lane)."""
    from benchmarks.plain_loop import PlainLoop

    plain = PlainLoop(env.port, env.bot_key, CONFIG_YAML)
    stop = asyncio.Event()
    task = asyncio.create_task(plain.run(stop))
    try:
        async with asyncio.timeout(30):
            while not plain.feed.connected:  # noqa: ASYNC110 - the feed has no ready event
                await asyncio.sleep(0.01)
        await env.ask_async("flood", rate=50.0, seconds=min(0.3, seconds),
                            probe_every=1)  # warm-up: market metadata fetched
        frames0, t0 = plain.frames, time.perf_counter()
        STAMPS.reset()
        STAMPS.on = True
        r = await env.ask_async("flood", rate=2500.0, seconds=seconds, probe_every=50)
        STAMPS.on = False
        elapsed = time.perf_counter() - t0
        r["ingested_frames_per_s"] = (plain.frames - frames0) / elapsed
        r["received_rfq_created_per_s"] = STAMPS.count(b'"rfq_created"') / elapsed
        return _latencies(STAMPS.first_recv(_ACCEPTED), STAMPS.first_sent(_CONFIRM, b"PUT")), r
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _sdk_create_quote(env: Env, n: int) -> list[float]:
    """The official async SDK's create_quote, call -> body written (request path only)."""
    import kalshi_python_async as sdk

    config = sdk.Configuration(host=f"http://127.0.0.1:{env.port}/trade-api/v2")
    config.api_key_id = "key-sdk"
    config.private_key_pem = env.sdk_pem
    client = sdk.KalshiClient(config)
    rfq_ids = await env.ask_async("open_rfqs", ticker=T3, n=n)
    samples: list[float] = []
    try:
        for rid in rfq_ids:
            STAMPS.reset()
            STAMPS.on = True
            t0 = time.perf_counter_ns()
            await client.create_quote(rfq_id=rid, yes_bid="0.4800", no_bid="0.4800",
                                      rest_remainder=False)
            STAMPS.on = False
            sent = STAMPS.first_sent(_BODY_RFQ, b'"yes_bid"')
            if rid.encode() in sent:
                samples.append((sent[rid.encode()] - t0) / 1000)
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    return samples


def _spawn(workdir: Path, write_per_s: int) -> Env:
    bot = ed25519.Ed25519PrivateKey.generate()
    bot_key = workdir / "bot-ed25519.pem"
    fd = os.open(bot_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, bot.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    os.close(fd)
    sdk_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    parent, child = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(
        target=_sim_child, daemon=True,
        args=(child, bot.public_key().public_bytes(*pub), sdk_key.public_key().public_bytes(*pub),
              write_per_s))
    proc.start()
    if not parent.poll(60):
        proc.kill()
        raise RuntimeError("the simulator child did not start")
    env = Env(parent, parent.recv(), workdir, bot_key, sdk_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode())
    env.proc = proc  # type: ignore[attr-defined]
    return env


def _stop(env: Env) -> None:
    with contextlib.suppress(Exception):
        env.conn.send(("stop", {}))
    proc = env.proc  # type: ignore[attr-defined]
    proc.join(10)
    if proc.is_alive():
        proc.kill()
        proc.join(5)


def _run_fast(quick: bool) -> tuple[dict[str, Any], list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-loopback-") as d:
        env = _spawn(Path(d), write_per_s=100_000)
        try:
            with asyncio.Runner(loop_factory=StampingLoop) as runner:
                sdk: list[float] = []
                with contextlib.suppress(ImportError):
                    sdk = runner.run(_sdk_create_quote(env, 3 if quick else 150))
                phases = runner.run(_b1_b2(env, quick))
        finally:
            _stop(env)
    return phases, sdk


async def _b8(env: Env, seconds: float) -> tuple[int, int, int, int]:
    async def body(svc: Any) -> tuple[int, int, int, int]:
        await env.ask_async("rfqs", rate=20, seconds=0.5)  # warm-up, inside the budget
        await asyncio.sleep(0.1 if seconds < 1 else 1.0)  # the bucket refills
        STAMPS.reset()
        STAMPS.on = True
        # A create-quote costs 2 write tokens (DEFAULT_ENDPOINT_COSTS, as on the demo exchange,
        # and the simulator charges the same): 47.5 quoted RFQs/s is 95% of 100 tokens/s.
        r = await env.ask_async("rfqs", rate=B8_BUDGET_PER_S * 0.95 / 2, seconds=seconds,
                                lifetime_s=0.5)
        STAMPS.on = False
        quotes = len(STAMPS.first_sent(_BODY_RFQ, b'"yes_bid"'))
        return STAMPS.responses_429, quotes, r["offered"], STAMPS.write_requests

    result: tuple[int, int, int, int] = await _with_service(env, body)
    return result


B8_BUDGET_PER_S = 100  # the simulator's Basic tier (kalshi-api.md §0a)


def _run_b8(quick: bool) -> tuple[int, int, int, int, float]:
    seconds = 0.3 if quick else float(os.environ.get("B8_SECONDS", "10"))
    with tempfile.TemporaryDirectory(prefix="bench-b8-") as d:
        env = _spawn(Path(d), write_per_s=B8_BUDGET_PER_S)
        try:
            with asyncio.Runner(loop_factory=StampingLoop) as runner:
                n429, quotes, offered, writes = runner.run(_b8(env, seconds))
        finally:
            _stop(env)
    return n429, quotes, offered, writes, seconds


def _p(samples: list[float], q: float) -> float:
    return percentile(samples, q)


def _flood_note(service: dict[str, Any], plain: dict[str, Any]) -> str:
    """Say so when the two floods were not alike as received (then the ratio misleads)."""
    a, b = service["received_rfq_created_per_s"], plain["received_rfq_created_per_s"]
    if a and b and max(a, b) > 1.5 * min(a, b):
        return (f"floods not alike: service received {a:,.0f} rfq_created/s, "
                f"plain loop {b:,.0f}/s")
    return ""


def run(quick: bool) -> list[Result]:
    """Measure B1 (p50, p99), B2 (p50, p99) and B8."""
    phases, sdk = _run_fast(quick)
    b1, b1r = phases["b1"]
    b2, b2r = phases["b2"]
    quiet, _ = phases["b2_quiet"]
    plain, plain_r = phases["b2_plain"]
    sdk_p50 = _p(sdk, 0.5) if sdk else None
    n429, quotes, offered, writes, seconds = _run_b8(quick)
    b1_100, b1_100r = phases["b1_100"]
    b1x = {"samples": len(b1), "offered": b1r["offered"], "p99_us": _p(b1, 0.99),
           "ingested_frames_per_s": b1r["ingested_frames_per_s"],
           "sim_cpu_share": b1r.get("sim_cpu_share"),
           "service_cpu_share": b1r.get("service_cpu_share"),
           "at_100_per_s_sim_cpu_share": b1_100r.get("sim_cpu_share"),
           "at_100_per_s_service_cpu_share": b1_100r.get("service_cpu_share"),
           "at_100_per_s_p50_us": _p(b1_100, 0.5), "at_100_per_s_p99_us": _p(b1_100, 0.99),
           "p999_us": _p(b1, 0.999), "sdk_samples": len(sdk),
           "sdk_p99_us": _p(sdk, 0.99) if sdk else None}
    b2x = {"samples": len(b2), "accepted": b2r["accepted"], "flood_rfqs": b2r["offered"],
           "ingested_frames_per_s": b2r["ingested_frames_per_s"],
           "sim_cpu_share": b2r.get("sim_cpu_share"),
           "service_cpu_share": b2r.get("service_cpu_share"),
           "offered_frames_per_s": 2 * b2r["offered"] / (0.2 if quick else 4.0),
           "p99_us": _p(b2, 0.99), "quiet_p50_us": _p(quiet, 0.5),
           "quiet_p99_us": _p(quiet, 0.99), "plain_loop_samples": len(plain),
           "received_rfq_created_per_s": b2r["received_rfq_created_per_s"],
           "plain_loop_ingested_frames_per_s": plain_r["ingested_frames_per_s"],
           "plain_loop_received_rfq_created_per_s": plain_r["received_rfq_created_per_s"]}
    return [
        Result("B1", "rfq_created bytes in -> create-quote bytes out, p50", _p(b1, 0.5), "µs",
               150.0, sdk_p50, "official SDK create_quote, call -> bytes out, p50",
               note="" if sdk else "official SDK not installed", extra=b1x),
        Result("B1-p99", "rfq_created bytes in -> create-quote bytes out, p99", _p(b1, 0.99),
               "µs", 1000.0, _p(sdk, 0.99) if sdk else None, "official SDK, p99", extra=b1x),
        Result("B2", "quote_accepted in -> confirm out under a 5k frames/s flood, p50",
               _p(b2, 0.5), "µs", 150.0, _p(plain, 0.5),
               "plain asyncio loop, no priority lane, same flood, p50", extra=b2x,
               note=_flood_note(b2r, plain_r)),
        Result("B2-p99", "quote_accepted in -> confirm out under a 5k frames/s flood, p99",
               _p(b2, 0.99), "µs", 1000.0, _p(plain, 0.99),
               "plain asyncio loop, same flood, p99", extra=b2x),
        Result("B8", f"quoting at 95% of the write budget for {seconds:g} s: 429s", float(n429),
               "429s", 0.0, None, "", extra={"quotes_sent": quotes, "rfqs_offered": offered,
                                              "write_requests": writes, "seconds": seconds,
                                              "write_tokens_per_s": 2 * quotes / seconds,
                                              "budget_per_s": B8_BUDGET_PER_S}),
    ]
