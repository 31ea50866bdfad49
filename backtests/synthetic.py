"""Synthetic RFQ arrivals for inputs that hold none (market-data-only captures).

:func:`write_synthetic_rfqs` reads the inputs once (streamed) for the single markets they
carry books for (``orderbook_snapshot`` / ``orderbook_delta`` frames), when each is first
seen and when it is determined, then writes a backtest recording (``backtests.world``'s
format) of ``rfq_created`` / ``rfq_deleted`` frames: per market a Poisson process of
``rate_per_market_per_min`` from its first book until it is determined or the inputs end,
each RFQ of a seeded size (uniform in the ``*_contracts_centi`` range), from one of
``requesters`` accounts, open for a seeded lifetime. Each RFQ gets an **intent**, written to
a sidecar file (:func:`intents_path`) the ``synthetic`` auction model reads: the side its
requester wants (YES with probability ``yes_share``), or, for an ``informed_share`` of them,
the mid ``informed_horizon_s`` later (a second streamed reader of the inputs runs that far
ahead of the arrivals): an informed requester takes whichever side of our quote is cheap
against where the price is going, which shows up as adverse markouts. Markets the inputs
never described get ``market`` metadata lines (a 1-cent grid, default fees:
``backtests.exchange.default_market``), so the engine can route them. The file is one more
input: the backtest merges it by receive time and the auction model (``synthetic`` by default
for these RFQs: :class:`backtests.models.SyntheticAuction`) decides what each requester does
with our quotes.

Memory holds one pending arrival per market, the open RFQs and one book per market for the
look-ahead, never the frames.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backtests.exchange import default_market
from backtests.inputs import MARKET_KIND, Fact, Frame, is_recording, merged
from backtests.loop import mirror_book
from backtests.world import RecordingWriter
from quoter.domain import events as ev
from quoter.domain.book import OrderBook
from quoter.domain.money import format_fp
from quoter.errors import ConfigError, DecodeError
from quoter.kalshi.decode import decode
from quoter.recording.format import EventLine, HeaderLine, read_recording
from quoter.sim.wire import rfc3339

__all__ = ["SYNTHETIC_SID", "Intent", "SyntheticRfqs", "intents_path", "read_intents",
           "write_synthetic_rfqs"]

#: The subscription id of the synthetic ``communications`` frames (apart from any recorded).
SYNTHETIC_SID = 90_001
_NS_PER_MIN = 60 * 1_000_000_000
_BOOK_TYPES = (b'"orderbook_snapshot"', b'"orderbook_delta"')


@dataclass(frozen=True, slots=True)
class SyntheticRfqs:
    """How synthetic RFQs arrive: a Poisson rate per market, sizes, lifetimes, requesters."""

    rate_per_market_per_min: float
    seed: int = 0
    min_contracts_centi: int = 100
    max_contracts_centi: int = 10_000
    min_lifetime_ms: int = 5_000
    max_lifetime_ms: int = 30_000
    requesters: int = 4
    #: Of the uninformed requesters, the share that want YES (the rest want NO).
    yes_share: float = 0.5
    #: The share of requesters who know the mid ``informed_horizon_s`` ahead.
    informed_share: float = 0.0
    informed_horizon_s: int = 60

    def __post_init__(self) -> None:
        rate = self.rate_per_market_per_min
        if not (rate > 0 and rate <= 6_000):  # also refuses NaN
            raise ConfigError(f"--synthetic-rfqs: give a rate per market per minute in "
                              f"(0, 6000], got {rate}")
        if not 0 < self.min_contracts_centi <= self.max_contracts_centi:
            raise ConfigError("synthetic RFQs: 0 < min_contracts <= max_contracts")
        if not 0 < self.min_lifetime_ms <= self.max_lifetime_ms:
            raise ConfigError("synthetic RFQs: 0 < min_lifetime_ms <= max_lifetime_ms")
        if self.requesters < 1:
            raise ConfigError("synthetic RFQs: at least one requester")
        for name in ("yes_share", "informed_share"):
            share = getattr(self, name)
            if not 0 <= share <= 1:  # also refuses NaN
                raise ConfigError(f"synthetic RFQs: {name} must be in [0, 1], got {share}")
        if not 0 < self.informed_horizon_s <= 86_400:
            raise ConfigError("synthetic RFQs: informed_horizon_s must be in (0, 86400]")


@dataclass(frozen=True, slots=True)
class Intent:
    """What one synthetic requester will do: the side it wants, or the mid it knows ahead."""

    rfq_id: str
    wants_yes: bool
    informed: bool = False
    #: For an informed requester, the mid ``informed_horizon_s`` after its RFQ (None: no book).
    future_mid_micros: int | None = None


def intents_path(rfqs_path: Path) -> Path:
    """Where the intents of the synthetic RFQs in ``rfqs_path`` are written."""
    return rfqs_path.with_name(rfqs_path.name.removesuffix(".jsonl.gz") + ".intents.jsonl")


def read_intents(path: Path) -> dict[str, Intent]:
    """The intents file as a map by RFQ id; a malformed line is a :class:`ConfigError`."""
    out: dict[str, Intent] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                obj = json.loads(line)
                mid = obj["future_mid_micros"]
                if mid is not None and not (isinstance(mid, int) and 0 <= mid <= 1_000_000):
                    raise ValueError(f"future_mid_micros {mid!r}")
                intent = Intent(str(obj["rfq_id"]), bool(obj["wants_yes"]),
                                bool(obj["informed"]), mid)
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path}:{n}: not a synthetic intent ({exc})") from None
            out[intent.rfq_id] = intent
    return out


class _LookAhead:
    """A second streamed pass over the inputs that keeps every market's book up to a time."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._frames = (x for x in merged(paths) if isinstance(x, Frame))
        self._next: Frame | None = next(self._frames, None)
        self.books: dict[str, OrderBook] = {}

    def mid_at(self, ticker: str, ts_ns: int) -> int | None:
        """The mid of ``ticker`` after every frame received by ``ts_ns`` (monotonic calls)."""
        while self._next is not None and self._next.ts_recv_ns <= ts_ns:
            frame, self._next = self._next, next(self._frames, None)
            if not any(t in frame.data for t in _BOOK_TYPES):
                continue
            try:
                _, events = decode(frame.data, frame.ts_recv_ns)
            except DecodeError:
                continue
            for event in events:
                mirror_book(self.books, event)
        book = self.books.get(ticker)
        return book.mid_micros() if book is not None else None


