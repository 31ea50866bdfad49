"""kill -9 mid-run: a new service on the same database resumes its positions, never re-confirms.

The first service is a real ``quoter run --mode paper`` subprocess against a simulator served by
this test process, so it can be SIGKILLed right after a confirm; the second runs in-process on
the same SQLite file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from e2e_helpers import (
    BOT,
    REQ,
    T1,
    T2,
    T3,
    SimEnv,
    bot_quotes,
    confirm_posts,
    running_service,
    sim_env,
    spawn_service,
    stored_fills,
    until,
)
from prometheus_client.parser import text_string_to_metric_families

from quoter.domain.types import Side
from quoter.recording.format import (
    CONFIRM_CLAIM_KIND,
    EventLine,
    read_recording,
    recording_files,
)
from quoter.service.app import Service
from quoter.service.demo import compare_with_exchange
from quoter.service.store import ConfirmState, Store
from quoter.sim import wire
from quoter.sim.exchange import OutMessage, QuoteStatus


def _frames_of_type(text: str, msg_type: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "quoter_frames_total" and s.labels.get("type") == msg_type:
                return s.value
    return 0.0


def _ignored(svc: Service, rfq_id: str) -> int:
    """The engine's "ignored: unknown_quote" decisions on this RFQ so far."""
    return sum(d.rfq_id == rfq_id and (d.decision, d.reason) == ("ignored", "unknown_quote")
               for d in svc.hooks.recent_decisions)


async def _accepted_by_the_child(env: SimEnv, ticker: str) -> tuple[str, str]:
    rfq_id = env.rfq(ticker)
    await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), timeout_s=15.0,
                what="the child's quote")
    [quote] = bot_quotes(env.exchange, rfq_id)
    env.exchange.accept_quote(REQ, rfq_id, quote.id, Side.YES)
    try:
        await until(lambda: env.exchange.get_quote(quote.id).status != QuoteStatus.ACCEPTED,
                    what="the child's confirm")
    except AssertionError as exc:  # the child's own account of why is in its log
        log = (env.workdir / "child.log").read_text(errors="replace").splitlines()
        raise AssertionError(f"{exc}; the child's log ends:\n" + "\n".join(log[-60:])) from None
    return rfq_id, quote.id


