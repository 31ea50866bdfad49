"""The recorder: exact frames, headers per file, rotation, buffering, truncation, redaction."""

from __future__ import annotations

import base64
import gzip
import io
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from quoter.clock import ReplayClock
from quoter.errors import DecodeError
from quoter.kalshi.auth import Signer
from quoter.kalshi.frames import iter_frames
from quoter.kalshi.rest import KalshiRest
from quoter.observability.logging import Redactor
from quoter.recording.format import (
    FORMAT_VERSION,
    EventLine,
    HeaderLine,
    InLine,
    OutLine,
    WsOutLine,
    read_recording,
    recording_files,
)
from quoter.recording.recorder import Recorder, RecordingTransport

WALL0 = 1_752_000_000_000_000_000
SEC = 1_000_000_000
FRAME_A = '{"type":"rfq_created","sid":1,"msg":{"id":"rfq_1","market_ticker":"KX-1"}}'
# Odd spacing, key order, unicode and escapes: must survive byte for byte.
FRAME_B = '{ "type" : "quote_accepted",\t"sid":2, "msg":{"quote_id":"q\\u00e9\\"x", "n":"ü"} }'


def _clock() -> ReplayClock:
    return ReplayClock(start_ns=1_000, wall_offset_ns=WALL0)


def _all_text(directory: Path) -> str:
    return "".join(gzip.decompress(p.read_bytes()).decode() for p in recording_files(directory))


def test_round_trip_every_kind(tmp_path: Path) -> None:
    clock = _clock()
    header = {"subscriptions": [{"channels": ["communications"]}], "config_hash": "abc123"}
    with Recorder(tmp_path, clock=clock, header=header) as rec:
        rec.record_in("comm-0", FRAME_A, 1_100, WALL0 + 100)
        rec.record_in("comm-1", FRAME_B.encode(), 1_200, WALL0 + 200)
        rec.record_ws_out("comm-0", '{"id":1,"cmd":"subscribe"}', 1_050, WALL0 + 50)
        rec.record_out("POST", "/trade-api/v2/communications/quotes", b'{"rfq_id":"rfq_1"}',
                       201, '{"id":"q_1"}', 1_300, 1_400)
        rec.record_event("decision", {"rfq_id": "rfq_1", "yes_bid_micros": 480_000})
    (path,) = recording_files(tmp_path)
    lines = list(read_recording(path))
    head = lines[0]
    assert isinstance(head, HeaderLine)
    assert head.format_version == FORMAT_VERSION
    assert head.file_seq == 0
    assert head.start_wall_ns == WALL0 + 1_000
    assert head.fields == header
    assert lines[1:3] == [
        InLine(1_100, WALL0 + 100, "comm-0", FRAME_A),
        InLine(1_200, WALL0 + 200, "comm-1", FRAME_B),
    ]
    assert lines[3] == WsOutLine(1_050, WALL0 + 50, "comm-0", '{"id":1,"cmd":"subscribe"}')
    assert lines[4] == OutLine("POST", "/trade-api/v2/communications/quotes",
                               '{"rfq_id":"rfq_1"}', 201, '{"id":"q_1"}', 1_300, 1_400,
                               WALL0 + 1_000)
    assert lines[5] == EventLine("decision", 1_000, WALL0 + 1_000,
                                 {"rfq_id": "rfq_1", "yes_bid_micros": 480_000})
    assert len(lines) == 6


def test_events_accept_domain_dataclasses(tmp_path: Path) -> None:
    from quoter.domain.events import FillReceived
    from quoter.domain.types import BookSide, Side

    fill = FillReceived("t1", "o1", "KX-1", Side.NO, BookSide.ASK, 520_000, 100, 0, False, 7)
    with Recorder(tmp_path, clock=_clock()) as rec:
        rec.record_event("fill", fill)
        rec.record_event("sets", {"markets": frozenset({"B", "A"}), "legs": ("x", "y")})
    events = [ln for ln in read_recording(recording_files(tmp_path)[0])
              if isinstance(ln, EventLine)]
    assert events[0].payload["outcome_side"] == "no"
    assert events[0].payload["yes_price_micros"] == 520_000
    assert events[1].payload == {"markets": ["A", "B"], "legs": ["x", "y"]}


