"""The composition root: the one place that picks concrete implementations and wires them.

``Service`` builds, from ``Settings`` and a strategy config file: the signer, the REST client
(recorded), the store, the recorder, metrics, the pure engine (positions restored from the
store), the runtime, the WebSocket feeds with their resync/reconcile notice handler, and the
control/health/metrics HTTP endpoint. ``Service.run`` runs them in one task group until asked to
stop, then shuts down in order: stop quoting -> cancel every open quote over REST -> flush the
store -> close sockets.

Worlds differ only in what is passed in: live runs use ``LiveClock`` and Kalshi URLs; the demo
and the end-to-end tests point the same code at the simulator (paper mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import structlog

from quoter import __version__
from quoter.clock import Clock, LiveClock
from quoter.config import QuoterConfig, config_hash, load_config, reload
from quoter.domain import events as ev
from quoter.domain.money import MoneyError
from quoter.domain.types import BookSide, Side
from quoter.engine.engine import Engine
from quoter.engine.lifecycle import QuoteRecord, QuoteState, RfqRecord
from quoter.engine.positions import PositionLedger
from quoter.errors import (
    ConfigError,
    ControlRefusedError,
    DecodeError,
    ExchangeRejectedError,
    FatalError,
    QuoterError,
    TransientError,
    TransportError,
)
from quoter.kalshi.adapter import KalshiExecution, KalshiMarketData
from quoter.kalshi.auth import Signer
from quoter.kalshi.decode import decode
from quoter.kalshi.lean_http import LeanTransport
from quoter.kalshi.rest import KalshiRest
from quoter.kalshi.rest_models import Quote
from quoter.kalshi.source import FeedSource, build_feed_source
from quoter.kalshi.ws_types import FeedDisconnected, FeedNotice
from quoter.observability.metrics import Metrics
from quoter.recording.format import PerfTape
from quoter.recording.recorder import Recorder, RecordingTransport
from quoter.runtime.driver import PRIORITY_TYPES, Runtime
from quoter.runtime.prefilter import build_prefilter
from quoter.runtime.pricing_pool import PricingPool
from quoter.service.alerts import Alerter
from quoter.service.environment import Settings
from quoter.service.hooks import (
    ServiceHooks,
    StoreConfirmJournal,
    restore_requesters,
    restore_risk_day,
)
from quoter.service.http import (
    ControlHandlers,
    HealthStatus,
    HttpServer,
    create_app,
    evaluate_health,
)
from quoter.service.live_view import ActivityPrinter, LiveView, wants_live_view
from quoter.service.markouts import marked_value_micros
from quoter.service.reconcile import Reconciler
from quoter.service.resync import DEFAULT_OUTAGE_POLL_S, NoticeHandler, Resync, StartupInfo
from quoter.service.status import PositionView, QuoteView, StatusSnapshot, to_json_dict
from quoter.service.store import ConfirmState, FillRow, Store

__all__ = ["HaltGate", "HaltedRequestError", "Service", "ServiceOptions"]

log = structlog.get_logger("quoter.service.app")

#: The longest confirm window Kalshi gives (30 s, kalshi-api.md §0): an accept younger than
#: this may still be confirmed by a request the dead process sent.
_ACCEPT_WINDOW_NS: Final = 30 * 1_000_000_000

NS_PER_S = 1_000_000_000
#: Halts a restart keeps (until an operator resumes): the operator's and the engine's own.
RESTORED_HALT_SOURCES: Final = frozenset({"operator", "engine"})
ViewMode = Literal["auto", "live", "activity", "none"]


def fill_from_row(row: FillRow) -> ev.FillReceived:
    """Rebuild a stored fill as the event the engine books."""
    return ev.FillReceived(
        trade_id=row.trade_id, order_id=row.order_id, market_ticker=row.market_ticker,
        outcome_side=Side(row.outcome_side), book_side=BookSide(row.book_side),
        yes_price_micros=row.yes_price_micros, count_centi=row.count_centi,
        fee_micros=row.fee_micros, is_taker=row.is_taker, ts_recv_ns=0,
        post_position_centi=row.post_position_centi, client_order_id=row.client_order_id,
        ts_ms=row.exchange_ts_ms, fee_known=row.fee_known,
    )


class HaltedRequestError(QuoterError):
    """A quote or confirm was refused at the socket because quoting is halted."""

    code = "halted"


class HaltGate(httpx.AsyncBaseTransport):
    """Refuse new quotes and confirms at the last moment before they leave, while halted.

    The runtime checks the halt before it hands a command to the REST client, but the client
    may then wait (rate limiter, retry backoff) for seconds; the gate closes that window.
    Cancels and reads always pass: a halt must still be able to pull quotes and reconcile.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, halted: Callable[[], bool]) -> None:
        self._inner = inner
        self._halted = halted

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Raise ``HaltedRequestError`` for a quote/confirm while halted; else forward."""
        if self._halted() and _adds_risk(request):
            raise HaltedRequestError(f"{request.method} {request.url.path}: halted, not sent")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


def _adds_risk(request: httpx.Request) -> bool:
    """True for requests that can commit us to a trade: create a quote, confirm one."""
    path = request.url.path
    return (request.method == "POST" and path.endswith("/communications/quotes")) or (
        request.method == "PUT" and path.endswith("/confirm"))


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """How the service runs, beyond ``Settings`` (which hold where and with which key)."""

    config_path: Path
    shards: int = 1
    reconcile_interval_s: float = 30.0
    housekeeping_interval_s: float = 1.0
    positions_snapshot_interval_s: float = 5.0
    stale_after_s: float = 30.0
    kill_file: Path | None = None
    install_signals: bool = False
    http: bool = True
    view: ViewMode = "auto"
    require_trading: bool = True
    # Worker processes for strategies with ``quoting.isolation: process`` (started on first use).
    pricing_workers: int = 2
    # How long transient failures of the startup reads are retried before giving up.
    startup_retry_s: float = 60.0
    #: While a communications feed is dark (disconnected, subscription lost), poll our quotes
    #: over REST this often so an accept inside its window is still confirmed (0: never).
    outage_poll_s: float = DEFAULT_OUTAGE_POLL_S
    #: The live view draws these log lines below itself (logs must not write to the terminal
    #: while it redraws) and this banner above (e.g. the demo's countdown).
    log_lines: Callable[[], Sequence[str]] | None = None
    banner: Callable[[], str] | None = None
    #: Tests: where alert webhooks are sent (an ASGI app); None = the network.
    alert_transport: httpx.AsyncBaseTransport | None = None


class Service:
    """A running quoter: build with settings + options, then ``await run(stop)``."""

    def __init__(
        self,
        settings: Settings,
        options: ServiceOptions,
        *,
        clock: Clock | None = None,
        config: QuoterConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.clock = clock or LiveClock()
        self.config = config or load_config(options.config_path)
        self._config_mtime_ns = _mtime_ns(options.config_path)
        if settings.api_key_id is None or settings.private_key_path is None:
            raise ConfigError(
                "an API key id and a private key file are required "
                "(QUOTER_API_KEY_ID / QUOTER_PRIVATE_KEY_PATH or --key-id / --key-file)"
            )
        self.signer = Signer.from_pem_file(settings.api_key_id, settings.private_key_path)
        self.metrics = Metrics()
        settings.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.db_path, synchronous=settings.store_synchronous)
        self.recorder: Recorder | None = None
        if settings.record_dir is not None:
            self.recorder = Recorder(settings.record_dir, clock=self.clock, header={
                "quoter_version": __version__, "env": settings.env, "mode": settings.mode,
                "config_hash": config_hash(self.config), "shards": options.shards,
                "config_path": str(options.config_path),
            })
        if transport is None and settings.lean_http:
            # One write per request, keep-alive pool (docs/performance.md B1); the recorder
            # and the halt gate wrap it like any other transport.
            transport = LeanTransport()
        if self.recorder is not None:
            transport = RecordingTransport(self.recorder, self.clock, transport)
        # The last check before a quote or confirm leaves: one that waited (rate limiter,
        # retry backoff) while we halted must not go out after the halt.
        transport = HaltGate(transport or httpx.AsyncHTTPTransport(),
                             lambda: self.runtime.halted)
        self.rest = KalshiRest(settings.rest_base_url, self.signer, transport=transport,
                               clock=self.clock)
        wall_offset_ns = self.clock.wall_ns() - self.clock.now_ns()
        # The pricer clock is taped so a replay can reproduce budget timeouts (backtests.replay).
        self.perf = PerfTape(time.perf_counter_ns)
        self.engine = Engine(self.config, perf_ns=self.perf, wall_offset_ns=wall_offset_ns)
        self._restore_positions()
        restore_risk_day(self.engine, self.store)
        restore_requesters(self.engine, self.store)
        self.hooks = ServiceHooks(clock=self.clock, engine=self.engine, store=self.store,
                                  metrics=self.metrics, recorder=self.recorder,
                                  perf=self.perf, shadow=not self.settings.sends_orders)
        url = settings.alert_webhook_url
        self.alerts = Alerter(None if url is None else url.get_secret_value(),
                              now_ns=self.clock.now_ns, transport=options.alert_transport)
        self.hooks.alerts = self.alerts
        # What a replay needs to rebuild this engine (backtests.replay).
        self._record_config(self.config)
        self.hooks.record_engine_start(config_hash(self.config), wall_offset_ns)
        if self.recorder is not None:
            self.recorder.sync()  # the header, config and engine start survive a kill -9
        self.runtime = Runtime(
            clock=self.clock, engine=self.engine, decode=decode,
            execution=KalshiExecution(self.rest), market_data=KalshiMarketData(self.rest),
            hooks=self.hooks, journal=StoreConfirmJournal(self.store, self.clock, self.recorder),
            send=settings.sends_orders, perf=self.perf,
            prefilter=build_prefilter(self.config),
            pricing_pool=PricingPool(options.pricing_workers, eager=any(
                s.quoting.isolation == "process" for s in self.config.strategies)),
        )
        self.resync = Resync(self.rest, self.clock)
        self.reconciler = Reconciler(self.rest, self.clock)
        self.reconciler.on_rejected = lambda reason: self.metrics.decode_errors_total.labels(
            type="rest_fill", reason=reason).inc()
        self.runtime.reconcile = self.reconciler.request_round
        self.notices = NoticeHandler(
            post=self.runtime.post, resync=self.resync,
            known_rfqs=lambda: list(self.engine.rfqs), reconciler=self.reconciler,
            ours=self.positions_centi,
            book_tickers=lambda: self.source.books.tickers() if self.source.books else (),
            quote_state=self._quote_state, clock=self.clock,
            outage_poll_s=options.outage_poll_s,
        )
        self.source: FeedSource = build_feed_source(
            settings.ws_url, self.signer, wall_ms=lambda: self.clock.wall_ns() // 1_000_000,
            now_ns=self.clock.now_ns, shards=options.shards, on_notice=self._on_notice,
            tap=self.recorder.tap if self.recorder else None,
            tap_out=self.recorder.tap_out if self.recorder else None,
            priority_types=PRIORITY_TYPES, shed_types=frozenset({"rfq_created"}),
        )
        self.runtime.subscriptions = self.source.books
        self._write_reserve = self.rest.limiter.write_reserve
        self.hooks.halt_listener = self._on_halt_changed
        self.http: HttpServer | None = None
        self.started_ns = self.clock.now_ns()
        self.fatal: BaseException | None = None
        self.metrics_http: HttpServer | None = None
        self._stop: asyncio.Event | None = None
        self._reconnects_exported = 0

    # -- state ---------------------------------------------------------------------------

    def _restore_positions(self) -> None:
        """Positions survive restarts: last snapshot, then every stored fill (deduplicated)."""
        latest = self.store.latest_positions()
        if latest is not None:
            self.engine.ledger = PositionLedger.restore(latest[0])
        replayed = 0
        for row in self.store.fills():
            try:
                fill = fill_from_row(row)
                if self.engine.ledger.book_fill(fill):
                    replayed += 1
                else:  # in the snapshot already; its fee may have arrived since
                    self.engine.ledger.merge_fee(fill)
            except MoneyError as exc:  # stored before fills were checked at the edge
                log.error("stored_fill_refused", trade_id=row.trade_id, error=str(exc))
        log.info("positions_restored", snapshot=latest is not None, fills_replayed=replayed,
                 markets=len(self.engine.ledger.tickers()))

    def _quote_state(self, quote_id: str) -> str | None:
        """The engine's state of one of our quotes (None if it does not track it)."""
        q = self.engine.quotes.get(quote_id)
        return None if q is None else str(q.state)

    def positions_centi(self) -> dict[str, int]:
        """Our authoritative positions (from fills), by market."""
        ledger = self.engine.ledger
        return {t: ledger.position_centi(t) for t in ledger.tickers()}

    def marked_pnl_micros(self) -> int:
        """Realised PnL plus every open position marked to its mid (at cost without one)."""
        ledger = self.engine.ledger
        total = ledger.realized_pnl_micros()
        for t in ledger.tickers():
            m, mid = ledger.market(t), self._yes_mid(t)
            if mid is not None and m.position_centi:
                total += marked_value_micros(m.position_centi, mid) - m.cost_micros
        return total

    def worst_case_exposure_micros(self) -> int:
        """Worst-case loss over all markets if every live quote were accepted at once."""
        return self.engine.book.total_loss_micros

    def snapshot(self) -> StatusSnapshot:
        """The service state for status, the live view and the summary."""
        now = self.clock.now_ns()
        quotes = resting_quote_views(self.engine.quotes.values(), self.engine.rfqs, now)
        ledger = self.engine.ledger
        theirs = self.reconciler.last_positions_centi
        read_ns = self.reconciler.last_read_wall_ns
        positions = tuple(
            PositionView(t, ledger.position_centi(t), m.cost_micros, m.realized_pnl_micros,
                         m.fees_micros, theirs.get(t), read_ns if t in theirs else None,
                         self._yes_mid(t))
            for t in sorted(set(ledger.tickers()) | set(theirs)) for m in (ledger.market(t),)
        )
        hooks = self.hooks
        counts = dict(hooks.counts)
        counts["routed"] = hooks.routed
        counts["decode_errors"] = self.runtime.stats.decode_errors
        counts["reconnects"] = sum(f.stats.reconnects for f in self.source.feeds)
        counts["shed_frames"] = (self.runtime.stats.shed_frames
                                 + sum(f.stats.shed_frames for f in self.source.feeds))
        counts["shed_submits"] = self.runtime.stats.shed_submits
        return StatusSnapshot(
            mode=self.settings.mode, env=self.settings.env, venue=self._venue(),
            halted=self.runtime.halted or self.engine.halted,
            halt_reason=self.runtime.halt_reason or ("engine" if self.engine.halted else ""),
            uptime_ms=(now - self.started_ns) // 1_000_000, counts=counts,
            decline_reasons=dict(hooks.decline_reasons),
            no_quote_reasons=dict(hooks.no_quote_reasons),
            open_quotes=quotes, recent_decisions=tuple(hooks.recent_decisions),
            positions=positions, pnl_realized_micros=ledger.realized_pnl_micros(),
            exposure_worst_case_micros=self.worst_case_exposure_micros(),
            latencies=hooks.latency.views(),
            recording_path=str(self.settings.record_dir) if self.recorder else None,
            db_path=str(self.settings.db_path), recent_fills=tuple(hooks.recent_fills),
            shadow_quotes=tuple(hooks.recent_shadow), markouts=hooks.markouts.views(),
            strategy_pnl=hooks.markouts.strategy_pnl(self._mark),
            strategy_markouts=tuple(hooks.markouts.strategy_views().items()),
        )

    def _mark(self, ticker: str) -> int | None:
        """A YES contract's value now: its settlement value once known, else the mid."""
        settled = self.hooks.settled_values.get(ticker)
        return settled if settled is not None else self._yes_mid(ticker)

    def health(self) -> HealthStatus:
        """Healthy unless the feed is stale or quoting is halted."""
        last = self.runtime.last_frame_ns or None
        return evaluate_health(
            now_ns=self.clock.now_ns(), last_frame_ns=last,
            stale_after_ns=int(self.options.stale_after_s * NS_PER_S),
            halted=self.runtime.halted or self.engine.halted,
            extra_reasons=("fatal",) if self.fatal else (),
        )

    # -- control -------------------------------------------------------------------------

    def halt(self, reason: str = "operator", source: str = "operator") -> dict[str, Any]:
        """Halt now: no quote or confirm leaves after this returns; open quotes are cancelled."""
        self.runtime.halt(reason, source)
        self.metrics.set_halted(True)
        return {"halted": True, "reason": reason}

    def _on_halt_changed(self, halted: bool) -> None:
        """While halted no confirm can leave, so its write-token reserve goes to cancels."""
        limiter = self.rest.limiter
        if halted:
            if limiter.write_reserve:
                self._write_reserve = limiter.write_reserve
            limiter.set_write_reserve(0)
        else:
            limiter.set_write_reserve(self._write_reserve)

    def resume(self) -> dict[str, Any]:
        """Resume quoting, unless a KILL file still says "do not quote"."""
        kill = self._kill_path()
        if kill.exists():
            # The watcher would halt again within a poll: a "resumed" answer would be a lie.
            raise ControlRefusedError(
                f"the KILL file {kill} exists: remove it first, then resume"
            )
        self.runtime.resume()
        self._on_halt_changed(False)
        self.store.record_halt(False, "resumed", "control", self.clock.wall_ns())
        self.metrics.set_halted(False)
        return {"halted": False}

    def cancel_all(self) -> dict[str, Any]:
        """Cancel every open quote we placed."""
        cancelled = self.runtime.cancel_all()
        return {"cancelling": len(cancelled)}

    def _yes_mid(self, ticker: str) -> int | None:
        """What a YES contract is worth: its settlement value once the market is determined
        (PnL at settlement, paid when it settles), else the YES mid of its book if we hold a
        two-sided one."""
        determined = self.engine.records.determined.get(ticker)
        if determined is not None:
            return determined
        book = self.engine.md.books.get(ticker)
        return None if book is None else book.mid_micros()

    def _venue(self) -> str:
        if self.settings.mode == "paper":
            return f"sim {self.settings.sim_url.rstrip('/')}"
        return httpx.URL(self.settings.rest_base_url).host

    async def _startup_retrying(self) -> StartupInfo:
        return await self.resync.startup_retrying(
            require_trading=self.options.require_trading, retry_for_s=self.options.startup_retry_s)

    def _unreachable(self, exc: TransportError) -> TransportError:
        """Name the URL that did not answer and what to do, instead of a bare ConnectError."""
        if self.settings.mode == "paper":
            return TransportError(
                f"no simulator answering at {self.settings.sim_url} ({exc}); start one with "
                "`quoter sim` in another terminal, or pass --sim-url / QUOTER_SIM_URL"
            )
        return TransportError(
            f"cannot reach the exchange at {self.settings.rest_base_url} ({exc}); check the "
            "network and --env (QUOTER_REST_BASE_URL overrides the URL)"
        )

    def status(self) -> dict[str, Any]:
        """The status snapshot as JSON."""
        return to_json_dict(self.snapshot())

    def stop(self) -> None:
        """Ask the service to shut down in order."""
        if self._stop is not None:
            self._stop.set()

    # -- run -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Start up, run until ``stop`` is set (or a fatal error), then shut down in order."""
        self._stop = stop = stop or asyncio.Event()
        # A halt outlives the process that made it, until an operator resumes.
        self._restore_halt()
        # A KILL file left in place means "do not quote": halt before any feed connects.
        self._check_kill_file()
        try:
            try:
                info = await self.resync.startup(require_trading=self.options.require_trading)
            except TransportError as exc:
                if self.settings.mode == "paper":
                    # No simulator there: a setup mistake, not a blip worth a minute of retries.
                    raise self._unreachable(exc) from None
                info = await self._startup_retrying()
            except (TransientError, DecodeError):
                info = await self._startup_retrying()
            log.info("service_started", mode=self.settings.mode, env=self.settings.env,
                     communications_id=info.communications_id)
            if self.settings.sends_orders:
                await self._resolve_confirms()
                await self._cancel_orphans()
            if self.options.install_signals:
                self._install_signals(stop)
            side: list[tuple[str, Coroutine[Any, Any, None]]] = [
                ("feeds", self.source.run()),
                ("reconcile", self.reconciler.run(self.runtime.post, self.positions_centi,
                                                  interval_s=self.options.reconcile_interval_s)),
                ("housekeeping", self._housekeeping()),
                ("watch-config-and-kill", self._watch_files()),
                ("alerts", self.alerts.run()),
                ("outage-poll", self.notices.poll_outages()),
            ]
            if self.options.http:
                self.http = HttpServer(create_app(
                    self.metrics, self.health,
                    control=ControlHandlers(halt=self.halt, resume=self.resume,
                                            cancel_all=self.cancel_all, status=self.status),
                    token=self.settings.resolve_control_token(),
                    metrics_token=self.settings.metrics_token,
                ), host=self.settings.control_host, port=self.settings.control_port)
                self.http.bind()
                side.append(("http", self.http.serve()))
                log.info("control_listening", url=self.http.url)
            if self.options.http and self.settings.metrics_port is not None:
                # Metrics and health only: control stays on loopback whatever this binds.
                self.metrics_http = HttpServer(
                    create_app(self.metrics, self.health), host=self.settings.metrics_host,
                    port=self.settings.metrics_port, allow_remote=True,
                )
                self.metrics_http.bind()
                side.append(("metrics-http", self.metrics_http.serve()))
                log.info("metrics_listening", url=self.metrics_http.url)
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._guard(name, coro), name=name) for name, coro in side]
                view = self._view_task(stop)
                if view is not None:
                    tasks.append(tg.create_task(self._guard("view", view), name="view"))
                await self.runtime.run(self.source.lanes(), until=stop)
                if self.runtime.failure is not None and self.fatal is None:
                    self.fatal = self.runtime.failure
                if self.settings.sends_orders:
                    # The exchange's truth, last: a quote whose 201 we could not read (or
                    # any we lost track of) is live there and unknown here.
                    await self._cancel_orphans(when="exit")
                for server in (self.http, self.metrics_http):
                    if server is not None:
                        server.shutdown()
                for task in tasks:
                    if task.get_name() not in ("http", "metrics-http"):
                        task.cancel()
        finally:
            await self._close()
        if self.fatal is not None:
            raise self.fatal

    async def _resolve_confirms(self) -> None:
        """Settle confirms a dead process left ``claimed``/``sent`` from the exchange's quote.

        The claim stays (a quote is never confirmed twice); only its outcome is written:
        ``confirmed`` if the exchange says confirmed or executed, ``failed`` (with the status)
        if it says anything else or has no such quote. An accept still inside its window is
        left for the next start: a confirm sent just before the kill may still land.
        """
        pending = self.store.unresolved_confirms()
        if not pending:
            return
        listed: dict[str, Quote] = {}
        if any(rfq_id is None for _, rfq_id, _, _ in pending):
            # The quote row was lost with the process (buffered writes): find it in the list.
            since_s = min(c for *_, c in pending) // 1_000_000_000 - 60
            try:
                async with asyncio.timeout(10.0):
                    quotes = await self.rest.list_quotes(user_filter="self", min_ts=since_s)
                listed = {q.id: q for q in quotes}
            except (QuoterError, TimeoutError) as exc:
                log.warning("confirms_unlisted", error=str(exc))
        resolved = 0
        for quote_id, rfq_id, state, _claimed in pending:
            quote: Quote | None = listed.get(quote_id)
            if quote is None and rfq_id is not None:
                try:
                    async with asyncio.timeout(10.0):
                        quote = await self.rest.get_quote(rfq_id, quote_id)
                except ExchangeRejectedError as exc:
                    if exc.status_code != 404:
                        log.warning("confirm_unresolved", quote_id=quote_id, error=str(exc))
                        continue
                except (QuoterError, TimeoutError) as exc:
                    log.warning("confirm_unresolved", quote_id=quote_id, error=str(exc))
                    continue
            status = quote.status if quote is not None else "not_found"
            wall = self.clock.wall_ns()
            if status in ("confirmed", "executed"):
                outcome = ConfirmState.CONFIRMED
            elif (status == "accepted" and quote is not None and quote.accepted_ts_ms is not None
                  and wall - quote.accepted_ts_ms * 1_000_000 < _ACCEPT_WINDOW_NS):
                log.info("confirm_unresolved", quote_id=quote_id, status=status)
                continue
            else:
                outcome = ConfirmState.FAILED
            self.store.mark_confirm(quote_id, outcome, wall,
                                    {"resolved": "startup", "status": status, "was": str(state)})
            resolved += 1
            log.info("confirm_resolved", quote_id=quote_id, was=str(state), status=status,
                     outcome=str(outcome))
        log.info("confirms_resolved", count=resolved, pending=len(pending))

    async def _cancel_orphans(self, when: Literal["startup", "exit"] = "startup") -> None:
        """Withdraw open quotes nothing here tracks: a previous process's (at startup), or
        at exit every quote of ours the exchange still lists (the shutdown's last step)."""
        try:
            async with asyncio.timeout(10.0):
                quotes = await self.rest.list_quotes(user_filter="self", status="open")
        except (QuoterError, TimeoutError) as exc:
            log.warning("orphan_quotes_unlisted", when=when, error=str(exc))
            return
        cancelled = 0
        for quote in quotes:
            if when == "startup" and quote.id in self.engine.quotes:
                continue
            try:
                await self.rest.delete_quote(quote.rfq_id, quote.id)
                cancelled += 1
            except QuoterError as exc:  # gone or accepted meanwhile: nothing to withdraw
                log.info("orphan_quote_not_cancelled", quote_id=quote.id, error=str(exc))
        log.info("orphan_quotes_cancelled", when=when, count=cancelled, listed=len(quotes))

    async def _guard(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run a side task; a failure stops the service in order instead of tearing it down."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except FatalError as exc:
            log.error("service_fatal", task=name, error=str(exc))
            self.fatal = exc
            self.runtime.halt(f"fatal: {exc}", source="fatal")
            self.stop()
        except Exception as exc:  # a bug in a side task must not leave quotes unattended
            log.exception("service_task_crashed", task=name)
            self.fatal = exc
            self.runtime.halt(f"task {name} crashed", source="fatal")
            self.stop()

    async def _on_notice(self, notice: FeedNotice) -> None:
        if isinstance(notice, FeedDisconnected):
            self.alerts.notify("feed_lost", f"{notice.feed} connection lost: {notice.reason}",
                               feed=notice.feed, conn_id=notice.conn_id)
        await self.notices(notice)

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self.alerts.drain()  # e.g. the halt that ended this run
        try:
            self._save_positions()
            self.store.flush()
        finally:
            with contextlib.suppress(Exception):
                await self.rest.aclose()
            if self.recorder is not None:
                self.recorder.close()
            self.store.close()
            log.info("service_stopped")

    def _save_positions(self) -> None:
        wall = self.clock.wall_ns()
        self.store.save_positions(self.engine.ledger.snapshot(), wall)
        # Requesters changed since the last save (a restart resumes their profiles).
        self.store.save_requester_stats(self.engine.requesters.take_dirty(), wall)

    async def _housekeeping(self) -> None:
        """Flush the store and recorder, snapshot positions, export gauges."""
        every = self.options.housekeeping_interval_s
        snapshot_every = max(1, round(self.options.positions_snapshot_interval_s / every))
        tick = 0
        while True:
            await asyncio.sleep(every)
            tick += 1
            self.store.flush()
            self.hooks.markouts.poll(self.clock.now_ns(), self._yes_mid)
            if self.recorder is not None:
                self.recorder.poll()
            if tick % snapshot_every == 0:
                self._save_positions()
            self._export_gauges()

    def _export_gauges(self) -> None:
        m = self.metrics
        m.open_quotes.set(sum(1 for q in self.engine.quotes.values()
                              if q.state in RESTING_STATES))
        for ticker, pos in self.positions_centi().items():
            m.set_position_centi(ticker, pos)
        m.set_pnl_realized_micros(self.engine.ledger.realized_pnl_micros())
        m.set_pnl_marked_micros(self.marked_pnl_micros())
        m.set_exposure_micros(self.worst_case_exposure_micros())
        m.set_halted(self.runtime.halted or self.engine.halted)
        m.tasks.set(len(asyncio.all_tasks()))
        for name, value in self.rest.limiter.levels().items():
            m.rate_bucket_tokens.labels(bucket=name).set(value)
        m.queue_depth.labels(queue="inbox").set(self.runtime.inbox_depth)
        # The feeds count reconnects themselves; the Prometheus counter follows their sum.
        reconnects = sum(f.stats.reconnects for f in self.source.feeds)
        if reconnects > self._reconnects_exported:
            m.reconnects_total.inc(reconnects - self._reconnects_exported)
            self._reconnects_exported = reconnects

    async def _watch_files(self) -> None:
        """Halt when the KILL file appears; hot-reload the config when its file changes."""
        while True:
            await asyncio.sleep(0.25)
            self._check_kill_file()
            mtime = _mtime_ns(self.options.config_path)
            if mtime != self._config_mtime_ns:
                self._config_mtime_ns = mtime
                self.reload_config()

    def _kill_path(self) -> Path:
        return self.options.kill_file or self.settings.db_path.parent / "KILL"

    def _check_kill_file(self) -> None:
        """Halt if the KILL file exists."""
        kill = self._kill_path()
        if kill.exists() and not self.runtime.halted:
            self.halt(f"kill_file {kill}", source="kill_file")

    def _restore_halt(self) -> None:
        """Stay halted if the last run ended halted by the operator or the engine (daily loss
        stop, position mismatch, engine error). A KILL file halt lasts as long as the file; a
        fatal error's halt ends with its process (the restart is the recovery)."""
        last = self.store.last_halt()
        if last is not None and last.halted and last.source in RESTORED_HALT_SOURCES:
            log.warning("halt_restored", reason=last.reason, source=last.source)
            self.runtime.halt(last.reason, source=last.source)
            self.metrics.set_halted(True)

    def reload_config(self) -> bool:
        """Swap in the config file's new contents if valid; else keep the old one and say why."""
        new, why = reload(self.options.config_path, self.config)
        if why is not None:
            log.error("config_reload_rejected", path=str(self.options.config_path), why=why)
            self.metrics.config_reloads_total.labels(result="rejected").inc()
            return False
        self.metrics.config_reloads_total.labels(result="applied").inc()
        self.config = new
        self.runtime.set_prefilter(build_prefilter(new))
        self._record_config(new)
        self.runtime.post(ev.ConfigReloaded(new, self.clock.now_ns()))
        log.info("config_reloaded", config_hash=config_hash(new))
        return True

    def _record_config(self, config: QuoterConfig) -> None:
        """Record the config file's text under the config's hash (replays parse it back)."""
        path = self.options.config_path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = ""  # a replay then needs the config passed in
        self.hooks.record_config(text, config_hash(config), str(path.resolve()))

    def _install_signals(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, lambda: self.halt("SIGUSR1"))
        loop.add_signal_handler(signal.SIGHUP, self.reload_config)

    def _view_task(self, stop: asyncio.Event) -> Coroutine[Any, Any, None] | None:
        mode = self.options.view
        if mode == "none":
            return None
        if wants_live_view(mode, sys.stdout):
            return self._live_view(stop)
        return self._activity(stop)

    async def _live_view(self, stop: asyncio.Event) -> None:
        with LiveView(self.snapshot, log_lines=self.options.log_lines,
                      banner=self.options.banner) as view:
            await view.run(stop)

    async def _activity(self, stop: asyncio.Event) -> None:
        printer = ActivityPrinter(sys.stdout)
        while not stop.is_set():
            printer.update(self.snapshot())
            await asyncio.sleep(0.5)


#: Quote states in which a quote still rests on the exchange. A replaced quote is not one of
#: them: on Kalshi a new quote on the same RFQ replaces the old one, which is then gone.
RESTING_STATES: Final = frozenset({QuoteState.OPEN, QuoteState.CANCELLING})


def resting_quote_views(
    quotes: Iterable[QuoteRecord], rfqs: Mapping[str, RfqRecord], now_ns: int
) -> tuple[QuoteView, ...]:
    """Describe our quotes that are live at the exchange (what the view and status list)."""
    return tuple(
        QuoteView(q.rfq_id, q.quote_id, q.market_ticker, q.yes_bid_micros, q.no_bid_micros,
                  str(q.state), max(0, now_ns - q.placed_ns) // 1_000_000,
                  rfqs[q.rfq_id].strategy if q.rfq_id in rfqs else "")
        for q in quotes if q.state in RESTING_STATES
    )


def _mtime_ns(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0

