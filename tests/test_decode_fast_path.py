"""``decode``'s orderbook_delta fast path against the general path, frame by frame.

Both must give the same wire type and equal events (same class, same field values, same
pickle) for every frame, or both raise ``DecodeError`` with the same message, reason,
msg_type and raw bytes. Frames are written in Kalshi's compact layout (``"type"`` first), so
the fast path is the one that sees them.
"""

from __future__ import annotations

import json
import pickle
import random
from typing import Any

import pytest

from quoter.errors import DecodeError
from quoter.kalshi.bounds import MAX_FRAME_BYTES, MAX_JSON_DEPTH
from quoter.kalshi.decode import decode, decode_general

TS = 1_700_000_000_000_000_000


def _outcome(fn: Any, data: bytes | str) -> tuple[Any, ...]:
    try:
        kind, events = fn(data, TS)
    except DecodeError as exc:
        return ("error", str(exc), exc.reason, exc.msg_type, exc.raw)
    return ("ok", kind, [(type(e), e, repr(e), pickle.dumps(e)) for e in events])


def _same(data: bytes | str) -> tuple[Any, ...]:
    fast, general = _outcome(decode, data), _outcome(decode_general, data)
    assert fast == general, data
    return fast


def _frame(msg: dict[str, Any], **envelope: Any) -> bytes:
    body = {"type": "orderbook_delta", "sid": 2, "seq": 7, **envelope, "msg": msg}
    return json.dumps(body, separators=(",", ":")).encode()


GOOD = {"market_ticker": "KXA-26NOV01-T50", "market_id": "9b0f", "price_dollars": "0.4400",
        "delta_fp": "-12.50", "side": "no", "ts_ms": 1_669_149_841_000}


def _variants() -> list[bytes]:
    out = [_frame(GOOD), _frame({**GOOD, "side": "yes"}), _frame({**GOOD, "delta_fp": "0.00"})]
    for key, value in [
        ("price_dollars", "0.0001"), ("price_dollars", "0.9999"), ("price_dollars", "0.480001"),
        ("price_dollars", "0"), ("price_dollars", "1.0000"), ("price_dollars", "-0.44"),
        ("price_dollars", "0.123456789"), ("price_dollars", "abc"), ("price_dollars", ""),
        ("price_dollars", 0.44), ("price_dollars", None), ("price_dollars", "1e-1"),
        ("price_dollars", " 0.44 "), ("price_dollars", "٠.٤٤"), ("price_dollars", "9" * 50),
        ("delta_fp", "1.001"), ("delta_fp", "x"), ("delta_fp", 5), ("delta_fp", None),
        ("delta_fp", "+3.00"), ("side", "maybe"), ("side", None), ("side", "YES"),
        ("market_ticker", 5), ("market_ticker", None), ("ts_ms", "soon"), ("ts", "2026-01-01"),
        ("ts", [1]), ("subaccount", "a"), ("client_order_id", 3), ("market_id", 1),
        ("price", 44), ("delta", 3), ("unknown_field", {"a": [1, {"b": None}]}),
    ]:
        msg = {**GOOD, key: value}
        if value is None:
            del msg[key]
        out.append(_frame(msg))
    # Legacy integer fields alone, and beside the current ones (the current ones win).
    legacy = {k: v for k, v in GOOD.items() if k not in ("price_dollars", "delta_fp")}
    out += [_frame({**legacy, "price": 44, "delta": -3}), _frame({**legacy, "price": 44}),
            _frame({**GOOD, "price": 1, "delta": 1}), _frame({**legacy, "price": 100})]
    # Envelope fields: missing, wrong types, newer ones.
    out += [_frame(GOOD, seq="7"), _frame(GOOD, sid=None), _frame(GOOD, sending_ts_ms=5),
            _frame(GOOD, id=1.5), _frame(GOOD, extra=[[[]]])]
    raw = _frame(GOOD)
    out += [
        raw[:-1], raw + b" ", raw + b"x", raw.replace(b'"seq":7', b'"seq":07'),
        raw[:-1] + b',"type":"orderbook_delta"}', raw[:-1] + b',"type":"rfq_created"}',
        raw.replace(b'"sid":2', b'"sid":2,"sid":"x"'),
        raw.replace(b'"msg":{', b'"msg":{"side":"yes",'),
        raw.replace(b"KXA", b"\xff\xfe"), raw.replace(b"KXA", b"K\\u0058A"),
        raw.replace(b"KXA", b"\\ud800"), raw.replace(b'"0.4400"', b'"0.44\\u0030"'),
        raw.replace(b'{"type":"orderbook_delta",', b'{"type":"orderbook_delta" ,'),
        raw.replace(b'"msg":', b'"msg":{"a":1},"msg":'),
        b'{"type":"orderbook_delta","msg":null}', b'{"type":"orderbook_delta",}',
        b'{"type":"orderbook_delta","msg":[]}', b'{"type":"orderbook_delta",' * 3,
    ]
    # Nesting around the bound, inside a field no Struct declares.
    for depth in (MAX_JSON_DEPTH - 3, MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1,
                  2_000):
        nested = "[" * depth + "]" * depth
        out.append(raw[:-2] + f',"x":{nested}}}}}'.encode())
        out.append(raw[:-2] + f',"x":"{nested}"}}}}'.encode())  # brackets in a string
    out.append(raw[:-2] + b',"x":"' + b"a" * (MAX_FRAME_BYTES - len(raw) - 8) + b'"}}')
    out.append(raw[:-2] + b',"x":"' + b"a" * (MAX_FRAME_BYTES - len(raw)) + b'"}}')
    return out