@dataclass
class _Scan:
    first_ns: dict[str, int]
    end_ns: dict[str, int]
    described: set[str]
    last_ns: int
    wall_offset_ns: int


def _scan(paths: Sequence[Path]) -> _Scan:
    first: dict[str, int] = {}
    end: dict[str, int] = {}
    described: set[str] = set()
    last = 0
    for item in merged(paths):
        if isinstance(item, Fact):
            if isinstance(item.event, ev.MarketLoaded):
                described.add(item.event.market.ticker)
            continue
        if not isinstance(item, Frame):
            continue
        last = max(last, item.ts_recv_ns)
        data = item.data
        is_book = any(t in data for t in _BOOK_TYPES)
        if not is_book and b"determined" not in data:
            continue
        try:
            frame = json.loads(data)
            msg = frame.get("msg") or {}
            ticker = msg.get("market_ticker")
        except (ValueError, AttributeError):
            continue
        if not isinstance(ticker, str) or not ticker:
            continue
        kind = frame.get("type")
        if kind in ("orderbook_snapshot", "orderbook_delta"):
            first.setdefault(ticker, item.ts_recv_ns)
        elif msg.get("event_type") == "determined":
            end.setdefault(ticker, item.ts_recv_ns)
    return _Scan(first, end, described, last, _wall_offset(paths))


