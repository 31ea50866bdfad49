"""/metrics and /healthz of the running service, over its real HTTP socket."""

from __future__ import annotations

from pathlib import Path

import httpx
from e2e_helpers import REQ, T1, bot_quotes, running_service, sim_env, until
from prometheus_client.parser import text_string_to_metric_families

from quoter.domain.types import Side
from quoter.sim.exchange import QuoteStatus

HISTOGRAMS = ("quoter_frame_to_decision_seconds", "quoter_decision_to_request_seconds",
              "quoter_accept_to_confirm_sent_seconds", "quoter_confirm_round_trip_seconds")


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


async def test_metrics_and_health_follow_the_service(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service(stale_after_s=1.0)
        async with running_service(svc), httpx.AsyncClient() as client:
            assert svc.http is not None
            url = svc.http.url
            rfq_id = env.rfq(T1)
            await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="the bot's quote")
            [quote] = bot_quotes(env.exchange, rfq_id)
            await until(lambda: quote.id in svc.runtime.open_quotes, what="QuotePlaced")
            env.exchange.accept_quote(REQ, rfq_id, quote.id, Side.YES)
            await until(lambda: env.exchange.get_quote(quote.id).status == QuoteStatus.EXECUTED,
                        what="execution")
            await until(lambda: svc.hooks.counts["fills"] == 1, what="the fill")

            healthy = await client.get(f"{url}/healthz")
            assert healthy.status_code == 200
            assert (healthy.json()["status"], healthy.json()["reasons"]) == ("ok", [])

            metrics = await client.get(f"{url}/metrics")
            assert metrics.status_code == 200
            samples = _samples(metrics.text)
            decisions = "quoter_rfq_decisions_total"
            assert samples[(decisions, frozenset({("decision", "quoted"),
                                                  ("reason", "quoted")}))] == 1.0
            assert samples[(decisions, frozenset({("decision", "confirmed"),
                                                  ("reason", "edge_ok")}))] == 1.0
            for name in HISTOGRAMS:
                assert samples[(f"{name}_count", frozenset())] == 1.0, name
                assert samples[(f"{name}_sum", frozenset())] > 0.0, name

            svc.halt("health check")
            halted = await client.get(f"{url}/healthz")
            assert halted.status_code == 503
            assert (halted.json()["status"], halted.json()["reasons"]) == (
                "unhealthy", ["halted"])
            after = _samples((await client.get(f"{url}/metrics")).text)
            assert after[("quoter_halted", frozenset())] == 1.0
            # Housekeeping exports the loop's live tasks (the soak watches it for leaks).
            assert after[("quoter_tasks", frozenset())] >= 5.0

            svc.resume()
            # No frames for longer than stale_after_s: the feed is stale.
            await until(lambda: svc.health().reasons == ("feed_stale",), timeout_s=5.0,
                        what="the feed to go stale")
            stale = await client.get(f"{url}/healthz")
            assert stale.status_code == 503
            assert stale.json()["reasons"] == ["feed_stale"]
            assert stale.json()["feed_age_ms"] > 1_000


async def test_metrics_on_a_second_address_without_control_routes(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service(env.settings(metrics_port=0))
        async with running_service(svc), httpx.AsyncClient() as client:
            assert svc.metrics_http is not None
            assert svc.http is not None
            assert svc.metrics_http.url != svc.http.url
            metrics = await client.get(f"{svc.metrics_http.url}/metrics")
            assert metrics.status_code == 200
            assert "quoter_rfq_decisions_total" in metrics.text
            assert (await client.get(f"{svc.metrics_http.url}/healthz")).status_code in (200, 503)
            # Control is not served there, token or not.
            token = (env.workdir / "control.token").read_text().strip()
            refused = await client.post(f"{svc.metrics_http.url}/control/halt",
                                        headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 404
            assert not svc.runtime.halted
