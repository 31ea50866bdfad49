"""Control: config reloads, halts and the kill switch, timers."""

from __future__ import annotations

from quoter.config import QuoterConfig
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.engine.lifecycle import QuoteState, RfqState
from quoter.engine.routing import (
    HALTED,
    NO_BOOK,
    NO_MARKET,
    STALE_BOOK,
)
from quoter.engine.state import (
    MS,
    _EngineState,
)


class _Control(_EngineState):
    """Apply config reloads, halts, the kill switch and timers."""

    def _on_config(self, ev: E.ConfigReloaded, now: int, out: list[C.Command]) -> None:
        """Swap the whole config atomically; keep the old one if its modules fail to build."""
        config = ev.config
        if not isinstance(config, QuoterConfig):
            out.append(C.RecordDecision("", "", "config_rejected", "not_a_config"))
            return
        try:
            strategies = self._build(config)
        except Exception as exc:  # a module factory failing must not leave half a config
            out.append(C.RecordDecision("", "", "config_rejected", "build_failed", detail=str(exc)))
            return
        self.config, self._strategies = config, strategies
        self.risk.limits = config.risk
        out.append(C.RecordDecision("", "", "config_applied", "reloaded"))

    def _halt(self, reason: str, out: list[C.Command], *, emit: bool) -> None:
        """Stop: cancel every live quote, drop parked RFQs, refuse confirms until resumed."""
        self.risk.halt(reason)
        if emit:
            out.append(C.Halt(reason))
        for rfq_id in list(self._pending):
            self._drop(self.rfqs[rfq_id], HALTED, out)
            out.append(C.CancelTimer(f"pending:{rfq_id}"))
        for rec in list(self.rfqs.values()):
            if rec.state is RfqState.PRICING:
                self._drop(rec, HALTED, out)
            else:
                self._pull(rec, HALTED, out)
        for q in self.quotes.values():
            if q.state is QuoteState.ACCEPTED:
                # Only a last look waiting for the pool is here: inline ones finish at once.
                q.move(QuoteState.DECLINED)
                out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "declined", HALTED,
                                            quote_id=q.quote_id))
                owner = self.rfqs.get(q.rfq_id)
                if owner is not None and owner.state is RfqState.ACCEPTED:
                    self._forget_pool(owner.rfq_id, out)
                    owner.move(RfqState.QUOTING)
                    self._sync(owner)
                    self._settle_rfq(owner)

    def _on_kill(self, ev: E.KillSwitchChanged, now: int, out: list[C.Command]) -> None:
        if ev.halted:
            if not self.halted:
                self._halt(ev.reason or "kill_switch", out, emit=False)
            out.append(C.RecordDecision("", "", "halted", "kill_switch", detail=ev.reason))
        elif self.halted:
            self.risk.resume()
            out.append(C.RecordDecision("", "", "resumed", "kill_switch", detail=ev.reason))

    def _on_timer(self, ev: E.TimerFired, now: int, out: list[C.Command]) -> None:
        kind, _, arg = ev.key.partition(":")
        if kind == "pending":
            self._on_pending_timeout(arg, out)
        elif kind == "close":
            self._close_timers.pop(arg, None)
            self._pull_market(arg, "market_closing", out)
        elif kind == "stale":
            self._on_stale_timer(arg, now, out)
        elif kind == "replace":
            self._replace_timers.pop(arg, None)
            rec = self.rfqs.get(arg)
            if rec is not None:
                self._maybe_replace(rec, now, out)
        elif kind == "confirm":
            q = self.quotes.get(arg)
            if q is not None and q.state is QuoteState.CONFIRMING:
                # The confirm was sent but not answered by its deadline; we may be committed,
                # so the provisional exposure stays until a fill or ConfirmFailed settles it.
                out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "confirm_unanswered",
                                            "confirm_deadline_passed", quote_id=q.quote_id))
        elif kind == "pricing":
            self._on_pricing_timer(arg, now, out)
        elif kind == "exec":
            q = self.quotes.get(arg)
            if q is not None:
                self.ledger.release_provisional(q.quote_id)
                q.provisional_centi = 0
                self._sync_prov(q)
                if q.rfq_id not in self.rfqs:
                    self._retain("quote", arg)  # late fills still join it meanwhile

    def _on_pending_timeout(self, rfq_id: str, out: list[C.Command]) -> None:
        if rfq_id not in self._pending:
            return
        rec = self.rfqs[rfq_id]
        market = self.md.markets.get(rec.market_ticker)
        needs = self._needs(rec.rfq, market)
        if market is None or any(t not in self.md.markets for t in needs):
            self._drop(rec, NO_MARKET, out, "metadata did not arrive in time")
        else:
            self._drop(rec, NO_BOOK, out, "book did not arrive in time")

    def _on_stale_timer(self, ticker: str, now: int, out: list[C.Command]) -> None:
        """Pull quotes relying on a book that has not changed for ``book_stale_after``."""
        self._stale_timers.pop(ticker, None)
        age = self.md.age_ns(ticker, now)
        next_at: int | None = None
        for rfq_id in list(self._by_book.get(ticker, {})):
            rec, st = self.rfqs.get(rfq_id), self._ctx.get(rfq_id)
            if rec is None or st is None or rec.state is not RfqState.QUOTING or rec.pull_reason:
                continue
            stale_ns = st.lifecycle.book_stale_after_ms * MS
            if age is None or age >= stale_ns:
                self._pull(rec, STALE_BOOK if age is not None else NO_BOOK, out)
            else:
                at = now - age + stale_ns
                next_at = at if next_at is None else min(next_at, at)
        if next_at is not None:
            self._stale_timers[ticker] = next_at
            out.append(C.ScheduleTimer(f"stale:{ticker}", next_at))
