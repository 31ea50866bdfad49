"""The service's observers of the runtime: persistence, recording, metrics, latency.

Everything here observes; nothing decides. The engine and the runtime kernel stay pure, and
the driver stays ignorant of SQLite, Prometheus and the recorder. What does decide is a port:
the confirm journal (:class:`StoreConfirmJournal`) and the book subscriptions
(``quoter.kalshi.source.BookSubscriptions``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import replace

import structlog

from quoter.clock import Clock
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.domain.types import Side
from quoter.engine.engine import Engine
from quoter.errors import DecodeError
from quoter.kalshi.schemas import peek_type
from quoter.observability.metrics import Metrics
from quoter.ports import InboundFrame
from quoter.recording.format import (
    CONFIG_KIND,
    CONFIRM_CLAIM_KIND,
    ENGINE_START_KIND,
    PRICER_TIMEOUT_KIND,
    STEP_KIND,
    PerfTape,
    encode_event,
)
from quoter.recording.recorder import Recorder
from quoter.runtime.driver import RuntimeHooks
from quoter.service.alerts import Alerter
from quoter.service.markouts import ONE_DOLLAR_MICROS, MarkoutTracker
from quoter.service.status import DecisionView, FillView, LatencyRecorder, ShadowQuoteView
from quoter.service.store import ConfirmState, Store

__all__ = ["ServiceHooks", "StoreConfirmJournal"]

log = structlog.get_logger("quoter.service.hooks")

#: Counted RFQ funnel keys (shown in status and the demo summary).
_MAX_TRACKED = 100_000
#: Store meta key of the daily loss stop's day: ``[day_key, start_realized_micros]``.
RISK_DAY_META = "risk_day"
FUNNEL = ("rfqs_seen", "quoted", "accepted", "confirmed", "declined", "fills")


#: Quotes whose strategy is remembered for attributing their execution.
_MAX_QUOTE_STRATEGIES = 100_000

class ServiceHooks(RuntimeHooks):
    """Persist decisions/quotes/confirms/fills, count and time everything."""

    def __init__(
        self,
        *,
        clock: Clock,
        engine: Engine,
        store: Store,
        metrics: Metrics,
        recorder: Recorder | None = None,
        recent: int = 200,
        perf: PerfTape | None = None,
        shadow: bool = False,
    ) -> None:
        self.clock = clock
        #: Shadow mode: a "quoted" decision is a quote we would have sent (``shadow_quoted``),
        #: shown with its prices; the kernel's "rejected/shadow" for it is not news.
        self.shadow = shadow
        self.recent_shadow: deque[ShadowQuoteView] = deque(maxlen=recent)
        self.markouts = MarkoutTracker()
        #: Told about halts, reconciliation mismatches and repeated rejections (the service's).
        self.alerts: Alerter | None = None
        #: YES payout of markets determined or settled, by ticker.
        self.settled_values: dict[str, int] = {}
        self._would_send: dict[str, cmd.SubmitQuote] = {}
        #: The engine's pricer clock, if it is a tape: its readings are recorded per step.
        self.perf = perf
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.recorder = recorder
        self.latency = LatencyRecorder()
        self.counts: dict[str, int] = dict.fromkeys(FUNNEL, 0)
        self.decline_reasons: dict[str, int] = {}
        self.no_quote_reasons: dict[str, int] = {}
        self.recent_decisions: deque[DecisionView] = deque(maxlen=recent)
        self.recent_fills: deque[FillView] = deque(maxlen=recent)
        self._accepted_ns: dict[str, int] = {}
        self._unrouted = 0
        #: Called with True on a halt (the service releases the confirm reserve for cancels).
        self.halt_listener: Callable[[bool], None] | None = None
        self._rfq_recv_ns: dict[str, int] = {}
        # RFQ ids already counted: a backfill can re-deliver an RFQ whose frame raced it.
        self._seen_rfqs: dict[str, None] = {}
        # Facts already counted or persisted, so that a re-delivered event (a backfill racing
        # the live frame) is never counted twice nor written again: (kind, id) and the last
        # state written per quote.
        self._counted: dict[tuple[str, str], None] = {}
        self._quote_state: dict[str, str] = {}
        # Quote id -> its strategy, taken when the quote is placed: by its execution the RFQ's
        # record may be retired (the requester's RFQ closes at the accept, and its delete can
        # be stepped first). Oldest forgotten first, bounded.
        self._quote_strategy: dict[str, str] = {}
        self._risk_day = engine.risk.day_state()

    # -- frames ------------------------------------------------------------------------

    def on_frame(self, frame: InboundFrame, msg_type: str | None) -> None:
        """Count the frame by type (the recorder taps the feed directly)."""
        if msg_type is None and self.recorder is not None:
            # Pre-filtered: no engine step will refer to this frame; drop its link now.
            self.recorder.frame_seq(frame.conn_id, frame.ts_recv_ns, frame.data)
        if msg_type is None:
            raw = frame.data if isinstance(frame.data, bytes) else frame.data.encode()
            msg_type = peek_type(raw) or "unparsed"
        if msg_type.startswith("unknown:"):
            self.metrics.unknown_messages_total.labels(type=msg_type[8:]).inc()
        self.metrics.frames_total.labels(type=msg_type).inc()

    def on_decode_error(self, frame: InboundFrame, error: DecodeError) -> None:
        """Count a frame that failed to decode."""
        if self.recorder is not None:
            self.recorder.frame_seq(frame.conn_id, frame.ts_recv_ns, frame.data)
        self.metrics.decode_errors_total.labels(type=error.msg_type or "unknown",
                                                reason=error.reason).inc()

    # -- engine ------------------------------------------------------------------------

    def on_engine_input(
        self, event: ev.Event, now_ns: int, origin: tuple[InboundFrame, int] | None
    ) -> None:
        """Record the engine step (see ``backtests.replay``): frame link or the event itself."""
        if self.recorder is None:
            return
        if origin is not None:
            frame, index = origin
            n = self.recorder.frame_seq(frame.conn_id, frame.ts_recv_ns, frame.data)
        else:
            n, index = None, 0
        if n is not None:
            self.recorder.record_step(now_ns, n, index)
        else:
            # Not from a recorded frame (REST result, timer, backfill, control...): the event.
            self.recorder.record_event(STEP_KIND,
                                       {"now_ns": now_ns, "event": encode_event(event)})
        if isinstance(event, ev.FillReceived):
            # Money: on disk (with its frame) before the engine books it (item 11).
            self.recorder.sync()

    def record_config(self, config_text: str, digest: str, path: str) -> None:
        """Record the text of a config the engine runs with (initial or reloaded)."""
        if self.recorder is not None:
            self.recorder.record_event(
                CONFIG_KIND, {"config_hash": digest, "path": path, "text": config_text}
            )

    def record_engine_start(
        self, digest: str, wall_offset_ns: int, max_pending: int = 1000
    ) -> None:
        """Record how the engine starts (config, clock offset, restored positions)."""
        # ``max_pending`` must be what the Engine was built with (its default: 1000).
        if self.recorder is not None:
            self.recorder.record_event(ENGINE_START_KIND, {
                "config_hash": digest, "wall_offset_ns": wall_offset_ns,
                "max_pending": max_pending,
                "ledger": self.engine.ledger.snapshot(),
                "risk_day": _day_payload(self.engine.risk.day_state()),
                "requesters": self.engine.requesters.snapshot(),
            })

    def on_decision(self, decision: cmd.RecordDecision, now_ns: int) -> None:
        """Persist and count one decision."""
        if self.shadow:
            if decision.decision == "rejected" and decision.reason == "shadow":
                return  # every shadow quote is "rejected" at the wire: that is the mode
            decision = self._shadow_decision(decision)
        if self.alerts is not None:
            if decision.decision == "rejected" and decision.reason != "halted":
                self.alerts.on_rejection(decision.reason)
            elif decision.decision == "reconcile_mismatch":
                self.alerts.notify("reconcile_mismatch",
                                   f"{decision.market_ticker}: {decision.reason} "
                                   f"{decision.detail}", market=decision.market_ticker)
        if self.recorder is not None and decision.reason == "pricer_timeout":
            # Timing-dependent: reproduced from the perf tape, or listed by a replay run
            # without it (backtests.replay, budgets=False).
            self.recorder.record_event(PRICER_TIMEOUT_KIND, {
                "rfq_id": decision.rfq_id, "market_ticker": decision.market_ticker,
                "detail": decision.detail,
            })
        wall = self.clock.wall_ns()
        self.store.record_decision(
            decision.rfq_id, decision.market_ticker, decision.strategy, decision.decision,
            decision.reason, wall, decision.detail or None,
        )
        self.metrics.record_decision(decision.decision, decision.reason)
        self.recent_decisions.append(DecisionView(
            wall, decision.rfq_id, decision.market_ticker, decision.decision, decision.reason,
            decision.strategy, decision.detail if decision.decision.startswith("shadow_") else "",
        ))
        if decision.decision == "quoted":
            # The engine says "quoted" once per RFQ; replacements are "requoted".
            self.counts["quoted"] += 1
        elif decision.decision == "shadow_quoted":
            self.counts["shadow_quoted"] = self.counts.get("shadow_quoted", 0) + 1
        elif decision.decision == "declined":
            self.counts["declined"] += 1
            self.decline_reasons[decision.reason] = self.decline_reasons.get(decision.reason, 0) + 1
        elif decision.decision == "not_quoted":
            self.no_quote_reasons[decision.reason] = (
                self.no_quote_reasons.get(decision.reason, 0) + 1
            )
            if ((decision.reason == "no_route" or decision.reason.startswith("filtered"))
                    and self._first("unrouted", decision.rfq_id)):
                self._unrouted += 1

    def _shadow_decision(self, decision: cmd.RecordDecision) -> cmd.RecordDecision:
        """Rename a (re)quote to ``shadow_(re)quoted``, carrying the would-be prices."""
        if decision.decision not in ("quoted", "requoted"):
            return decision
        submit = self._would_send.pop(decision.rfq_id, None)
        detail = decision.detail
        if submit is not None:
            view = ShadowQuoteView(
                self.clock.wall_ns(), submit.rfq_id, submit.market_ticker,
                submit.yes_bid_micros, submit.no_bid_micros, submit.fair_yes_micros,
                submit.strategy,
            )
            self.recent_shadow.append(view)
            detail = view.describe()
        return replace(decision, decision=f"shadow_{decision.decision}", detail=detail)

    @property
    def routed(self) -> int:
        """RFQs some strategy's filters accepted."""
        return self.counts["rfqs_seen"] - self._unrouted

    def on_engine_step(self, event: ev.Event, commands: list[cmd.Command], now_ns: int) -> None:
        """Time decisions and persist lifecycle facts."""
        day = self.engine.risk.day_state()
        if day != self._risk_day:
            # Once a day: a restart resumes the day, so its losses so far still count.
            self._risk_day = day
            self.store.set_meta(RISK_DAY_META, json.dumps(_day_payload(day)))
        if self.recorder is not None and self.perf is not None and self.perf.readings:
            # Right after the step's line: a replay reads the pricer clock back (budgets).
            self.recorder.record_perf(self.perf.readings)
        wall = self.clock.wall_ns()
        self._time_first_quotes(event, commands, now_ns)
        if self.shadow:
            # The step's decisions follow (on_decision): they take these prices along.
            for c in commands:
                if isinstance(c, cmd.SubmitQuote):
                    self._would_send[c.rfq_id] = c
            if len(self._would_send) > _MAX_TRACKED:
                del self._would_send[next(iter(self._would_send))]
        match event:
            case ev.RfqReceived():
                if event.rfq_id not in self._seen_rfqs:
                    self.counts["rfqs_seen"] += 1
                    self._seen_rfqs[event.rfq_id] = None
                    if len(self._seen_rfqs) > _MAX_TRACKED:
                        del self._seen_rfqs[next(iter(self._seen_rfqs))]
                    if event.created_ts_ms is not None:
                        self.metrics.observe_ns(
                            self.metrics.pipe_lag_seconds, wall - event.created_ts_ms * 1_000_000
                        )
            case ev.QuotePlaced():
                strategy = self._strategy_of(event.quote_id)
                if strategy:
                    if len(self._quote_strategy) >= _MAX_QUOTE_STRATEGIES:
                        del self._quote_strategy[next(iter(self._quote_strategy))]
                    self._quote_strategy[event.quote_id] = strategy
                q = self.engine.quotes.get(event.quote_id)
                if q is not None:
                    self.store.record_quote(
                        q.quote_id, q.rfq_id, q.market_ticker, q.yes_bid_micros,
                        q.no_bid_micros, "open", wall,
                    )
                    if q.accepted_side is not None:
                        # An accept that beat this create response was held until now.
                        self._accepted(q.quote_id, q.accepted_side, None, commands, wall)
            case ev.QuoteAccepted():
                if event.quote_id in self.engine.quotes:
                    self._accepted(event.quote_id, event.accepted_side, event.ts_recv_ns,
                                   commands, wall)
            case ev.QuoteConfirmed():
                if self._first("confirmed", event.quote_id):
                    self.counts["confirmed"] += 1
                    self.store.mark_confirm(event.quote_id, ConfirmState.CONFIRMED, wall)
                self._quote_row(event.quote_id, "confirmed", wall)
            case ev.ConfirmFailed():
                if self.store.confirm_state(event.quote_id) is not None:
                    self.store.mark_confirm(event.quote_id, ConfirmState.FAILED, wall,
                                            {"code": event.code})
                self._quote_row(event.quote_id, "confirm_failed", wall, {"code": event.code})
            case ev.QuoteExecuted():
                self._quote_row(event.quote_id, "executed", wall, {"order_id": event.order_id})
                self.markouts.attribute(event.order_id, self._quote_strategy.pop(
                    event.quote_id, "") or self._strategy_of(event.quote_id))
            case ev.QuoteCancelled():
                self._quote_row(event.quote_id, "cancelled", wall)
            case ev.MarketLifecycleChanged(event_type="determined" | "settled" | "finalized"):
                # What a YES contract of it pays: marks fills by strategy after settlement.
                value = event.settlement_value_micros
                if value is None and event.result in ("yes", "no"):
                    value = ONE_DOLLAR_MICROS if event.result == "yes" else 0
                if value is not None:
                    self.settled_values[event.market_ticker] = value
            case ev.FillReceived():
                if self.store.record_fill(event, wall):
                    self.counts["fills"] += 1
                    side = str(event.outcome_side)
                    # The price of the side bought (a NO fill pays $1 - the YES price).
                    price = (event.yes_price_micros if event.outcome_side is Side.YES
                             else ONE_DOLLAR_MICROS - event.yes_price_micros)
                    self.recent_fills.append(FillView(
                        wall, event.trade_id, event.market_ticker, side, price,
                        event.count_centi, event.fee_micros, event.is_taker,
                    ))
                    self.markouts.add_fill(now_ns, event.market_ticker, side, price,
                                           event.count_centi, event.order_id,
                                           event.fee_micros)
            case _:
                pass

    def _strategy_of(self, quote_id: str) -> str:
        """The strategy of one of our quotes ("" if the engine no longer knows it)."""
        r = self.engine.records
        q = r.quotes.get(quote_id)
        rec = r.rfqs.get(q.rfq_id) if q is not None else None
        return rec.strategy if rec is not None else ""

    def _first(self, kind: str, key: str) -> bool:
        """True the first time ``(kind, key)`` is seen (bounded memory)."""
        k = (kind, key)
        if k in self._counted:
            return False
        self._counted[k] = None
        if len(self._counted) > _MAX_TRACKED:
            del self._counted[next(iter(self._counted))]
        return True

    def _quote_row(self, quote_id: str, state: str, wall: int,
                   detail: dict[str, object] | None = None) -> None:
        """Write a quote's state row unless it is the state written last (a replay)."""
        if self._quote_state.get(quote_id) == state:
            return
        self._quote_state[quote_id] = state
        if len(self._quote_state) > _MAX_TRACKED:
            del self._quote_state[next(iter(self._quote_state))]
        self.store.record_quote_state(quote_id, state, wall, detail)
    def _accepted(self, quote_id: str, side: Side | None, recv_ns: int | None,
                  commands: list[cmd.Command], wall: int) -> None:
        if not self._first("accepted", quote_id):
            return  # a re-delivered accept: counted and written once
        self.counts["accepted"] += 1
        self._quote_row(quote_id, "accepted", wall, {"side": str(side)})
        if recv_ns is not None and any(isinstance(c, cmd.ConfirmQuote) for c in commands):
            self._accepted_ns[quote_id] = recv_ns

    def _time_first_quotes(
        self, event: ev.Event, commands: list[cmd.Command], now_ns: int
    ) -> None:
        # RFQ frame -> first SubmitQuote, whichever event released it (an RFQ on a new market
        # waits for its metadata and book, and that wait is part of the latency).
        if isinstance(event, ev.RfqReceived) and event.rfq_id not in self._seen_rfqs:
            self._rfq_recv_ns[event.rfq_id] = event.ts_recv_ns
            if len(self._rfq_recv_ns) > _MAX_TRACKED:
                del self._rfq_recv_ns[next(iter(self._rfq_recv_ns))]
        for c in commands:
            if isinstance(c, cmd.SubmitQuote):
                recv = self._rfq_recv_ns.pop(c.rfq_id, None)
                if recv is not None:
                    self.metrics.observe_ns(self.metrics.frame_to_decision_seconds, now_ns - recv)
                    self.latency.add("frame_to_decision", now_ns - recv)
        if isinstance(event, ev.RfqDeleted):
            self._rfq_recv_ns.pop(event.rfq_id, None)

    # -- requests ----------------------------------------------------------------------

    def on_request_sent(self, command: cmd.Command, queued_ns: int, now_ns: int) -> None:
        """Time decision -> send and accept -> confirm sent."""
        if isinstance(command, cmd.SubmitQuote):
            self.metrics.observe_ns(self.metrics.decision_to_request_seconds, now_ns - queued_ns)
            self.latency.add("decision_to_request", now_ns - queued_ns)
        elif isinstance(command, cmd.ConfirmQuote):
            accepted = self._accepted_ns.pop(command.quote_id, None)
            if accepted is not None:
                self.metrics.observe_ns(self.metrics.accept_to_confirm_sent_seconds,
                                        now_ns - accepted)
                self.latency.add("accept_to_confirm_sent", now_ns - accepted)
            self.store.mark_confirm(command.quote_id, ConfirmState.SENT, self.clock.wall_ns())

    def on_command_result(self, name: str, latency_ns: int, ok: bool) -> None:
        """Time REST round trips."""
        if name == "confirm_quote":
            self.metrics.observe_ns(self.metrics.confirm_round_trip_seconds, latency_ns)
            self.latency.add("confirm_round_trip", latency_ns)
        elif name == "submit_quote":
            self.latency.add("quote_round_trip", latency_ns)
        if not ok:
            self.metrics.rest_errors_total.labels(code=name).inc()

    def on_engine_error(self, event: ev.Event, error: BaseException) -> None:
        """Count an event the engine failed on."""
        self.metrics.engine_errors_total.inc()

    def on_halt(self, reason: str, source: str) -> None:
        """Persist the halt (a restart restores it, see ``Service``), export it, tell the
        service."""
        self.store.record_halt(True, reason, source, self.clock.wall_ns())
        self.metrics.set_halted(True)
        if self.alerts is not None:
            self.alerts.notify("halt", f"quoting halted ({source}): {reason}",
                               reason=reason, source=source)
        if self.halt_listener is not None:
            self.halt_listener(True)


