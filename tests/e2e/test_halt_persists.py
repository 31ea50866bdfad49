"""A halted bot stays halted across restarts until an operator resumes (issue: daily loss stop
and reconciliation halts were forgotten by the next process)."""

from __future__ import annotations

from pathlib import Path

from e2e_helpers import T1, bot_quotes, running_service, sim_env, until

from quoter.service.store import Store


async def test_an_operator_halt_survives_a_restart_until_resumed(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        first = env.service()
        async with running_service(first):
            first.halt("operator test")
        second = env.service()
        async with running_service(second):
            assert (second.runtime.halted, second.runtime.halt_reason) == (True, "operator test")
            assert second.engine.halted
            assert second.snapshot().halted
            second.resume()
        third = env.service()
        async with running_service(third):
            assert not third.runtime.halted
            rfq_id = env.rfq(T1)
            await until(lambda: bool(bot_quotes(env.exchange, rfq_id)), what="a quote again")


async def test_a_kill_file_halt_lasts_as_long_as_the_file(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        kill = env.workdir / "KILL"
        kill.touch()
        first = env.service()
        async with running_service(first):
            assert first.runtime.halted
        kill.unlink()
        second = env.service()
        async with running_service(second):
            assert not second.runtime.halted


async def test_a_fatal_error_halt_ends_with_its_process(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        with Store(env.workdir / "quoter.db") as db:  # what a crashed run leaves behind
            db.record_halt(True, "fatal: exchange closed", "fatal", 1)
        svc = env.service()
        async with running_service(svc):
            assert not svc.runtime.halted
