"""SQLite persistence: decisions, quotes, confirms, fills, positions, halts, metadata.

One file, WAL journal by default, stdlib ``sqlite3``. The API is synchronous and meant to be
called from the event loop, so writes are cheap:

Commit policy
    * **Durable writes commit before they return**: ``claim_confirm``, ``mark_confirm``,
      ``record_fill``, ``save_positions``, ``record_halt`` and ``set_meta``. A confirm claim
      is how we never confirm a quote twice, even across a crash and restart, so it must be on
      disk before the confirm request leaves; a fill is the authoritative source of positions.
    * **Batched writes** (``record_decision``, ``record_quote``, ``record_quote_state``) are
      buffered in memory and written in one transaction by ``flush()``, automatically when
      ``batch_size`` rows are pending, and together with the next durable write (which keeps
      the on-disk order of events). The runtime calls ``flush()`` on a timer and at shutdown;
      a crash loses at most the rows buffered since the last flush, never a commit.
    * ``synchronous`` is the caller's choice (``FULL`` when built directly; the service uses
      ``Settings.store_synchronous``, ``NORMAL`` by default). With WAL, ``NORMAL`` writes each
      commit to the WAL file before it returns, so it survives ``kill -9`` and any process
      crash; only an OS crash or power cut may lose the last commits. ``FULL`` also fsyncs
      every commit, which costs the confirm path an fsync (docs/performance.md).

Timestamps are wall-clock Unix nanoseconds (``*_wall_ns``; pass ``Clock.wall_ns()``): engine
time is monotonic and means nothing after a restart. Money is integer micro-dollars and
quantities integer hundredths of a contract, as everywhere.

The schema is versioned with ``PRAGMA user_version`` and the ``MIGRATIONS`` list: migration
``i`` takes the schema from version ``i`` to ``i + 1``; append, never edit, a migration.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import structlog

from quoter.domain.events import FillReceived
from quoter.errors import FatalError

__all__ = [
    "MIGRATIONS",
    "ConfirmState",
    "DecisionRow",
    "FillRow",
    "HaltRow",
    "QuoteRow",
    "Store",
]

MIGRATIONS: Final[tuple[str, ...]] = (
    # v0 -> v1: the initial schema.
    """
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        rfq_id TEXT NOT NULL,
        market_ticker TEXT NOT NULL,
        strategy TEXT,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT,
        ts_wall_ns INTEGER NOT NULL
    );
    CREATE INDEX decisions_rfq ON decisions (rfq_id);
    CREATE TABLE quotes (
        quote_id TEXT PRIMARY KEY,
        rfq_id TEXT NOT NULL,
        market_ticker TEXT NOT NULL,
        yes_bid_micros INTEGER NOT NULL,
        no_bid_micros INTEGER NOT NULL,
        state TEXT NOT NULL,
        created_wall_ns INTEGER NOT NULL,
        updated_wall_ns INTEGER NOT NULL
    );
    CREATE INDEX quotes_rfq ON quotes (rfq_id);
    CREATE TABLE quote_transitions (
        id INTEGER PRIMARY KEY,
        quote_id TEXT NOT NULL,
        state TEXT NOT NULL,
        detail TEXT,
        ts_wall_ns INTEGER NOT NULL
    );
    CREATE INDEX quote_transitions_quote ON quote_transitions (quote_id);
    CREATE TABLE confirms (
        quote_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        claimed_wall_ns INTEGER NOT NULL,
        updated_wall_ns INTEGER NOT NULL,
        detail TEXT
    );
    CREATE TABLE fills (
        trade_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        client_order_id TEXT NOT NULL,
        market_ticker TEXT NOT NULL,
        outcome_side TEXT NOT NULL,
        book_side TEXT NOT NULL,
        yes_price_micros INTEGER NOT NULL,
        count_centi INTEGER NOT NULL,
        fee_micros INTEGER NOT NULL,
        is_taker INTEGER NOT NULL,
        post_position_centi INTEGER,
        exchange_ts_ms INTEGER,
        recv_wall_ns INTEGER NOT NULL
    );
    CREATE TABLE position_snapshots (
        id INTEGER PRIMARY KEY,
        snapshot TEXT NOT NULL,
        ts_wall_ns INTEGER NOT NULL
    );
    CREATE TABLE halts (
        id INTEGER PRIMARY KEY,
        halted INTEGER NOT NULL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        ts_wall_ns INTEGER NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # v1 -> v2: per-requester statistics (``quoter.engine.requesters``), one row each.
    """
    CREATE TABLE requester_stats (
        creator_id TEXT PRIMARY KEY,
        stats TEXT NOT NULL,
        ts_wall_ns INTEGER NOT NULL
    );
    """,
    # v2 -> v3: whether a fill's fee is known (a legacy fill frame carries none; its REST copy
    # brings it later).
    """
    ALTER TABLE fills ADD COLUMN fee_known INTEGER NOT NULL DEFAULT 1;
    """,
)

