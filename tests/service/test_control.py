"""The control API over a real loopback socket, its client, and the CLI subcommands."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr

from quoter.cli import main
from quoter.errors import AuthError, TransportError
from quoter.observability.metrics import Metrics
from quoter.service.control_client import ControlClient, ControlError
from quoter.service.environment import load_or_create_token
from quoter.service.http import ControlHandlers, HealthStatus, HttpServer, create_app, running

TOKEN = "test-token-0123456789abcdef"


class FakeService:
    """The runtime side: real handlers recording what the control API asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.halted = False

    def halt(self, reason: str) -> dict[str, Any]:
        self.calls.append(("halt", reason))
        self.halted = True
        return {"halted": True, "reason": reason}

    async def resume(self) -> dict[str, Any]:
        await asyncio.sleep(0)  # async handlers are awaited
        self.calls.append(("resume", None))
        self.halted = False
        return {"halted": False}

    def cancel_all(self) -> dict[str, Any]:
        raise RuntimeError("exchange down, token=" + TOKEN)

    def status(self) -> dict[str, Any]:
        return {"halted": self.halted, "open_quotes": 2, "mode": "paper"}

    def handlers(self) -> ControlHandlers:
        return ControlHandlers(
            halt=self.halt, resume=self.resume, cancel_all=self.cancel_all, status=self.status
        )


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
async def server(service: FakeService) -> AsyncIterator[HttpServer]:
    app = create_app(
        Metrics(), lambda: HealthStatus(not service.halted, ("halted",) if service.halted else ()),
        control=service.handlers(), token=SecretStr(TOKEN),
    )
    async with running(app) as srv:
        yield srv


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_control_needs_the_bearer_token(server: HttpServer, service: FakeService) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        for headers in ({}, _auth("wrong-token-0123456789"), {"Authorization": TOKEN}):
            r = await client.post("/control/halt", headers=headers)
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
        r = await client.get("/control/status")
        assert r.status_code == 401
    assert service.calls == []


async def test_halt_resume_status(server: HttpServer, service: FakeService) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=_auth()) as client:
        r = await client.post("/control/halt", json={"reason": "fat finger"})
        assert r.status_code == 200
        assert r.json() == {"halted": True, "reason": "fat finger"}
        assert (await client.get("/healthz")).status_code == 503
        assert (await client.get("/control/status")).json()["halted"] is True
        r = await client.post("/control/resume")
        assert r.json() == {"halted": False}
        assert (await client.get("/healthz")).status_code == 200
        r = await client.post("/control/halt")  # no body: default reason
        assert r.json()["reason"] == "operator"
    assert service.calls == [("halt", "fat finger"), ("resume", None), ("halt", "operator")]


async def test_bad_requests(server: HttpServer, service: FakeService) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=_auth()) as client:
        assert (await client.post("/control/halt", content=b"not json")).status_code == 400
        assert (await client.post("/control/halt", json=["x"])).status_code == 400
        assert (await client.post("/control/halt", json={"reason": 5})).status_code == 400
        big = {"reason": "x" * 5000}
        assert (await client.post("/control/halt", json=big)).status_code == 400
        assert (await client.get("/control/halt")).status_code == 405
    assert service.calls == []


async def test_handler_failure_is_500_without_details(server: HttpServer) -> None:
    with structlog.testing.capture_logs() as logs:
        async with httpx.AsyncClient(base_url=server.url, headers=_auth()) as client:
            r = await client.post("/control/cancel-all")
    assert r.status_code == 500
    assert TOKEN not in r.text
    failed = [e for e in logs if e["event"] == "control_handler_failed"]
    assert failed == [
        {"event": "control_handler_failed", "action": "cancel_all", "error": "RuntimeError",
         "log_level": "error"}
    ]


async def test_client_against_the_real_server(server: HttpServer, service: FakeService) -> None:
    client = ControlClient(server.url, SecretStr(TOKEN), timeout_s=2.0)
    assert await asyncio.to_thread(client.halt, "maintenance") == {
        "halted": True, "reason": "maintenance"
    }
    assert (await asyncio.to_thread(client.status))["halted"] is True
    assert await asyncio.to_thread(client.resume) == {"halted": False}
    with pytest.raises(ControlError) as info:
        await asyncio.to_thread(client.cancel_all)
    assert info.value.status_code == 500
    bad = ControlClient(server.url, SecretStr("wrong-token-0123456789"))
    with pytest.raises(AuthError):
        await asyncio.to_thread(bad.status)


