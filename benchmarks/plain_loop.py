"""B2's baseline: the same parts in a plain asyncio loop, without the priority lane.

One FIFO queue carries everything, in arrival order: frames from the feed and the answers of
requests (our quote placed, confirmed, ...). One task takes the next item, decodes it if it is
a frame (pre-filter first, as the driver does), steps the same ``Kernel`` around the same
``Engine`` and starts a task per request; there is no priority lane, no separate confirm
worker, no observers, no store. It is what a maker without the driver's lanes would write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from quoter.clock import LiveClock
from quoter.config import parse_config
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.engine.engine import Engine
from quoter.errors import QuoterError
from quoter.kalshi.adapter import KalshiExecution, KalshiMarketData
from quoter.kalshi.auth import Signer, load_private_key
from quoter.kalshi.decode import decode
from quoter.kalshi.rest import KalshiRest
from quoter.kalshi.ws import KalshiFeed
from quoter.ports import MemoryConfirmJournal
from quoter.runtime.kernel import Kernel, Post
from quoter.runtime.prefilter import build_prefilter


class PlainLoop:
    """Feed -> one FIFO -> kernel -> one task per request; answers back into the same FIFO."""

    def __init__(self, port: int, key_path: Path, config_yaml: str) -> None:
        self.clock = LiveClock()
        base = f"http://127.0.0.1:{port}"
        signer = Signer("key-bot", load_private_key(key_path))
        config = parse_config(config_yaml, "plain-loop.yaml")
        self.kernel = Kernel(Engine(config), journal=MemoryConfirmJournal())
        self.keep = build_prefilter(config)
        self.rest = KalshiRest(base + "/trade-api/v2", signer, clock=self.clock)
        self.execution = KalshiExecution(self.rest)
        self.market_data = KalshiMarketData(self.rest)
        self.feed = KalshiFeed(f"ws://127.0.0.1:{port}/trade-api/ws/v2", signer,
                               wall_ms=lambda: self.clock.wall_ns() // 1_000_000,
                               now_ns=self.clock.now_ns, proxy=None)
        self.feed.add_subscription(["communications"])
        self.fifo: asyncio.Queue[Any] = asyncio.Queue()
        self.frames = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, job: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.get_running_loop().create_task(job())  # tracked, cancelled on exit
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set."""
        async with self.rest, asyncio.TaskGroup() as tg:
            feed = tg.create_task(self.feed.run())
            pump = tg.create_task(self._pump())
            step = tg.create_task(self._steps())
            await stop.wait()
            for task in (feed, pump, step, *self._tasks):
                task.cancel()

    async def _pump(self) -> None:
        async for frame in self.feed.frames():
            self.frames += 1
            await self.fifo.put(("frame", frame))

    async def _steps(self) -> None:
        while True:
            item = await self.fifo.get()
            events: list[ev.Event]
            if isinstance(item, tuple):  # ("frame", RawFrame)
                frame = item[1]
                if not self.keep(frame.data):
                    continue
                try:
                    _, events = decode(frame.data, frame.ts_recv_ns)
                except QuoterError:
                    continue
            else:
                events = [item]
            for event in events:
                for action in self.kernel.step(event, self.clock.now_ns()):
                    self._act(action)

    def _act(self, action: Any) -> None:
        now = self.clock.now_ns()
        match action:
            case Post(event=event):
                self.fifo.put_nowait(event)
            case cmd.SubmitQuote():
                self._spawn(lambda: self._submit(action))
            case cmd.CancelQuote():
                self._spawn(lambda: self._cancel(action))
            case cmd.ConfirmQuote():
                self._spawn(lambda: self._confirm(action))
            case cmd.FetchMarket(market_ticker=ticker):
                self._spawn(lambda: self._fetch(ticker))
            case cmd.SubscribeMarkets(market_tickers=tickers):
                # The books do not move in this benchmark: one REST snapshot each stands in
                # for the order-book subscription.
                for ticker in tickers:
                    self._spawn(lambda t=ticker: self._book(t))
            case cmd.RequestBookSnapshot(market_ticker=ticker):
                self._spawn(lambda: self._book(ticker))
            case _:
                del now  # timers and records: not needed for this measurement

    async def _submit(self, c: cmd.SubmitQuote) -> None:
        release = self.kernel.release_submit(c, self.clock.now_ns())
        if release.event is not None:
            self.fifo.put_nowait(release.event)
            return
        try:
            qid = await self.execution.submit_quote(
                c.rfq_id, c.yes_bid_micros, c.no_bid_micros, rest_remainder=c.rest_remainder,
                post_only=c.post_only, subaccount=c.subaccount)
        except QuoterError as exc:
            self.fifo.put_nowait(self.kernel.submit_failed(c, exc, self.clock.now_ns()))
            return
        self.fifo.put_nowait(self.kernel.submitted(c, qid, self.clock.now_ns()))

    async def _cancel(self, c: cmd.CancelQuote) -> None:
        if not self.kernel.release_cancel(c).send:
            return
        with contextlib.suppress(QuoterError):
            await self.execution.cancel_quote(c.rfq_id, c.quote_id)
        self.fifo.put_nowait(self.kernel.cancelled(c, self.clock.now_ns()))

    async def _confirm(self, c: cmd.ConfirmQuote) -> None:
        release = self.kernel.release_confirm(c, self.clock.now_ns())
        if not release.send:
            if release.event is not None:
                self.fifo.put_nowait(release.event)
            return
        try:
            await self.execution.confirm_quote(c.rfq_id, c.quote_id, deadline_ns=c.deadline_ns)
        except QuoterError as exc:
            self.fifo.put_nowait(self.kernel.confirm_failed(c, exc, self.clock.now_ns()))
            return
        self.fifo.put_nowait(self.kernel.confirmed(c, self.clock.now_ns()))

    async def _book(self, ticker: str) -> None:
        with contextlib.suppress(QuoterError):
            self.fifo.put_nowait(await self.market_data.fetch_book(ticker, self.clock.now_ns()))

    async def _fetch(self, ticker: str) -> None:
        try:
            market = await self.market_data.fetch_market(ticker)
        except QuoterError as exc:
            self.fifo.put_nowait(ev.MarketLoadFailed(ticker, str(exc), self.clock.now_ns()))
            return
        self.fifo.put_nowait(ev.MarketLoaded(market, self.clock.now_ns()))
