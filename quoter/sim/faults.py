"""Fault injection for the simulator: what a real exchange and a real network do to a client.

The server calls two hooks (see ``quoter.sim.faults_api``):

* ``on_frame(conn_id, text)`` before each outbound WebSocket frame, and sends what it returns:
  a list of ``(delay_s, text)``; ``[]`` drops the frame, two entries duplicate it, a delay
  holds it back (so later frames overtake it: a reorder). A frame can also be replaced by
  error 25 ("subscription buffer overflow", kalshi-api.md §2.3), after which that
  subscription's data frames stop for good, as when Kalshi kills a slow subscriber.
* ``await on_request(method, path)`` before each REST request: returns a 5xx or 429 response
  to inject (429 uses Kalshi's ``{"error": "too many requests"}`` body, §4.2), or ``None``
  after an optional injected latency.
* ``await lose_confirm_response()`` after a confirm was applied: a 5xx instead of its 204, or
  the 204 held past the client's timeout (``lost_confirm_responses``): the quote executes
  although the maker saw the confirm fail.
* ``corrupt_response(method, path, response)`` after a request succeeded: its body spoiled
  (``corrupt_bodies``: bad gzip, 3,000-deep JSON, truncated), though the exchange applied it.

A frame rule can also nest (``nest_probability``): a field no client reads, ``sim_padding``,
holding ``nest_depth`` nested arrays is added to the frame's ``msg``.

Cutting connections: ``cut_connections()`` bumps an epoch; the server asks
``should_close(conn_id)`` (it records ``on_connect`` for each socket) and closes stale ones; their
frames are dropped meanwhile in any case. ``restart_lose_open_quotes()`` calls into the exchange
to cancel every open quote silently: Kalshi keeps open quotes only best-effort and loses them in a
server roll (§3.1 Retention), with no WebSocket notice.

All randomness comes from one ``random.Random(seed)``; timed bursts read the injected clock.
``fault_routes(injector)`` gives the ``GET``/``POST /sim/faults`` control endpoint.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from quoter.clock import Clock
from quoter.sim.config import FaultConfig, FrameFaultRule, MsRange

__all__ = ["CHANNEL_OF_TYPE", "FaultInjector", "FaultStats", "QuoteLoser", "fault_routes"]

log = structlog.get_logger(__name__)

#: Which subscription channel carries each data message type (kalshi-api.md §2.6).
CHANNEL_OF_TYPE: dict[str, str] = {
    "rfq_created": "communications",
    "rfq_deleted": "communications",
    "quote_created": "communications",
    "quote_accepted": "communications",
    "quote_executed": "communications",
    "orderbook_snapshot": "orderbook_delta",
    "orderbook_delta": "orderbook_delta",
    "ticker": "ticker",
    "trade": "trade",
    "fill": "fill",
    "market_position": "market_positions",
    "market_lifecycle_v2": "market_lifecycle_v2",
    "event_lifecycle": "market_lifecycle_v2",
    "multivariate_market_lifecycle": "multivariate_market_lifecycle",
    "user_order": "user_orders",
    "order_group_updates": "order_group_updates",
}

_OVERFLOW_CODE = 25
_SIM_PREFIX = "/sim/"


class QuoteLoser(Protocol):
    """The exchange call behind restart-and-lose-open-quotes."""

    def cancel_open_quotes_silently(self) -> int:
        """Cancel every open quote silently (no WS notice); return how many."""
        ...


@dataclass(slots=True)
class FaultStats:
    """Counters of what the injector did, served by ``GET /sim/faults``."""

    frames_seen: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    reordered: int = 0
    overflowed: int = 0
    rest_errors: int = 0
    rest_delayed: int = 0
    cuts: int = 0
    quotes_lost: int = 0
    confirm_responses_lost: int = 0
    nested: int = 0
    bodies_corrupted: int = 0
    killed_subscriptions: set[tuple[str, int]] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        """Counters as a JSON-able dict."""
        return {
            "frames_seen": self.frames_seen,
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "delayed": self.delayed,
            "reordered": self.reordered,
            "overflowed": self.overflowed,
            "rest_errors": self.rest_errors,
            "rest_delayed": self.rest_delayed,
            "cuts": self.cuts,
            "quotes_lost": self.quotes_lost,
            "confirm_responses_lost": self.confirm_responses_lost,
            "nested": self.nested,
            "bodies_corrupted": self.bodies_corrupted,
        }


def _uniform_ms(rng: random.Random, r: MsRange) -> float:
    """A delay in seconds drawn uniformly from an ms range."""
    if r.max_ms == r.min_ms:
        return r.min_ms / 1000
    return rng.uniform(r.min_ms, r.max_ms) / 1000


class FaultInjector:
    """The real fault injector behind the server's ``on_frame`` / ``on_request`` hooks."""

    def __init__(
        self,
        clock: Clock,
        config: FaultConfig | None = None,
        *,
        seed: int = 0,
        exchange: QuoteLoser | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._rng = random.Random(seed)
        self._exchange = exchange
        self._sleep = sleep
        self.stats = FaultStats()
        self._epoch = 0
        self._conn_epoch: dict[str, int] = {}
        self._config = FaultConfig()
        self._errors_left = 0
        self._errors_until_ns = 0
        self.apply(config or FaultConfig())

    # --- configuration ------------------------------------------------------------------

    @property
    def config(self) -> FaultConfig:
        """The fault config in force."""
        return self._config

    def apply(self, config: FaultConfig) -> None:
        """Replace the config now and run its one-shot actions (cut, restart)."""
        self._config = config
        self._errors_left = config.rest.error_count
        duration_ns = config.rest.error_duration_ms * 1_000_000
        self._errors_until_ns = self._clock.now_ns() + duration_ns if duration_ns else 0
        self._frames_active = bool(config.frames) or config.accept_notice_delay_ms > 0
        log.info(
            "sim_faults_applied",
            frame_rules=len(config.frames),
            accept_notice_delay_ms=config.accept_notice_delay_ms,
            rest_error_count=config.rest.error_count,
            rest_error_duration_ms=config.rest.error_duration_ms,
        )
        if config.cut_connections:
            self.cut_connections()
        if config.restart_lose_open_quotes:
            self.restart_lose_open_quotes()

    # --- connections ----------------------------------------------------------------------

    def on_connect(self, conn_id: str) -> None:
        """Record a new WebSocket connection (it survives earlier cuts)."""
        self._conn_epoch[conn_id] = self._epoch

    def on_disconnect(self, conn_id: str) -> None:
        """Forget a closed connection."""
        self._conn_epoch.pop(conn_id, None)
        self.stats.killed_subscriptions = {
            k for k in self.stats.killed_subscriptions if k[0] != conn_id
        }

    def should_close(self, conn_id: str) -> bool:
        """True if this connection was open when connections were last cut."""
        return self._conn_epoch.setdefault(conn_id, self._epoch) < self._epoch

    def cut_connections(self) -> None:
        """Cut every currently open WebSocket connection."""
        self._epoch += 1
        self.stats.cuts += 1
        log.info("sim_connections_cut", epoch=self._epoch, connections=len(self._conn_epoch))

    def restart_lose_open_quotes(self) -> int:
        """Simulate a server roll: open quotes vanish silently (kalshi-api.md §3.1)."""
        if self._exchange is None:
            log.warning("sim_restart_without_exchange")
            return 0
        lost = self._exchange.cancel_open_quotes_silently()
        self.stats.quotes_lost += lost
        log.info("sim_open_quotes_lost", quotes=lost)
        return lost

    # --- WebSocket frames -----------------------------------------------------------------

    def on_frame(self, conn_id: str, text: str) -> list[tuple[float, str]]:
        """Decide what happens to one outbound frame: ``[(delay_s, text), ...]``."""
        self.stats.frames_seen += 1
        if self.should_close(conn_id):
            self.stats.dropped += 1
            return []
        if not self._frames_active and not self.stats.killed_subscriptions:
            return [(0.0, text)]
        try:
            frame: Any = json.loads(text)
        except ValueError:
            return [(0.0, text)]
        if not isinstance(frame, dict):
            return [(0.0, text)]
        msg_type = frame.get("type")
        sid = frame.get("sid")
        if (isinstance(sid, int) and (conn_id, sid) in self.stats.killed_subscriptions
                and "id" not in frame):
            # The stream is dead; a reply to a command (our unsubscribe of it) still comes.
            self.stats.dropped += 1
            return []
        channel = CHANNEL_OF_TYPE.get(msg_type) if isinstance(msg_type, str) else None
        out = self._apply_rule(conn_id, frame, text, msg_type, channel)
        if msg_type == "quote_accepted" and self._config.accept_notice_delay_ms and out:
            extra = self._config.accept_notice_delay_ms / 1000
            self.stats.delayed += 1
            out = [(delay + extra, t) for delay, t in out]
        return out

    def _rule_for(self, msg_type: object, channel: str | None) -> FrameFaultRule | None:
        for rule in self._config.frames:
            if rule.channel is not None and rule.channel != channel:
                continue
            if rule.type is not None and rule.type != msg_type:
                continue
            return rule
        return None

    def _apply_rule(
        self, conn_id: str, frame: dict[str, Any], text: str, msg_type: object,
        channel: str | None,
    ) -> list[tuple[float, str]]:
        rule = self._rule_for(msg_type, channel)
        if rule is None:
            return [(0.0, text)]
        rng = self._rng
        sid = frame.get("sid")
        if (
            rule.overflow_probability
            and isinstance(sid, int)
            and channel is not None
            and rng.random() < rule.overflow_probability
        ):
            self.stats.overflowed += 1
            self.stats.killed_subscriptions.add((conn_id, sid))
            error = {
                "type": "error",
                "sid": sid,
                "msg": {"code": _OVERFLOW_CODE, "msg": "Subscription buffer overflow"},
            }
            return [(0.0, json.dumps(error, separators=(",", ":")))]
        if rule.drop_probability and rng.random() < rule.drop_probability:
            self.stats.dropped += 1
            return []
        if rule.nest_probability and rng.random() < rule.nest_probability:
            nested = _nested(frame, rule.nest_depth)
            if nested is not None:
                self.stats.nested += 1
                text = nested
        delay = 0.0
        if rule.delay_probability and rng.random() < rule.delay_probability:
            self.stats.delayed += 1
            delay = _uniform_ms(rng, rule.delay_ms)
        if rule.reorder_probability and rng.random() < rule.reorder_probability:
            self.stats.reordered += 1
            delay += rule.reorder_delay_ms / 1000
        out = [(delay, text)]
        if rule.duplicate_probability and rng.random() < rule.duplicate_probability:
            self.stats.duplicated += 1
            out.append((delay, text))
        return out

    # --- REST -----------------------------------------------------------------------------

    def _rest_matches(self, method: str, path: str) -> bool:
        rest = self._config.rest
        if path.startswith(_SIM_PREFIX):
            return False  # never fault the control endpoint itself
        if rest.methods and method.upper() not in {m.upper() for m in rest.methods}:
            return False
        return not rest.path_prefixes or any(path.startswith(p) for p in rest.path_prefixes)

    def decide_request(self, method: str, path: str) -> tuple[float, int | None]:
        """Return ``(latency_s, error_status or None)`` for one REST request (no IO)."""
        if not self._rest_matches(method, path):
            return 0.0, None
        rest = self._config.rest
        latency = _uniform_ms(self._rng, rest.latency_ms)
        if self._errors_left > 0:
            self._errors_left -= 1
            fail = True
        else:
            in_window = bool(self._errors_until_ns) and self._clock.now_ns() < self._errors_until_ns
            fail = in_window or (
                rest.error_probability > 0 and self._rng.random() < rest.error_probability
            )
        return latency, rest.error_status if fail else None

    async def on_request(self, method: str, path: str) -> Response | None:
        """Inject latency and/or an error response before a REST request is handled."""
        latency, status = self.decide_request(method, path)
        if latency > 0:
            self.stats.rest_delayed += 1
            await self._sleep(latency)
        if status is None:
            return None
        self.stats.rest_errors += 1
        log.info("sim_rest_fault_injected", method=method, path=path, status_code=status)
        if status == 429:
            # kalshi-api.md §4.2: this body, and no Retry-After / X-RateLimit-* headers.
            return JSONResponse({"error": "too many requests"}, status_code=429)
        return JSONResponse(
            {"code": "internal_server_error", "message": "injected server fault"},
            status_code=status,
        )

    async def lose_confirm_response(self) -> Response | None:
        """Called after a confirm was applied: lose its response (``lost_confirm_responses``).

        Returns the error to answer instead of the 204, or None to answer it, possibly only
        after holding it ``hold_ms`` (longer than the client waits: it sees a timeout)."""
        lost = self._config.lost_confirm_responses
        if lost.probability <= 0 or self._rng.random() >= lost.probability:
            return None
        self.stats.confirm_responses_lost += 1
        log.info("sim_confirm_response_lost", mode=lost.mode)
        if lost.mode == "timeout":
            await self._sleep(lost.hold_ms / 1000)
            return None
        return JSONResponse(
            {"code": "internal_server_error", "message": "injected server fault"},
            status_code=lost.error_status,
        )

    def corrupt_response(self, method: str, path: str, response: Response) -> Response:
        """Spoil the body of a successful answer (``corrupt_bodies``), or return it as is."""
        cfg = self._config.corrupt_bodies
        if cfg.probability <= 0 or not 200 <= response.status_code < 300 or not response.body:
            return response
        if path.startswith(_SIM_PREFIX):
            return response
        if cfg.methods and method.upper() not in {m.upper() for m in cfg.methods}:
            return response
        if cfg.path_prefixes and not any(path.startswith(p) for p in cfg.path_prefixes):
            return response
        if self._rng.random() >= cfg.probability:
            return response
        kind = cfg.kinds[self._rng.randrange(len(cfg.kinds))]
        self.stats.bodies_corrupted += 1
        log.info("sim_body_corrupted", method=method, path=path, kind=kind)
        headers = {"content-type": "application/json"}
        if kind == "bad_gzip":
            headers["content-encoding"] = "gzip"
            body = b"\x1f\x8b\x08\x00 this is not gzip"
        elif kind == "deep_json":
            body = b"[" * 3_000 + b"]" * 3_000
        else:
            body = bytes(response.body[: len(response.body) // 2])
        return Response(body, status_code=response.status_code, headers=headers)

    def quote_response_hold_s(self) -> float:
        """How long the server may hold a create-quote response waiting for its accept."""
        return self._config.quote_response_hold_ms / 1000

    def snapshot(self) -> dict[str, Any]:
        """The config in force and the counters, as JSON."""
        return {"config": self._config.model_dump(mode="json"), "stats": self.stats.as_dict()}


_PAD_MARK = "\x00sim-padding\x00"


def _nested(frame: dict[str, Any], depth: int) -> str | None:
    """The frame with ``msg.sim_padding`` = ``depth`` nested arrays, or None if no dict msg.

    Built as text: ``json.dumps`` itself refuses nesting this deep."""
    msg = frame.get("msg")
    if not isinstance(msg, dict):
        return None
    padded = {**frame, "msg": {**msg, "sim_padding": _PAD_MARK}}
    text = json.dumps(padded, separators=(",", ":"))
    return text.replace(json.dumps(_PAD_MARK), "[" * depth + "]" * depth, 1)


def fault_routes(injector: FaultInjector) -> list[Route]:
    """Routes for ``GET /sim/faults`` (state) and ``POST /sim/faults`` (apply a config now)."""

    async def get_faults(request: Request) -> Response:
        return JSONResponse(injector.snapshot())

    async def post_faults(request: Request) -> Response:
        try:
            body = await request.json()
            config = FaultConfig.model_validate(body)
        except ValueError as exc:
            errors: Any = (
                json.loads(exc.json()) if isinstance(exc, ValidationError) else [str(exc)]
            )
            return JSONResponse(
                {"code": "invalid_parameters", "message": "bad fault config", "details": errors},
                status_code=400,
            )
        injector.apply(config)
        return JSONResponse(injector.snapshot())

    return [
        Route("/sim/faults", get_faults, methods=["GET"]),
        Route("/sim/faults", post_faults, methods=["POST"]),
    ]
