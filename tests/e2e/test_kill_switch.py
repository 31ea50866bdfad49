"""The kill switch: service.halt(), POST /control/halt and the KILL file stop quoting at once."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from e2e_helpers import (
    REQ,
    T1,
    T2,
    T3,
    SimEnv,
    bot_quotes,
    confirm_posts,
    running_service,
    sim_env,
    until,
)

from quoter.domain.types import Side
from quoter.errors import ControlRefusedError
from quoter.service.app import Service
from quoter.service.environment import read_token
from quoter.sim.app import RateLimits
from quoter.sim.config import FaultConfig
from quoter.sim.exchange import QuoteStatus

QUOTE_POSTS = ("POST", "/communications/quotes")


async def _quoted(env: SimEnv, svc: Service, ticker: str) -> tuple[str, str]:
    rfq_id = env.rfq(ticker)
    await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="the bot's quote")
    [quote] = bot_quotes(env.exchange, rfq_id)
    await until(lambda: quote.id in svc.runtime.open_quotes, what="QuotePlaced")
    return rfq_id, quote.id


async def _assert_nothing_left_after_halt(
    env: SimEnv, svc: Service, *, accepted: str, open_quote: str, late_rfq: str, posts: int,
) -> None:
    """After a halt: the accept is seen but not confirmed, no quote is sent, quotes are pulled."""
    await until(lambda: svc.hooks.counts["accepted"] == 1, what="the accept notice")
    await until(lambda: svc.hooks.counts["rfqs_seen"] == 3, what="the late RFQ")
    await until(lambda: env.exchange.get_quote(open_quote).status == QuoteStatus.CANCELLED,
                what="the open quote cancelled")
    # Every event so far stepped and every request it caused sent and answered: a wrongly
    # released confirm or quote would have reached the simulator by now.
    await svc.runtime.drained()
    assert confirm_posts(env.faults, accepted) == 0
    assert env.exchange.get_quote(accepted).status == QuoteStatus.ACCEPTED
    assert bot_quotes(env.exchange, late_rfq) == []
    assert env.faults.requests[(QUOTE_POSTS[0], "/trade-api/v2" + QUOTE_POSTS[1])] == posts
    assert svc.engine.halted
    assert svc.runtime.stats.confirms_sent == 0


async def test_halt_stops_confirms_and_quotes_within_one_loop_turn(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            rfq1, q1 = await _quoted(env, svc, T1)
            _, q2 = await _quoted(env, svc, T2)
            posts = env.faults.requests[("POST", "/trade-api/v2/communications/quotes")]
            assert posts == 2
            # In one synchronous block: the accept and a new RFQ are emitted, then we halt.
            # Neither frame can have reached the service yet.
            env.exchange.accept_quote(REQ, rfq1, q1, Side.YES)
            late = env.rfq(T3)
            result = svc.halt("test")
            await asyncio.sleep(0)
            assert result == {"halted": True, "reason": "test"}
            assert (svc.runtime.halted, svc.runtime.halt_reason) == (True, "test")
            await _assert_nothing_left_after_halt(env, svc, accepted=q1, open_quote=q2,
                                                  late_rfq=late, posts=posts)


async def test_control_endpoint_halts_with_the_token(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            rfq1, q1 = await _quoted(env, svc, T1)
            _, q2 = await _quoted(env, svc, T2)
            posts = env.faults.requests[("POST", "/trade-api/v2/communications/quotes")]
            env.faults.injector.apply(FaultConfig(accept_notice_delay_ms=300))
            env.exchange.accept_quote(REQ, rfq1, q1, Side.NO)  # its notice is slow
            assert svc.http is not None
            token = read_token(env.workdir / "control.token").get_secret_value()
            async with httpx.AsyncClient(base_url=svc.http.url) as client:
                denied = await client.post("/control/halt", json={"reason": "x"})
                assert denied.status_code == 401
                assert svc.status()["halted"] is False
                response = await client.post(
                    "/control/halt", json={"reason": "operator says stop"},
                    headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
            assert response.json() == {"halted": True, "reason": "operator says stop"}
            assert svc.status()["halted"] is True
            # The late RFQ only after the halt: sent earlier, its frame overtakes the slow
            # accept notice, the sequence gap resyncs over REST, and the accept found there
            # is (rightly) confirmed whenever that REST round trip beats the two control
            # requests above — a race the test must not depend on.
            late = env.rfq(T3)
            await _assert_nothing_left_after_halt(env, svc, accepted=q1, open_quote=q2,
                                                  late_rfq=late, posts=posts)


async def test_kill_file_halts(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            _, q1 = await _quoted(env, svc, T1)
            kill = env.workdir / "KILL"
            kill.touch()
            await until(lambda: svc.runtime.halted, timeout_s=2.0, what="the KILL file halt")
            assert svc.runtime.halt_reason == f"kill_file {kill}"
            await until(lambda: env.exchange.get_quote(q1).status == QuoteStatus.CANCELLED,
                        what="the open quote cancelled")
            late = env.rfq(T2)
            await until(lambda: svc.hooks.counts["rfqs_seen"] == 2, what="the late RFQ")
            await svc.runtime.drained()
            assert bot_quotes(env.exchange, late) == []
            # While the file is there, resume is refused (the watcher would halt again).
            with pytest.raises(ControlRefusedError, match="remove it first"):
                svc.resume()
            assert svc.runtime.halted
            # Remove the file and resume: quoting starts again (and stays on past a poll).
            kill.unlink()
            assert svc.resume() == {"halted": False}
            await asyncio.sleep(0.5)
            assert not svc.runtime.halted
            again = env.rfq(T3)
            await until(lambda: bool(bot_quotes(env.exchange, again)), what="quoting resumed")


async def test_quotes_held_by_the_rate_limiter_do_not_leave_after_a_halt(
    tmp_path: Path,
) -> None:
    # A tiny write budget: after the first few quotes, the rest wait in the client's limiter
    # (1 token per second, quotes cost 2, 20 tokens reserved for confirms).
    limits = RateLimits(write_capacity=30, write_refill_per_s=1)
    async with sim_env(tmp_path, rate_limits=limits) as env:
        requesters = [REQ, "req2", "req3"]
        for user in requesters[1:]:
            env.exchange.register_account(user, balance_micros=env.start_balance_micros)
        svc = env.service()
        async with running_service(svc):
            rfqs = [env.exchange.create_rfq(user, t, contracts_centi=100)
                    for user in requesters for t in (T1, T2, T3)]
            # The budget above the confirm reserve is spent: the next quotes wait for tokens.
            await until(lambda: env.faults.count(*QUOTE_POSTS) >= 1
                        and svc.rest.limiter.levels()["write_tokens"] < 22,
                        what="the write budget spent")
            # The remaining quotes reach the limiter and wait there: the next one is due ~2 s
            # after the budget ran out, so one that leaks arrives well after the halt (a
            # request already past the gate lands within milliseconds).
            await asyncio.sleep(0.2)
            svc.halt("test")
            halted_ns = env.clock.now_ns()
            await until(lambda: svc.hooks.counts["rfqs_seen"] == len(rfqs), what="all RFQs")
            await asyncio.sleep(2.5)  # > the limiter's wait for the next quote
            quoted = [rfq for rfq in rfqs if bot_quotes(env.exchange, rfq)]
            assert len(quoted) < len(rfqs)  # some quotes were held back by the limiter...
            late = [(t - halted_ns) / 1e6 for t, method, path in env.faults.log
                    if (method, path) == ("POST", "/trade-api/v2" + QUOTE_POSTS[1])
                    and t > halted_ns + 500_000_000]
            assert late == [], f"quotes arrived {late} ms after the halt"  # ...and never left
            # The held quotes were refused at the socket (HaltGate), not sent.
            assert svc.runtime.stats.quotes_rejected >= 1
            assert svc.runtime.stats.quotes_sent == len(quoted)


async def test_kill_file_present_at_startup_means_no_quote_ever(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        rfq_id = env.rfq(T1)  # open before the service starts: the startup backfill finds it
        kill = env.workdir / "KILL"
        kill.touch()
        svc = env.service()
        async with running_service(svc):
            assert (svc.runtime.halted, svc.runtime.halt_reason) == (True, f"kill_file {kill}")
            await until(lambda: svc.hooks.counts["rfqs_seen"] == 1, what="the open RFQ")
            late = env.rfq(T2)
            await until(lambda: svc.hooks.counts["rfqs_seen"] == 2, what="a new RFQ")
            await svc.runtime.drained()
            assert bot_quotes(env.exchange, rfq_id) == []
            assert bot_quotes(env.exchange, late) == []
            assert env.faults.count(*QUOTE_POSTS) == 0


async def test_cli_resume_is_refused_while_the_kill_file_exists(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            kill = env.workdir / "KILL"
            kill.touch()
            await until(lambda: svc.runtime.halted, timeout_s=2.0, what="the KILL file halt")
            assert svc.http is not None
            port = httpx.URL(svc.http.url).port
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "quoter.cli", "resume", "--port", str(port),
                "--token-file", str(env.workdir / "control.token"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={k: v for k, v in os.environ.items() if not k.startswith("QUOTER_")},
            )
            out, err = await proc.communicate()
            assert proc.returncode == 1
            assert out == b""
            [line] = err.decode().splitlines()
            assert "KILL file" in line
            assert "remove it first" in line
            assert svc.runtime.halted


async def _cli(svc: Service, env: SimEnv, *args: str) -> tuple[int, str, str]:
    assert svc.http is not None
    port = httpx.URL(svc.http.url).port
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quoter.cli", *args, "--port", str(port),
        "--token-file", str(env.workdir / "control.token"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("QUOTER_")}
        | {"COLUMNS": "140"},
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_status_is_for_people_and_json_for_machines(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            _, quote_id = await _quoted(env, svc, T1)
            code, text, err = await _cli(svc, env, "status")
            assert (code, err) == (0, "")
            assert "quoter  mode paper  sim http://127.0.0.1:" in text
            assert "QUOTING" in text
            assert "open quotes (1)" in text
            quotes_part = text.split("open quotes (1)", 1)[1].split("recent decisions", 1)[0]
            assert T1 in quotes_part
            assert "0.4800" in quotes_part
            code, doc, _ = await _cli(svc, env, "status", "--json")
            assert code == 0
            data = json.loads(doc)
            assert data["open_quotes"][0]["quote_id"] == quote_id
            assert data["venue"].startswith("sim http://127.0.0.1:")