@pytest.mark.parametrize("data", _variants(), ids=lambda d: d[:80].decode("utf-8", "replace"))
def test_fast_path_equals_general_path(data: bytes) -> None:
    _same(data)
    _same(data.decode("utf-8", "surrogateescape"))  # str frames take the general path


def test_variants_cover_both_outcomes() -> None:
    outcomes = [_same(d)[0] for d in _variants()]
    assert outcomes.count("ok") > 10
    assert outcomes.count("error") > 30
    reasons = {_same(d)[2] for d in _variants() if _same(d)[0] == "error"}
    assert {"malformed", "bad_value", "too_deep", "too_large"} <= reasons


def test_valid_delta_event() -> None:
    kind, (event,) = decode(_frame(GOOD), TS)
    assert kind == "orderbook_delta"
    assert (event.market_ticker, event.side.value, event.price_micros, event.delta_centi,
            event.ts_recv_ns, event.seq, event.sid, event.yes_priced) == (
        "KXA-26NOV01-T50", "no", 440_000, -1_250, TS, 7, 2, True)
    assert hash(event) == hash(decode_general(_frame(GOOD), TS)[1][0])


@pytest.mark.parametrize("seed", range(4))
def test_mutated_frames(seed: int) -> None:
    """Random byte edits of valid frames: whatever the general path says, the fast one says."""
    rng = random.Random(seed)
    base = [_frame({**GOOD, "side": side, "price_dollars": f"0.{p:04d}", "delta_fp": d})
            for side in ("yes", "no") for p in (1, 4400, 9999) for d in ("1.00", "-0.50")]
    alphabet = b'{}[]",:0123456789.-+eE \\abcnoyesltru\xff'
    ok = 0
    for _ in range(1_500):
        data = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len('{"type":"orderbook_delta",'), len(data))
            op = rng.random()
            if op < 0.4:
                data[i] = rng.choice(alphabet)
            elif op < 0.7:
                del data[i]
            else:
                data.insert(i, rng.choice(alphabet))
        ok += _same(bytes(data))[0] == "ok"
    assert ok > 100  # many edits still decode (digits changed, say): both paths agree on them
