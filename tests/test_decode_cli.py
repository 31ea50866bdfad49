"""The frame-file format and ``quoter decode``: plain, wrapped, gzip, stdin; exit codes."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from quoter.cli import main
from quoter.kalshi.frames import FrameLine, iter_frames, wrap_frame

FRAMES = Path(__file__).parent / "data" / "frames"
DOC = FRAMES / "api_doc_examples.jsonl"
SEED = FRAMES / "seed_communications.jsonl"


def _raw_lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().splitlines() if ln.strip()]


# --- frames.py -----------------------------------------------------------------------------


def test_bare_file_yields_lines_and_skips_blanks(tmp_path: Path) -> None:
    lines = _raw_lines(SEED)
    path = tmp_path / "bare.jsonl"
    path.write_bytes(lines[0] + b"\n\n   \n" + lines[1] + b"\r\n")
    assert list(iter_frames(path)) == [FrameLine(1, None, lines[0]), FrameLine(4, None, lines[1])]


def test_wrapped_object_keeps_exact_text_span(tmp_path: Path) -> None:
    frame = b'{ "type" :"subscribed",  "id": 1, "msg": {"channel": "fill", "sid": 3} }'
    path = tmp_path / "wrapped.jsonl"
    path.write_bytes(b'{"ts_recv_ns": 42, "frame": ' + frame + b"}\n")
    assert list(iter_frames(str(path))) == [FrameLine(1, 42, frame)]


def test_wrapped_text_frame_is_unquoted(tmp_path: Path) -> None:
    frame = '{"type": "ok", "id": 3, "msg": [{"channel": "fill", "sid": 3}], "t": "é"}'
    path = tmp_path / "wrapped.jsonl"
    path.write_text(json.dumps({"ts_recv_ns": 7, "frame": frame}) + "\n", encoding="utf-8")
    assert list(iter_frames(path)) == [FrameLine(1, 7, frame.encode("utf-8"))]


def test_wrap_frame_round_trips(tmp_path: Path) -> None:
    good = _raw_lines(SEED)[0]
    not_json = b'{"type": "ticker", "msg": {'
    multi_line = b'{"type": "ok",\n "id": 3}'
    path = tmp_path / "w.jsonl"
    raws = [good, not_json, multi_line]
    path.write_bytes(b"\n".join(wrap_frame(r, i) for i, r in enumerate(raws)))
    assert [(f.ts_recv_ns, f.raw) for f in iter_frames(path)] == [
        (0, good), (1, not_json), (2, multi_line),
    ]


def test_gz_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl.gz"
    path.write_bytes(gzip.compress(SEED.read_bytes()))
    assert [f.raw for f in iter_frames(path)] == _raw_lines(SEED)


# --- quoter decode -------------------------------------------------------------------------


def test_plain_file_counts_and_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(DOC), str(SEED)]) == 0
    out = capsys.readouterr().out
    assert "       2  ok\n" in out
    assert "       2  quote_accepted\n" in out
    assert "       1  rfq_created\n" in out
    assert "10 frames, 0 errors" in out
    assert "error:" not in out


def test_wrapped_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_bytes(b"\n".join(wrap_frame(r, 1000 + i) for i, r in enumerate(_raw_lines(SEED))))
    assert main(["decode", str(path)]) == 0
    out = capsys.readouterr().out
    assert "       1  quote_created\n" in out
    assert "4 frames, 0 errors" in out


def test_gz_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rec.jsonl.gz"
    path.write_bytes(gzip.compress((FRAMES / "market_data.jsonl").read_bytes()))
    assert main(["decode", str(path)]) == 0
    out = capsys.readouterr().out
    assert "       3  orderbook_snapshot\n" in out
    assert "20 frames, 0 errors" in out


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(SEED.read_bytes()), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["decode", "-"]) == 0
    assert "4 frames, 0 errors" in capsys.readouterr().out


def test_unknown_types_are_counted_and_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(FRAMES / "batch_and_unknown.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "       1  unknown:user_order\n" in out
    assert "       1  rfq_batch_best_quotes\n" in out


def test_malformed_lines_are_listed_and_exit_one(capsys: pytest.CaptureFixture[str]) -> None:
    path = FRAMES / "malformed.jsonl"
    assert main(["decode", str(SEED), str(path)]) == 1
    out = capsys.readouterr().out
    n_bad = len(_raw_lines(path))
    for line_no in range(1, n_bad + 1):
        assert f"error: {path}:{line_no}: " in out
    assert f"{n_bad + 4} frames, {n_bad} errors" in out
    assert "yes_bid_dollars" in out  # the reason is shown


def test_missing_file_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(tmp_path / "nope.jsonl")]) == 1
    assert f"{tmp_path / 'nope.jsonl'}: not found" in capsys.readouterr().out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--json", str(DOC), str(FRAMES / "batch_and_unknown.jsonl")]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    wire = [json.loads(r) for r in _raw_lines(DOC) + _raw_lines(FRAMES / "batch_and_unknown.jsonl")]
    assert [r["type"] for r in rows] == [w["type"] for w in wire]
    accepted = rows[5]
    assert accepted["msg"]["yes_bid_dollars"] == "0.4000"
    assert accepted["seq"] == 14
    assert "14 frames, 0 errors" in captured.err  # the report goes to stderr


def test_no_files_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["decode"])
    assert info.value.code == 2
    capsys.readouterr()


def test_chunked_reading_matches_line_reading() -> None:
    """Files are read in chunks: lines across chunk ends read as line by line would."""
    import random

    from quoter.kalshi import frames

    parts = _mixed_lines(
        random.Random(3), 20_000,
        b'{"type":"orderbook_delta","sid":1,"seq":%d,"msg":{"market_ticker":"M"}}',
        odd=[b"", b"  ", b"\r", b"\t \r"], bare_share=0.5, bare_tails=[b"", b"\r", b"  "],
        pad=300)
    for end in (b"", b"\n", b"\n\n", b"\r\n"):
        data = b"\n".join(parts) + end
        by_line = list(frames._iter_lines(io.BytesIO(data), chunked=False))
        assert len(data) > 4 * frames._CHUNK_BYTES
        assert list(frames._iter_lines(io.BytesIO(data))) == by_line
        assert len(by_line) > 15_000


def test_frame_lines_match_iter_frames(tmp_path: Path) -> None:
    """``iter_frame_lines`` + ``unwrap`` read a file as ``iter_frames`` does (plain and gzip)."""
    import random

    from quoter.kalshi import frames

    parts = _mixed_lines(
        random.Random(4), 12_000, b'{"type":"ticker","sid":1,"seq":%d,"msg":{"market_ticker":"M"}}',
        odd=[b"", b" \r", b'{"type":"quoter_recording_event","k":1}'], bare_share=0.4,
        bare_tails=[b""], pad=200)
    data = b"\n".join(parts)
    reference = [(f.ts_recv_ns, f.raw)
                 for f in frames._iter_lines(io.BytesIO(data), chunked=False)]
    plain, packed = tmp_path / "f.jsonl", tmp_path / "f.jsonl.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    for path in (plain, packed):
        assert [frames.unwrap(line) for line in frames.iter_frame_lines(path)] == reference
        assert [(f.ts_recv_ns, f.raw) for f in iter_frames(path)] == reference


def _mixed_lines(rng: Any, n: int, frame: bytes, *, odd: list[bytes], bare_share: float,
                 bare_tails: list[bytes], pad: int) -> list[bytes]:
    """``n`` lines: 5% ``odd`` ones, bare frames up to ``bare_share``, the rest wrapped."""
    parts = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.05:
            parts.append(rng.choice(odd))
        elif kind < bare_share:
            parts.append(frame % i + rng.choice(bare_tails))
        else:
            parts.append(wrap_frame(frame % i + b" " * rng.randrange(pad), i))
    return parts
