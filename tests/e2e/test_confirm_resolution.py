"""Issue 12 item 11: confirms a killed process left ``sent`` are resolved at startup from the
exchange (the quote read back), never confirmed again."""

from __future__ import annotations

from pathlib import Path

from e2e_helpers import BOT, REQ, T1, T2, T3, confirm_posts, running_service, sim_env

from quoter.domain.types import Side
from quoter.service.store import ConfirmState, Store


async def test_startup_resolves_confirms_left_sent_from_the_exchange(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        ex = env.exchange
        # What the dead process left on the exchange: one confirm landed (and its quote row
        # reached the store), one quote was cancelled before the confirm arrived, and one
        # confirm landed whose quote row was lost with the process's buffered writes.
        landed_rfq = env.rfq(T1)
        landed = ex.create_quote(BOT, landed_rfq, 480_000, 480_000)
        ex.accept_quote(REQ, landed_rfq, landed, Side.YES)
        ex.confirm_quote(BOT, landed, landed_rfq)
        gone_rfq = env.rfq(T2)
        gone = ex.create_quote(BOT, gone_rfq, 480_000, 480_000)
        ex.delete_quote(BOT, gone, gone_rfq)
        rowless_rfq = env.rfq(T3)
        rowless = ex.create_quote(BOT, rowless_rfq, 480_000, 480_000)
        ex.accept_quote(REQ, rowless_rfq, rowless, Side.NO)
        ex.confirm_quote(BOT, rowless, rowless_rfq)
        wall = env.clock.wall_ns()
        with Store(env.workdir / "quoter.db") as db:
            for qid, rfq_id in ((landed, landed_rfq), (gone, gone_rfq)):
                db.record_quote(qid, rfq_id, T1, 480_000, 480_000, "open", wall)
            db.flush()
            for qid in (landed, gone, rowless):
                assert db.claim_confirm(qid, wall)
                db.mark_confirm(qid, ConfirmState.SENT, wall)

        svc = env.service()
        async with running_service(svc):
            pass
        assert svc.runtime.stats.confirms_sent == 0
        for qid in (landed, gone, rowless):
            assert confirm_posts(env.faults, qid) == 0

    with Store(env.workdir / "quoter.db") as db:
        assert db.confirm_state(landed) == ConfirmState.CONFIRMED
        assert db.confirm_state(rowless) == ConfirmState.CONFIRMED
        assert db.confirm_state(gone) == ConfirmState.FAILED
        assert db.unresolved_confirms() == []
        for qid in (landed, gone, rowless):
            assert not db.claim_confirm(qid, 0)  # the claim stays: never confirmed twice
