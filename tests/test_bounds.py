"""Wire bounds: nesting and size are checked exactly, before any recursive parser runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quoter.clock import ReplayClock
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.errors import DecodeError
from quoter.kalshi.bounds import MAX_JSON_DEPTH, check_json_bounds, json_depth_exceeds
from quoter.kalshi.decode import decode
from quoter.ports import InboundFrame
from quoter.runtime.driver import Runtime


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="[]{}\"\\ab,:"),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(alphabet="[]{}\"ab", max_size=3), inner, max_size=3),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(_json, st.integers(min_value=0, max_value=12))
def test_depth_bound_is_exact_on_valid_json(value: Any, max_depth: int) -> None:
    # Brackets inside strings (escaped quotes included) never count.
    raw = json.dumps(value).encode()
    assert json_depth_exceeds(raw, max_depth) == (_depth(value) > max_depth)


@pytest.mark.parametrize("raw", [
    b"[" * 1000 + b"]" * 1000,
    b'{"type":"ticker","msg":{"ignored":' + b"[" * 1000 + b"]" * 1000 + b"}}",
    b"[" * 1000,  # never closed: a recursive parser still descends all the way
    b"[" * 500 + b"}" * 500,
])
def test_deep_or_unbalanced_text_is_refused_before_msgspec_would_recurse(raw: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        check_json_bounds(raw, max_bytes=1 << 20)
    assert info.value.reason == "too_deep"


def test_shallow_frames_with_many_brackets_pass() -> None:
    # An order book snapshot with 500 levels on each side: many brackets, depth 4.
    levels = [[f"0.{i:04d}", "1.00"] for i in range(1, 501)]
    raw = msgspec.json.encode({"type": "orderbook_snapshot", "msg": {
        "yes_dollars_fp": levels, "no_dollars_fp": levels}})
    check_json_bounds(raw, max_bytes=1 << 20)
    assert not json_depth_exceeds(raw, 4)
    assert json_depth_exceeds(raw, 3)


def test_size_bound() -> None:
    with pytest.raises(DecodeError) as info:
        check_json_bounds(b'"' + b"a" * 100 + b'"', max_bytes=50)
    assert info.value.reason == "too_large"
    check_json_bounds("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, max_bytes=1 << 20)


RFQ_FRAME = ('{"type": "rfq_created", "sid": 15, "seq": 1, "msg": {"id": "rfq_123", '
             '"creator_id": "comm_abc123", "market_ticker": "FED-23DEC-T3.00", '
             '"event_ticker": "FED-23DEC", "contracts_fp": "100.00", '
             '"created_ts": "2024-12-01T10:00:00Z"}}')


def test_the_production_decoder_refuses_a_nested_frame_with_a_typed_error() -> None:
    deep = RFQ_FRAME[:-2] + ', "ignored": ' + "[" * 1000 + "]" * 1000 + "}}"
    for raw in (deep, deep.encode()):
        with pytest.raises(DecodeError) as info:
            decode(raw, 1)
        assert (info.value.reason, info.value.msg_type) == ("too_deep", "rfq_created")
    # The same frame without the nesting decodes.
    msg_type, events = decode(RFQ_FRAME, 1)
    assert msg_type == "rfq_created"
    assert [type(e).__name__ for e in events] == ["RfqReceived"]


class Frames:
    """A frame source over a fixed list (a recording's frames, say)."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    async def frames(self) -> AsyncIterator[InboundFrame]:
        for i, data in enumerate(self._frames):
            yield InboundFrame(data, i + 1, "c1")


class Seen:
    """A real EngineLike that records its inputs; ``rfq`` is set by the first RFQ."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self.rfq = asyncio.Event()

    def on_event(self, event: ev.Event, now_ns: int) -> list[cmd.Command]:
        self.events.append(event)
        if isinstance(event, ev.RfqReceived):
            self.rfq.set()
        return []


async def test_the_runtime_counts_and_drops_a_nested_frame_and_reads_on() -> None:
    deep = (RFQ_FRAME[:-2] + ', "x": ' + "[" * 3000 + "]" * 3000 + "}}").encode()
    engine = Seen()
    runtime = Runtime(clock=ReplayClock(), engine=engine, decode=decode, execution=None,  # type: ignore[arg-type]
                      market_data=None)  # type: ignore[arg-type]
    task = asyncio.create_task(runtime.run([Frames([deep, RFQ_FRAME.encode()])],
                                           until=engine.rfq))
    await asyncio.wait_for(task, 10)
    assert runtime.failure is None
    assert runtime.stats.decode_errors == 1
    assert [type(e).__name__ for e in engine.events][:1] == ["RfqReceived"]
