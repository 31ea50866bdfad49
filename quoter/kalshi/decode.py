"""The production decoder: one raw frame in, its wire type and domain events out.

Every world uses this one function: the service's runtime, a replay of its recording and the
backtester, so a recorded frame decodes the same way wherever it is read again.
"""

from __future__ import annotations

from collections.abc import Callable

from quoter.domain import events as ev
from quoter.kalshi.schemas import decode_frame, frame_type
from quoter.kalshi.translate import to_events

__all__ = ["Decoder", "decode"]

#: What a frame decoder looks like (``decode`` below, or a test's own).
Decoder = Callable[[bytes | str, int], tuple[str | None, list[ev.Event]]]


def decode(data: bytes | str, ts_recv_ns: int) -> tuple[str | None, list[ev.Event]]:
    """Decode one frame into its wire type and domain events (books are YES-priced)."""
    msg = decode_frame(data, ts_recv_ns)
    # We subscribe to order books with use_yes_price: true (kalshi-api.md §2.6).
    return frame_type(msg), to_events(msg, ts_recv_ns, yes_priced=True)
