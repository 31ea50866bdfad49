"""Hypothesis strategies: JSON-aware and byte-level mutations of real inputs."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

#: Numbers as Kalshi writes them (dollar and _fp strings), and their usual corruptions.
_NUMBERISH = st.one_of(
    st.from_regex(r"-?[0-9]{0,6}(\.[0-9]{0,8})?", fullmatch=True),
    st.sampled_from(["NaN", "Infinity", "-0", "1e308", "0x10", " 1.00", "1,00", "", "٣.٠٠"]),
)
_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), _NUMBERISH,
)
JSON_VALUES = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _keys(obj: Any) -> list[str]:
    return [p[-1] for p in _paths(obj) if p and isinstance(p[-1], str)]


@st.composite
def mutate_json(draw: st.DrawFn, seed: Any) -> Any:
    """Apply 1-4 structural mutations to a copy of ``seed``."""
    doc = json.loads(json.dumps(seed))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(
            ["replace", "delete", "add_known", "swap_type", "nest", "dup_list", "stringify"]))
        if not path:
            if op == "nest":
                doc = [doc]
            elif op == "replace":
                doc = draw(JSON_VALUES)
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        value = parent[key]
        if op == "replace":
            parent[key] = draw(JSON_VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "add_known" and isinstance(parent, dict):
            names = _keys(seed) or ["x"]
            parent[draw(st.sampled_from(names))] = draw(JSON_VALUES)
        elif op == "swap_type":
            parent[key] = draw(st.sampled_from(
                [str(value), [value], {"v": value}, None, 0, -1, True]))
        elif op == "nest":
            depth = draw(st.sampled_from([2, 30, 70, 200]))
            for _ in range(depth):
                value = [value]
            parent[key] = value
        elif op == "dup_list" and isinstance(value, list) and value:
            parent[key] = value * draw(st.integers(2, 50))
        elif op == "stringify" and not isinstance(value, str):
            parent[key] = json.dumps(value)
    return doc


@st.composite
def mutate_bytes(draw: st.DrawFn, raw: bytes) -> bytes:
    """Flip, insert, delete or truncate a few bytes of ``raw``."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                [b"\xff", b"\x00", b"[", b"{", b'"', b"\\u0000", b"\xed\xa0\x80", b"1e999"]))
        elif op == "delete" and data:
            del data[at:at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        elif op == "splice" and data:
            j = draw(st.integers(0, len(data)))
            data[at:at] = data[min(at, j):max(at, j)][:64]
    return bytes(data)


@st.composite
def mutated(draw: st.DrawFn, seeds: tuple[bytes, ...]) -> bytes:
    """A real input, mutated structurally (as JSON) and/or at the byte level."""
    raw = draw(st.sampled_from(seeds))
    how = draw(st.sampled_from(["json", "bytes", "both", "raw"]))
    if how in ("json", "both"):
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if doc is not None:
            text = json.dumps(draw(mutate_json(doc)),
                              ensure_ascii=draw(st.booleans()))
            raw = text.encode("utf-8", "surrogatepass")
    if how in ("bytes", "both"):
        raw = draw(mutate_bytes(raw))
    return raw