def _wall_offset(paths: Iterable[Path]) -> int:
    """The first recording's wall offset, as ``backtests.engine.prepass`` takes it (else 0)."""
    for path in paths:
        if path.suffix != ".gz" or not is_recording(path):
            continue
        for line in read_recording(path):
            if isinstance(line, HeaderLine) and "wall_offset_ns" in line.fields:
                return int(line.fields["wall_offset_ns"])
            if isinstance(line, EventLine) and line.kind == "engine_start":
                return int(line.payload["wall_offset_ns"])
        return 0
    return 0


def write_synthetic_rfqs(inputs: Sequence[Path], out: Path, spec: SyntheticRfqs) -> int:
    """Write the synthetic RFQs for ``inputs`` to ``out`` (a recording) and their intents to
    :func:`intents_path` of it; return how many RFQs."""
    scan = _scan(list(inputs))
    rng = random.Random(spec.seed)
    # Intents draw from their own stream, so adding them left the arrivals as they were.
    intent_rng = random.Random(f"{spec.seed}/intents")
    ahead = _LookAhead(list(inputs)) if spec.informed_share > 0 else None
    horizon_ns = spec.informed_horizon_s * 1_000_000_000
    mean_gap_ns = _NS_PER_MIN / spec.rate_per_market_per_min
    heap: list[tuple[int, int, str, Any]] = []
    seq = 0

    def push(at_ns: int, kind: str, payload: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (at_ns, seq, kind, payload))

    for ticker in sorted(scan.first_ns):
        if ticker not in scan.described:
            push(scan.first_ns[ticker], "market", ticker)  # before its first RFQ
        push(scan.first_ns[ticker] + int(rng.expovariate(1.0) * mean_gap_ns), "arrive", ticker)
    writer = RecordingWriter(out, wall_offset_ns=scan.wall_offset_ns,
                             start_ns=min(scan.first_ns.values(), default=0))
    frames_seq = 0
    count = 0
    intents = intents_path(out).open("w", encoding="utf-8")
    try:
        while heap:
            at_ns, _, kind, payload = heapq.heappop(heap)
            if kind == "market":
                writer.fact(MARKET_KIND, ev.MarketLoaded(default_market(payload), at_ns), at_ns)
                continue
            wall = rfc3339(at_ns + scan.wall_offset_ns)
            frames_seq += 1
            if kind == "arrive":
                ticker = payload
                if at_ns > min(scan.end_ns.get(ticker, scan.last_ns), scan.last_ns):
                    frames_seq -= 1
                    continue
                count += 1
                rfq = {"id": f"synthetic-{spec.seed}-{count:08d}",
                       "creator_id": f"synthetic-requester-{rng.randrange(spec.requesters)}",
                       "market_ticker": ticker, "event_ticker": ticker.rsplit("-", 1)[0],
                       "contracts_fp": format_fp(rng.randint(spec.min_contracts_centi,
                                                             spec.max_contracts_centi))}
                _write(writer, "rfq_created", frames_seq, {**rfq, "created_ts": wall}, at_ns)
                informed = intent_rng.random() < spec.informed_share
                wants_yes = intent_rng.random() < spec.yes_share
                future = (ahead.mid_at(ticker, at_ns + horizon_ns)
                          if informed and ahead is not None else None)
                intents.write(json.dumps({"rfq_id": rfq["id"], "wants_yes": wants_yes,
                                          "informed": informed, "future_mid_micros": future},
                                         separators=(",", ":")) + "\n")
                lifetime_ns = rng.randint(spec.min_lifetime_ms, spec.max_lifetime_ms) * 10**6
                push(at_ns + lifetime_ns, "delete", rfq)
                push(at_ns + max(1, int(rng.expovariate(1.0) * mean_gap_ns)), "arrive", ticker)
            else:
                _write(writer, "rfq_deleted", frames_seq, {**payload, "deleted_ts": wall}, at_ns)
    finally:
        writer.close()
        intents.close()
    return count


def _write(writer: RecordingWriter, type_: str, seq: int, msg: dict[str, Any],
           at_ns: int) -> None:
    frame = {"type": type_, "sid": SYNTHETIC_SID, "seq": seq, "msg": msg}
    writer.frame(json.dumps(frame, separators=(",", ":")).encode(), at_ns)