_SYNC_MODES: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
# Errors that belong to one row (bad value, constraint); anything else (locked, I/O) is not.
_ROW_ERRORS: Final = (
    sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.DataError,
)
_log = structlog.get_logger("quoter.service.store")


class ConfirmState(StrEnum):
    """Where a confirm stands; any row at all means "never send another confirm"."""

    CLAIMED = "claimed"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One stored RFQ decision."""

    rfq_id: str
    market_ticker: str
    strategy: str | None
    decision: str
    reason: str
    detail: Any
    ts_wall_ns: int


@dataclass(frozen=True, slots=True)
class QuoteRow:
    """One stored quote and its latest state."""

    quote_id: str
    rfq_id: str
    market_ticker: str
    yes_bid_micros: int
    no_bid_micros: int
    state: str
    created_wall_ns: int
    updated_wall_ns: int


@dataclass(frozen=True, slots=True)
class FillRow:
    """One stored fill."""

    trade_id: str
    order_id: str
    client_order_id: str
    market_ticker: str
    outcome_side: str
    book_side: str
    yes_price_micros: int
    count_centi: int
    fee_micros: int
    is_taker: bool
    post_position_centi: int | None
    exchange_ts_ms: int | None
    recv_wall_ns: int
    fee_known: bool = True


@dataclass(frozen=True, slots=True)
class HaltRow:
    """One halt or resume event."""

    halted: bool
    reason: str
    source: str
    ts_wall_ns: int


def _json(value: Any) -> str | None:
    """Encode a detail payload as compact JSON; money inside must already be integers."""
    if value is None:
        return None
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text)


_Pending = tuple[str, tuple[Any, ...]]


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use the umask, often 0644).

    SQLite gives the ``-wal`` and ``-shm`` files the database file's permissions, so they
    are private too. An existing file is left as it is, except that group/other access is
    removed: it holds every decision, quote, fill and position.
    """
    if str(path) == ":memory:":
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(mode & 0o700)


