"""Backtest inputs: recordings, captures and interchange files, merged by receive time."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

from backtests.inputs import Fact, Frame, RoundTrip, iter_file, merged, round_trips
from quoter.domain import events as ev
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketInfo, MarketStatus
from quoter.recording.format import encode_event


def _header() -> dict[str, object]:
    return {"k": "header", "type": "quoter_recording_header", "format": "quoter-recording",
            "format_version": 1, "quoter_version": "0", "python_version": "3.11",
            "start_wall_ns": 0, "start_ns": 0, "file_seq": 0}


def _frame(i: int) -> str:
    return json.dumps({"type": "ticker", "sid": 1, "seq": i, "msg": {"market_ticker": "M"}})


def write_recording(path: Path, times: list[int]) -> None:
    info = MarketInfo("KX-E-M1", "KX-E", "KX", MarketStatus.ACTIVE,
                      grid_for_structure("linear_cent"))
    lines = [_header()]
    for n, t in enumerate(times):
        lines.append({"k": "in", "ts_recv_ns": t, "wall_ns": t, "conn": "c", "frame": _frame(n),
                      "n": n})
    lines.append({"k": "out", "type": "quoter_recording_out", "method": "POST",
                  "path": "/trade-api/v2/communications/quotes", "body": "{}", "status": 201,
                  "response_body": "{}", "sent_ns": 100, "recv_ns": 4_100, "wall_ns": 0})
    lines.append({"k": "event", "type": "quoter_recording_event", "kind": "step",
                  "ts_ns": 5_000, "wall_ns": 0,
                  "payload": {"now_ns": 5_000,
                              "event": encode_event(ev.MarketLoaded(info, 5_000))}})
    with gzip.open(path, "wt") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


def test_a_service_recording_yields_frames_facts_and_round_trips(tmp_path: Path) -> None:
    rec = tmp_path / "rec-1.jsonl.gz"
    write_recording(rec, [10, 20])
    items = list(iter_file(rec))
    assert [type(i) for i in items] == [Frame, Frame, RoundTrip, Fact]
    assert items[0] == Frame(10, _frame(0).encode())
    assert items[2] == RoundTrip(4_100, "POST", "/trade-api/v2/communications/quotes", 4_000)
    fact = items[3]
    assert isinstance(fact, Fact)
    assert isinstance(fact.event, ev.MarketLoaded)
    assert fact.event.market.ticker == "KX-E-M1"
    assert [r.rtt_ns for r in round_trips([rec])] == [4_000]


def test_interchange_bare_and_wrapped_frames_keep_their_bytes(tmp_path: Path) -> None:
    f = tmp_path / "frames.jsonl"
    bare = _frame(0)
    f.write_text(bare + "\n" + json.dumps({"ts_recv_ns": 50, "frame": json.loads(_frame(1))})
                 + "\n" + bare + "\n")
    items = list(iter_file(f))
    assert [i.ts_recv_ns for i in items] == [0, 50, 50]  # a bare frame takes the time before it
    assert isinstance(items[0], Frame)
    assert items[0].data == bare.encode()


def test_several_files_merge_by_receive_time(tmp_path: Path) -> None:
    rec = tmp_path / "rec-1.jsonl.gz"
    write_recording(rec, [10, 30, 50])
    other = tmp_path / "capture.jsonl.gz"
    with gzip.open(other, "wt") as g:
        for t in (20, 30, 40):
            g.write(json.dumps({"ts_recv_ns": t, "frame": json.loads(_frame(t))}) + "\n")
    times = [i.ts_recv_ns for i in merged([rec, other]) if isinstance(i, Frame)]
    assert times == [10, 20, 30, 30, 40, 50]
    # A tie keeps the file named first in front.
    ties = [i for i in merged([rec, other]) if isinstance(i, Frame) and i.ts_recv_ns == 30]
    assert json.loads(ties[0].data)["seq"] == 1


def test_merging_streams_in_constant_memory(tmp_path: Path) -> None:
    paths = []
    for k in range(2):
        p = tmp_path / f"big{k}.jsonl"
        with p.open("w") as f:
            for i in range(50_000):
                f.write(f'{{"ts_recv_ns":{2 * i + k},"frame":{_frame(i)}}}\n')
        paths.append(p)
    tracemalloc.start()
    count = sum(1 for _ in merged(paths))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 100_000
    assert peak < 2_000_000  # 100k frames are ~8 MB: a stream holds a few lines, not a file
