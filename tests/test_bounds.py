"""Wire bounds: nesting and size are checked exactly, before any recursive parser runs."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quoter.errors import DecodeError
from quoter.kalshi.bounds import MAX_JSON_DEPTH, check_json_bounds, json_depth_exceeds


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

