"""Shared pieces of the end-to-end tests: a simulator on loopback and the real service against it.

Everything talks over real sockets (signed REST + WebSocket), as in ``quoter demo``; only the
requester is driven in-process through ``SimExchange`` calls, so every test is exact rather
than probabilistic. Exchange timers are shortened (``execution_timer_ms``) to keep runs fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

from starlette.responses import Response

from quoter.clock import LiveClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketStatus
from quoter.service.app import Service, ServiceOptions
from quoter.service.environment import Settings
from quoter.sim.app import RateLimits
from quoter.sim.exchange import ExchangeConfig, SimExchange, SimMarket, SimQuote
from quoter.sim.faults import FaultInjector
from quoter.sim.server import RunningSim, serve_sim
from quoter.sim.world import write_demo_key

__all__ = [
    "BOT",
    "CONFIG_YAML",
    "EVENT",
    "REQ",
    "T1",
    "T2",
    "T3",
    "CountingFaults",
    "SimEnv",
    "bot_quotes",
    "confirm_posts",
    "running_service",
    "sim_env",
    "spawn_service",
    "stored_fills",
    "until",
]

REPO = Path(__file__).resolve().parents[2]

BOT = "bot"
REQ = "req"
SERIES = "KXE2E"
EVENT = "KXE2E-26DEC31"
T1, T2, T3 = f"{EVENT}-A", f"{EVENT}-B", f"{EVENT}-C"
START_BALANCE_MICROS = 1_000_000_000  # $1,000
#: A fixed fair value of $0.50 with a $0.02 edge: the bot bids 0.48 on both sides, always.
CONFIG_YAML = f"""
version: 1
strategies:
  - name: e2e
    match: {{series: [{SERIES}]}}
    pricer:
      name: fixed
      params:
        edge_dollars: "0.02"
        fair_yes_dollars: {{{T1}: "0.50", {T2}: "0.50", {T3}: "0.50"}}
