"""The service's small HTTP server: /metrics, /healthz and the token-protected control API.

Routes (all on 127.0.0.1 only; binding anything else is refused; a request whose ``Host``
header is not a loopback name gets 421, against DNS rebinding):

* ``GET /metrics`` — Prometheus text from the service's own registry (with a metrics token
  configured, ``QUOTER_METRICS_TOKEN``, it needs ``Authorization: Bearer <that token>``).
* ``GET /healthz`` — 200 ``{"status": "ok"}`` when healthy, else 503
  ``{"status": "unhealthy", "reasons": [...]}`` (stale feed, halted, ...).
* ``POST /control/halt`` (JSON body ``{"reason": "..."}`` optional), ``POST /control/resume``,
  ``POST /control/cancel-all``, ``GET /control/status`` — need ``Authorization: Bearer
  <token>`` (401 otherwise); each calls a handler injected by the runtime and returns its
  JSON-able result. Handlers may be plain or ``async`` functions.

Serve with ``HttpServer`` inside the runtime's TaskGroup (``await server.serve()``), or with
``running(app)`` in tests. uvicorn's signal capture is disabled: the runtime owns signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from quoter.errors import ControlRefusedError
from quoter.observability.metrics import CONTENT_TYPE_LATEST, Metrics
from quoter.service.environment import is_loopback

__all__ = [
    "ControlHandlers",
    "HealthStatus",
    "HttpServer",
    "create_app",
    "evaluate_health",
    "loopback_host_header",
    "running",
]

_log = structlog.get_logger("quoter.http")
_MAX_BODY_BYTES: Final = 4096

JsonResult = Mapping[str, Any]
Handler = Callable[..., JsonResult | Awaitable[JsonResult]]


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """The service's health as the runtime sees it; ``reasons`` say why it is not healthy."""

    healthy: bool
    reasons: tuple[str, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)


def evaluate_health(
    *,
    now_ns: int,
    last_frame_ns: int | None,
    stale_after_ns: int,
    halted: bool,
    extra_reasons: Iterable[str] = (),
) -> HealthStatus:
    """Judge health from the feed's last frame time (same clock as ``now_ns``) and halt state."""
    reasons: list[str] = []
    detail: dict[str, Any] = {"halted": halted}
    if last_frame_ns is None:
        reasons.append("no_frames_yet")
    else:
        age_ms = max(now_ns - last_frame_ns, 0) // 1_000_000
        detail["feed_age_ms"] = age_ms
        if now_ns - last_frame_ns > stale_after_ns:
            reasons.append("feed_stale")
    if halted:
        reasons.append("halted")
    reasons.extend(extra_reasons)
    return HealthStatus(not reasons, tuple(reasons), detail)


@dataclass(frozen=True, slots=True)
class ControlHandlers:
    """The runtime's control callbacks: halt(reason), resume(), cancel_all(), status()."""

    halt: Handler
    resume: Handler
    cancel_all: Handler
    status: Handler


