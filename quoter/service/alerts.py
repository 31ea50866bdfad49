"""Alerts: a webhook told when something needs a person — a halt, a reconciliation mismatch,
repeated rejections, a lost feed.

The payload is JSON ``{"text": ..., "kind": ..., "service": "quoter", "detail": {...}}``:
``text`` is what Slack-style incoming webhooks display (they ignore the other keys); a bridge
for another chat service reads ``kind`` and ``detail``. Alerts never slow or stop trading: they
are queued (bounded; overflow is counted and dropped), sent by one background task with a short
timeout, a failed send is logged and counted, and each kind is rate-limited so a flapping feed
does not flood the channel. The URL often carries a secret token: it is never logged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import structlog

__all__ = ["AlertPolicy", "Alerter"]

log = structlog.get_logger("quoter.service.alerts")

NS_PER_S: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """When to alert. Times are seconds of the service clock."""

    #: At most one alert of a kind per this long (the first one always goes out).
    min_interval_s: float = 60.0
    #: Quote rejections within ``rejection_window_s`` that make "repeated rejections".
    rejections: int = 5
    rejection_window_s: float = 60.0
    queue_max: int = 100
    timeout_s: float = 5.0


@dataclass(slots=True)
class _Counts:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    suppressed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Alerter:
    """Queue alerts and post them to ``url`` (None: alerts are only logged)."""

    def __init__(
        self, url: str | None, *, now_ns: Callable[[], int],
        policy: AlertPolicy | None = None, transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport`` is for tests (an ASGI app or a MockTransport); ``now_ns`` is the
        service clock."""
        self._url = url
        self._now_ns = now_ns
        self.policy = policy or AlertPolicy()
        self._transport = transport
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.policy.queue_max)
        self._last_ns: dict[str, int] = {}
        self._rejections: deque[int] = deque()
        self.counts = _Counts()

    @property
    def enabled(self) -> bool:
        """True when a webhook URL is configured."""
        return self._url is not None

    # --- what the service reports ------------------------------------------------------------

    def notify(self, kind: str, text: str, **detail: Any) -> None:
        """Queue one alert (never blocks, never raises); rate-limited per ``kind``."""
        now = self._now_ns()
        last = self._last_ns.get(kind)
        if last is not None and now - last < self.policy.min_interval_s * NS_PER_S:
            self.counts.suppressed += 1
            return
        self._last_ns[kind] = now
        log.warning("alert", kind=kind, text=text)
        if self._url is None:
            return
        payload = {"text": f"quoter: {text}", "kind": kind, "service": "quoter",
                   "detail": {k: str(v) for k, v in detail.items()}}
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.counts.dropped += 1

    def on_rejection(self, code: str) -> None:
        """A quote the exchange refused: alert when they repeat within the window."""
        now = self._now_ns()
        window = self.policy.rejection_window_s * NS_PER_S
        self._rejections.append(now)
        while self._rejections and now - self._rejections[0] > window:
            self._rejections.popleft()
        if len(self._rejections) >= self.policy.rejections:
            self.notify("rejections", f"{len(self._rejections)} quotes rejected in "
                        f"{self.policy.rejection_window_s:g} s (last: {code})", last_code=code)
            self._rejections.clear()

    # --- the sender -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Send queued alerts until cancelled (nothing to do without a URL)."""
        if self._url is None:
            await asyncio.Event().wait()
        async with httpx.AsyncClient(transport=self._transport,
                                     timeout=self.policy.timeout_s) as client:
            while True:
                payload = await self._queue.get()
                await self._send(client, payload)

    async def _send(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
        assert self._url is not None
        kind = str(payload["kind"])
        try:
            response = await client.post(self._url, json=payload)
            ok = response.status_code < 300
        except httpx.HTTPError as exc:
            ok = False
            log.warning("alert_send_failed", kind=kind, error=type(exc).__name__)
        else:
            if not ok:
                log.warning("alert_send_failed", kind=kind, status_code=response.status_code)
        if ok:
            self.counts.sent += 1
            self.counts.by_kind[kind] = self.counts.by_kind.get(kind, 0) + 1
        else:
            self.counts.failed += 1

    async def drain(self) -> None:
        """Send what is queued now (shutdown: the halt alert of a stop should still go)."""
        if self._url is None or self._queue.empty():
            return
        async with httpx.AsyncClient(transport=self._transport,
                                     timeout=self.policy.timeout_s) as client:
            while not self._queue.empty():
                await self._send(client, self._queue.get_nowait())
