"""A "live" run on the simulator's world in virtual time, recorded for backtesting.

The proof that a backtest's answers are right needs a ground truth: this runs our kernel and
engine in the simulator's synthetic world (its requesters decide which quotes they take, its
competing makers quote against us, its liquidity provider moves the books), all on one
virtual clock and deterministic for a seed, with the same loop as a backtest
(:class:`backtests.engine.BacktestLoop`) and the world's exchange as the venue. The recording
is a service recording (``docs/recording-format.md``): the config text, ``engine_start``,
every frame received (``in`` lines, numbered) and one ``step`` line per kernel step, written
from the kernel's ``InputTaken`` action as the service's hooks do (a frame link, or the event
itself for REST results, market metadata, REST books, timers and posts). So
:func:`backtests.replay.replay` reproduces it, and :func:`backtests.engine.run_backtest` can run
any config on it, with the recorded answers while its commands are the recorded ones
(:mod:`backtests.tape`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import IO, Any

from backtests.exchange import WorldVenue
from backtests.loop import BacktestLoop
from backtests.models import LatencyModel
from quoter import __version__
from quoter.config import QuoterConfig, config_hash
from quoter.domain import events as ev
from quoter.recording.format import CONFIG_KIND, ENGINE_START_KIND, STEP_KIND, encode_event
from quoter.runtime.kernel import InputTaken
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
        self._last: tuple[bytes, int, int] | None = None
        self._line({"k": "header", "type": "quoter_recording_header",
                    "format": "quoter-recording", "format_version": 1,
                    "quoter_version": __version__, "python_version": "3.11",
                    "start_wall_ns": start_ns + wall_offset_ns, "start_ns": start_ns,
                    "file_seq": 0, "source": "backtests.world", "wall_offset_ns": wall_offset_ns})

    def _line(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def _event(self, kind: str, ts_ns: int, payload: dict[str, Any]) -> None:
        self._line({"k": "event", "type": "quoter_recording_event", "kind": kind,
                    "ts_ns": ts_ns, "wall_ns": ts_ns + self._offset, "payload": payload})

    def start(self, config: QuoterConfig, text: str | None, path: str | None,
              engine_state: dict[str, Any], ts_ns: int) -> None:
        """The config text (when known) and ``engine_start``, as the service writes them."""
        digest = config_hash(config)
        if text is not None:
            self._event(CONFIG_KIND, ts_ns, {"config_hash": digest, "path": path, "text": text})
        self._event(ENGINE_START_KIND, ts_ns, {"config_hash": digest,
                                               "wall_offset_ns": self._offset,
                                               "max_pending": 1000, **engine_state})

    def frame(self, data: bytes, ts_ns: int) -> None:
        """One frame received at ``ts_ns`` (before the pre-filter, as the feed tap does)."""
        self._last = (data, ts_ns, self._n)
        self._line({"k": "in", "ts_recv_ns": ts_ns, "wall_ns": ts_ns + self._offset,
                    "conn": "world", "frame": data.decode("utf-8"), "n": self._n})
        self._n += 1

    def step(self, taken: InputTaken) -> None:
        """One kernel step: a link to its frame, or the event itself."""
        origin = taken.origin
        if origin is not None and self._last is not None:
            frame, index = origin
            data, ts_ns, n = self._last
            if frame.data == data and frame.ts_recv_ns == ts_ns:
                self._event(STEP_KIND, taken.now_ns, {"now_ns": taken.now_ns, "in": n,
                                                      "i": index})
                return
        self._event(STEP_KIND, taken.now_ns, {"now_ns": taken.now_ns,
                                              "event": encode_event(taken.event)})

    def fact(self, kind: str, event: ev.Event, ts_ns: int) -> None:
        """A non-frame answer written as a fact line (``--synthetic-rfqs``' market metadata)."""
        self._event(kind, ts_ns, encode_event(event))

    def close(self) -> None:
        """Finish the file."""
        self._f.close()


def run_world(
    config: QuoterConfig, *, seed: int, seconds: float, world: WorldConfig | None = None,
    record: Path | None = None, latency: LatencyModel | None = None,
    config_text: str | None = None, config_path: str | None = None,
) -> BacktestLoop:
    """Run ``config`` live in the simulator's world for ``seconds`` of virtual time.

    ``config_text`` (the YAML the config was parsed from) goes into the recording, so a
    backtest with another config can still replay this run's own decisions.
    """
    world_cfg = world or WorldConfig()
    loop = BacktestLoop(config, latency or LatencyModel(seed=seed), start_ns=0,
                        wall_offset_ns=WALL_OFFSET_NS)
    exchange = SimExchange(loop.clock, ExchangeConfig(id_seed=seed))
    sim_world = World(exchange, loop.clock, world_cfg, seed)
    venue = WorldVenue(sim_world, exchange, world_cfg.demo_user_id, loop.deliver)
    writer = RecordingWriter(record, wall_offset_ns=WALL_OFFSET_NS, start_ns=0) if record else None
    loop.venue = venue
    loop.metrics.auction = "world"
    if writer is not None:
        engine = loop.engine
        writer.start(config, config_text, config_path,
                     {"ledger": engine.ledger.snapshot(),
                      "requesters": engine.requesters.snapshot()}, 0)
        loop.on_receive = writer.frame
        loop.on_input = writer.step
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
