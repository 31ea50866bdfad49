"""A cheap pre-filter: drop ``rfq_created`` frames that no strategy could route, untranslated.

The ``communications`` firehose is mostly RFQs on markets we do not price (peers measured about
1.5 % routable at 1,100-1,340 frames/s; ``reference/peers.md`` §1). Building domain events
(exact money, timestamps) costs several microseconds a frame; this probe reads only the type,
the market ticker and whether the RFQ is a combo (msgspec, no dicts), and remembers its verdict
per (ticker, kind), so the common case is one small decode and one dict lookup.

It is conservative by construction: an ``rfq_created`` frame is dropped only when every
enabled strategy's series/event/market patterns or its single/combo kind rule the market out,
and an ``rfq_deleted`` frame only when it deletes an RFQ whose ``rfq_created`` this filter
dropped (the engine never heard of it, so its delete would only cost a decode and an engine
step; about half the firehose is deletes). Those ids are remembered in arrival order, the
oldest forgotten past ``_DROPPED_IDS_MAX``: a delete of a forgotten one simply goes through.
Series and event are read from the ticker the way market metadata derives them when
Kalshi omits them (series = up to the first ``-``, event = up to the last ``-``). Anything the
probe cannot read goes on to the real decoder, which reports it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from quoter.config import QuoterConfig

__all__ = ["build_prefilter"]

_CACHE_MAX = 100_000
#: RFQ ids whose rfq_created was dropped, kept to drop their rfq_deleted (~150 s of a
#: 1,300 frames/s firehose).
_DROPPED_IDS_MAX = 100_000


class _Envelope(msgspec.Struct):
    type: str = ""
    msg: msgspec.Raw = msgspec.Raw(b"null")


class _RfqProbe(msgspec.Struct):
    id: str = ""
    market_ticker: str = ""
    mve_collection_ticker: str | None = None
    # Raw, not ``Raw | None``: msgspec reads ``X | None`` as "null or X" and a Raw there
    # rejects an array, which made every combo listing its legs unreadable (kept, unfiltered).
    mve_selected_legs: msgspec.Raw = msgspec.Raw(b"null")


#: What ``mve_selected_legs`` holds when the RFQ names no legs (the decoder's "not a combo").
_NO_LEGS = (b"null", b"[]")
class _DeleteProbe(msgspec.Struct):
    id: str = ""


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_RFQ = msgspec.json.Decoder(_RfqProbe)
_DELETE = msgspec.json.Decoder(_DeleteProbe)


def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns or "*" in patterns:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns))


@dataclass(frozen=True, slots=True)
class _Rule:
    series: re.Pattern[str] | None
    events: re.Pattern[str] | None
    markets: re.Pattern[str] | None
    kind: str

    def admits(self, ticker: str, is_combo: bool) -> bool:
        if self.kind != "any" and (self.kind == "combo") != is_combo:
            return False
        if self.markets is not None and not self.markets.fullmatch(ticker):
            return False
        if self.series is not None and not self.series.fullmatch(ticker.split("-", 1)[0]):
            return False
        return self.events is None or bool(self.events.fullmatch(ticker.rsplit("-", 1)[0]))


def build_prefilter(config: QuoterConfig) -> Callable[[bytes | str], bool]:
    """Return ``keep(frame) -> bool``: False only for an RFQ no enabled strategy could route."""
    rules = tuple(
        _Rule(_compile(s.match.series), _compile(s.match.events), _compile(s.match.markets),
              s.match.kind)
        for s in config.strategies if s.enabled
    )
    verdicts: dict[tuple[str, bool], bool] = {}
    dropped: dict[str, None] = {}  # insertion-ordered: the oldest id first

    def keep(frame: bytes | str) -> bool:
        try:
            env = _ENVELOPE.decode(frame)
            if env.type == "rfq_deleted":
                rfq_id = _DELETE.decode(env.msg).id
                if rfq_id and rfq_id in dropped:
                    del dropped[rfq_id]
                    return False
                return True
            if env.type != "rfq_created":
                return True
            rfq = _RFQ.decode(env.msg)
        except (msgspec.DecodeError, RecursionError):
            # The real decoder says what is wrong. A frame nested too deep reaches us unread
            # (the feed forwards it so that it is counted and kept): msgspec recurses even to
            # skip a Raw field, and a RecursionError here would end the ingest task.
            return True
        if not rfq.market_ticker:
            return True
        key = (rfq.market_ticker, rfq.mve_collection_ticker is not None
               or bytes(rfq.mve_selected_legs).strip() not in _NO_LEGS)
        verdict = verdicts.get(key)
        if verdict is None:
            verdict = any(rule.admits(*key) for rule in rules)
            if len(verdicts) >= _CACHE_MAX:
                verdicts.clear()
            verdicts[key] = verdict
        if not verdict and rfq.id:
            if len(dropped) >= _DROPPED_IDS_MAX:
                del dropped[next(iter(dropped))]
            dropped[rfq.id] = None
        return verdict

    return keep