def test_frames_tool_reads_recordings(tmp_path: Path) -> None:
    """quoter.kalshi.frames reads our inbound lines exactly and skips the non-frame lines."""
    with Recorder(tmp_path, clock=_clock(), header={"config_hash": "h"}) as rec:
        rec.record_in("comm-0", FRAME_A, 11, WALL0)
        rec.record_out("GET", "/trade-api/v2/exchange/status", None, 200, '{"frame":1}', 1, 2)
        rec.record_event("timer", {"frame": "x", "key": "confirm:q1"})
        rec.record_in("comm-0", FRAME_B, 12, WALL0)
    (path,) = recording_files(tmp_path)
    lines = list(iter_frames(path))
    assert [(fl.ts_recv_ns, fl.raw) for fl in lines] == [(11, FRAME_A.encode()),
                                                         (12, FRAME_B.encode())]


def test_rotation_by_size_keeps_every_file_self_contained(tmp_path: Path) -> None:
    clock = _clock()
    with Recorder(tmp_path, clock=clock, max_bytes=2_000, header={"config_hash": "h"},
                  flush_bytes=1, compresslevel=0) as rec:
        for i in range(40):
            rec.record_in("comm-0", FRAME_A.replace("rfq_1", f"rfq_{i}"), i, WALL0 + i)
    files = recording_files(tmp_path)
    assert len(files) > 2
    seen: list[int] = []
    for seq, path in enumerate(files):
        lines = list(read_recording(path))
        assert isinstance(lines[0], HeaderLine)
        assert lines[0].file_seq == seq
        assert lines[0].fields == {"config_hash": "h"}
        seen += [ln.ts_recv_ns for ln in lines[1:] if isinstance(ln, InLine)]
        assert path.stat().st_size < 2_000 + 1_000
    assert seen == list(range(40))


def test_rotation_by_age(tmp_path: Path) -> None:
    clock = _clock()
    with Recorder(tmp_path, clock=clock, max_age_s=60, flush_bytes=1) as rec:
        rec.record_in("c", FRAME_A, 1, WALL0)
        clock.advance(59 * SEC)
        rec.record_in("c", FRAME_A, 2, WALL0)
        clock.advance(2 * SEC)
        rec.record_in("c", FRAME_A, 3, WALL0)
    files = recording_files(tmp_path)
    assert len(files) == 2
    per_file = [[ln.ts_recv_ns for ln in read_recording(p) if isinstance(ln, InLine)]
                for p in files]
    assert per_file == [[1, 2], [3]]


def test_buffer_is_handed_off_by_size_or_time_and_readable_while_open(tmp_path: Path) -> None:
    clock = _clock()
    rec = Recorder(tmp_path, clock=clock, flush_bytes=10_000, flush_interval_s=1.0,
                   threaded=False)
    try:
        rec.record_in("c", FRAME_A, 1, WALL0)
        assert recording_files(tmp_path) == []  # still in memory
        rec.poll()
        assert recording_files(tmp_path) == []  # not due yet
        clock.advance(SEC)
        rec.poll()
        (path,) = recording_files(tmp_path)
        # The file is still open, yet every handed-off line can be read (sync flush).
        assert [ln.ts_recv_ns for ln in read_recording(path) if isinstance(ln, InLine)] == [1]
        for i in range(200):
            rec.record_in("c", FRAME_A, 100 + i, WALL0)
        got = [ln for ln in read_recording(path) if isinstance(ln, InLine)]
        assert len(got) > 1  # the size threshold handed off without a timer
    finally:
        rec.close()
    assert len([ln for ln in read_recording(path) if isinstance(ln, InLine)]) == 201


def test_truncated_file_reads_up_to_the_damage(tmp_path: Path) -> None:
    with Recorder(tmp_path, clock=_clock(), flush_bytes=1) as rec:
        for i in range(50):
            rec.record_in("c", FRAME_A, i, WALL0)
    (path,) = recording_files(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut" / path.name
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) * 2 // 3])
    got = [ln.ts_recv_ns for ln in read_recording(cut) if isinstance(ln, InLine)]
    assert 0 < len(got) < 50
    assert got == list(range(len(got)))


