"""Fuzzing every parser (issue 12 "Fuzzing"): hypothesis mutations of real inputs.

Every input ends in a value or a typed error (a ``QuoterError`` subclass), never another
exception; a rejected input changes no state (the position ledger refuses a bad fill whole,
a rejected config leaves the running one, the feed's pre-decode checks never raise).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from pathlib import Path

import yaml
from conftest import RUNS
from hypothesis import given
from hypothesis import strategies as st
from mutate import JSON_VALUES, mutate_bytes, mutate_json, mutated
from seeds import frames, rest_bodies

from quoter.clock import ReplayClock
from quoter.config import QuoterConfig, parse_config
from quoter.domain import events as ev
from quoter.engine.positions import PositionLedger
from quoter.errors import ConfigError, DecodeError, QuoterError
from quoter.kalshi import rest_models as rm
from quoter.kalshi.bounds import json_depth_exceeds
from quoter.kalshi.decode import decode
from quoter.kalshi.schemas import peek_type
from quoter.kalshi.ws_wire import decode_envelope
from quoter.recording.format import read_recording
from quoter.recording.recorder import Recorder

REPO = Path(__file__).resolve().parents[2]
REST_MODELS: tuple[type, ...] = (
    rm.CommunicationsId, rm.CreatedId, rm.QuoteResponse, rm.QuotesPage, rm.RfqResponse,
    rm.RfqsPage, rm.MarketResponse, rm.MarketsPage, rm.PositionsPage, rm.Balance,
    rm.FillsPage, rm.SettlementsPage, rm.ExchangeStatus, rm.AccountLimits, rm.EndpointCosts,
)
CONFIG_SEEDS = tuple(p.read_text() for p in sorted((REPO / "config").rglob("*.yaml"))
                     if "sim-world" not in p.name)


def _ended(target: str, outcome: str) -> None:
    RUNS[(target, outcome)] += 1


# --- WebSocket frames ----------------------------------------------------------------------

@given(mutated(frames()) | st.binary(max_size=64))
def test_frame_decoder(raw: bytes) -> None:
    """decode() gives events or DecodeError; the feed's pre-decode checks never raise."""
    depth_refused = json_depth_exceeds(raw)
    peek_type(raw)
    envelope_error = ""
    try:
        decode_envelope(raw)
    except Exception as exc:  # the feed forwards such frames to decode(), which must refuse
        envelope_error = type(exc).__name__
    # What KalshiFeed._on_frame catches (msgspec's DecodeError/ValidationError, RecursionError).
    assert envelope_error in ("", "DecodeError", "ValidationError", "RecursionError")
    try:
        msg_type, events = decode(raw, 1)
    except DecodeError:
        _ended("ws_frame", "DecodeError")
        return
    assert not depth_refused, "a frame the feed calls too deep was decoded"
    assert msg_type is None or isinstance(msg_type, str)
    assert all(isinstance(e, ev.Event.__args__) for e in events)  # type: ignore[attr-defined]
    _ended("ws_frame", "value")


@given(st.sampled_from([f for f in frames() if b'"fill"' in f]), st.data())
def test_fill_frames_book_all_or_nothing(raw: bytes, data: st.DataObject) -> None:
    """A decoded fill books whole or is refused with the ledger unchanged."""
    doc = json.loads(raw)
    body = json.dumps(data.draw(mutate_json(doc))).encode()
    try:
        _, events = decode(body, 1)
    except DecodeError:
        _ended("fill_ledger", "DecodeError")
        return
    ledger = PositionLedger()
    for event in events:
        if not isinstance(event, ev.FillReceived):
            continue
        before = ledger.snapshot()
        try:
            ledger.book_fill(event)
        except QuoterError:
            assert ledger.snapshot() == before, "a refused fill changed the ledger"
            _ended("fill_ledger", "refused")
            continue
        except ValueError:
            assert ledger.snapshot() == before, "a refused fill changed the ledger"
            _ended("fill_ledger", "refused")
            continue
        _ended("fill_ledger", "booked")


