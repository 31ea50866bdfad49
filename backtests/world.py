"""A "live" run on the simulator's world in virtual time, recorded for backtesting.

The proof that a backtest's answers are right needs a ground truth: this runs our kernel and
engine in the simulator's synthetic world (its requesters decide which quotes they take, its
competing makers quote against us, its liquidity provider moves the books), all on one
virtual clock and deterministic for a seed, with the same loop as a backtest
(:class:`backtests.engine.BacktestLoop`) and the world's exchange as the venue. Every frame the
engine was given is written to a recording (``docs/recording-format.md``: header, ``in``
lines), with the market metadata and REST books it was answered as ``market`` / ``book`` event
lines, so :func:`backtests.engine.run_backtest` can run any config on it afterwards.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import IO, Any

from backtests.engine import BacktestLoop
from backtests.exchange import WorldVenue
from backtests.inputs import BOOK_KIND, MARKET_KIND
from backtests.models import LatencyModel
from quoter import __version__
from quoter.config import QuoterConfig
from quoter.domain import events as ev
from quoter.domain.types import MarketInfo
from quoter.recording.format import encode_event
from quoter.sim.config import WorldConfig
from quoter.sim.exchange import ExchangeConfig, SimExchange
from quoter.sim.world import World

__all__ = ["WALL_OFFSET_NS", "RecordingWriter", "run_world"]

#: Virtual time 0 is this Unix time (2026-01-01), so exchange timestamps look real.
WALL_OFFSET_NS = 1_767_225_600 * 1_000_000_000


class RecordingWriter:
    """Write a minimal recording synchronously (header, ``in`` frames, fact events)."""

    def __init__(self, path: Path, *, wall_offset_ns: int, start_ns: int) -> None:
        self._f: IO[str] = gzip.open(path, "wt", encoding="utf-8")  # noqa: SIM115 - closed below
        self._n = 0
        self._offset = wall_offset_ns
        self._line({"k": "header", "type": "quoter_recording_header",
                    "format": "quoter-recording", "format_version": 1,
                    "quoter_version": __version__, "python_version": "3.11",
                    "start_wall_ns": start_ns + wall_offset_ns, "start_ns": start_ns,
                    "file_seq": 0, "source": "backtests.world", "wall_offset_ns": wall_offset_ns})

    def _line(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def frame(self, data: bytes, ts_ns: int) -> None:
        """One frame the engine was given at ``ts_ns``."""
        self._line({"k": "in", "ts_recv_ns": ts_ns, "wall_ns": ts_ns + self._offset,
                    "conn": "world", "frame": data.decode("utf-8"), "n": self._n})
        self._n += 1

    def fact(self, kind: str, event: ev.Event, ts_ns: int) -> None:
        """A non-frame answer the engine was given (market metadata, a REST book)."""
        self._line({"k": "event", "type": "quoter_recording_event", "kind": kind,
                    "ts_ns": ts_ns, "wall_ns": ts_ns + self._offset,
                    "payload": encode_event(event)})

    def close(self) -> None:
        """Finish the file."""
        self._f.close()


class _RecordedWorldVenue(WorldVenue):
    """The world venue, writing what it answered into the recording."""

    writer: RecordingWriter | None = None

    def market(self, ticker: str) -> MarketInfo | None:
        info = super().market(ticker)
        if info is not None and self.writer is not None:
            now = self.exchange.clock.now_ns()
            self.writer.fact(MARKET_KIND, ev.MarketLoaded(info, now), now)
        return info

    def book(self, ticker: str, now_ns: int) -> ev.BookSnapshotReceived:
        snap = super().book(ticker, now_ns)
        if self.writer is not None:
            self.writer.fact(BOOK_KIND, snap, now_ns)
        return snap


def run_world(
    config: QuoterConfig, *, seed: int, seconds: float, world: WorldConfig | None = None,
    record: Path | None = None, latency: LatencyModel | None = None,
) -> BacktestLoop:
    """Run ``config`` live in the simulator's world for ``seconds`` of virtual time."""
    world_cfg = world or WorldConfig()
    loop = BacktestLoop(config, latency or LatencyModel(seed=seed), start_ns=0,
                        wall_offset_ns=WALL_OFFSET_NS)
    exchange = SimExchange(loop.clock, ExchangeConfig(id_seed=seed))
    sim_world = World(exchange, loop.clock, world_cfg, seed)
    venue = _RecordedWorldVenue(sim_world, exchange, world_cfg.demo_user_id, loop.deliver)
    writer = RecordingWriter(record, wall_offset_ns=WALL_OFFSET_NS, start_ns=0) if record else None
    venue.writer = writer
    loop.venue = venue
    loop.metrics.auction = "world"
    if writer is not None:
        loop.on_frame = writer.frame
    end_ns = int(seconds * 1_000_000_000)

    def tick() -> None:
        now = loop.clock.now_ns()
        sim_world.step(now)
        nxt = sim_world.next_due_ns()
        if nxt is not None and nxt <= end_ns:
            loop.at(max(nxt, now + 1), tick)

    loop.at(0, tick)
    try:
        loop.run_until(end_ns)
        loop.drain()
    finally:
        if writer is not None:
            writer.close()
    loop.metrics.finish(loop)
    return loop