def _day_payload(day: tuple[int | None, int]) -> list[int] | None:
    return None if day[0] is None else [day[0], day[1]]


def restore_risk_day(engine: Engine, store: Store) -> None:
    """Resume the daily loss stop's day from the store (written by ``ServiceHooks``); a bad
    value is logged and ignored (a fresh day starts), never a crash."""
    text = store.get_meta(RISK_DAY_META)
    if text is None:
        return
    try:
        day = json.loads(text)
        if day is not None:
            key, start = day
            if type(key) is not int or type(start) is not int:
                raise TypeError("day_key and start_realized_micros must be integers")
            engine.risk.restore_day(key, start)
    except (ValueError, TypeError) as exc:
        log.warning("risk_day_unreadable", error=str(exc))


def restore_requesters(engine: Engine, store: Store) -> None:
    """Load the per-requester statistics saved by the service (``Service._save_positions``);
    an unreadable row is logged and skipped (that requester starts afresh), never a crash."""
    for creator, row in store.requester_stats().items():
        try:
            engine.requesters.restore({creator: row})
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("requester_stats_unreadable", creator_id=creator, error=str(exc))


class StoreConfirmJournal:
    """The ``ConfirmJournal`` of the service: claims committed to SQLite before a confirm leaves,
    so a quote is never confirmed twice, even across a ``kill -9`` and a restart. With a
    recorder, the claim is also recorded (``confirm_claimed``) and the recording synced to disk
    before the confirm leaves."""

    def __init__(self, store: Store, clock: Clock, recorder: Recorder | None = None) -> None:
        self._store = store
        self._clock = clock
        self._recorder = recorder

    def claim(self, quote_id: str, now_ns: int) -> bool:
        """Durably claim a confirm (stored with the wall time); False if claimed before."""
        claimed = self._store.claim_confirm(quote_id, self._clock.wall_ns())
        if claimed and self._recorder is not None:
            self._recorder.record_event(CONFIRM_CLAIM_KIND, {"quote_id": quote_id})
            self._recorder.sync()
        return claimed
