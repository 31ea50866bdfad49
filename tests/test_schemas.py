"""Wire decoding: every documented example decodes; bad input only ever raises DecodeError."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quoter.errors import DecodeError
from quoter.kalshi.schemas import (
    KNOWN_TYPES,
    ErrorCode,
    ErrorFrame,
    OkFrame,
    OkMsg,
    QuoteAcceptedFrame,
    RfqBatchBestQuotesFrame,
    RfqCreatedFrame,
    SubscribedFrame,
    SubscriptionInfo,
    UnknownMessage,
    decode_frame,
    frame_type,
    peek_type,
)
from quoter.kalshi.translate import decode_events

FRAMES = Path(__file__).parent / "data" / "frames"
GOOD_FILES = [
    "api_doc_examples.jsonl",
    "seed_communications.jsonl",
    "current_communications.jsonl",
    "market_data.jsonl",
    "batch_and_unknown.jsonl",
]


def _lines(name: str) -> list[bytes]:
    return [ln for ln in (FRAMES / name).read_bytes().splitlines() if ln.strip()]


GOOD_LINES = [(name, i, ln) for name in GOOD_FILES for i, ln in enumerate(_lines(name), 1)]


@pytest.mark.parametrize(("name", "line_no", "raw"), GOOD_LINES)
def test_every_fixture_frame_decodes_to_its_type(name: str, line_no: int, raw: bytes) -> None:
    wire_type = json.loads(raw)["type"]
    msg = decode_frame(raw, 7)
    if wire_type in KNOWN_TYPES:
        assert frame_type(msg) == wire_type
    else:
        assert isinstance(msg, UnknownMessage)
        assert frame_type(msg) == f"unknown:{wire_type}"
    decode_events(raw, 7)  # and translates without error


@pytest.mark.parametrize(("name", "line_no", "raw"), GOOD_LINES)
def test_reencoded_frame_decodes_to_the_same_message(name: str, line_no: int, raw: bytes) -> None:
    # ``quoter decode --json`` output is itself a valid frame file.
    msg = decode_frame(raw, 0)
    if not isinstance(msg, UnknownMessage):
        assert decode_frame(msgspec.json.encode(msg), 0) == msg


def test_fixtures_cover_every_known_type() -> None:
    seen = {json.loads(raw)["type"] for _, _, raw in GOOD_LINES}
    assert seen >= KNOWN_TYPES


def test_subscribed_and_error_codes() -> None:
    sub = decode_frame(_lines("api_doc_examples.jsonl")[0], 0)
    assert isinstance(sub, SubscribedFrame)
    assert (sub.id, sub.msg.channel, sub.msg.sid) == (1, "communications", 15)
    err = decode_frame(_lines("api_doc_examples.jsonl")[4], 0)
    assert isinstance(err, ErrorFrame)
    assert err.msg.error_code is ErrorCode.ALREADY_SUBSCRIBED
    assert err.msg.msg == "Already subscribed"


def test_unknown_error_code_is_tolerated() -> None:
    err = decode_frame(b'{"id": 9, "type": "error", "msg": {"code": 99, "msg": "new"}}', 0)
    assert isinstance(err, ErrorFrame)
    assert err.msg.code == 99
    assert err.msg.error_code is None


def test_ok_has_both_shapes() -> None:
    update, listing = (decode_frame(r, 0) for r in _lines("api_doc_examples.jsonl")[2:4])
    assert isinstance(update, OkFrame)
    assert update.msg == OkMsg(market_tickers=["KXABC-26JAN01-T1"])
    assert (update.sid, update.seq) == (7, 222)
    assert isinstance(listing, OkFrame)
    assert listing.msg == [SubscriptionInfo(channel="fill", sid=3)]


def test_envelope_fields_are_optional_and_read() -> None:
    combo = decode_frame(_lines("current_communications.jsonl")[4], 0)
    assert isinstance(combo, RfqCreatedFrame)
    assert (combo.sid, combo.seq, combo.sending_ts_ms) == (15, 5, 1787000000123)
    seed = decode_frame(_lines("seed_communications.jsonl")[0], 0)
    assert (seed.sid, seed.seq, seed.id, seed.sending_ts_ms) == (15, None, None, None)


def test_batch_frames_decode_loosely() -> None:
    msg = decode_frame(_lines("batch_and_unknown.jsonl")[2], 0)
    assert isinstance(msg, RfqBatchBestQuotesFrame)
    assert msg.msg == [{"rfq_id": "r1", "yes_bid_dollars": "0.41"}]
    assert decode_events(_lines("batch_and_unknown.jsonl")[2], 0) == []


def test_unknown_type_is_returned_not_raised() -> None:
    raw = b'{"type": "user_order", "sid": 30, "msg": {"order_id": "o1"}}'
    msg = decode_frame(raw, 123)
    assert msg == UnknownMessage(type="user_order", raw=raw, ts_recv_ns=123)
    assert decode_events(raw, 123) == []


def test_unknown_type_with_broken_body_is_still_unknown() -> None:
    # An unmodelled type is skipped whatever its body: we cannot judge it.
    msg = decode_frame(b'{"type": "user_order", "msg": 5}', 0)
    assert isinstance(msg, UnknownMessage)


def test_unknown_fields_are_ignored() -> None:
    raw = _lines("api_doc_examples.jsonl")[5]
    data = json.loads(raw)
    data["brand_new_top"] = {"x": [1, 2]}
    data["msg"]["brand_new_field"] = "0.99"
    extended = json.dumps(data).encode()
    assert decode_frame(extended, 0) == decode_frame(raw, 0)


def test_str_and_bytes_decode_alike() -> None:
    raw = _lines("api_doc_examples.jsonl")[5]
    assert decode_frame(raw.decode(), 0) == decode_frame(raw, 0)


def test_types_are_strict() -> None:
    with pytest.raises(DecodeError) as info:
        decode_frame(b'{"type": "subscribed", "msg": {"channel": "fill", "sid": "3"}}', 0)
    assert info.value.msg_type == "subscribed"


MALFORMED = _lines("malformed.jsonl")


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_known_frame_raises_decode_error_with_raw(raw: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_events(raw, 0)
    assert info.value.raw == raw
    if raw.startswith(b'{"type": "'):
        assert info.value.msg_type == peek_type(raw)
        assert info.value.msg_type in KNOWN_TYPES


def test_legacy_string_in_integer_cent_field_is_rejected() -> None:
    raw = (
        b'{"type": "quote_accepted", "msg": {"quote_id": "q", "rfq_id": "r", '
        b'"market_ticker": "M", "yes_bid": "35", "no_bid": 65}}'
    )
    with pytest.raises(DecodeError) as info:
        decode_frame(raw, 0)
    assert info.value.msg_type == "quote_accepted"


def test_decoded_accept_keeps_side_enum() -> None:
    msg = decode_frame(_lines("api_doc_examples.jsonl")[5], 0)
    assert isinstance(msg, QuoteAcceptedFrame)
    assert msg.msg.accepted_side == "yes"
    assert msg.msg.contracts_accepted_fp == "100.00"


# --- peek_type ------------------------------------------------------------------------------


def test_peek_type_reads_top_level_type() -> None:
    assert peek_type(b'{"id": 3, "type" : "ok", "msg": []}') == "ok"
    assert peek_type(b'{"msg": {"type": "inner"}, "type": "outer"}') == "outer"
    assert peek_type(b'{"event_type": "created", "type": "x"}') == "x"
    assert peek_type(b'{"type":"rfq_created","sid":1}') == "rfq_created"  # fast path
    assert peek_type(b'{"type":"a\\"b"}') is None  # escaped: fast path declines


@pytest.mark.parametrize(
    "raw",
    [b"", b"[1]", b'{"type": 7}', b'{"type": "a\\"b"}', b'{"msg": {"type": "in"}}', b'{"type"'],
)
def test_peek_type_gives_none_when_unsure(raw: bytes) -> None:
    assert peek_type(raw) is None


@pytest.mark.parametrize(("name", "line_no", "raw"), GOOD_LINES)
def test_peek_type_agrees_with_decoder(name: str, line_no: int, raw: bytes) -> None:
    assert peek_type(raw) == json.loads(raw)["type"]


# --- never anything but DecodeError ----------------------------------------------------------

# Plausible wire values too, so that random frames reach the money and timestamp parsers.
_wire_strings = st.from_regex(r"-?[0-9]{0,3}(\.[0-9]{0,8})?", fullmatch=True) | st.sampled_from(
    ["0.35", "1.00", "-54.00", "0", "2024-12-01T10:00:00Z", "yes", "no", "bid", "ask", "sell"]
)
_json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | _wire_strings
)
_json = st.recursive(
    _json_scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=12,
)
_field_names = st.sampled_from(
    ["id", "market_ticker", "quote_id", "rfq_id", "yes_bid_dollars", "contracts_fp", "side",
     "price_dollars", "delta_fp", "order_id", "trade_id", "is_taker", "count_fp", "yes",
     "yes_dollars_fp", "event_type", "created_ts", "code", "channel", "sid", "outcome_side"]
)
_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(KNOWN_TYPES)) | st.text(max_size=5)},
    optional={
        "msg": st.dictionaries(_field_names, _json, max_size=8) | _json,
        "sid": _json,
        "seq": _json,
    },
)


_GOOD_DICTS = [json.loads(raw) for _, _, raw in GOOD_LINES if isinstance(json.loads(raw), dict)]


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, object]:
    """A valid fixture frame with some payload fields replaced or dropped."""
    frame = json.loads(json.dumps(draw(st.sampled_from(_GOOD_DICTS))))
    msg = frame.get("msg")
    if isinstance(msg, dict) and msg:
        for key in draw(st.lists(st.sampled_from(sorted(msg)), max_size=3)):
            if draw(st.booleans()):
                msg[key] = draw(_json)
            else:
                msg.pop(key, None)
    return frame


def _only_decode_errors(raw: bytes | str) -> None:
    try:
        decode_events(raw, 0)
    except DecodeError as exc:
        raw_kept = exc.raw
    else:
        return
    assert raw_kept == raw


@settings(max_examples=300, deadline=None)
@given(_frames)
def test_random_frames_raise_only_decode_error(frame: dict[str, object]) -> None:
    _only_decode_errors(json.dumps(frame).encode())


@settings(max_examples=300, deadline=None)
@given(_mutated())
def test_mutated_fixture_frames_raise_only_decode_error(frame: dict[str, object]) -> None:
    _only_decode_errors(json.dumps(frame).encode())


@settings(max_examples=200, deadline=None)
@given(_json)
def test_random_json_raises_only_decode_error(value: object) -> None:
    _only_decode_errors(json.dumps(value))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=32))
def test_random_bytes_raise_only_decode_error(raw: bytes | str) -> None:
    _only_decode_errors(raw)
