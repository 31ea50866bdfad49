"""A corrupted REST answer never stops the service with a quote of ours live (issue 12 item 1).

The simulator really creates the quote; only the 201's body is spoiled on the way back (bad
gzip -> ``httpx.DecodingError``, 3,000-deep JSON -> ``RecursionError``, not JSON at all), so
the service cannot know the quote's id. Whatever it does next, when it exits no quote of ours
may rest on the exchange.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from e2e_helpers import BOT, T1, running_service, sim_env, until

from quoter.service.app import Service, ServiceOptions
from quoter.sim.exchange import QuoteStatus


def _bad_gzip(response: httpx.Response) -> httpx.Response:
    return httpx.Response(response.status_code, headers={"content-encoding": "gzip",
                                                         "content-type": "application/json"},
                          stream=httpx.ByteStream(b"\x1f\x8b\x08\x00 this is not gzip"))


def _deep_json(response: httpx.Response) -> httpx.Response:
    return httpx.Response(response.status_code, content=b"[" * 3000 + b"]" * 3000,
                          headers={"content-type": "application/json"})


def _not_json(response: httpx.Response) -> httpx.Response:
    return httpx.Response(response.status_code, content=b'{"id": "q',
                          headers={"content-type": "application/json"})


class CorruptCreatedQuotes(httpx.AsyncBaseTransport):
    """Forward to the simulator; spoil the body of every 201 to ``POST /communications/quotes``."""

    def __init__(self, spoil: Callable[[httpx.Response], httpx.Response]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._spoil = spoil
        self.spoiled = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if (request.method == "POST" and request.url.path.endswith("/communications/quotes")
                and response.status_code == 201):
            await response.aread()
            await response.aclose()
            self.spoiled += 1
            return self._spoil(response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.parametrize("spoil", [_bad_gzip, _deep_json, _not_json],
                         ids=["bad-gzip", "deep-json", "not-json"])
async def test_no_quote_stays_live_after_a_corrupt_201(
    tmp_path: Path, spoil: Callable[[httpx.Response], httpx.Response]
) -> None:
    async with sim_env(tmp_path) as env:
        transport = CorruptCreatedQuotes(spoil)
        svc = Service(env.settings(), ServiceOptions(
            config_path=env.config_path, view="none", reconcile_interval_s=3600.0,
            housekeeping_interval_s=0.1, kill_file=env.workdir / "KILL"),
            clock=env.clock, transport=transport)
        async with running_service(svc):
            rfq_id = env.rfq(T1)
            await until(lambda: transport.spoiled >= 1, what="a quote created, its 201 spoiled")
            # The exchange holds a quote the service could not read the id of.
            assert [q.status for q in env.exchange.list_quotes(rfq_id=rfq_id,
                                                                 creator_user_id=BOT)] == [
                QuoteStatus.OPEN]
            # The failure is a typed, counted rejection, and the service keeps running.
            await until(lambda: svc.hooks.counts.get("rejected", 0) >= 1
                        or svc.runtime.stats.quotes_rejected >= 1, what="the rejection")
            assert svc.fatal is None
        live = [q for q in env.exchange.list_quotes(creator_user_id=BOT)
                if q.status == QuoteStatus.OPEN]
        assert live == []