class Store:
    """The service's SQLite store (see the module docstring for the commit policy)."""

    def __init__(
        self,
        path: Path | str,
        *,
        wal: bool = True,
        synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL",
        batch_size: int = 256,
    ) -> None:
        if synchronous not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {_SYNC_MODES}, got {synchronous!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.path = Path(path)
        self._batch_size = batch_size
        self._pending: list[_Pending] = []
        #: Buffered rows that could not be written (bad values) and were dropped.
        self.dropped_rows = 0
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a commit is exactly where
        # the code says it is.
        _create_private(self.path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        self._db.execute("PRAGMA busy_timeout = 5000")
        if wal:
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise FatalError(f"could not enable WAL on {self.path} (got {mode})")
        self._db.execute(f"PRAGMA synchronous = {synchronous}")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    # --- lifecycle ----------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > len(MIGRATIONS):
            raise FatalError(
                f"store {self.path} has schema v{version}, newer than this quoter "
                f"(v{len(MIGRATIONS)}): refusing to open it"
            )
        for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # The version bump is in the migration's own transaction, so a crash mid-migration
            # leaves the old version and the migration is simply re-run.
            try:
                self._db.executescript(
                    f"BEGIN;\n{script}\nPRAGMA user_version = {target};\nCOMMIT;"
                )
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @property
    def synchronous(self) -> str:
        """The connection's SQLite ``synchronous`` level (``OFF``/``NORMAL``/``FULL``/``EXTRA``)."""
        level = int(self._db.execute("PRAGMA synchronous").fetchone()[0])
        return _SYNC_MODES[level]

    def schema_version(self) -> int:
        """Return the schema version stored in the database file."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def flush(self) -> None:
        """Write every buffered row in one transaction."""
        if self._pending:
            self._commit(())

    def close(self) -> None:
        """Flush and close the database."""
        try:
            self.flush()
        finally:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pending_rows(self) -> int:
        """Number of buffered rows not yet written."""
        return len(self._pending)

    def _buffer(self, sql: str, params: tuple[Any, ...]) -> None:
        self._pending.append((sql, params))
        if len(self._pending) >= self._batch_size:
            self.flush()

    def _commit(self, statements: tuple[_Pending, ...]) -> list[sqlite3.Cursor]:
        """Write the buffered rows, then ``statements``, in one committed transaction."""
        pending, self._pending = self._pending, []
        cursors: list[sqlite3.Cursor] = []
        bad: set[int] = set()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for i, (sql, params) in enumerate(pending):
                try:
                    self._db.execute(sql, params)
                except _ROW_ERRORS as exc:
                    # One bad buffered row must not block a confirm claim or a fill: SQLite
                    # undoes only the failing statement, so drop it, say so, and go on.
                    self.dropped_rows += 1
                    bad.add(i)
                    _log.error("store_row_dropped", sql=sql.split("(")[0].strip(),
                               error=type(exc).__name__)
            cursors.extend(self._db.execute(sql, params) for sql, params in statements)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            # Keep the buffered rows for the next attempt; the failed statements are the
            # caller's to retry (they raised, so the caller knows nothing was committed).
            kept = [row for i, row in enumerate(pending) if i not in bad]
            self._pending = kept + self._pending
            raise
        return cursors

    # --- batched writes -----------------------------------------------------------------

    def record_decision(
        self,
        rfq_id: str,
        market_ticker: str,
        strategy: str | None,
        decision: str,
        reason: str,
        wall_ns: int,
        detail: Any = None,
    ) -> None:
        """Buffer one RFQ decision (quote / skip / ...) with its reason code."""
        self._buffer(
            "INSERT INTO decisions (rfq_id, market_ticker, strategy, decision, reason, detail,"
            " ts_wall_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rfq_id, market_ticker, strategy, decision, reason, _json(detail), wall_ns),
        )

    def record_quote(
        self,
        quote_id: str,
        rfq_id: str,
        market_ticker: str,
        yes_bid_micros: int,
        no_bid_micros: int,
        state: str,
        wall_ns: int,
    ) -> None:
        """Buffer a new quote (or a replacement of the same id) and its first transition."""
        for name, value in (("yes_bid_micros", yes_bid_micros), ("no_bid_micros", no_bid_micros)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be integer micro-dollars, got {value!r}")
        self._buffer(
            "INSERT INTO quotes (quote_id, rfq_id, market_ticker, yes_bid_micros, no_bid_micros,"
            " state, created_wall_ns, updated_wall_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (quote_id) DO UPDATE SET yes_bid_micros = excluded.yes_bid_micros,"
            " no_bid_micros = excluded.no_bid_micros, state = excluded.state,"
            " updated_wall_ns = excluded.updated_wall_ns",
            (quote_id, rfq_id, market_ticker, yes_bid_micros, no_bid_micros, state, wall_ns,
             wall_ns),
        )
        self._buffer(
            "INSERT INTO quote_transitions (quote_id, state, detail, ts_wall_ns)"
            " VALUES (?, ?, NULL, ?)",
            (quote_id, state, wall_ns),
        )

    def record_quote_state(
        self, quote_id: str, state: str, wall_ns: int, detail: Any = None
    ) -> None:
        """Buffer a quote state transition (accepted, confirmed, cancelled, executed...)."""
        self._buffer(
            "UPDATE quotes SET state = ?, updated_wall_ns = ? WHERE quote_id = ?",
            (state, wall_ns, quote_id),
        )
        self._buffer(
            "INSERT INTO quote_transitions (quote_id, state, detail, ts_wall_ns)"
            " VALUES (?, ?, ?, ?)",
            (quote_id, state, _json(detail), wall_ns),
        )

    # --- durable writes -----------------------------------------------------------------

    def claim_confirm(self, quote_id: str, wall_ns: int) -> bool:
        """Claim the right to confirm ``quote_id``; False if it was ever claimed before.

        Committed before returning: call it before sending the confirm request, and send
        only on True. A claim is never released: a confirm whose outcome is unknown must be
        resolved by reading the quote back from the exchange, not by confirming again.
        """
        (cur,) = self._commit(
            (
                (
                    "INSERT INTO confirms (quote_id, state, claimed_wall_ns, updated_wall_ns)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (quote_id) DO NOTHING",
                    (quote_id, ConfirmState.CLAIMED.value, wall_ns, wall_ns),
                ),
            )
        )
        return cur.rowcount == 1

    def mark_confirm(
        self, quote_id: str, state: ConfirmState, wall_ns: int, detail: Any = None
    ) -> None:
        """Record the progress of a claimed confirm (sent, confirmed, failed)."""
        (cur,) = self._commit(
            (
                (
                    "UPDATE confirms SET state = ?, updated_wall_ns = ?, detail = ?"
                    " WHERE quote_id = ?",
                    (ConfirmState(state).value, wall_ns, _json(detail), quote_id),
                ),
            )
        )
        if cur.rowcount != 1:
            raise KeyError(f"no confirm claim for quote {quote_id!r}")

    def unresolved_confirms(self) -> list[tuple[str, str | None, ConfirmState, int]]:
        """Confirms claimed or sent whose outcome was never booked (a ``kill -9`` mid-confirm):
        ``(quote_id, rfq_id or None if the quote row was lost, state, claimed_wall_ns)``."""
        rows = self._db.execute(
            "SELECT c.quote_id, q.rfq_id, c.state, c.claimed_wall_ns FROM confirms c"
            " LEFT JOIN quotes q ON q.quote_id = c.quote_id WHERE c.state IN (?, ?)"
            " ORDER BY c.claimed_wall_ns",
            (ConfirmState.CLAIMED.value, ConfirmState.SENT.value),
        ).fetchall()
        return [(r[0], r[1], ConfirmState(r[2]), r[3]) for r in rows]

    def confirm_state(self, quote_id: str) -> ConfirmState | None:
        """Return the confirm state of ``quote_id``, or None if it was never claimed."""
        row = self._db.execute(
            "SELECT state FROM confirms WHERE quote_id = ?", (quote_id,)
        ).fetchone()
        return None if row is None else ConfirmState(row[0])

    def record_fill(self, fill: FillReceived, wall_ns: int) -> bool:
        """Store a fill once; False if its ``trade_id`` was already stored (a duplicate). A
        duplicate that knows the fee the stored copy lacked (a legacy frame) fills it in."""
        (cur, _) = self._commit(
            (
                (
                    "INSERT INTO fills (trade_id, order_id, client_order_id, market_ticker,"
                    " outcome_side, book_side, yes_price_micros, count_centi, fee_micros,"
                    " is_taker, post_position_centi, exchange_ts_ms, recv_wall_ns, fee_known)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (trade_id) DO NOTHING",
                    (
                        fill.trade_id, fill.order_id, fill.client_order_id, fill.market_ticker,
                        str(fill.outcome_side), str(fill.book_side), fill.yes_price_micros,
                        fill.count_centi, fill.fee_micros, int(fill.is_taker),
                        fill.post_position_centi, fill.ts_ms, wall_ns, int(fill.fee_known),
                    ),
                ),
                (
                    "UPDATE fills SET fee_micros = ?, fee_known = 1"
                    " WHERE trade_id = ? AND fee_known = 0 AND ?",
                    (fill.fee_micros, fill.trade_id, int(fill.fee_known)),
                ),
            )
        )
        return cur.rowcount == 1

    def save_positions(self, snapshot: Mapping[str, Any], wall_ns: int) -> None:
        """Store a snapshot of the positions ledger (a JSON-able mapping of integers)."""
        self._commit(
            (
                (
                    "INSERT INTO position_snapshots (snapshot, ts_wall_ns) VALUES (?, ?)",
                    (_json(dict(snapshot)), wall_ns),
                ),
            )
        )

    def save_requester_stats(
        self, stats: Mapping[str, Mapping[str, Any]], wall_ns: int
    ) -> None:
        """Store (replace) the statistics of the requesters given, by ``creator_id``."""
        if not stats:
            return
        self._commit(tuple(
            (
                "INSERT INTO requester_stats (creator_id, stats, ts_wall_ns) VALUES (?, ?, ?)"
                " ON CONFLICT (creator_id) DO UPDATE SET stats = excluded.stats,"
                " ts_wall_ns = excluded.ts_wall_ns",
                (creator, _json(dict(row)), wall_ns),
            )
            for creator, row in stats.items()
        ))

    def requester_stats(self) -> dict[str, dict[str, Any]]:
        """Every stored requester's statistics, by ``creator_id``."""
        rows = self._db.execute("SELECT creator_id, stats FROM requester_stats ORDER BY creator_id")
        return {str(c): json.loads(text) for c, text in rows}

    def record_halt(self, halted: bool, reason: str, source: str, wall_ns: int) -> None:
        """Record a halt (``halted=True``) or resume, and who asked for it."""
        self._commit(
            (
                (
                    "INSERT INTO halts (halted, reason, source, ts_wall_ns) VALUES (?, ?, ?, ?)",
                    (int(halted), reason, source, wall_ns),
                ),
            )
        )

    def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value (e.g. the last seen exchange timestamp)."""
        self._commit(
            (
                (
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                ),
            )
        )

    # --- reads --------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """Return a metadata value, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def latest_positions(self) -> tuple[dict[str, Any], int] | None:
        """Return the newest positions snapshot and its wall time, or None."""
        row = self._db.execute(
            "SELECT snapshot, ts_wall_ns FROM position_snapshots ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        snapshot: dict[str, Any] = json.loads(row[0])
        return snapshot, int(row[1])

    def fills(self, market_ticker: str | None = None) -> list[FillRow]:
        """Return stored fills in arrival order, optionally for one market."""
        sql = (
            "SELECT trade_id, order_id, client_order_id, market_ticker, outcome_side, book_side,"
            " yes_price_micros, count_centi, fee_micros, is_taker, post_position_centi,"
            " exchange_ts_ms, recv_wall_ns, fee_known FROM fills"
        )
        params: tuple[str, ...] = ()
        if market_ticker is not None:
            sql += " WHERE market_ticker = ?"
            params = (market_ticker,)
        rows = self._db.execute(sql + " ORDER BY rowid", params).fetchall()
        return [
            FillRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]), r[10],
                    r[11], r[12], bool(r[13]))
            for r in rows
        ]

    def decisions(self, rfq_id: str | None = None) -> list[DecisionRow]:
        """Return stored (flushed) decisions in order, optionally for one RFQ."""
        sql = (
            "SELECT rfq_id, market_ticker, strategy, decision, reason, detail, ts_wall_ns"
            " FROM decisions"
        )
        params: tuple[str, ...] = ()
        if rfq_id is not None:
            sql += " WHERE rfq_id = ?"
            params = (rfq_id,)
        rows = self._db.execute(sql + " ORDER BY id", params).fetchall()
        return [DecisionRow(r[0], r[1], r[2], r[3], r[4], _unjson(r[5]), r[6]) for r in rows]

    def quote(self, quote_id: str) -> QuoteRow | None:
        """Return one stored (flushed) quote, or None."""
        r = self._db.execute(
            "SELECT quote_id, rfq_id, market_ticker, yes_bid_micros, no_bid_micros, state,"
            " created_wall_ns, updated_wall_ns FROM quotes WHERE quote_id = ?",
            (quote_id,),
        ).fetchone()
        return None if r is None else QuoteRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])

    def open_quotes(self, terminal: frozenset[str] = frozenset()) -> list[QuoteRow]:
        """Return quotes whose state is not in ``terminal`` (for resync after a restart)."""
        rows = self._db.execute(
            "SELECT quote_id, rfq_id, market_ticker, yes_bid_micros, no_bid_micros, state,"
            " created_wall_ns, updated_wall_ns FROM quotes ORDER BY created_wall_ns"
        ).fetchall()
        return [QuoteRow(*r) for r in rows if r[5] not in terminal]

    def quote_transitions(self, quote_id: str) -> list[tuple[str, Any, int]]:
        """Return ``(state, detail, ts_wall_ns)`` for each transition of a quote, in order."""
        rows = self._db.execute(
            "SELECT state, detail, ts_wall_ns FROM quote_transitions WHERE quote_id = ?"
            " ORDER BY id",
            (quote_id,),
        ).fetchall()
        return [(r[0], _unjson(r[1]), r[2]) for r in rows]

    def last_halt(self) -> HaltRow | None:
        """The latest halt/resume event, if any."""
        row = self._db.execute(
            "SELECT halted, reason, source, ts_wall_ns FROM halts ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else HaltRow(bool(row[0]), row[1], row[2], int(row[3]))

    def halts(self) -> list[HaltRow]:
        """Return every halt/resume event in order."""
        rows = self._db.execute(
            "SELECT halted, reason, source, ts_wall_ns FROM halts ORDER BY id"
        ).fetchall()
        return [HaltRow(bool(r[0]), r[1], r[2], r[3]) for r in rows]
