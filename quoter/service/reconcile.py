"""Reconcile our positions with the exchange's (DESIGN §12: a mismatch halts quoting).

One round (:meth:`Reconciler.reconcile`) reads ``GET /portfolio/positions``, then our fills
since the last round (``GET /portfolio/fills?min_ts=``, with an overlap: the ledger ignores a
``trade_id`` it has booked), then the positions **again**. A market whose position changed
between the two reads had a fill in flight: it is skipped this round rather than compared
against a moving target. The round yields, in this order:

1. ``FillReceived`` for every fill listed (missed ones get booked; the rest are duplicates);
2. for a market we hold that the exchange no longer lists, its settlement if there is one
   (``GET /portfolio/settlements?ticker=``; the positions endpoint lists only unsettled
   positions, kalshi-api.md §4.1) as ``MarketLifecycleChanged("settled", result=...)``, so a
   settlement whose lifecycle frame we missed settles our ledger instead of halting us;
3. ``PositionReported`` for every stable market the exchange lists **and** every market the
   caller says we hold but the exchange does not list (reported as 0, so a position that
   vanished on the exchange is caught too);
4. ``BalanceReported``: our cash, read last (the engine's collateral check).

The engine compares each ``PositionReported`` with its ledger after booking the fills before
it, and halts on a mismatch unless fills are in flight on that market. :func:`diff_positions`
says exactly what differs; a caller that checks before quoting (startup, nothing in flight)
halts with that text. Positions are signed hundredths of a contract (+YES / -NO).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from quoter.clock import Clock
from quoter.domain import events as ev
from quoter.domain.checks import check_fill
from quoter.domain.money import MoneyError, format_fp
from quoter.domain.types import BookSide, Side
from quoter.errors import DecodeError, ExchangeRejectedError, PagingLimitError, TransientError
from quoter.kalshi.rest import DEFAULT_MAX_PAGES, KalshiRest
from quoter.kalshi.rest_models import Fill, MarketPosition

__all__ = [
    "ReconcileReport",
    "Reconciler",
    "diff_positions",
    "fill_event",
    "position_event",
]

log = structlog.get_logger("quoter.service.reconcile")

NS_PER_S = 1_000_000_000
#: Fills are listed from this long before the previous round's start: ``min_ts`` is in whole
#: seconds and fills may be published a little after their timestamp.
FILL_OVERLAP_S = 60


def diff_positions(ours: Mapping[str, int], theirs: Mapping[str, int]) -> list[str]:
    """Describe every market where our position differs from the exchange's (sorted).

    A market missing from one side counts as 0 there.
    """
    out: list[str] = []
    for ticker in sorted(set(ours) | set(theirs)):
        mine, exchange = ours.get(ticker, 0), theirs.get(ticker, 0)
        if mine != exchange:
            out.append(
                f"{ticker}: ours {format_fp(mine)} exchange {format_fp(exchange)}"
                f" contracts (+YES/-NO; exchange - ours = {format_fp(exchange - mine)})"
            )
    return out


def fill_event(fill: Fill, ts_recv_ns: int) -> ev.FillReceived:
    """Turn a REST fill into the ``FillReceived`` the feed would have delivered.

    Raises ``DecodeError`` if the fill has no trade id or no direction, or carries a value
    Kalshi never sends (:func:`quoter.domain.checks.check_fill`).
    """
    trade_id = fill.trade_id or fill.fill_id
    if not trade_id:
        raise DecodeError(f"fill of order {fill.order_id} has neither trade_id nor fill_id")
    if fill.outcome_side is None:
        raise DecodeError(f"fill {trade_id} has no outcome_side")
    book_side = fill.book_side or (BookSide.BID if fill.outcome_side is Side.YES else BookSide.ASK)
    ts_ms = fill.created_time_ms if fill.created_time_ms is not None else (
        None if fill.ts is None else fill.ts * 1000
    )
    event = ev.FillReceived(
        trade_id=trade_id,
        order_id=fill.order_id,
        market_ticker=fill.market,
        outcome_side=fill.outcome_side,
        book_side=book_side,
        yes_price_micros=fill.yes_price_micros,
        count_centi=fill.count_centi,
        fee_micros=fill.fee_cost_micros or 0,
        is_taker=bool(fill.is_taker),
        ts_recv_ns=ts_recv_ns,
        client_order_id=fill.client_order_id or "",
        ts_ms=ts_ms,
    )
    try:
        return check_fill(event)
    except MoneyError as exc:
        raise DecodeError(f"fill {trade_id}: {exc}", reason="bad_value") from None


def position_event(pos: MarketPosition, ts_recv_ns: int) -> ev.PositionReported:
    """Turn a REST market position into ``PositionReported``."""
    return ev.PositionReported(
        market_ticker=pos.ticker,
        position_centi=pos.position_centi,
        ts_recv_ns=ts_recv_ns,
        position_cost_micros=pos.market_exposure_micros,
        realized_pnl_micros=pos.realized_pnl_micros,
        fees_paid_micros=pos.fees_paid_micros,
    )


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """One reconciliation round.

    ``theirs``: the exchange's stable positions; ``unstable``: markets skipped because they
    moved between the two reads; ``diffs``: :func:`diff_positions` of ``ours`` (sampled after
    the reads, *before* the listed fills reach the engine) against ``theirs``, over stable
    markets. Trust ``diffs`` for a halt only when nothing is in flight (e.g. at startup);
    during trading the engine decides from the events.
    """

    events: tuple[ev.Event, ...]
    theirs: dict[str, int]
    ours: dict[str, int]
    unstable: tuple[str, ...]
    fills: int
    diffs: tuple[str, ...]


class Reconciler:
    """Compare the exchange's positions with ours, periodically or on demand."""

    def __init__(
        self,
        rest: KalshiRest,
        clock: Clock,
        *,
        fills_since_s: int | None = None,
        subaccount: int | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        """``fills_since_s``: Unix seconds to list fills from on the first round (None: all)."""
        self._rest = rest
        self._clock = clock
        self._fills_since_s = fills_since_s
        self._subaccount = subaccount
        self._max_pages = max_pages
        self.rounds = 0
        #: Rounds asked for ahead of the interval (:meth:`request_round`).
        self.requested = 0
        self._wake = asyncio.Event()
        #: Listed fills refused as impossible (counted; the rest of the round goes on).
        self.rejected_fills = 0
        #: Called with the refusal reason of each (the service counts it as a metric).
        self.on_rejected: Callable[[str], None] | None = None
        #: The exchange's positions at the last completed read (stable markets only; a market
        #: we held that it no longer lists is 0), and when they were read (wall ns).
        self.last_positions_centi: dict[str, int] = {}
        self.last_read_wall_ns: int | None = None

    async def _positions(self) -> dict[str, MarketPosition]:
        page = await self._rest.get_positions(
            max_pages=self._max_pages, subaccount=self._subaccount
        )
        return {p.ticker: p for p in page.market_positions}

    async def _settlements(self, tickers: list[str]) -> dict[str, str]:
        """``market_result`` ("yes"/"no") of each of these markets that has settled for us."""
        out: dict[str, str] = {}
        for ticker in tickers:
            rows = await self._rest.get_settlements(
                max_pages=self._max_pages, ticker=ticker, subaccount=self._subaccount
            )
            for row in rows:
                if row.ticker == ticker and row.market_result in ("yes", "no"):
                    out[ticker] = row.market_result
        return out

    async def reconcile(self, ours: Callable[[], Mapping[str, int]]) -> ReconcileReport:
        """Run one round; ``ours()`` returns our positions by market (sampled after the reads)."""
        started_s = self._clock.wall_ns() // NS_PER_S
        first = await self._positions()
        fills = await self._rest.get_fills(
            max_pages=self._max_pages, min_ts=self._fills_since_s, subaccount=self._subaccount
        )
        second = await self._positions()
        read_wall_ns = self._clock.wall_ns()
        now_ns = self._clock.now_ns()
        self._fills_since_s = started_s - FILL_OVERLAP_S
        self.rounds += 1

        events: list[ev.Event] = []
        # Oldest first, as the feed would have delivered them (REST lists newest first).
        for fill in sorted(fills, key=lambda f: (f.created_time_ms or 0, f.ts or 0)):
            try:
                events.append(fill_event(fill, now_ns))
            except DecodeError as exc:
                self.rejected_fills += 1
                if self.on_rejected is not None:
                    self.on_rejected(exc.reason)
                log.error("reconcile_fill_unreadable", error=str(exc), order_id=fill.order_id)
        unstable = tuple(sorted(
            t for t in set(first) | set(second)
            if (first[t].position_centi if t in first else 0)
            != (second[t].position_centi if t in second else 0)
        ))
        theirs = {t: p.position_centi for t, p in second.items() if t not in unstable}
        ours_now = {t: int(v) for t, v in ours().items()}
        vanished = [t for t, held in ours_now.items()
                    if held != 0 and t not in second and t not in unstable]
        settled = await self._settlements(vanished)
        events.extend(
            ev.MarketLifecycleChanged(t, "settled", now_ns, result=result)
            for t, result in settled.items()
        )
        for ticker, pos in second.items():
            if ticker not in unstable:
                events.append(position_event(pos, now_ns))
        for ticker, held in ours_now.items():
            if ticker not in second and ticker not in unstable and held != 0:
                events.append(ev.PositionReported(ticker, 0, now_ns))
        # Last, so the balance includes every fill listed above (a fill the feed delivers later
        # is counted twice until the next round: never more cash than there is).
        balance = await self._balance()
        if balance is not None:
            events.append(ev.BalanceReported(balance, now_ns))
        # A settlement explains a vanished position: we hold nothing there once it is booked.
        stable_ours = {t: 0 if t in settled else v for t, v in ours_now.items()
                       if t not in unstable}
        diffs = tuple(diff_positions(stable_ours, theirs))
        self.last_positions_centi = {
            **{t: 0 for t in ours_now if t not in unstable}, **theirs,
        }
        self.last_read_wall_ns = read_wall_ns
        log.info(
            "reconcile_round",
            markets=len(theirs),
            fills=len(fills),
            settled=len(settled),
            unstable=len(unstable),
            diffs=len(diffs),
        )
        return ReconcileReport(tuple(events), theirs, ours_now, unstable, len(fills), diffs)

    async def _balance(self) -> int | None:
        """Our cash (``GET /portfolio/balance``); None if the exchange will not say (the engine
        then keeps its last figure). Transient errors fail the round like the other reads."""
        try:
            return (await self._rest.get_balance(subaccount=self._subaccount)).cash_micros
        except (ExchangeRejectedError, DecodeError) as exc:
            log.warning("reconcile_balance_unreadable", error=str(exc))
            return None

    async def reconcile_into(
        self, post: Callable[[ev.Event], None], ours: Callable[[], Mapping[str, int]]
    ) -> ReconcileReport:
        """Run one round and hand its events to ``post`` (e.g. ``Runtime.post``), in order."""
        report = await self.reconcile(ours)
        for event in report.events:
            post(event)
        return report

    async def run(
        self,
        post: Callable[[ev.Event], None],
        ours: Callable[[], Mapping[str, int]],
        *,
        interval_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Reconcile every ``interval_s`` until cancelled; a failed round is logged and retried.

        Transient errors, undecodable responses and paging limits skip a round; anything
        else (e.g. ``AuthError``) propagates and stops the service.
        """
        while True:
            self._wake.clear()
            try:
                await self.reconcile_into(post, ours)
            except (TransientError, DecodeError, PagingLimitError) as exc:
                log.warning("reconcile_round_failed", error=str(exc),
                            error_type=type(exc).__name__)
            await self._sleep_or_wake(sleep(interval_s))

    def request_round(self, market_ticker: str) -> None:
        """Run the next round now instead of at the interval (the engine asked: a feed's
        position report for ``market_ticker`` disagreed with ours). Requests made while a
        round runs are served by one more round right after it."""
        if not self._wake.is_set():
            log.info("reconcile_requested", market_ticker=market_ticker)
        self.requested += 1
        self._wake.set()

    async def _sleep_or_wake(self, sleeping: Awaitable[None]) -> None:
        """Wait for ``sleeping`` or a :meth:`request_round`, whichever comes first."""
        if self._wake.is_set():
            if asyncio.iscoroutine(sleeping):
                sleeping.close()
            return
        nap = asyncio.ensure_future(sleeping)
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait((nap, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (nap, woken):
                if not task.done():
                    task.cancel()
            await asyncio.gather(nap, woken, return_exceptions=True)
        if nap in done:
            nap.result()  # what the sleep raised (a cancellation ends the loop) goes on
