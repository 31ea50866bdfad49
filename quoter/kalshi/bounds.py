"""Size and nesting bounds on JSON from the wire, checked before any decoder sees it.

msgspec (like every recursive JSON parser) raises ``RecursionError`` on deep nesting: a 6 KB
frame of ~1,000 nested arrays, even inside a field we ignore, is enough. That is not a
``msgspec.DecodeError``, so a bound here turns it into the taxonomy's ``DecodeError`` before
any parser runs. Kalshi's frames and bodies nest at most ~5 levels (an order book level inside
a list inside ``msg``); the bound leaves ample room.

The check is cheap on the hot path: counting ``[`` and ``{`` bytes (C speed) bounds the depth
from above, so nearly every frame passes without a scan. Only a frame with many brackets gets
the precise check: drop escapes, keep only quotes and brackets, drop the string literals,
then peel innermost pairs (one ``replace`` pass removes exactly one level everywhere) at most
``max_depth`` times.
"""

from __future__ import annotations

import re
from typing import Final

from quoter.errors import DecodeError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_JSON_DEPTH",
    "REASON_TOO_DEEP",
    "REASON_TOO_LARGE",
    "check_json_bounds",
    "json_depth_exceeds",
]

#: Deepest nesting accepted (Kalshi's deepest is ~5).
MAX_JSON_DEPTH: Final = 64
#: Largest WebSocket frame accepted for decoding (the socket's own max_size is 4 MiB).
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
#: Largest REST body accepted for decoding (a 1,000-item page is well under 2 MiB).
MAX_BODY_BYTES: Final = 16 * 1024 * 1024

REASON_TOO_DEEP: Final = "too_deep"
REASON_TOO_LARGE: Final = "too_large"

_ESCAPE: Final = re.compile(rb"\\.", re.DOTALL)
_STRING: Final = re.compile(rb'"[^"]*"')
_STRUCTURE: Final = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE: Final = bytes(b for b in range(256) if b not in b'[]{}"')


def json_depth_exceeds(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """True if ``raw`` nests arrays/objects deeper than ``max_depth``.

    A bracket-heavy text that does not balance counts as too deep: it is malformed anyway,
    and a recursive parser would descend through its open brackets before noticing.
    """
    if raw.count("[") + raw.count("{") <= max_depth if isinstance(raw, str) else (
            raw.count(b"[") + raw.count(b"{") <= max_depth):
        return False
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)  # an escaped quote must not end its string
    # Quotes and brackets only, ``{}`` written as ``[]``: a few hundred bytes even for a large
    # book snapshot. Adjacent quotes have nothing structural between them, so dropping them
    # (empty strings, or two strings merged) keeps every bracket that is not inside a string;
    # the rare string that holds a bracket goes with the regex.
    brackets = data.translate(_STRUCTURE, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in brackets:
        brackets = _STRING.sub(b"", brackets)
    for _ in range(max_depth):
        if not brackets:
            return False
        # A non-overlapping replace removes exactly the innermost pairs: one level a pass.
        peeled = brackets.replace(b"[]", b"")
        if len(peeled) == len(brackets):
            return True  # unbalanced: no innermost pair left to peel
        brackets = peeled
    return bool(brackets)


def check_json_bounds(
    raw: bytes | str, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH, what: str = "frame",
    msg_type: str | None = None,
) -> None:
    """Raise ``DecodeError`` (``reason`` too_large / too_deep) unless ``raw`` is in bounds.

    The size of a ``str`` is its length in characters (a decoded text frame).
    """
    if len(raw) > max_bytes:
        raise DecodeError(f"{what} of {len(raw)} bytes exceeds {max_bytes}", raw=raw[:256],
                          msg_type=msg_type, reason=REASON_TOO_LARGE)
    if json_depth_exceeds(raw, max_depth):
        raise DecodeError(f"{what} nests deeper than {max_depth}", raw=raw[:256],
                          msg_type=msg_type, reason=REASON_TOO_DEEP)