async def _call(handler: Handler, *args: Any) -> JsonResult:
    result = handler(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def create_app(
    metrics: Metrics,
    health: Callable[[], HealthStatus],
    *,
    control: ControlHandlers | None = None,
    token: SecretStr | str | None = None,
    metrics_token: SecretStr | str | None = None,
) -> Starlette:
    """Build the ASGI app; control routes exist only when both handlers and token are given.

    Every request must name a loopback host in its ``Host`` header (421 otherwise): a
    browser tricked by DNS rebinding sends the attacker's name there, and must not read
    positions and PnL from ``/metrics``. With ``metrics_token``, ``/metrics`` also needs
    ``Authorization: Bearer <metrics_token>``.
    """
    if control is not None and token is None:
        raise ValueError("the control API needs a token")
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    if secret is not None and len(secret) < 16:
        raise ValueError("the control token must be at least 16 characters")
    expected = f"Bearer {secret}".encode() if secret is not None else b""

    metrics_secret = (metrics_token.get_secret_value() if isinstance(metrics_token, SecretStr)
                      else metrics_token)
    if metrics_secret is not None and len(metrics_secret) < 16:
        raise ValueError("the metrics token must be at least 16 characters")
    metrics_expected = f"Bearer {metrics_secret}".encode() if metrics_secret else b""

    async def get_metrics(request: Request) -> Response:
        if metrics_secret and not hmac.compare_digest(
                request.headers.get("authorization", "").encode(), metrics_expected):
            _log.warning("metrics_unauthorized")
            return JSONResponse({"error": "unauthorized"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def get_healthz(request: Request) -> Response:
        status = health()
        body: dict[str, Any] = {
            "status": "ok" if status.healthy else "unhealthy",
            "reasons": list(status.reasons),
            **dict(status.detail),
        }
        return JSONResponse(body, status_code=200 if status.healthy else 503)

    def authorized(request: Request) -> bool:
        given = request.headers.get("authorization", "").encode()
        # Constant-time compare: the token is the only thing between a local process and halt.
        return hmac.compare_digest(given, expected)

    def protected(
        name: str, run: Callable[[Request], Awaitable[JsonResult]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not authorized(request):
                _log.warning("control_unauthorized", action=name)
                return JSONResponse(
                    {"error": "unauthorized"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            try:
                result = await run(request)
            except _BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except ControlRefusedError as exc:
                _log.warning("control_refused", action=name, why=str(exc))
                return JSONResponse({"error": str(exc)}, status_code=409)
            except Exception as exc:
                _log.error("control_handler_failed", action=name, error=type(exc).__name__)
                return JSONResponse({"error": "handler failed"}, status_code=500)
            _log.info("control_action", action=name)
            return JSONResponse(dict(result))

        return endpoint

    routes = [
        Route("/metrics", get_metrics, methods=["GET"]),
        Route("/healthz", get_healthz, methods=["GET"]),
    ]
    if control is not None:
        handlers = control

        async def halt(request: Request) -> JsonResult:
            body = await _json_body(request)
            reason = body.get("reason", "operator")
            if not isinstance(reason, str) or not reason or len(reason) > 200:
                raise _BadRequest("reason must be a non-empty string of at most 200 chars")
            return await _call(handlers.halt, reason)

        async def resume(request: Request) -> JsonResult:
            return await _call(handlers.resume)

        async def cancel_all(request: Request) -> JsonResult:
            return await _call(handlers.cancel_all)

        async def status(request: Request) -> JsonResult:
            return await _call(handlers.status)

        routes += [
            Route("/control/halt", protected("halt", halt), methods=["POST"]),
            Route("/control/resume", protected("resume", resume), methods=["POST"]),
            Route("/control/cancel-all", protected("cancel_all", cancel_all), methods=["POST"]),
            Route("/control/status", protected("status", status), methods=["GET"]),
        ]
    return Starlette(routes=routes, middleware=[Middleware(_LoopbackHostOnly)])


def loopback_host_header(host: str | None) -> bool:
    """True if a ``Host`` header names a loopback host (any port): 127.0.0.1, ::1, localhost."""
    if not host:
        return False
    if host.startswith("["):  # [::1]:8790
        name = host[1:host.find("]")] if "]" in host else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return is_loopback(name.lower().rstrip("."))


class _LoopbackHostOnly:
    """ASGI middleware: refuse (421) any HTTP request whose Host is not a loopback name."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host")
            if not loopback_host_header(host):
                _log.warning("http_host_refused", path=scope.get("path", ""))
                response = JSONResponse({"error": "misdirected request"}, status_code=421)
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)


class _BadRequest(Exception):
    pass


async def _json_body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_BODY_BYTES:
            raise _BadRequest("body too large")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _BadRequest("body must be JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("body must be a JSON object")
    return body


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The runtime owns SIGINT/SIGTERM and shuts us down in order; uvicorn must not.
        yield


class HttpServer:
    """uvicorn serving ``app`` on a loopback socket; ``port=0`` lets the OS pick."""

    def __init__(
        self, app: Starlette, *, host: str = "127.0.0.1", port: int = 0,
        allow_remote: bool = False,
    ) -> None:
        """``allow_remote``: only for an app without control routes (metrics for a scraper)."""
        if not allow_remote and not is_loopback(host):
            raise ValueError(f"refusing to serve the control API on non-loopback {host!r}")
        self._app = app
        self._host = "127.0.0.1" if host == "localhost" else host
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._server = _Server(
            uvicorn.Config(
                app, lifespan="off", log_config=None, log_level="warning", access_log=False,
                ws="none",
            )
        )

    def bind(self) -> int:
        """Bind the listening socket now (idempotent) and return the port."""
        if self._sock is None:
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self._host, self._requested_port))
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            self._sock = sock
        return int(self._sock.getsockname()[1])

    @property
    def port(self) -> int:
        """The bound port (binds if needed)."""
        return self.bind()

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def started(self) -> bool:
        """True once the server accepts connections."""
        return bool(self._server.started)

    async def serve(self) -> None:
        """Serve until ``shutdown()`` is called (run it as a task of the runtime's TaskGroup)."""
        self.bind()
        assert self._sock is not None
        _log.info("http_server_started", url=self.url)
        try:
            await self._server.serve(sockets=[self._sock])
        finally:
            self._sock.close()
            _log.info("http_server_stopped")

    def shutdown(self) -> None:
        """Ask the server to stop (it finishes within ~0.1 s)."""
        self._server.should_exit = True


@contextlib.asynccontextmanager
async def running(
    app: Starlette, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[HttpServer]:
    """Run an ``HttpServer`` for the duration of the block (for tests and small tools)."""
    server = HttpServer(app, host=host, port=port)
    server.bind()
    task = asyncio.create_task(server.serve(), name="http-server")
    try:
        while not server.started:
            if task.done():
                await task  # re-raise its startup error
                raise RuntimeError("http server exited before starting")
            await asyncio.sleep(0.005)
        yield server
    finally:
        server.shutdown()
        await task
