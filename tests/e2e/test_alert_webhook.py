"""The running service tells its webhook about a halt and a lost feed."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from e2e_helpers import running_service, sim_env, until

from quoter.sim.config import FaultConfig


async def test_a_halt_and_a_lost_feed_reach_the_webhook(tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/hooks/abc"
        seen.append(json.loads(request.content))
        return httpx.Response(200)

    async with sim_env(tmp_path) as env:
        svc = env.service(env.settings(alert_webhook_url="http://127.0.0.1:9/hooks/abc"),
                          alert_transport=httpx.MockTransport(hook))
        async with running_service(svc):
            env.faults.injector.apply(FaultConfig(cut_connections=True))
            await until(lambda: any(a["kind"] == "feed_lost" for a in seen),
                        what="the feed-lost alert")
            svc.halt("operator test")
            await until(lambda: any(a["kind"] == "halt" for a in seen), what="the halt alert")
    halt = next(a for a in seen if a["kind"] == "halt")
    assert halt["text"] == "quoter: quoting halted (operator): operator test"
    assert svc.alerts.counts.failed == 0