def test_rejects_a_file_without_header(tmp_path: Path) -> None:
    path = tmp_path / "rec-1.000-00000-1.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"k":"in","ts_recv_ns":1,"wall_ns":1,"conn":"c","frame":"{}"}\n'))
    with pytest.raises(DecodeError, match="header"):
        list(read_recording(path))


class _StallingFile(io.FileIO):
    """A real file whose writes wait at a gate: a disk that stops keeping up."""

    def __init__(self, path: Path, entered: threading.Event, gate: threading.Event) -> None:
        super().__init__(path, "xb")
        self._entered, self._gate = entered, gate

    def write(self, data: Any) -> int:
        self._entered.set()
        assert self._gate.wait(10)
        return super().write(data)


def test_full_queue_drops_batches_instead_of_blocking(tmp_path: Path) -> None:
    entered, gate = threading.Event(), threading.Event()
    rec = Recorder(
        tmp_path, clock=_clock(), flush_bytes=1, max_pending_batches=1,
        opener=lambda p: _StallingFile(p, entered, gate),
    )
    rec.record_in("c", FRAME_A, 0, WALL0)
    assert entered.wait(10)  # the writer thread is now stuck on the disk with batch 0
    for i in range(1, 2_000):
        rec.record_in("c", FRAME_A, i, WALL0)  # batch 1 is queued; the rest cannot be
    assert rec.dropped_lines == 1_998
    assert not rec.healthy
    gate.set()
    rec.close()
    written = [ln for p in recording_files(tmp_path) for ln in read_recording(p)]
    assert [ln.ts_recv_ns for ln in written if isinstance(ln, InLine)] == [0, 1]
    gaps = [ln for ln in written if isinstance(ln, EventLine) and ln.kind == "gap"]
    assert [g.payload for g in gaps] == [{"dropped_lines": 1_998}]


# --- redaction -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path_factory.mktemp("keys") / "kalshi.pem"
    path.write_text(pem)
    path.chmod(0o600)
    return path, pem


async def test_recording_never_contains_key_signatures_or_key_id(
    tmp_path: Path, key_pem: tuple[Path, str]
) -> None:
    key_path, pem = key_pem
    key_id = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"
    clock = _clock()
    seen_signatures: list[str] = []

    def exchange(request: httpx.Request) -> httpx.Response:
        sig = request.headers["KALSHI-ACCESS-SIGNATURE"]
        seen_signatures.append(sig)
        if request.method == "POST":
            return httpx.Response(201, json={"id": "q_1"})
        # A misbehaving server echoing our headers back in its body.
        return httpx.Response(400, json={"code": "bad", "message": f"sig {sig} key {key_id}"})

    redactor = Redactor([key_id])
    rec = Recorder(tmp_path, clock=clock, redactor=redactor,
                   header={"api_key_id": key_id, "config_hash": "h"})
    transport = RecordingTransport(rec, clock, inner=httpx.MockTransport(exchange))
    signer = Signer.from_pem_file(key_id, key_path)
    async with KalshiRest("https://example.invalid/trade-api/v2", signer, transport=transport,
                          clock=clock) as rest:
        assert await rest.create_quote("rfq_1", 480_000, 470_000) == "q_1"
        with pytest.raises(Exception, match="bad"):
            await rest.get_exchange_status()
    rec.record_event("oops", {"private_key": pem, "note": f"loaded {pem}", "who": key_id})
    rec.close()

    assert len(seen_signatures) == 2
    text = _all_text(tmp_path)
    pem_lines = [ln for ln in pem.splitlines() if ln.strip()]
    for secret in [*pem_lines, *seen_signatures, key_id,
                   *(s[:32] for s in seen_signatures)]:
        assert secret not in text, secret[:20]
    # Also no base64 of the raw signature bytes hides in JSON escapes.
    assert all(base64.b64decode(s).hex()[:32] not in text for s in seen_signatures)
    outs = [ln for ln in read_recording(recording_files(tmp_path)[0]) if isinstance(ln, OutLine)]
    assert [(o.method, o.path, o.status) for o in outs] == [
        ("POST", "/trade-api/v2/communications/quotes", 201),
        ("GET", "/trade-api/v2/exchange/status", 400),
    ]
    assert outs[0].body is not None
    assert json.loads(outs[0].body)["yes_bid"] == "0.4800"
    assert outs[0].response_body == '{"id":"q_1"}'