# --- REST bodies ---------------------------------------------------------------------------

@given(mutated(rest_bodies()), st.sampled_from(REST_MODELS))
def test_rest_models(body: bytes, model: type) -> None:
    """Every REST model decodes any body to a value or a DecodeError."""
    try:
        rm.decode_response(body, model)
        _ended("rest_model", "value")
    except DecodeError:
        _ended("rest_model", "DecodeError")
    with contextlib.suppress(DecodeError):
        rm.decode_orderbook(body)


@given(JSON_VALUES, st.sampled_from(REST_MODELS))
def test_rest_models_on_any_json(doc: object, model: type) -> None:
    try:
        rm.decode_response(json.dumps(doc).encode(), model)
        _ended("rest_any_json", "value")
    except DecodeError:
        _ended("rest_any_json", "DecodeError")


# --- the recording reader ------------------------------------------------------------------

def _recording(tmp: Path, lines: list[str]) -> bytes:
    clock = ReplayClock(start_ns=10)
    with Recorder(tmp, clock=clock, threaded=False) as rec:
        rec.record_in("c-1", frames()[0], 11, 12)
        rec.record_event("step", {"now_ns": 13, "in": 0, "i": 0})
        rec.record_out("GET", "/x", None, 200, rest_bodies()[0], 14, 15)
    [path] = list(tmp.glob("rec-*"))
    raw = path.read_bytes()
    path.unlink()
    if lines:
        body = gzip.decompress(raw).decode().splitlines()
        raw = gzip.compress("\n".join(body + lines).encode())
    return raw


@given(st.data())
def test_recording_reader(tmp_path_factory: object, data: st.DataObject) -> None:
    """A damaged recording reads to lines or a DecodeError (file and line named)."""
    tmp = tmp_path_factory.mktemp("rec")  # type: ignore[attr-defined]
    extra = data.draw(st.lists(
        st.builds(json.dumps, mutate_json({"k": "event", "kind": "step",
                                                         "ts_ns": 1, "wall_ns": 2,
                                                         "payload": {"now_ns": 1}}))
        | st.text(max_size=40), max_size=3))
    raw = _recording(tmp, extra)
    if data.draw(st.booleans()):
        raw = data.draw(mutate_bytes(raw))
    path = tmp / "rec-1.000-00000-1.jsonl.gz"
    path.write_bytes(raw)
    error = ""
    try:
        lines = list(read_recording(path))
    except DecodeError as exc:
        error = str(exc)
        _ended("recording", "DecodeError")
    else:
        assert all(line is not None for line in lines)
        _ended("recording", "value")
    assert not error or str(path) in error  # the error names the file (and the line)


# --- the YAML config loader ----------------------------------------------------------------

def _config_text(data: st.DataObject) -> str:
    seed = data.draw(st.sampled_from(CONFIG_SEEDS))
    how = data.draw(st.sampled_from(["tree", "text"]))
    if how == "tree":
        doc = yaml.safe_load(seed)
        return yaml.safe_dump(data.draw(mutate_json(doc)), allow_unicode=True)
    raw = data.draw(mutate_bytes(seed.encode()))
    return raw.decode("utf-8", "replace")


@given(st.data())
def test_config_loader(data: st.DataObject) -> None:
    """Any config text validates or raises ConfigError; nothing else escapes."""
    text = _config_text(data)
    try:
        config = parse_config(text, "fuzz.yaml", base_dir=REPO / "config" / "examples")
    except ConfigError:
        _ended("config", "ConfigError")
        return
    assert isinstance(config, QuoterConfig)
    _ended("config", "value")


def test_seeds_are_real() -> None:
    """The mutations start from real inputs: recorded frames and simulator REST bodies."""
    assert len(frames()) > 20
    bodies = rest_bodies()
    assert len(bodies) > 10
    assert any(b'"quotes"' in b for b in bodies)
    assert any(b'"fills"' in b for b in bodies)
    io.BytesIO(bodies[0])
