"""Serve the simulator over real sockets: uvicorn in a task of the caller's event loop.

``async with serve_sim(exchange, "127.0.0.1", 0) as sim:`` starts uvicorn on a loopback port
(0 = chosen by the OS), yields a :class:`RunningSim` with ``sim.url`` (REST base,
``http://127.0.0.1:PORT/trade-api/v2``) and ``sim.ws_url``, and stops the server on exit.
The exchange is driven from the same event loop, so world agents and tests may call it
directly. Only loopback hosts are accepted: the simulator's keys and ledger are not secrets
worth exposing, but it is a test tool and should never face a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from quoter.clock import Clock
from quoter.sim.app import API_PREFIX, WS_PATH, RateLimits, SimServer, create_app
from quoter.sim.exchange import SimExchange
from quoter.sim.faults_api import FaultHooks

__all__ = ["RunningSim", "check_loopback", "serve_sim"]


@dataclass(frozen=True, slots=True)
class RunningSim:
    """A simulator being served: where to reach it and its server object."""

    host: str
    port: int
    app: Starlette

    @property
    def base_url(self) -> str:
        """``http://host:port`` (no path)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """REST base URL including ``/trade-api/v2``."""
        return self.base_url + API_PREFIX

    @property
    def ws_url(self) -> str:
        """WebSocket URL."""
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def server(self) -> SimServer:
        """The app's router (connections, limits)."""
        sim: SimServer = self.app.state.sim
        return sim


def check_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback address, else raise ``ValueError``."""
    if host == "localhost":
        return host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"the simulator only listens on loopback, not {host!r}")


@contextlib.asynccontextmanager
async def serve_sim(
    exchange: SimExchange, host: str = "127.0.0.1", port: int = 0, *,
    faults: FaultHooks | None = None, clock: Clock | None = None, skew_ms: int = 30_000,
    rate_limits: RateLimits | None = None, heartbeat_s: float | None = 10.0,
    extra_routes: Sequence[BaseRoute] = (), queue_max: int = 100_000,
) -> AsyncIterator[RunningSim]:
    """Run the simulator's app under uvicorn on ``host:port`` until the block exits."""
    check_loopback(host)
    app = create_app(exchange, faults=faults, clock=clock, skew_ms=skew_ms,
                     rate_limits=rate_limits, extra_routes=extra_routes, queue_max=queue_max)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
        # The sans-IO implementation: no deprecated websockets APIs; pings every heartbeat_s
        # like Kalshi's 10 s heartbeat (§2.5; the payload is uvicorn's, not "heartbeat").
        ws="websockets-sansio", ws_ping_interval=heartbeat_s, ws_ping_timeout=None,
    )
    server = uvicorn.Server(config)
    # We run inside someone else's loop: never let uvicorn take over process signals.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.get_running_loop().create_task(server.serve(), name="sim-uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()  # re-raise why it failed to start
                raise RuntimeError("the simulator server stopped before starting")
            await asyncio.sleep(0.01)
        sock = server.servers[0].sockets[0]
        bound_port = sock.getsockname()[1]
        yield RunningSim(host, bound_port, app)
    finally:
        server.should_exit = True
        await task
