"""Issue 12 item 11: a ``kill -9`` keeps the recording's header and every money event.

The recorder buffers lines for up to a second; the header, a confirm claim and a fill are
written through to the file (``Recorder.sync``) before anything acts on them. The file is
read while the recorder is still open, as a process killed at that moment would leave it.
"""

from __future__ import annotations

import time
from pathlib import Path

from quoter.clock import ReplayClock
from quoter.config import parse_config
from quoter.domain import events as E
from quoter.domain.types import BookSide, Side
from quoter.engine.engine import Engine
from quoter.observability.metrics import Metrics
from quoter.recording.format import (
    CONFIRM_CLAIM_KIND,
    EventLine,
    HeaderLine,
    read_recording,
    recording_files,
)
from quoter.recording.recorder import Recorder
from quoter.service.hooks import ServiceHooks, StoreConfirmJournal
from quoter.service.store import Store

CFG = parse_config("""
version: 1
strategies:
  - name: main
    match: {series: [KXTEST]}
    pricer:
      name: fixed
      params: {edge_dollars: "0.02", fair_yes_dollars: {KXTEST-26JAN01-A: "0.5"}}
""")
T = "KXTEST-26JAN01-A"


def _lines(directory: Path) -> list[object]:
    """What is on disk now (the recorder is still open: no gzip trailer yet)."""
    return [line for path in recording_files(directory) for line in read_recording(path)]


def _recorder(directory: Path, clock: ReplayClock) -> Recorder:
    # Buffers that would hold everything for an hour: only sync() puts lines on disk.
    return Recorder(directory, clock=clock, flush_bytes=1 << 30, flush_interval_s=3600.0)


def test_sync_puts_the_header_on_disk_before_any_batch(tmp_path: Path) -> None:
    clock = ReplayClock(start_ns=1_000)
    with _recorder(tmp_path, clock) as rec:
        assert _lines(tmp_path) == []
        rec.sync()
        [header] = _lines(tmp_path)
        assert isinstance(header, HeaderLine)


def test_a_confirm_claim_is_on_disk_before_the_confirm_leaves(tmp_path: Path) -> None:
    clock = ReplayClock(start_ns=1_000)
    with Store(tmp_path / "q.db") as store, _recorder(tmp_path / "rec", clock) as rec:
        rec.record_event("step", {"now_ns": 1, "event": {"the": "accept"}})
        journal = StoreConfirmJournal(store, clock, rec)
        assert journal.claim("q1", clock.now_ns())
        lines = _lines(tmp_path / "rec")
        assert isinstance(lines[0], HeaderLine)
        events = [(e.kind, dict(e.payload)) for e in lines if isinstance(e, EventLine)]
        assert events == [("step", {"now_ns": 1, "event": {"the": "accept"}}),
                          (CONFIRM_CLAIM_KIND, {"quote_id": "q1"})]
        assert not journal.claim("q1", clock.now_ns())  # a second claim is refused, unrecorded
        assert rec.syncs == 1


def test_a_fill_is_on_disk_before_the_engine_books_it(tmp_path: Path) -> None:
    clock = ReplayClock(start_ns=1_000)
    with Store(tmp_path / "q.db") as store, _recorder(tmp_path / "rec", clock) as rec:
        hooks = ServiceHooks(clock=clock, engine=Engine(CFG), store=store, metrics=Metrics(),
                             recorder=rec)
        rfq = E.RfqReceived("r1", T, 5, creator_id="req", contracts_centi=100)
        hooks.on_engine_input(rfq, 5, None)
        assert _lines(tmp_path / "rec") == []  # not money: buffered
        fill = E.FillReceived("t1", "o1", T, Side.YES, BookSide.BID, 500_000, 100, 0, False, 6)
        hooks.on_engine_input(fill, 6, None)
        steps = [e.payload["event"]["type"] for e in _lines(tmp_path / "rec")
                 if isinstance(e, EventLine)]
        assert steps == ["RfqReceived", "FillReceived"]


def test_sync_cost_is_small(tmp_path: Path) -> None:
    """The price of item 11: one sync per confirm or fill (printed; bound generous)."""
    clock = ReplayClock(start_ns=1_000)
    with _recorder(tmp_path, clock) as rec:
        rec.sync()
        n = 200
        started = time.perf_counter_ns()
        for i in range(n):
            rec.record_event("step", {"now_ns": i, "event": {"x": "y" * 200}})
            rec.sync()
        per_sync_us = (time.perf_counter_ns() - started) / n / 1000
    print(f"recorder sync: {per_sync_us:.0f} us per line+sync")
    assert per_sync_us < 20_000  # a smoke bound only: real figures are in docs/operations.md
