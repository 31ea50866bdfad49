"""Run a backtest: the recorded frames, or a service recording's steps with recorded answers.

:func:`run_backtest` picks the driver. With the ``recorded`` auction on service recordings
(files with ``engine_start`` and ``step`` lines), the run walks the recorded engine steps and
keeps the recorded answers while our commands are the recorded ones (:mod:`backtests.tape`): the
same config then reproduces the live run's commands and PnL exactly. Otherwise (other auction
models, ``quoter record`` captures, interchange files, or ``answers="model"``) the recorded
frames are replayed at their receive times and the modelled exchange answers everything.
The loop itself is :class:`backtests.loop.BacktestLoop`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

from backtests.exchange import ModelledVenue
from backtests.inputs import Frame, merged
from backtests.loop import DRAIN_NS, BacktestLoop, Prepass, prepass
from backtests.models import AuctionModel, LatencyModel, RecordedAuction
from backtests.tape import has_engine_steps, run_recorded
from quoter.config import QuoterConfig

__all__ = ["DRAIN_NS", "PROGRESS_EVERY", "BacktestLoop", "Prepass", "frames_of", "prepass",
           "run_backtest"]

#: How often (frames) ``run_backtest`` reports progress.
PROGRESS_EVERY = 10_000


def frames_of(paths: Iterable[Path | str]) -> Iterator[Frame]:
    """Only the frames of the inputs, merged by receive time."""
    for item in merged(paths):
        if isinstance(item, Frame):
            yield item


def run_backtest(
    paths: Iterable[Path | str], config: QuoterConfig, *, auction: AuctionModel,
    latency: LatencyModel | None = None, seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    answers: Literal["auto", "recorded", "model"] = "auto",
) -> BacktestLoop:
    """Backtest ``config`` on the inputs; return the finished loop (metrics, commands).

    ``answers``: ``"recorded"`` walks a service recording's steps with the recorded answers
    (:mod:`backtests.tape`); ``"model"`` replays the frames against the modelled exchange;
    ``"auto"`` (the default) takes the recorded answers for the ``recorded`` auction on
    service recordings whose own config is known (recorded text, or ``config`` itself).
    ``progress(frames_done, frames_total)`` is called every ``PROGRESS_EVERY`` frames and at
    the end.
    """
    files = [Path(p) for p in paths]
    pre = prepass(files)
    if answers == "recorded" or (answers == "auto" and isinstance(auction, RecordedAuction)
                                 and has_engine_steps(files, config)):
        loop = run_recorded(files, config, auction=auction, latency=latency, seed=seed, pre=pre)
        if progress is not None:
            progress(pre.frames, pre.frames)
        return loop
    if latency is None:
        latency = LatencyModel(seed=seed)
        latency.add_measurements(pre.round_trips)
    start = pre.first_ns or 0
    loop = BacktestLoop(config, latency, start_ns=start, wall_offset_ns=pre.wall_offset_ns)
    loop.venue = ModelledVenue(loop.clock, auction, markets=pre.markets, books=pre.books,
                               recorded_quotes=pre.quotes, mirror=loop.mirror,
                               deliver=loop.deliver, at=loop.at, seed=seed,
                               fair_of=loop.fair_of_rfq.get,
                               features_of=loop.features_of)
    loop.metrics.auction = auction.name
    n = 0
    run_until, step = loop.run_until, loop.frame
    for item in merged(files):  # frames_of, inline: a generator less each frame
        if type(item) is not Frame:
            continue
        n += 1
        run_until(item.ts_recv_ns)
        step(item.data)
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(n, pre.frames)
    if progress is not None:
        progress(pre.frames, pre.frames)
    loop.drain()
    loop.metrics.finish(loop)
    return loop
