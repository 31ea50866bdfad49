"""HaltGate: the service's last check before a quote or confirm leaves (see test_kill_switch)."""

from __future__ import annotations

import httpx
import pytest

from quoter.service.app import HaltedRequestError, HaltGate

BASE = "http://127.0.0.1/trade-api/v2"
QUOTE = ("POST", f"{BASE}/communications/quotes")
CONFIRM = ("PUT", f"{BASE}/communications/rfqs/r1/quotes/q1/confirm")
CANCEL = ("DELETE", f"{BASE}/communications/rfqs/r1/quotes/q1")
READ = ("GET", f"{BASE}/portfolio/positions")


async def test_gate_refuses_quotes_and_confirms_only_while_halted() -> None:
    sent: list[tuple[str, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append((request.method, str(request.url)))
        return httpx.Response(200, json={})

    halted = False
    gate = HaltGate(httpx.MockTransport(handle), lambda: halted)
    async with httpx.AsyncClient(transport=gate) as client:
        for method, url in (QUOTE, CONFIRM, CANCEL, READ):
            assert (await client.request(method, url)).status_code == 200
        assert sent == [QUOTE, CONFIRM, CANCEL, READ]
        sent.clear()
        halted = True
        for method, url in (QUOTE, CONFIRM):
            with pytest.raises(HaltedRequestError, match="halted, not sent") as info:
                await client.request(method, url)
            assert info.value.code == "halted"
        # Pulling quotes and reconciling must still work during a halt.
        for method, url in (CANCEL, READ):
            assert (await client.request(method, url)).status_code == 200
        assert sent == [CANCEL, READ]
