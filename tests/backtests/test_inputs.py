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


def test_frame_scan_yields_what_iter_file_does(tmp_path: Path) -> None:
    """The prepass's scan: same frames (bytes, receive times) with the needle, same count."""
    import random

    from backtests.inputs import FrameScan

    rng = random.Random(5)
    quote = '{"type":"quote_created","sid":1,"msg":{"quote_id":"q%d"}}'
    for case in range(6):
        lines = []
        for i in range(3_000):
            frame = quote % i if rng.random() < 0.05 else _frame(i).replace(" ", "")
            kind = rng.random()
            if kind < 0.55:
                lines.append(json.dumps({"ts_recv_ns": 10 * i, "frame": json.loads(frame)}))
            elif kind < 0.65:
                lines.append(frame)  # bare: the time of the last wrapped frame before it
            elif kind < 0.7:
                lines.append(json.dumps({"frame": json.loads(frame)}))  # wrapped, no time
            elif kind < 0.75:
                lines.append(f'{{"ts_recv_ns": {10 * i}, "frame": {{"type": "x"')  # broken
            elif kind < 0.8:
                # Frame text whose escape decodes into the needle.
                text = frame.replace("quote_", "quote\\u005f")
                lines.append(f'{{"ts_recv_ns": {10 * i}, "frame": {json.dumps(text)}}}')
            elif kind < 0.83:
                lines.append(rng.choice(["", "  ", '{"type":"quoter_recording_header"}']))
            elif kind < 0.9:
                lines.append(json.dumps({"ts_recv_ns": 10 * i, "frame": frame}))  # as text
            else:
                lines.append(json.dumps({"ts_recv_ns": 10 * i, "frame": json.loads(frame),
                                         "note": "quote_"}))
        if case % 2:
            lines[0] = _frame(0)  # a bare first frame: time 0
        path = tmp_path / (f"f{case}.jsonl.gz" if case < 3 else f"f{case}.jsonl")
        text = "\n".join(lines) + "\n"
        if path.suffix == ".gz":
            with gzip.open(path, "wt") as g:
                g.write(text)
        else:
            path.write_text(text)
        every = [i for i in iter_file(path) if isinstance(i, Frame)]
        scan = FrameScan(path, b"quote_")
        got = list(scan)
        assert scan.frames == len(every)
        assert got[0] == every[0]

        def needed(frames: list[Frame]) -> list[Frame]:
            return [f for f in frames if b"quote_" in f.data]

        assert needed(got) == needed(every)
        assert len(needed(every)) > 100