"""


class CountingFaults:
    """The real ``FaultInjector`` plus a count of every REST request by ``(method, path)``.

    Counting at the simulator's door is how the tests prove what the service sent (e.g. that a
    quote was confirmed exactly once), without looking inside the service.
    """

    def __init__(self, injector: FaultInjector, clock: LiveClock) -> None:
        self.injector = injector
        self.clock = clock
        self.requests: Counter[tuple[str, str]] = Counter()
        #: ``(arrival now_ns, method, path)`` of every request, in arrival order.
        self.log: list[tuple[int, str, str]] = []

    def on_frame(self, conn_id: str, text: str) -> list[tuple[float, str]]:
        """Delegate to the injector."""
        return self.injector.on_frame(conn_id, text)

    async def on_request(self, method: str, path: str) -> Response | None:
        """Count, then delegate to the injector."""
        self.requests[(method.upper(), path)] += 1
        self.log.append((self.clock.now_ns(), method.upper(), path))
        return await self.injector.on_request(method, path)

    def should_close(self, conn_id: str) -> bool:
        """Delegate to the injector."""
        return self.injector.should_close(conn_id)

    def quote_response_hold_s(self) -> float:
        """Delegate to the injector."""
        return self.injector.quote_response_hold_s()

    async def lose_confirm_response(self) -> Response | None:
        """Delegate to the injector (``lost_confirm_responses``)."""
        return await self.injector.lose_confirm_response()

    def corrupt_response(self, method: str, path: str, response: Response) -> Response:
        """Delegate to the injector (``corrupt_bodies``)."""
        return self.injector.corrupt_response(method, path, response)

    def on_connect(self, conn_id: str) -> None:
        """Delegate to the injector."""
        self.injector.on_connect(conn_id)

    def on_disconnect(self, conn_id: str) -> None:
        """Delegate to the injector."""
        self.injector.on_disconnect(conn_id)

    def count(self, method: str, suffix: str) -> int:
        """Requests of ``method`` whose path ends with ``suffix``."""
        return sum(n for (m, p), n in self.requests.items()
                   if m == method.upper() and p.endswith(suffix))


@dataclass
class SimEnv:
    """A simulator served on loopback with a bot account (its key on disk) and a requester."""

    clock: LiveClock
    exchange: SimExchange
    faults: CountingFaults
    sim: RunningSim
    key_id: str
    key_path: Path
    workdir: Path
    config_path: Path
    start_balance_micros: int = START_BALANCE_MICROS
    #: Serves the exchange on a port (0 = any); ``stop_sim``/``start_sim`` use it.
    serve: Callable[[int], AbstractAsyncContextManager[RunningSim]] | None = None
    _serving: AbstractAsyncContextManager[RunningSim] | None = field(default=None, repr=False)

    @property
    def sim_running(self) -> bool:
        """True while the simulator's server is up."""
        return self._serving is not None

    async def stop_sim(self) -> None:
        """Stop the simulator's server (sockets closed, port free); the exchange keeps its state."""
        if self._serving is not None:
            serving, self._serving = self._serving, None
            await serving.__aexit__(None, None, None)

    async def start_sim(self) -> None:
        """Serve the same exchange again on the same port (a restart that keeps its state)."""
        assert self.serve is not None
        assert self._serving is None
        serving = self.serve(self.sim.port)
        self.sim = await serving.__aenter__()
        self._serving = serving

    def settings(self, **overrides: object) -> Settings:
        """Paper-mode settings pointing at this simulator (db, recordings, token in workdir)."""
        values: dict[str, object] = {
            "env": "demo", "mode": "paper", "sim_url": self.sim.base_url,
            "api_key_id": self.key_id, "private_key_path": self.key_path,
            "db_path": self.workdir / "quoter.db", "record_dir": self.workdir / "recordings",
            "control_port": 0, "control_token_file": self.workdir / "control.token",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def service(self, settings: Settings | None = None, **options: object) -> Service:
        """Build the real service against this simulator (no live view, quick housekeeping)."""
        values: dict[str, object] = {
            "config_path": self.config_path, "view": "none", "reconcile_interval_s": 3600.0,
            "housekeeping_interval_s": 0.1, "kill_file": self.workdir / "KILL",
        }
        values.update(options)
        return Service(settings or self.settings(), ServiceOptions(**values),  # type: ignore[arg-type]
                       clock=self.clock)

    def rfq(self, ticker: str = T1, contracts_centi: int = 100) -> str:
        """The requester asks for a quote (broadcast as ``rfq_created``)."""
        return self.exchange.create_rfq(REQ, ticker, contracts_centi=contracts_centi)

    def positions(self, user_id: str = BOT) -> dict[str, int]:
        """The exchange's positions of ``user_id`` (non-zero only)."""
        return {t: p.position_centi for t, p in self.exchange.positions(user_id).items()
                if p.position_centi}


def bot_quotes(exchange: SimExchange, rfq_id: str) -> list[SimQuote]:
    """The bot's quotes on one RFQ, oldest first."""
    return exchange.list_quotes(rfq_id=rfq_id, creator_user_id=BOT)[::-1]


def confirm_posts(faults: CountingFaults, quote_id: str) -> int:
    """How many confirm requests reached the simulator for this quote."""
    return faults.count("PUT", f"/quotes/{quote_id}/confirm")


async def until(cond: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> None:
    """Poll ``cond`` until true (the condition spans the sim, sockets and the service)."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                if cond():
                    return
                await asyncio.sleep(0.01)  # polling: the condition spans several tasks
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what or cond}") from None


def _markets(exchange: SimExchange, clock: LiveClock) -> None:
    close_ms = clock.wall_ns() // 1_000_000 + 24 * 3600 * 1000
    for ticker in (T1, T2, T3):
        exchange.add_market(SimMarket(
            ticker=ticker, event_ticker=EVENT, series_ticker=SERIES,
            title=f"e2e market {ticker}", grid=grid_for_structure("linear_cent"),
            status=MarketStatus.ACTIVE, close_ts_ms=close_ms,
            fees=FeeSchedule(FeeType.QUADRATIC),
        ))


@contextlib.asynccontextmanager
async def sim_env(
    workdir: Path, *, execution_timer_ms: int = 300, confirm_window_ms: int = 30_000,
    config_yaml: str = CONFIG_YAML, rate_limits: RateLimits | None = None,
    bot_balance_micros: int = START_BALANCE_MICROS, fault_seed: int = 0,
    faults_class: type[CountingFaults] = CountingFaults,
) -> AsyncIterator[SimEnv]:
    """Serve a fresh simulator (three KXE2E markets, bot + requester accounts) on loopback."""
    clock = LiveClock()
    exchange = SimExchange(clock, ExchangeConfig(
        execution_timer_ms=execution_timer_ms, confirm_window_ms=confirm_window_ms))
    exchange.register_account(BOT, balance_micros=bot_balance_micros)
    exchange.register_account(REQ, balance_micros=START_BALANCE_MICROS)
    _markets(exchange, clock)
    key_path = workdir / "bot-key.pem"
    key_id = str(uuid.uuid4())
    exchange.register_key(BOT, key_id, write_demo_key(key_path))
    config_path = workdir / "strategy.yaml"
    config_path.write_text(config_yaml)
    faults = faults_class(FaultInjector(clock, exchange=exchange, seed=fault_seed), clock)

    def serve(port: int) -> AbstractAsyncContextManager[RunningSim]:
        return serve_sim(exchange, "127.0.0.1", port, clock=clock, faults=faults,
                         heartbeat_s=None, rate_limits=rate_limits)

    serving = serve(0)
    sim = await serving.__aenter__()
    env = SimEnv(clock, exchange, faults, sim, key_id, key_path, workdir, config_path,
                 start_balance_micros=bot_balance_micros, serve=serve, _serving=serving)
    try:
        yield env
    finally:
        await env.stop_sim()


def spawn_service(env: SimEnv, log_path: Path, *extra_args: str,
                  env_vars: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``quoter run --mode paper`` against the simulator as a child, logs to ``log_path``.

    A child process, unlike ``running_service``, can be SIGKILLed: no shutdown, no flush."""
    child_env = {**os.environ, "QUOTER_SIM_URL": env.sim.base_url, "QUOTER_LOG_LEVEL": "info",
                 "QUOTER_LOG_FORMAT": "json", **(env_vars or {})}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "quoter.cli", "run", "--env", "demo", "--mode", "paper",
             "--config", str(env.config_path), "--key-id", env.key_id,
             "--key-file", str(env.key_path), "--db", str(env.workdir / "quoter.db"),
             "--record-dir", str(env.workdir / "recordings"), "--control-port", "0",
             "--token-file", str(env.workdir / "control.token"), "--view", "none",
             "--reconcile-interval", "3600", *extra_args],
            cwd=REPO, env=child_env, stdout=log, stderr=subprocess.STDOUT,
        )


def stored_fills(db_path: Path) -> int:
    """Fills another process has committed (read-only: it may still be writing)."""
    if not db_path.exists():
        return 0
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM fills").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # schema not created yet
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def running_service(svc: Service, timeout_s: float = 10.0) -> AsyncIterator[Service]:
    """Run the service as a task until the block exits, then stop it in order and await it."""
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop), name="service")
    try:
        # Started = feeds connected and the first communications backfill done.
        await until(lambda: task.done() or svc.notices.backfills >= 1, timeout_s,
                    "the service to connect")
        if task.done():
            await task  # re-raise why it stopped
        yield svc
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout_s)

