"""Startup and halt safety: orphaned quotes are withdrawn; a halt frees the confirm reserve."""

from __future__ import annotations

from pathlib import Path

from e2e_helpers import BOT, T1, bot_quotes, running_service, sim_env, until

from quoter.sim.exchange import QuoteStatus


async def test_open_quotes_left_by_a_previous_process_are_cancelled_at_startup(
    tmp_path: Path,
) -> None:
    async with sim_env(tmp_path) as env:
        rfq_id = env.rfq(T1)
        # A quote of ours that no running process knows about (its engine state died with it).
        orphan = env.exchange.create_quote(BOT, rfq_id, 400_000, 500_000)
        assert env.exchange.get_quote(orphan).status == QuoteStatus.OPEN
        svc = env.service()
        # Start halted, so nothing but the startup sweep can touch the orphan (a fresh quote on
        # the same RFQ would replace it and hide a missing sweep).
        kill = svc.options.kill_file or svc.settings.db_path.parent / "KILL"
        kill.touch()
        async with running_service(svc):
            await until(lambda: env.exchange.get_quote(orphan).status == QuoteStatus.CANCELLED,
                        what="the orphan cancelled")
            assert bot_quotes(env.exchange, rfq_id)[-1].id == orphan  # no new quote was made


async def test_halt_releases_the_confirm_reserve_to_cancels_and_resume_restores_it(
    tmp_path: Path,
) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            reserve = svc.rest.limiter.write_reserve
            assert reserve > 0
            svc.halt("test")
            # No confirm can leave while halted, so cancels may use every write token.
            assert svc.rest.limiter.write_reserve == 0
            svc.resume()
            assert svc.rest.limiter.write_reserve == reserve
