"""The SQLite store: commit policy, idempotency, migrations, and surviving kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from quoter.domain.events import FillReceived
from quoter.domain.types import BookSide, Side
from quoter.errors import FatalError
from quoter.service.store import MIGRATIONS, ConfirmState, Store


def _fill(trade_id: str = "t-1", count_centi: int = 100) -> FillReceived:
    return FillReceived(
        trade_id=trade_id,
        order_id="o-1",
        market_ticker="KXMLB-26JUL08-NYY",
        outcome_side=Side.YES,
        book_side=BookSide.BID,
        yes_price_micros=480_000,
        count_centi=count_centi,
        fee_micros=0,
        is_taker=False,
        ts_recv_ns=1,
        post_position_centi=100,
        ts_ms=1_752_000_000_000,
    )


def test_fresh_store_is_wal_and_at_latest_schema(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        assert store.schema_version() == len(MIGRATIONS)
    db = sqlite3.connect(tmp_path / "q.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_reopen_does_not_rerun_migrations(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        store.set_meta("last_seen_ts_ms", "123")
    with Store(tmp_path / "q.db") as store:
        assert store.get_meta("last_seen_ts_ms") == "123"
        assert store.schema_version() == len(MIGRATIONS)


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "q.db")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(FatalError, match="newer"):
        Store(tmp_path / "q.db")


def test_claim_confirm_only_once_even_after_reopen(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        assert store.claim_confirm("q-1", 10) is True
        assert store.claim_confirm("q-1", 11) is False
        assert store.confirm_state("q-1") is ConfirmState.CLAIMED
        store.mark_confirm("q-1", ConfirmState.SENT, 12)
    with Store(tmp_path / "q.db") as store:
        assert store.claim_confirm("q-1", 20) is False
        assert store.confirm_state("q-1") is ConfirmState.SENT
        assert store.confirm_state("q-2") is None
        assert store.claim_confirm("q-2", 21) is True


def test_mark_confirm_without_claim_raises(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store, pytest.raises(KeyError):
        store.mark_confirm("never", ConfirmState.CONFIRMED, 1)


def test_fills_are_idempotent_by_trade_id(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        assert store.record_fill(_fill("t-1"), 5) is True
        assert store.record_fill(_fill("t-1", count_centi=999), 6) is False
        assert store.record_fill(_fill("t-2", count_centi=250), 7) is True
        rows = store.fills()
    assert [(r.trade_id, r.count_centi) for r in rows] == [("t-1", 100), ("t-2", 250)]
    first = rows[0]
    assert first.yes_price_micros == 480_000
    assert isinstance(first.yes_price_micros, int)
    assert first.outcome_side == "yes"
    assert first.book_side == "bid"
    assert first.is_taker is False
    assert first.exchange_ts_ms == 1_752_000_000_000


def test_decisions_are_batched_until_flush(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db", batch_size=100) as store:
        store.record_decision("r-1", "M", "s1", "skip", "notional", 1, {"notional_micros": 5})
        assert store.pending_rows == 1
        assert store.decisions() == []
        store.flush()
        assert store.pending_rows == 0
        (row,) = store.decisions("r-1")
    assert (row.decision, row.reason, row.detail) == ("skip", "notional", {"notional_micros": 5})


def test_batch_size_triggers_flush(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db", batch_size=3) as store:
        for i in range(3):
            store.record_decision(f"r-{i}", "M", None, "skip", "series", i)
        assert store.pending_rows == 0
        assert len(store.decisions()) == 3


def test_durable_write_also_commits_buffered_rows(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        store.record_decision("r-1", "M", "s1", "quote", "ok", 1)
        store.claim_confirm("q-1", 2)
        assert store.pending_rows == 0
        assert len(store.decisions()) == 1


def test_a_bad_buffered_row_never_blocks_a_confirm_claim(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        store.record_decision("r-1", "M", None, "quote", "ok", 1)
        store.record_decision("r-2", "M", None, "skip", None, 2)  # type: ignore[arg-type]
        store.record_decision("r-3", "M", None, "skip", "series", 3)
        assert store.claim_confirm("q-1", 4) is True
        assert store.dropped_rows == 1
        assert [d.rfq_id for d in store.decisions()] == ["r-1", "r-3"]
        assert store.confirm_state("q-1") is ConfirmState.CLAIMED


def test_quote_lifecycle_and_transitions(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        store.record_quote("q-1", "r-1", "M", 480_000, 470_000, "placed", 100)
        store.record_quote_state("q-1", "accepted", 200, {"accepted_side": "yes"})
        store.record_quote("q-2", "r-2", "M", 10_000, 0, "placed", 150)
        store.record_quote_state("q-2", "cancelled", 160)
        store.flush()
        q = store.quote("q-1")
        assert q is not None
        assert (q.state, q.yes_bid_micros, q.no_bid_micros) == ("accepted", 480_000, 470_000)
        assert (q.created_wall_ns, q.updated_wall_ns) == (100, 200)
        assert store.quote_transitions("q-1") == [
            ("placed", None, 100),
            ("accepted", {"accepted_side": "yes"}, 200),
        ]
        assert [r.quote_id for r in store.open_quotes(frozenset({"cancelled"}))] == ["q-1"]


def test_quote_prices_must_be_integers(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store, pytest.raises(TypeError):
        store.record_quote("q-1", "r-1", "M", 0.48, 0, "placed", 1)  # type: ignore[arg-type]


def test_detail_rejects_nan(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store, pytest.raises(ValueError):
        store.record_decision("r", "M", None, "skip", "x", 1, {"edge": float("nan")})


def test_positions_snapshot_and_halts(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        assert store.latest_positions() is None
        store.save_positions({"M": {"position_centi": 100, "cash_micros": -480_000}}, 1)
        store.save_positions({"M": {"position_centi": 200, "cash_micros": -960_000}}, 2)
        store.record_halt(True, "operator", "control", 3)
        store.record_halt(False, "resumed", "control", 4)
    with Store(tmp_path / "q.db") as store:
        assert store.latest_positions() == (
            {"M": {"position_centi": 200, "cash_micros": -960_000}},
            2,
        )
        assert [(h.halted, h.reason) for h in store.halts()] == [
            (True, "operator"),
            (False, "resumed"),
        ]


_CHILD = textwrap.dedent(
    """
    import sys, time
    from quoter.domain.events import FillReceived
    from quoter.domain.types import BookSide, Side
    from quoter.service.store import Store

    store = Store(sys.argv[1], batch_size=10_000, synchronous=sys.argv[2])
    assert store.claim_confirm("q-crash", 1)
    for i in range(3):
        store.record_fill(FillReceived(
            trade_id=f"t-{i}", order_id="o", market_ticker="M", outcome_side=Side.NO,
            book_side=BookSide.ASK, yes_price_micros=520_000, count_centi=100,
            fee_micros=0, is_taker=False, ts_recv_ns=i), 2)
    store.record_decision("r-unflushed", "M", None, "skip", "series", 3)
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_committed_confirms_and_fills_survive_kill_9(tmp_path: Path, synchronous: str) -> None:
    # NORMAL is the service's default: with WAL a commit is in the WAL file (the OS page cache)
    # before it returns, so a killed process loses nothing committed, fsync or not.
    db_path = tmp_path / "q.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db_path), synchronous],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    with Store(db_path) as store:
        assert store.claim_confirm("q-crash", 9) is False
        assert store.confirm_state("q-crash") is ConfirmState.CLAIMED
        assert [f.trade_id for f in store.fills()] == ["t-0", "t-1", "t-2"]
        assert store.fills()[0].yes_price_micros == 520_000
        # Buffered (unflushed) rows are lost by design: only commits are promised.
        assert store.decisions("r-unflushed") == []


def test_the_database_and_its_wal_are_created_0600(tmp_path: Path) -> None:
    import os
    import stat
    old = os.umask(0o022)  # a typical umask: SQLite alone would create 0644 files
    try:
        with Store(tmp_path / "q.db") as db:
            db.flush()
            for name in ("q.db", "q.db-wal"):
                path = tmp_path / name
                if path.exists():
                    assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        loose = tmp_path / "old.db"
        loose.touch(mode=0o644)
        loose.chmod(0o644)
        Store(loose).close()
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    finally:
        os.umask(old)
