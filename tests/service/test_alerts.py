"""Alerts reach the webhook, are rate-limited per kind, and never raise into the service."""

from __future__ import annotations

import asyncio
import json

import httpx

from quoter.service.alerts import Alerter, AlertPolicy

S = 1_000_000_000
URL = "http://127.0.0.1:9/hooks/T0KEN-secret"


class Clock:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


def _alerter(handler: httpx.MockTransport, clock: Clock, **policy: float) -> Alerter:
    return Alerter(URL, now_ns=clock, transport=handler,
                   policy=AlertPolicy(**policy))  # type: ignore[arg-type]


async def test_an_alert_is_posted_as_slack_style_json() -> None:
    seen: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200)

    a = _alerter(httpx.MockTransport(handle), Clock())
    a.notify("halt", "quoting halted (engine): position_mismatch X", reason="position_mismatch")
    await a.drain()
    assert seen == [{"text": "quoter: quoting halted (engine): position_mismatch X",
                     "kind": "halt", "service": "quoter",
                     "detail": {"reason": "position_mismatch"}}]
    assert a.counts.sent == 1


async def test_each_kind_is_rate_limited_and_rejections_alert_when_they_repeat() -> None:
    kinds: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        kinds.append(json.loads(request.content)["kind"])
        return httpx.Response(204)

    clock = Clock()
    a = _alerter(httpx.MockTransport(handle), clock, min_interval_s=60, rejections=3,
                 rejection_window_s=10)
    a.notify("feed_lost", "data connection lost")
    a.notify("feed_lost", "data connection lost")  # a flapping feed: suppressed
    for _ in range(2):
        a.on_rejection("rfq_closed")
    clock.ns = 11 * S  # the two above fall out of the window
    a.on_rejection("rfq_closed")
    a.on_rejection("rfq_closed")
    assert "rejections" not in kinds
    a.on_rejection("rfq_closed")  # three within 10 s
    clock.ns = 61 * S
    a.notify("feed_lost", "data connection lost")  # a minute later: goes out again
    await a.drain()
    assert kinds == ["feed_lost", "rejections", "feed_lost"]
    assert a.counts.suppressed == 1


async def test_a_failing_webhook_is_counted_never_raised_and_its_url_never_logged(
        capsys: object) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    a = _alerter(httpx.MockTransport(handle), Clock())
    a.notify("halt", "quoting halted")
    await a.drain()
    assert (a.counts.sent, a.counts.failed) == (0, 1)
    out = capsys.readouterr()  # type: ignore[attr-defined]
    assert "T0KEN" not in out.out + out.err


async def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    a = Alerter(URL, now_ns=Clock(), policy=AlertPolicy(min_interval_s=0, queue_max=2),
                transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    for i in range(5):
        a.notify(f"k{i}", "x")
    assert a.counts.dropped == 3
    task = asyncio.create_task(a.run())
    await a.drain()
    task.cancel()
    assert a.counts.sent == 2


def test_without_a_url_alerts_are_only_logged() -> None:
    a = Alerter(None, now_ns=Clock())
    a.notify("halt", "quoting halted")
    assert not a.enabled
    assert a.counts.sent == a.counts.dropped == 0