async def test_transport_records_failures_and_reraises(tmp_path: Path) -> None:
    clock = _clock()

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    rec = Recorder(tmp_path, clock=clock, threaded=False)
    transport = RecordingTransport(rec, clock, inner=httpx.MockTransport(broken))
    async with httpx.AsyncClient(transport=transport, base_url="http://x.invalid") as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/trade-api/v2/markets?limit=5")
    rec.close()
    (out,) = [ln for ln in read_recording(recording_files(tmp_path)[0])
              if isinstance(ln, OutLine)]
    assert (out.path, out.status, out.error) == ("/trade-api/v2/markets?limit=5", None,
                                                 "ConnectError")


async def test_transport_passes_gzip_responses_through(tmp_path: Path) -> None:
    clock = _clock()
    payload = b'{"exchange_active":true,"trading_active":true}'

    def gz(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=gzip.compress(payload),
                              headers={"content-encoding": "gzip"})

    rec = Recorder(tmp_path, clock=clock, threaded=False)
    transport = RecordingTransport(rec, clock, inner=httpx.MockTransport(gz))
    async with httpx.AsyncClient(transport=transport, base_url="http://x.invalid") as client:
        r = await client.get("/s")
    rec.close()
    assert r.json() == {"exchange_active": True, "trading_active": True}
    (out,) = [ln for ln in read_recording(recording_files(tmp_path)[0])
              if isinstance(ln, OutLine)]
    assert out.response_body == payload.decode()


def test_feed_taps_record_raw_frames(tmp_path: Path) -> None:
    from quoter.kalshi.ws_types import RawFrame

    clock = _clock()
    with Recorder(tmp_path, clock=clock) as rec:
        rec.tap(RawFrame(FRAME_B.encode(), 4_242, "comm-3"))
        rec.tap_out(RawFrame('{"id":7,"cmd":"subscribe"}', 4_300, "comm-3"))
    lines = list(read_recording(recording_files(tmp_path)[0]))
    assert lines[1] == InLine(4_242, WALL0 + 1_000, "comm-3", FRAME_B)
    assert lines[2] == WsOutLine(4_300, WALL0 + 1_000, "comm-3", '{"id":7,"cmd":"subscribe"}')


def test_recordings_are_created_0600(tmp_path: Path) -> None:
    import os
    import stat
    old = os.umask(0o022)
    try:
        with Recorder(tmp_path, clock=_clock(), header={"config_hash": "h"}) as rec:
            rec.record_out("GET", "/trade-api/v2/exchange/status", None, 200, "{}", 1, 2)
        files = recording_files(tmp_path)
        assert files
        assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
    finally:
        os.umask(old)


def test_a_large_batch_is_written_whole_in_order_across_rotations(tmp_path: Path) -> None:
    # One batch of 300 lines (written in chunks) into files of ~4 kB: rotation happens
    # between chunks, every file starts with its header, and no line is lost or reordered.
    clock = _clock()
    with Recorder(tmp_path, clock=clock, max_bytes=4_000, flush_bytes=1 << 30,
                  flush_interval_s=3600.0, compresslevel=0) as rec:
        for i in range(300):
            rec.record_in("comm-0", FRAME_A.replace("rfq_1", f"rfq_{i}"), i, WALL0 + i)
    files = recording_files(tmp_path)
    assert len(files) >= 2
    seen: list[int] = []
    for path in files:
        lines = list(read_recording(path))
        assert isinstance(lines[0], HeaderLine)
        seen += [ln.ts_recv_ns for ln in lines[1:] if isinstance(ln, InLine)]
    assert seen == list(range(300))
    assert rec.lines_written == 300
