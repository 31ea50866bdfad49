"""Recorded answers: backtest a service recording on the recorded run while we act as it did.

A service recording (``quoter run`` / ``quoter demo``, or a :func:`backtests.world.run_world`
recording) holds every input the live kernel stepped, in order and with its ``now_ns``: frames
*and* the rest (REST results, market metadata, REST books, timers, pool answers, kill switch).
With ``--auction recorded`` the backtest walks those steps instead of the bare frames:

* an **oracle** kernel (a plain replay of the recording with its own config,
  :func:`backtests.replay.new_kernel`) gives, step by step, the actions the live kernel took;
* the backtest kernel (the same ``Kernel`` type, with the backtest's config) is stepped on the
  same input at the same ``now_ns``; its actions are grouped by **thread** (what owns them: an
  RFQ, a market, a timer, the kill switch, ...) and compared with the oracle's thread by
  thread;
* while a thread's actions are the recorded ones it is **matched**: its requests are not sent
  to the modelled exchange and its timers are not armed, because the recording holds their
  answers (``QuotePlaced``, the ``quote_accepted`` / ``fill`` frames, ``TimerFired`` ...) at the
  times the live run got them, and those are stepped as recorded;
* the first difference **diverges** the thread for the rest of the run: the quote it has open
  on the recorded RFQ is adopted by the modelled exchange (created there, and accepted or
  confirmed if the recording had got that far), its requests in flight are sent there, its
  pending timers are armed on the virtual clock, and from then on the modelled exchange and
  the auction model answer it; the recorded answers of a diverged thread are dropped. A
  recorded step that is dropped diverges every thread the live run acted on in it (we did not
  do those things), and any action taken in a step the recording does not have (a modelled
  answer) diverges its thread.

Market data, RFQs, lifecycle results and operator inputs belong to no thread and are always
stepped. The same config therefore reproduces the live run's commands and fills exactly (no
thread ever diverges); another config stays on the recording wherever it acts the same.
An RFQ thread diverging diverges its market's ``position`` thread (the exchange's position
reports then no longer describe our fills) and the ``account`` thread (balances).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from backtests.exchange import ModelledVenue
from backtests.loop import BacktestLoop, Prepass, prepass
from backtests.models import AuctionModel, LatencyModel
from backtests.replay import (
    MAX_PENDING_FRAMES,
    EngineInput,
    EngineStart,
    iter_engine_inputs_and_frames,
    new_engine,
)
from quoter.config import QuoterConfig, config_hash
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.domain.types import Side
from quoter.ports import MemoryConfirmJournal
from quoter.recording.format import (
    CONFIG_KIND,
    ENGINE_START_KIND,
    EventLine,
    InLine,
    PerfPlayer,
    read_recording,
)
from quoter.runtime.kernel import Action, InputTaken, Kernel, Post
from quoter.runtime.prefilter import build_prefilter

__all__ = ["RecordedAnswers", "Thread", "has_engine_steps", "run_recorded"]

#: What owns an action or an answer: ``(kind, name)``, e.g. ``("rfq", id)``, ``("market", t)``.
Thread = tuple[str, str]

#: Actions whose answer the recording holds while their thread is matched.
_ANSWERED = (cmd.SubmitQuote, cmd.CancelQuote, cmd.ConfirmQuote, cmd.FetchMarket,
             cmd.RequestBookSnapshot, cmd.PriceInPool, cmd.ScheduleTimer, cmd.CancelTimer, Post)
#: Actions compared with the recorded run (the answered ones and what is only recorded).
_COMPARED = (*_ANSWERED, cmd.RecordDecision, cmd.SubscribeMarkets, cmd.UnsubscribeMarkets)
_CONTROL: Thread = ("control", "")
_ACCOUNT: Thread = ("account", "")

#: How many lines of a file to look through for ``engine_start``.
_HEAD_LINES = 64


def has_engine_steps(paths: Iterable[Path | str], config: QuoterConfig | None = None) -> bool:
    """True if the files are service recordings whose run can be replayed as recorded.

    Every file must be a recording and the first must start an engine run; with ``config``,
    the recorded run's own config must be known too (its text recorded, or ``config`` itself).
    """
    files = [Path(p) for p in paths]
    if not files:
        return False
    for i, path in enumerate(files):
        try:
            head = [line for _, line in zip(range(_HEAD_LINES), read_recording(path),
                                            strict=False)]
        except Exception:  # not a recording at all: an interchange file
            return False
        if i > 0:
            continue
        starts = [x.payload for x in head
                  if isinstance(x, EventLine) and x.kind == ENGINE_START_KIND]
        if not starts:
            return False
        if config is not None:
            texts = {x.payload.get("config_hash") for x in head
                     if isinstance(x, EventLine) and x.kind == CONFIG_KIND}
            digest = starts[0].get("config_hash")
            if digest != config_hash(config) and digest not in texts:
                return False
    return True


@dataclass
class _OpenQuote:
    """A quote of ours the recording placed on an RFQ, as far as it has gone."""

    quote_id: str
    command: cmd.SubmitQuote
    accepted_side: Side | None = None
    confirmed: bool = False


@dataclass
class RecordedAnswers:
    """The threads of a recorded-answers run: which are matched, what they wait for."""

    loop: BacktestLoop
    order_rfq: dict[str, str] = field(default_factory=dict)
    diverged: set[Thread] = field(default_factory=set)
    #: Matched requests whose recorded answer has not come yet, per thread.
    inflight: dict[Thread, list[Action]] = field(default_factory=dict)
    #: Matched timers not yet fired: key -> (fire_at_ns, owner).
    timers: dict[str, tuple[int, Thread]] = field(default_factory=dict)
    open: dict[str, _OpenQuote] = field(default_factory=dict)
    quote_rfq: dict[str, str] = field(default_factory=dict)
    market_of_rfq: dict[str, str] = field(default_factory=dict)
    steps_recorded: int = 0
    steps_dropped: int = 0
    steps_modelled: int = 0
    #: (now_ns, thread) of every divergence, in order.
    divergences: list[tuple[int, Thread]] = field(default_factory=list)
    #: Recent frames the live run stepped and our pre-filter drops (their numbers).
    dropped_frames: OrderedDict[int, None] = field(default_factory=OrderedDict)
    #: Frames the live pre-filter dropped and ours keeps: stepped as modelled inputs.
    frames_added: int = 0

    def __post_init__(self) -> None:
        self.loop.carry = self._carry_modelled

    # -- owners ------------------------------------------------------------------------------

    def timer_owner(self, key: str) -> Thread:
        """The thread of a timer key (the engine's keys name an RFQ, a quote or a market)."""
        known = self.timers.get(key)
        if known is not None:
            return known[1]
        prefix, _, rest = key.partition(":")
        if prefix in ("pricing", "replace", "pending"):
            return ("rfq", rest)
        if prefix in ("held", "confirm", "exec") and rest in self.quote_rfq:
            return ("rfq", self.quote_rfq[rest])
        if prefix in ("close", "stale"):
            return ("market", rest)
        return ("timer", key)

    def action_owner(self, action: Action) -> Thread | None:
        """The thread of an action we compare with the recording (None: not compared)."""
        match action:
            case (cmd.SubmitQuote(rfq_id=rfq) | cmd.CancelQuote(rfq_id=rfq)
                  | cmd.ConfirmQuote(rfq_id=rfq) | cmd.PriceInPool(rfq_id=rfq)):
                return ("rfq", rfq)
            case cmd.RecordDecision(rfq_id=rfq, market_ticker=ticker):
                return ("rfq", rfq) if rfq else ("market", ticker)
            case cmd.ScheduleTimer(key=key) | cmd.CancelTimer(key=key):
                return self.timer_owner(key)
            case cmd.FetchMarket(market_ticker=t) | cmd.RequestBookSnapshot(market_ticker=t):
                return ("market", t)
            case cmd.SubscribeMarkets() | cmd.UnsubscribeMarkets():
                return ("subscriptions", "")
            case Post():
                return _CONTROL
            case _:
                return None

    def event_owner(self, event: ev.Event, from_frame: bool) -> Thread | None:
        """The thread whose answer this recorded input is (None: market data, RFQs, ...)."""
        match event:
            case (ev.QuotePlaced(rfq_id=rfq) | ev.QuoteRejected(rfq_id=rfq)
                  | ev.QuoteConfirmed(rfq_id=rfq) | ev.ConfirmFailed(rfq_id=rfq)
                  | ev.QuoteCancelled(rfq_id=rfq) | ev.QuoteCancelFailed(rfq_id=rfq)
                  | ev.PricingCompleted(rfq_id=rfq) | ev.QuoteCreated(rfq_id=rfq)
                  | ev.QuoteAccepted(rfq_id=rfq) | ev.QuoteExecuted(rfq_id=rfq)):
                return ("rfq", rfq)
            case ev.FillReceived(order_id=order, market_ticker=ticker):
                of_order = self.order_rfq.get(order)
                return ("rfq", of_order) if of_order is not None else ("position", ticker)
            case ev.PositionReported(market_ticker=ticker):
                return ("position", ticker)
            case ev.BalanceReported():
                return _ACCOUNT
            case ev.TimerFired(key=key):
                return self.timer_owner(key)
            case ev.MarketLoaded(market=market):
                return ("market", market.ticker)
            case ev.MarketLoadFailed(market_ticker=ticker):
                return ("market", ticker)
            case ev.BookSnapshotReceived(market_ticker=ticker) if not from_frame:
                return ("market", ticker)  # a REST snapshot: the answer of our request
            case ev.KillSwitchChanged():
                return _CONTROL
            case _:
                return None

    def _learn(self, actions: Iterable[Action]) -> None:
        """The market of every RFQ we act on (a diverging RFQ diverges its market's positions)."""
        for action in actions:
            if isinstance(action, cmd.SubmitQuote | cmd.RecordDecision) and action.rfq_id:
                self.market_of_rfq[action.rfq_id] = action.market_ticker

    def _by_thread(self, actions: Iterable[Action]) -> dict[Thread, list[Action]]:
        out: dict[Thread, list[Action]] = {}
        for action in actions:
            if isinstance(action, _COMPARED):
                owner = self.action_owner(action)
                if owner is not None:
                    out.setdefault(owner, []).append(_comparable(action))
        return out

    # -- the recorded frames and steps -------------------------------------------------------

    def frame(self, line: InLine, live_keep: Callable[[bytes], bool]) -> None:
        """A recorded frame, before the steps that use it: which pre-filter keeps it?

        The live run stepped it if its pre-filter kept it (the recorded config's); ours may
        differ. Kept by both: its recorded steps follow. Kept by the live run only: its steps
        are dropped (``recorded``). Kept by ours only: it is stepped now, at its receive time,
        as an input the recording does not have.
        """
        loop = self.loop
        data = line.frame.encode("utf-8")
        if live_keep(data):
            loop.frames += 1
            if not loop.keep(data):
                loop.metrics.prefiltered += 1
                if line.n is not None:
                    self.dropped_frames[line.n] = None
                    if len(self.dropped_frames) > MAX_PENDING_FRAMES:
                        self.dropped_frames.popitem(last=False)
            return
        if loop.keep(data):
            self.frames_added += 1
            loop.run_until(line.ts_recv_ns)
            loop.frame(data)  # counts the frame; its actions diverge their threads
            return
        loop.frames += 1
        loop.metrics.prefiltered += 1

    # -- the recorded steps ------------------------------------------------------------------

    def recorded(self, item: EngineInput, oracle: list[Action], perf: PerfPlayer) -> None:
        """Step one recorded input (unless its thread diverged) and compare with the oracle."""
        loop, event, now = self.loop, item.event, item.now_ns
        from_frame = item.in_seq is not None
        owner = self.event_owner(event, from_frame)
        ours_dropped = from_frame and item.in_seq in self.dropped_frames  # our pre-filter's
        if ours_dropped or (owner is not None and owner in self.diverged):
            # The modelled exchange answers this thread now; the live run acted on this
            # input, and we do not get it, so whatever it did there did not happen here.
            self.steps_dropped += 1
            self._learn(oracle)
            for thread in self._by_thread(oracle):
                self.diverge(thread, now)
            return
        self.steps_recorded += 1
        if from_frame:
            loop.mirror_event(event)
        if owner is None and loop.venue is not None:
            loop.venue.observe(event, now)  # RFQs to open, results to settle
        self._note(event)
        loop.features.observe(event)
        loop.metrics.observe(event, now, loop)
        perf.load(item.perf_readings)
        actions = loop.kernel.step(event, now)
        self._learn(oracle)
        self._learn(actions)
        recorded, mine = self._by_thread(oracle), self._by_thread(actions)
        for thread in recorded.keys() | mine.keys():
            if recorded.get(thread) != mine.get(thread):
                self.diverge(thread, now)
        for action in actions:
            self._carry_recorded(action, now)

    def _carry_recorded(self, action: Action, now: int) -> None:
        owner = self.action_owner(action) if isinstance(action, _ANSWERED) else None
        if owner is None or owner in self.diverged:
            self.loop.apply(action)
            return
        kernel, metrics = self.loop.kernel, self.loop.metrics
        match action:
            case cmd.SubmitQuote():
                # Released as the live driver would; a refusal's QuoteRejected is recorded.
                if kernel.release_submit(action, now).event is None:
                    metrics.submitted(action, now)
                    self.loop.fair_of_rfq[action.rfq_id] = action.fair_yes_micros
                    self.inflight.setdefault(owner, []).append(action)
            case cmd.ConfirmQuote():
                if kernel.release_confirm(action, now).send:  # claims it in the journal
                    metrics.confirm_sent(action, now)
                    self.inflight.setdefault(owner, []).append(action)
            case cmd.CancelQuote():
                if kernel.release_cancel(action).send:
                    self.inflight.setdefault(owner, []).append(action)
            case cmd.FetchMarket() | cmd.RequestBookSnapshot() | cmd.PriceInPool():
                self.inflight.setdefault(owner, []).append(action)
            case cmd.ScheduleTimer(key=key, fire_at_ns=at):
                self.timers[key] = (at, owner)
            case cmd.CancelTimer(key=key):
                self.timers.pop(key, None)
            case _:
                pass  # a Post: the recording has the event it posted

    def _carry_modelled(self, action: Action) -> None:
        """An action of a step the recording does not have: its thread is the model's now."""
        if isinstance(action, InputTaken):
            self.steps_modelled += 1
            self._note(action.event)
        elif isinstance(action, _COMPARED):
            self._learn((action,))
            owner = self.action_owner(action)
            if owner is not None:
                self.diverge(owner, self.loop.clock.now_ns())
        self.loop.apply(action)

    def _answered(self, thread: Thread, kind: type, quote_id: str | None = None) -> None:
        waiting = self.inflight.get(thread)
        if not waiting:
            return
        for i, c in enumerate(waiting):
            if isinstance(c, kind) and (quote_id is None or getattr(c, "quote_id", "") == quote_id):
                del waiting[i]
                return

    def _note(self, event: ev.Event) -> None:
        """Follow our quotes and what answers what, in an input about to be stepped."""
        match event:
            case ev.QuotePlaced(rfq_id=rfq, quote_id=qid):
                self.quote_rfq[qid] = rfq
                waiting = [c for c in self.inflight.get(("rfq", rfq), ())
                           if isinstance(c, cmd.SubmitQuote)]
                self._answered(("rfq", rfq), cmd.SubmitQuote)
                if waiting:
                    assert isinstance(waiting[0], cmd.SubmitQuote)
                    self.open[rfq] = _OpenQuote(qid, waiting[0])
            case ev.QuoteRejected(rfq_id=rfq):
                self._answered(("rfq", rfq), cmd.SubmitQuote)
            case ev.QuoteCreated(rfq_id=rfq, quote_id=qid):
                self.quote_rfq[qid] = rfq
            case ev.QuoteAccepted(rfq_id=rfq, quote_id=qid, accepted_side=side):
                self.quote_rfq[qid] = rfq
                q = self.open.get(rfq)
                if q is not None and q.quote_id == qid:
                    q.accepted_side = side
            case ev.QuoteConfirmed(rfq_id=rfq, quote_id=qid):
                self._answered(("rfq", rfq), cmd.ConfirmQuote, qid)
                q = self.open.get(rfq)
                if q is not None and q.quote_id == qid:
                    q.confirmed = True
            case ev.ConfirmFailed(rfq_id=rfq, quote_id=qid):
                self._answered(("rfq", rfq), cmd.ConfirmQuote, qid)
            case ev.QuoteCancelled(rfq_id=rfq, quote_id=qid):
                self._answered(("rfq", rfq), cmd.CancelQuote, qid)
                if rfq in self.open and self.open[rfq].quote_id == qid:
                    del self.open[rfq]
            case ev.QuoteCancelFailed(rfq_id=rfq, quote_id=qid):
                self._answered(("rfq", rfq), cmd.CancelQuote, qid)
            case ev.QuoteExecuted(rfq_id=rfq, quote_id=qid, order_id=order):
                self.order_rfq.setdefault(order, rfq)
                if rfq in self.open and self.open[rfq].quote_id == qid:
                    del self.open[rfq]
            case ev.RfqDeleted(rfq_id=rfq):
                self.open.pop(rfq, None)
            case ev.MarketLoaded(market=market):
                self._answered(("market", market.ticker), cmd.FetchMarket)
            case ev.MarketLoadFailed(market_ticker=ticker):
                self._answered(("market", ticker), cmd.FetchMarket)
            case ev.BookSnapshotReceived(market_ticker=ticker):
                self._answered(("market", ticker), cmd.RequestBookSnapshot)
            case ev.PricingCompleted(rfq_id=rfq):
                self._answered(("rfq", rfq), cmd.PriceInPool)
            case ev.TimerFired(key=key):
                self.timers.pop(key, None)
            case _:
                pass

    # -- divergence --------------------------------------------------------------------------

    def diverge(self, thread: Thread, now_ns: int) -> None:
        """Hand ``thread`` to the modelled exchange for the rest of the run."""
        if thread in self.diverged:
            return
        self.diverged.add(thread)
        self.divergences.append((now_ns, thread))
        loop = self.loop
        if thread[0] == "rfq":
            rfq = thread[1]
            q = self.open.pop(rfq, None)
            if q is not None and isinstance(loop.venue, ModelledVenue):
                loop.venue.adopt(rfq, q.quote_id, q.command, q.accepted_side, q.confirmed)
            market = self.market_of_rfq.get(rfq)
            if market is not None:
                self.diverge(("position", market), now_ns)
            self.diverge(_ACCOUNT, now_ns)
        for request in self.inflight.pop(thread, []):
            loop.send_request(request)
        for key, (at, owner) in list(self.timers.items()):
            if owner == thread:
                del self.timers[key]
                loop.clock.timers.arm(key, at)

    def report(self) -> dict[str, object]:
        """How much of the run stayed on the recording."""
        kinds: dict[str, int] = {}
        for _, (kind, _) in self.divergences:
            kinds[kind] = kinds.get(kind, 0) + 1
        return {"steps_recorded": self.steps_recorded, "steps_dropped": self.steps_dropped,
                "steps_modelled": self.steps_modelled, "diverged": dict(sorted(kinds.items())),
                "first_divergence_ns": self.divergences[0][0] if self.divergences else None}


def _comparable(action: Action) -> Action:
    """The action as compared: a pool request by its identity, not its pricer objects."""
    if isinstance(action, cmd.PriceInPool):
        return replace(action, inputs=None, pricer=None, overlays=())
    return action




def run_recorded(
    paths: Iterable[Path | str], config: QuoterConfig, *, auction: AuctionModel,
    latency: LatencyModel | None = None, seed: int = 0, pre: Prepass | None = None,
) -> BacktestLoop:
    """Backtest ``config`` on a service recording's engine steps with the recorded answers."""
    files = [Path(p) for p in paths]
    pre = pre if pre is not None else prepass(files)
    if latency is None:
        latency = LatencyModel(seed=seed)
        latency.add_measurements(pre.round_trips)
    loop = BacktestLoop(config, latency, start_ns=pre.first_ns or 0,
                        wall_offset_ns=pre.wall_offset_ns)
    loop.venue = ModelledVenue(loop.clock, auction, markets=pre.markets, books=pre.books,
                               recorded_quotes=pre.quotes, mirror=loop.mirror,
                               deliver=loop.deliver, at=loop.at, seed=seed,
                               fair_of=loop.fair_of_rfq.get,
                               features_of=loop.features_of)
    loop.metrics.auction = auction.name
    answers = RecordedAnswers(loop, order_rfq=dict(pre.order_rfq))
    loop.answers = answers
    oracle_perf, perf = PerfPlayer(), PerfPlayer()
    oracle: Kernel | None = None
    live_keep: Callable[[bytes], bool] | None = None
    for item in iter_engine_inputs_and_frames(files, known=(config,)):
        if isinstance(item, InLine):
            if live_keep is not None:  # frames before the first run start are not the engine's
                answers.frame(item, live_keep)
            continue
        if isinstance(item, EngineStart):
            live_keep = build_prefilter(item.config)
            oracle = Kernel(new_engine(item, oracle_perf), journal=MemoryConfirmJournal())
            loop.engine = new_engine(replace(item, config=config), perf)
            loop.kernel = Kernel(loop.engine, journal=MemoryConfirmJournal())
            continue
        assert oracle is not None  # iter_engine_inputs starts with an EngineStart
        loop.run_until(item.now_ns)
        perf.load(())  # modelled steps on the way: no recorded pricer clock
        oracle_perf.load(item.perf_readings)
        answers.recorded(item, oracle.step(item.event, item.now_ns), perf)
    loop.drain()
    loop.metrics.finish(loop)
    return loop
