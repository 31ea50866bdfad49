"""Logging (clock stamps, context, redaction), metrics (units, own registry), /metrics, /healthz."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import httpx
import pytest
import structlog
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from quoter.clock import ReplayClock
from quoter.observability.logging import (
    REDACTED,
    Redactor,
    configure_logging,
    format_wall_ns,
    log_context,
)
from quoter.observability.metrics import Metrics
from quoter.service.http import (
    HealthStatus,
    HttpServer,
    create_app,
    evaluate_health,
    running,
)

WALL_NS = 1_752_000_000_123_456_789  # 2025-07-08T18:40:00.123456Z


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _signature(key: rsa.RSAPrivateKey) -> str:
    sig = key.sign(
        b"1703123456789GET/trade-api/v2/portfolio/balance",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    return base64.b64encode(sig).decode()


def _configure(level: str = "info") -> tuple[io.StringIO, Redactor]:
    stream = io.StringIO()
    clock = ReplayClock(start_ns=0, wall_offset_ns=WALL_NS)
    redactor = configure_logging(clock, fmt="json", level=level, stream=stream)
    return stream, redactor


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture(autouse=True)
def _reset_structlog() -> object:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_format_wall_ns_is_exact() -> None:
    assert format_wall_ns(WALL_NS) == "2025-07-08T18:40:00.123456Z"
    assert format_wall_ns(0) == "1970-01-01T00:00:00.000000Z"


def test_json_lines_with_clock_timestamp_and_context() -> None:
    stream, _ = _configure()
    log = structlog.get_logger()
    with log_context(rfq_id="rfq-1", market_ticker="KXMLB-NYY"):
        log.info("rfq_skipped", reason="notional")
    log.info("after_context")
    first, second = _lines(stream)
    assert first == {
        "rfq_id": "rfq-1",
        "market_ticker": "KXMLB-NYY",
        "reason": "notional",
        "event": "rfq_skipped",
        "level": "info",
        "timestamp": "2025-07-08T18:40:00.123456Z",
    }
    assert "rfq_id" not in second


def test_level_filtering() -> None:
    stream, _ = _configure(level="warning")
    log = structlog.get_logger()
    log.info("quiet")
    log.warning("loud")
    assert [line["event"] for line in _lines(stream)] == ["loud"]


def test_redaction_in_rendered_logs(rsa_key: rsa.RSAPrivateKey) -> None:
    stream, redactor = _configure()
    redactor.add_secret("tok-0123456789abcdef")
    pem = _pem(rsa_key)
    sig = _signature(rsa_key)
    log = structlog.get_logger()
    log.info(
        "rest_request",
        headers={
            "KALSHI-ACCESS-KEY": "a952bcbe-ec3b-4b5b-b8f9-11dae589608c",
            "KALSHI-ACCESS-SIGNATURE": sig,
            "KALSHI-ACCESS-TIMESTAMP": "1703123456789",
            "Content-Type": "application/json",
        },
        private_key=pem,
        control_token="tok-0123456789abcdef",
        note=f"loaded key {pem} and sent Bearer tok-0123456789abcdef and sig {sig}",
        nested=[{"Authorization": "Bearer abc.def"}, "plain"],
    )
    text = stream.getvalue()
    for secret in ("BEGIN PRIVATE KEY", pem.splitlines()[1], sig, sig[:40],
                   "tok-0123456789abcdef", "a952bcbe", "abc.def"):
        assert secret not in text, secret
    (line,) = _lines(stream)
    headers = line["headers"]
    assert isinstance(headers, dict)
    assert headers["Content-Type"] == "application/json"
    assert headers["KALSHI-ACCESS-SIGNATURE"] == REDACTED
    assert line["private_key"] == REDACTED
    assert line["nested"] == [{"Authorization": REDACTED}, "plain"]
    assert "loaded key [REDACTED]" in str(line["note"])


def test_redactor_leaves_ordinary_data_alone() -> None:
    r = Redactor()
    frame = '{"type":"rfq_created","sid":1,"msg":{"id":"rfq_123","market_ticker":"KX-1"}}'
    assert r.redact_text(frame) == frame
    event = {"rfq_id": "r", "yes_bid_micros": 480_000, "tokens_left": 3.5, "api_key_id": "k"}
    assert r.redact(event) == event  # keys are matched on whole words only


@pytest.mark.parametrize(
    "key",
    ["token", "control_token", "access-token", "KALSHI-ACCESS-SIGNATURE", "KALSHI-ACCESS-KEY",
     "private_key_pem", "privateKey", "Authorization", "client_secret", "password", "sig"],
)
def test_secret_keys(key: str) -> None:
    assert Redactor().redact({key: "value", "other": "value"}) == {
        key: REDACTED, "other": "value"
    }


def test_exception_traceback_is_redacted() -> None:
    stream, redactor = _configure()
    redactor.add_secret("hunter2-secret-value")
    log = structlog.get_logger()
    try:
        raise RuntimeError("failed with hunter2-secret-value")
    except RuntimeError:
        log.exception("boom")
    text = stream.getvalue()
    assert "hunter2-secret-value" not in text
    assert "RuntimeError" in text


# --- metrics -------------------------------------------------------------------------------


def test_metrics_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.reconnects_total.inc()
    assert a.registry.get_sample_value("quoter_reconnects_total") == 1.0
    assert b.registry.get_sample_value("quoter_reconnects_total") == 0.0


def test_metrics_units() -> None:
    m = Metrics()
    m.set_exposure_micros(12_345_678)
    m.set_pnl_realized_micros(-480_000)
    m.set_position_centi("KX-1", -250)
    m.set_halted(True)
    m.record_decision("skip", "notional")
    m.record_decision("skip", "notional")
    m.observe_ns(m.confirm_round_trip_seconds, 110_000_000)
    m.observe_ns(m.pipe_lag_seconds, -5)  # clock skew clamps to zero
    reg = m.registry
    assert reg.get_sample_value("quoter_exposure_worst_case_dollars") == pytest.approx(12.345678)
    assert reg.get_sample_value("quoter_pnl_realized_dollars") == pytest.approx(-0.48)
    assert reg.get_sample_value("quoter_positions", {"market": "KX-1"}) == pytest.approx(-2.5)
    assert reg.get_sample_value("quoter_halted") == 1.0
    assert reg.get_sample_value(
        "quoter_rfq_decisions_total", {"decision": "skip", "reason": "notional"}
    ) == 2.0
    assert reg.get_sample_value("quoter_confirm_round_trip_seconds_sum") == pytest.approx(0.11)
    assert reg.get_sample_value("quoter_confirm_round_trip_seconds_bucket", {"le": "0.1"}) == 0.0
    assert reg.get_sample_value("quoter_confirm_round_trip_seconds_bucket", {"le": "0.25"}) == 1.0
    assert reg.get_sample_value("quoter_pipe_lag_seconds_sum") == 0.0


def test_all_named_metrics_are_exported_with_the_quoter_prefix() -> None:
    text = Metrics().render().decode()
    for name in (
        "frame_to_decision_seconds", "decision_to_request_seconds",
        "accept_to_confirm_sent_seconds", "confirm_round_trip_seconds", "pipe_lag_seconds",
        "rfq_decisions_total", "frames_total", "decode_errors_total", "unknown_messages_total",
        "reconnects_total", "rest_errors_total", "positions", "exposure_worst_case_dollars",
        "pnl_realized_dollars", "pnl_marked_dollars", "open_quotes", "rate_bucket_tokens",
        "queue_depth", "halted",
    ):
        metric = "quoter_" + name
        assert f"# TYPE {metric} " in text, name
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert all(t.startswith("quoter_") for t in types), types


# --- the HTTP server -----------------------------------------------------------------------


async def test_metrics_and_healthz_over_a_real_socket() -> None:
    metrics = Metrics()
    metrics.frames_total.labels(type="rfq_created").inc(3)
    state = {"health": HealthStatus(True)}
    app = create_app(metrics, lambda: state["health"])
    async with running(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        assert server.port > 0
        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert '\nquoter_frames_total{type="rfq_created"} 3.0' in r.text
        r = await client.get("/healthz")
        assert (r.status_code, r.json()["status"]) == (200, "ok")
        state["health"] = HealthStatus(False, ("feed_stale", "halted"), {"stale_for_s": 12})
        r = await client.get("/healthz")
        assert r.status_code == 503
        assert r.json() == {
            "status": "unhealthy",
            "reasons": ["feed_stale", "halted"],
            "stale_for_s": 12,
        }
        # No control handlers given: the control API does not exist.
        r = await client.post("/control/halt")
        assert r.status_code == 404


def test_refuses_non_loopback() -> None:
    app = create_app(Metrics(), lambda: HealthStatus(True))
    with pytest.raises(ValueError, match="non-loopback"):
        HttpServer(app, host="0.0.0.0")


def test_control_requires_a_strong_token() -> None:
    from quoter.service.http import ControlHandlers

    handlers = ControlHandlers(
        halt=lambda r: {}, resume=dict, cancel_all=dict, status=dict
    )
    with pytest.raises(ValueError, match="needs a token"):
        create_app(Metrics(), lambda: HealthStatus(True), control=handlers)
    with pytest.raises(ValueError, match="at least 16"):
        create_app(Metrics(), lambda: HealthStatus(True), control=handlers, token="short")


def test_evaluate_health() -> None:
    ms = 1_000_000
    ok = evaluate_health(now_ns=10_000 * ms, last_frame_ns=9_000 * ms, stale_after_ns=5_000 * ms,
                         halted=False)
    assert ok == HealthStatus(True, (), {"halted": False, "feed_age_ms": 1_000})
    stale = evaluate_health(now_ns=10_000 * ms, last_frame_ns=4_000 * ms,
                            stale_after_ns=5_000 * ms, halted=True,
                            extra_reasons=["recorder_dropping"])
    assert not stale.healthy
    assert stale.reasons == ("feed_stale", "halted", "recorder_dropping")
    assert stale.detail["feed_age_ms"] == 6_000
    fresh_start = evaluate_health(now_ns=1, last_frame_ns=None, stale_after_ns=1, halted=False)
    assert fresh_start.reasons == ("no_frames_yet",)


async def _wait_started(server: HttpServer) -> None:
    for _ in range(400):
        if server.started:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("server did not start")


async def test_server_in_a_task_group_stops_on_shutdown() -> None:
    app = create_app(Metrics(), lambda: HealthStatus(True))
    server = HttpServer(app, host="localhost", port=0)
    port = server.bind()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(server.serve(), name="http")
        await _wait_started(server)
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/healthz")
        assert r.status_code == 200
        server.shutdown()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/healthz")


async def test_server_task_cancellation_propagates() -> None:
    server = HttpServer(create_app(Metrics(), lambda: HealthStatus(True)))
    task = asyncio.create_task(server.serve())
    await _wait_started(server)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