def _free_port_that_is_closed() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_client_unreachable_is_transport_error() -> None:
    client = ControlClient(
        f"http://127.0.0.1:{_free_port_that_is_closed()}", SecretStr(TOKEN), timeout_s=1.0
    )
    with pytest.raises(TransportError) as info:
        client.status()
    assert TOKEN not in str(info.value)


def test_client_refuses_remote_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ControlClient("http://10.0.0.1:8790", SecretStr(TOKEN))


@pytest.fixture
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("QUOTER_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("_clean_env")
async def test_cli_subcommands_with_token_file(
    tmp_path: Path, service: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "control.token"
    token = load_or_create_token(token_file)
    app = create_app(
        Metrics(), lambda: HealthStatus(True), control=service.handlers(), token=token
    )
    with structlog.testing.capture_logs() as logs:
        await _drive_cli(app, token_file, token, capsys)
    assert service.calls == [("halt", "test"), ("resume", None)]
    actions = [e["action"] for e in logs if e["event"] == "control_action"]
    assert actions == ["halt", "status", "resume"]


async def _drive_cli(
    app: Any, token_file: Path, token: SecretStr, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(app) as srv:
        common = ["--port", str(srv.port), "--token-file", str(token_file), "--timeout", "2"]
        assert await asyncio.to_thread(main, ["halt", "--reason", "test", *common]) == 0
        assert json.loads(capsys.readouterr().out) == {"halted": True, "reason": "test"}
        assert await asyncio.to_thread(main, ["status", "--json", *common]) == 0
        assert json.loads(capsys.readouterr().out)["open_quotes"] == 2
        assert await asyncio.to_thread(main, ["resume", *common]) == 0
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["cancel-all", *common]) == 1
        err = capsys.readouterr().err
        assert "500" in err
        assert token.get_secret_value() not in err


@pytest.mark.usefixtures("_clean_env")
def test_cli_env_settings_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUOTER_CONTROL_TOKEN_FILE", str(tmp_path / "missing.token"))
    assert main(["status"]) == 1
    assert "not found" in capsys.readouterr().err
    monkeypatch.setenv("QUOTER_CONTROL_TOKEN", TOKEN)
    monkeypatch.setenv("QUOTER_CONTROL_PORT", str(_free_port_that_is_closed()))
    # A production shell must not stop the operator from halting.
    monkeypatch.setenv("QUOTER_ENV", "prod")
    assert main(["halt", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert "no quoter control API answering" in err
    assert TOKEN not in err


# --- item 12: Host header check, metrics token ------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8790", "127.0.0.1.evil.test",
                                  "10.0.0.5", ""])
async def test_a_request_for_a_non_loopback_host_is_refused(
    server: HttpServer, service: FakeService, host: str
) -> None:
    # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 reaches the
    # socket, but its Host header still says evil.example.
    async with httpx.AsyncClient(base_url=server.url, headers=_auth()) as client:
        for method, path in (("GET", "/metrics"), ("GET", "/healthz"),
                             ("GET", "/control/status"), ("POST", "/control/halt")):
            r = await client.request(method, path, headers={"Host": host})
            assert r.status_code == 421, (method, path, host)
            assert b"position" not in r.content
    assert service.calls == []


async def test_loopback_hosts_are_served(server: HttpServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=server.url) as client:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
            assert (await client.get("/healthz", headers={"Host": host})).status_code == 200


async def test_metrics_can_require_their_own_token() -> None:
    metrics_token = "metrics-token-0123456789"
    app = create_app(Metrics(), lambda: HealthStatus(True), metrics_token=SecretStr(metrics_token))
    async with running(app) as srv, httpx.AsyncClient(base_url=srv.url) as client:
        assert (await client.get("/metrics")).status_code == 401
        bad = await client.get("/metrics", headers=_auth("wrong-token-0123456789"))
        assert bad.status_code == 401
        ok = await client.get("/metrics", headers=_auth(metrics_token))
        assert ok.status_code == 200
        assert b"frames_total" in ok.content
        # Health stays open to a supervisor's probe (it carries no positions).
        assert (await client.get("/healthz")).status_code == 200