async def test_kill_9_after_a_confirm_then_restart_on_the_same_db(tmp_path: Path) -> None:
    # The child runs with the default store (WAL, synchronous=NORMAL: no fsync per claim);
    # never-twice must hold without the fsync.
    # A long execution timer: the second trade executes while the child is dead.
    async with sim_env(tmp_path, execution_timer_ms=1_500) as env:
        db_path = env.workdir / "quoter.db"
        proc = spawn_service(env, env.workdir / "child.log")
        try:
            # Connected = it listed our quotes (startup backfill) over REST.
            await until(lambda: proc.poll() is not None or env.faults.count(
                "GET", "/communications/quotes") >= 1, timeout_s=20.0, what="the child to start")
            assert proc.poll() is None, (env.workdir / "child.log").read_text()

            _, q1 = await _accepted_by_the_child(env, T1)
            await until(lambda: stored_fills(db_path) == 1, timeout_s=10.0,
                        what="the child to store its fill")
            # A quote left resting by the dead process (no shutdown will cancel it).
            rfq3 = env.rfq(T3)
            await until(lambda: bool(bot_quotes(env.exchange, rfq3)), what="a resting quote")
            [orphan] = bot_quotes(env.exchange, rfq3)
            rfq2, q2 = await _accepted_by_the_child(env, T2)
            assert env.exchange.get_quote(q2).status == QuoteStatus.CONFIRMED
            proc.kill()  # SIGKILL right after the confirm: no shutdown, no flush
            await asyncio.to_thread(proc.wait, 10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == -9
        # Item 11: the killed child's recording has its header and both confirm claims
        # (synced before each confirm left), though its buffer was never flushed.
        claimed = [line.payload["quote_id"]
                   for path in recording_files(env.workdir / "recordings")
                   for line in read_recording(path)
                   if isinstance(line, EventLine) and line.kind == CONFIRM_CLAIM_KIND]
        assert claimed == [q1, q2]
        await until(lambda: env.exchange.get_quote(q2).status == QuoteStatus.EXECUTED,
                    what="the orphaned confirm to execute")
        assert env.positions() == {T1: 100, T2: 100}

        svc = env.service()
        # Before any network: positions come from the store, as the dead process booked them.
        assert svc.positions_centi() == {T1: 100}
        async with running_service(svc):
            # The connect-time reconciliation books the fill the dead process never saw.
            await until(lambda: svc.positions_centi() == {T1: 100, T2: 100},
                        what="the missed fill booked")
            assert compare_with_exchange(svc, env.exchange, BOT, env.start_balance_micros) == []
            assert not svc.runtime.halted
            # The still-open RFQ is quoted afresh; the new quote replaces the orphan (§3.1).
            await until(lambda: len(bot_quotes(env.exchange, rfq3)) == 2, what="a fresh quote")
            fresh = bot_quotes(env.exchange, rfq3)[-1]
            assert env.exchange.get_quote(orphan.id).status == QuoteStatus.CANCELLED
            await until(lambda: fresh.id in svc.runtime.open_quotes, what="the fresh quote")

            # An accept notice for the quote the dead process confirmed reaches the new one.
            frames_before = _frames_of_type(svc.metrics.render().decode(), "quote_accepted")
            ignored_before = _ignored(svc, rfq2)
            q = env.exchange.get_quote(q2)
            rfq = env.exchange.get_rfq(rfq2)
            msg = wire.quote_accepted_msg(q, env.exchange.comm_id(BOT),
                                          env.exchange.comm_id(REQ), rfq)
            env.sim.server.on_out(OutMessage("communications", "quote_accepted", msg, T2,
                                             frozenset({BOT})))
            await until(lambda: _frames_of_type(svc.metrics.render().decode(), "quote_accepted")
                        == frames_before + 1, what="the accept notice")
            await until(lambda: _ignored(svc, rfq2) == ignored_before + 1,
                        what="the engine to ignore it")
            await svc.runtime.drained()  # a wrong confirm would have reached the simulator
            assert svc.runtime.stats.confirms_sent == 0
            for quote_id in (q1, q2):
                assert confirm_posts(env.faults, quote_id) == 1
        assert svc.positions_centi() == {T1: 100, T2: 100}
        # An orderly stop cancels the quote the new process placed.
        assert env.exchange.get_quote(fresh.id).status == QuoteStatus.CANCELLED

    with Store(db_path) as db:
        assert db.confirm_state(q1) == ConfirmState.CONFIRMED
        # The child was killed between sending the confirm and booking its answer.
        assert db.confirm_state(q2) in (ConfirmState.SENT, ConfirmState.CONFIRMED)
        for quote_id in (q1, q2):
            assert db.claim_confirm(quote_id, 0) is False
        # On a loaded machine the accept can beat the child's create response: it is then
        # held until the quote id is known (a "held" decision), and confirmed the same way.
        assert [(d.decision, d.reason) for d in db.decisions(rfq2)
                if d.decision != "held"][:2] == [("quoted", "quoted"), ("confirmed", "edge_ok")]
        assert len(db.fills()) == 2


async def test_the_service_store_uses_the_configured_synchronous_level(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        assert env.settings().store_synchronous == "NORMAL"
        for level in ("NORMAL", "FULL"):
            svc = env.service(env.settings(store_synchronous=level,
                                           db_path=env.workdir / f"{level}.db"))
            try:
                assert svc.store.synchronous == level
            finally:
                svc.store.close()


async def test_orderly_restarts_restore_positions_once(tmp_path: Path) -> None:
    """A positions snapshot plus the stored fills it already contains never double-book."""
    async with sim_env(tmp_path) as env:
        first = env.service()
        async with running_service(first):
            rfq_id = env.rfq(T1, contracts_centi=250)
            await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="the bot's quote")
            [quote] = bot_quotes(env.exchange, rfq_id)
            await until(lambda: quote.id in first.runtime.open_quotes, what="QuotePlaced")
            env.exchange.accept_quote(REQ, rfq_id, quote.id, Side.NO)
            await until(lambda: env.exchange.get_quote(quote.id).status == QuoteStatus.EXECUTED,
                        what="execution")
            await until(lambda: first.positions_centi() == {T1: -250}, what="the fill booked")
        # Each orderly stop saves a snapshot that includes the fill; restart twice.
        await _restart_with(env, {T1: -250})
        await _restart_with(env, {T1: -250})


async def _restart_with(env: SimEnv, positions: dict[str, int]) -> None:
    svc = env.service()
    assert svc.positions_centi() == positions
    async with running_service(svc):
        await until(lambda: svc.notices.reconciles >= 1, what="the connect-time reconciliation")
        assert svc.positions_centi() == positions
        assert not svc.runtime.halted
        assert compare_with_exchange(svc, env.exchange, BOT, env.start_balance_micros) == []


async def test_sigterm_stops_the_cli_service_in_order(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        proc = spawn_service(env, env.workdir / "child.log")
        try:
            await until(lambda: proc.poll() is not None or env.faults.count(
                "GET", "/communications/quotes") >= 1, timeout_s=20.0, what="the child to start")
            rfq_id = env.rfq(T1)
            await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), timeout_s=15.0,
                        what="the child's quote")
            [quote] = bot_quotes(env.exchange, rfq_id)
            proc.terminate()
            await asyncio.to_thread(proc.wait, 20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        log = (env.workdir / "child.log").read_text()
        assert proc.returncode == 0, log
        # Shutdown order: stop quoting, cancel open quotes, flush, close.
        assert env.exchange.get_quote(quote.id).status == QuoteStatus.CANCELLED
        assert '"shutdown_quotes_cancelled"' in log
        assert '"service_stopped"' in log
    with Store(env.workdir / "quoter.db") as db:
        row = db.quote(quote.id)
        assert row is not None
        assert row.state == "cancelled"
