"""Last look and what follows it: an accept -> confirm or decline, the confirm's outcome, the
execution, its fills, and reconciling reported positions (a mismatch is a reason to halt)."""

from __future__ import annotations

from typing import Final

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.money import CENTI_PER_CONTRACT, MAX_PRICE_MICROS, notional_micros
from quoter.domain.types import MarketInfo, MarketStatus, Side
from quoter.engine.lifecycle import QuoteRecord, QuoteState, RfqRecord, RfqState
from quoter.engine.pool import PoolRequests
from quoter.engine.records import MS, PoolRequest, Records
from quoter.engine.retention import RECORD_RETENTION_NS, Retention
from quoter.engine.risk import Trade
from quoter.engine.routing import (
    HALTED,
    INSUFFICIENT_BALANCE,
    risk,
)
from quoter.engine.strategy_set import Strategy
from quoter.engine.totals import Totals
from quoter.engine.tracker import QuoteTracker
from quoter.engine.valuation import Valuation, trade_cash_micros
from strategies.base import Decline, Pricing

#: How long after ``quote_executed`` we wait for its fills before dropping what is left of the
#: provisional exposure (a post-only or partial execution fills less than was accepted).
EXECUTION_FILL_GRACE_NS: Final = 10_000 * MS
#: Last-look declines: the market stopped trading, or it is inside its closing window.
MARKET_NOT_ACTIVE: Final = "market_not_active"
MARKET_CLOSING: Final = "market_closing"
#: Why an accept is declined while another of our quotes on its RFQ is already accepted.
RFQ_ALREADY_ACCEPTED: Final = "rfq_already_accepted"


def maker_fee_per_contract(market: MarketInfo, bid_micros: int, size_centi: int) -> int:
    """Our maker fee on buying ``size_centi`` at ``bid_micros``, per contract (rounded up)."""
    if bid_micros <= 0 or bid_micros >= MAX_PRICE_MICROS or size_centi <= 0:
        return 0
    total = market.fees.fee_micros(bid_micros, size_centi, is_taker=False)
    return -(-total * CENTI_PER_CONTRACT // size_centi)


class LastLook:
    """Decide accepts of our quotes, follow the confirms, book executions and fills."""

    def __init__(
        self,
        records: Records,
        valuation: Valuation,
        totals: Totals,
        retention: Retention,
        tracker: QuoteTracker,
        pool: PoolRequests,
    ) -> None:
        """Hand the part its collaborators (the records and the parts below it)."""
        self.r = records
        self.valuation = valuation
        self.totals = totals
        self.retention = retention
        self.tracker = tracker
        self.pool = pool

    def on_accepted(self, ev: E.QuoteAccepted, now: int, out: list[C.Command]) -> None:
        """Last look: confirm iff our edge on the hit side survives a re-price, risk and halt.

        ``accepted_side`` "yes" means we buy YES at our ``yes_bid`` (edge = fair - yes_bid);
        "no" means we buy NO at our ``no_bid`` (edge = (1 - fair) - no_bid), kalshi-api.md §0a.
        The prices are those of the quote that was accepted, even if we replaced it since.
        """
        q = self.r.quotes.get(ev.quote_id)
        if q is None:
            if not self.hold(ev, now, out):
                out.append(C.RecordDecision(ev.rfq_id, ev.market_ticker, "ignored",
                                            "unknown_quote", quote_id=ev.quote_id))
            return
        rec = self.r.rfqs.get(q.rfq_id)
        if not q.is_live or rec is None:
            out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "ignored",
                                        f"quote_{q.state.value}", quote_id=q.quote_id))
            return
        q.move(QuoteState.ACCEPTED)
        if rec.state in (RfqState.ACCEPTED, RfqState.DONE):
            # Another of our quotes on this RFQ was accepted first (a replacement raced it):
            # one RFQ, one trade. Declining is doing nothing at the exchange.
            q.move(QuoteState.DECLINED)
            self.totals.sync(rec)
            out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "declined",
                                        RFQ_ALREADY_ACCEPTED, strategy=rec.strategy,
                                        quote_id=q.quote_id))
            return
        rec.move(RfqState.ACCEPTED)
        self.totals.sync(rec)
        st = self.r.ctx[rec.rfq_id]
        market = self.r.md.markets[q.market_ticker]
        q.deadline_ns = self.confirm_deadline(ev, rec)
        q.accepted_side = ev.accepted_side
        q.size_centi = self.accepted_size(ev, rec.rfq) or self.valuation.est_size(
            rec.rfq, q.yes_bid_micros, q.no_bid_micros)  # a target-cost RFQ
        if st.config.quoting.isolation == "process":
            reason, detail = self.pre_look(q, rec, st, market, now)
            if reason is None:
                # Never later than the confirm deadline: a timeout is a decline, in time.
                self.pool.request(rec, st, market, "last_look", now, out, q.quote_id,
                                   cap_ns=q.deadline_ns)
                return
        else:
            reason, detail = self.last_look(q, rec, st, market, now)
        self.finish_look(q, rec, reason, detail, out)

    def confirm_deadline(self, ev: E.QuoteAccepted, rec: RfqRecord) -> int:
        """The last engine time a confirm of ``ev`` may leave: its window, less the margin."""
        lc = self.r.ctx[rec.rfq_id].lifecycle
        market = self.r.md.markets[rec.market_ticker]
        # Every combo is HVM (kalshi-api.md §6); a single market when its metadata says so or
        # the operator declared it (no documented field marks one).
        hvm = market.is_hvm or market.is_combo or lc.declared_hvm(market.ticker)
        window_ms = lc.hvm_confirm_window_ms if hvm else lc.confirm_window_ms
        return ev.ts_recv_ns + (window_ms - lc.confirm_safety_margin_ms) * MS

    # --- accepts that beat our create-quote response ------------------------------------------

    def hold(self, ev: E.QuoteAccepted, now: int, out: list[C.Command]) -> bool:
        """Keep an accept of a quote id we do not know yet while a create is in flight on its
        RFQ: the accept notice can beat our create-quote response (kalshi-api.md §0a shows
        accepts ~0.11 s after creation). Held at most until its confirm deadline."""
        rec = self.r.rfqs.get(ev.rfq_id)
        if rec is None or not rec.in_flight or ev.quote_id in self.r.held:
            return False
        deadline = self.confirm_deadline(ev, rec)
        if now >= deadline:
            return False
        self.r.held[ev.quote_id] = ev
        out.append(C.ScheduleTimer(f"held:{ev.quote_id}", deadline))
        out.append(C.RecordDecision(ev.rfq_id, ev.market_ticker, "held", "create_in_flight",
                                    strategy=rec.strategy, quote_id=ev.quote_id))
        return True

    def on_placed(self, ev: E.QuotePlaced, now: int, out: list[C.Command]) -> None:
        """Our create answered: an accept of that quote held meanwhile gets its last look now."""
        held = self.r.held.pop(ev.quote_id, None)
        if held is not None:
            out.append(C.CancelTimer(f"held:{ev.quote_id}"))
            self.on_accepted(held, now, out)
        self.drop_orphans(ev.rfq_id, out)

    def drop_orphans(self, rfq_id: str, out: list[C.Command]) -> None:
        """Held accepts on ``rfq_id`` that no create in flight can name any more."""
        rec = self.r.rfqs.get(rfq_id)
        if rec is not None and rec.in_flight:
            return
        for qid in [q for q, h in self.r.held.items() if h.rfq_id == rfq_id]:
            self.unhold(qid, "no create in flight names it", out)

    def on_held_timer(self, quote_id: str, out: list[C.Command]) -> None:
        """No create response named the held accept's quote before its confirm deadline."""
        if quote_id in self.r.held:
            self.unhold(quote_id, "confirm deadline passed before the create response", out,
                        timer_fired=True)

    def unhold(self, quote_id: str, why: str, out: list[C.Command], *,
               timer_fired: bool = False) -> None:
        ev = self.r.held.pop(quote_id)
        if not timer_fired:
            out.append(C.CancelTimer(f"held:{quote_id}"))
        out.append(C.RecordDecision(ev.rfq_id, ev.market_ticker, "ignored", "unknown_quote",
                                    quote_id=quote_id, detail=why))

    def finish_look(
        self, q: QuoteRecord, rec: RfqRecord, reason: str | None, detail: str,
        out: list[C.Command],
    ) -> None:
        """Decline (do nothing at the exchange) or confirm an accepted quote."""
        side = q.accepted_side
        if reason is not None:
            q.move(QuoteState.DECLINED)
            rec.move(RfqState.QUOTING)
            self.totals.sync(rec)
            self.tracker.settle_rfq(rec)
            out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "declined", reason,
                                        strategy=rec.strategy, quote_id=q.quote_id, detail=detail))
            return
        assert side is not None
        q.move(QuoteState.CONFIRMING)
        q.provisional_centi = q.size_centi if side is Side.YES else -q.size_centi
        self.r.ledger.add_provisional(q.quote_id, q.market_ticker, q.provisional_centi)
        self.totals.sync_prov(q)
        out.append(C.ConfirmQuote(q.rfq_id, q.quote_id, q.deadline_ns))
        out.append(C.ScheduleTimer(f"confirm:{q.quote_id}", q.deadline_ns))
        out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "confirmed", "edge_ok",
                                    strategy=rec.strategy, quote_id=q.quote_id, detail=detail))

    @staticmethod
    def accepted_size(ev: E.QuoteAccepted, rfq: E.RfqReceived) -> int:
        if ev.contracts_accepted_centi is not None:
            return ev.contracts_accepted_centi
        offered = (
            ev.yes_contracts_offered_centi if ev.accepted_side is Side.YES
            else ev.no_contracts_offered_centi
        )
        if offered is not None:
            return offered
        return rfq.contracts_centi or 0

    def last_look(
        self, q: QuoteRecord, rec: RfqRecord, st: Strategy, market: MarketInfo, now: int
    ) -> tuple[str | None, str]:
        """``(None, detail)`` to confirm, else ``(reason code, detail)``."""
        reason, detail = self.pre_look(q, rec, st, market, now)
        if reason is not None:
            return reason, detail
        return self.post_look(q, st, market,
                              self.valuation.price(rec, st, market, now, final=False))

    def pre_look(
        self, q: QuoteRecord, rec: RfqRecord, st: Strategy, market: MarketInfo, now: int
    ) -> tuple[str | None, str]:
        """The last-look checks that need no pricing: ``(None, "")`` if they pass."""
        if q.accepted_side is None:
            return "no_accepted_side", ""
        if q.size_centi <= 0:
            return "unknown_size", ""
        if now >= q.deadline_ns:
            return "confirm_deadline_passed", f"late by {(now - q.deadline_ns) // MS} ms"
        if self.r.halted:
            return HALTED, self.r.risk.halt_reason
        va = self.valuation
        if market.status is not MarketStatus.ACTIVE:
            return MARKET_NOT_ACTIVE, f"status={market.status.value}"
        close_at = va.close_fire_ns(market, st.lifecycle)
        if close_at is not None and now >= close_at:
            return MARKET_CLOSING, f"closes at {market.close_ts_ms} ms"
        problem = va.book_problem(va.needs(rec.rfq, market), st.lifecycle, now)
        if problem:
            return problem, ""
        return None, ""

    def post_look(
        self, q: QuoteRecord, st: Strategy, market: MarketInfo, res: Pricing | Decline
    ) -> tuple[str | None, str]:
        """The last-look checks on the re-priced fair value: edge after our maker fee (the
        series' fee terms), then risk."""
        side = q.accepted_side
        assert side is not None  # checked by _pre_look
        if isinstance(res, Decline):
            return res.reason, res.detail
        fair = res.fair_yes_micros
        bid = q.bid_for(side)
        # Against the interval's end for the side hit when the value is a range (combos).
        edge = res.value_micros(side) - bid
        fee = maker_fee_per_contract(market, bid, q.size_centi)
        detail = f"side={side.value} bid={bid} fair_yes={fair} edge={edge} fee={fee}"
        if bid <= 0 or edge - fee < st.lifecycle.last_look_min_edge_micros:
            return "edge", detail
        reason = self.r.risk.check_fill_book(
            self.r.book, q.market_ticker, Trade(side, bid, q.size_centi)
        )
        if reason:
            return (HALTED if reason == HALTED else risk(reason)), detail
        free = self.totals.free_cash_micros()
        if free is not None:
            # Open quotes only might be hit; this trade will be: count it against the cash
            # that confirmed trades and fills have not taken.
            free += self.r.book.quote_cash_micros
            need = trade_cash_micros(market, bid, q.size_centi)
            if need > free:
                return risk(INSUFFICIENT_BALANCE), f"{detail} need={need} free={free}"
        return None, detail

    def on_confirmed(self, ev: E.QuoteConfirmed, now: int, out: list[C.Command]) -> None:
        q = self.r.quotes.get(ev.quote_id)
        if q is None or q.state is not QuoteState.CONFIRMING:
            return
        q.move(QuoteState.CONFIRMED)
        out.append(C.CancelTimer(f"confirm:{q.quote_id}"))

    def on_confirm_failed(self, ev: E.ConfirmFailed, now: int, out: list[C.Command]) -> None:
        """Our confirm failed (e.g. 400 ``expired``): no trade, drop the provisional exposure."""
        q = self.r.quotes.get(ev.quote_id)
        if q is None or q.state is not QuoteState.CONFIRMING:
            return
        q.move(QuoteState.EXPIRED)
        self.r.ledger.release_provisional(q.quote_id)
        q.provisional_centi = 0
        self.totals.sync_prov(q)
        out.append(C.CancelTimer(f"confirm:{q.quote_id}"))
        out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "confirm_failed", ev.code,
                                    quote_id=q.quote_id, detail=ev.message))
        self.finish_accepted(q)

    def finish_accepted(self, q: QuoteRecord) -> None:
        rec = self.r.rfqs.get(q.rfq_id)
        if rec is not None and rec.state is RfqState.ACCEPTED:
            rec.move(RfqState.DONE)
            self.totals.sync(rec)
            self.retention.retain("rfq", rec.rfq_id)

    # --- execution: executed quotes, fills, position reports, reconciliation ----------------

    def on_executed(self, ev: E.QuoteExecuted, now: int, out: list[C.Command]) -> None:
        """Execution: learn the order id that joins fills to the quote."""
        q = self.r.quotes.get(ev.quote_id)
        if q is None:
            out.append(C.RecordDecision(ev.rfq_id, ev.market_ticker, "ignored", "unknown_quote",
                                        quote_id=ev.quote_id))
            return
        if q.state not in (QuoteState.CONFIRMING, QuoteState.CONFIRMED, QuoteState.EXPIRED):
            return
        if q.state is QuoteState.EXPIRED and q.accepted_side is not None:
            # Our confirm looked refused (a retry's 4xx after the first attempt landed), yet it
            # executed: the trade is ours. Its exposure counts again until its fills arrive.
            q.provisional_centi = q.size_centi if q.accepted_side is Side.YES else -q.size_centi
            self.r.ledger.add_provisional(q.quote_id, q.market_ticker, q.provisional_centi)
            self.totals.sync_prov(q)
            out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "executed",
                                        "after_confirm_failed", quote_id=q.quote_id))
        q.move(QuoteState.EXECUTED)
        q.order_id = ev.order_id
        self.r.orders[ev.order_id] = q.quote_id
        out.append(C.CancelTimer(f"confirm:{q.quote_id}"))
        early = self.r.early_fills.pop(ev.order_id, 0)
        self.r.early_until.pop(ev.order_id, None)
        if early:
            self.reduce(q, early)
        if q.provisional_centi:
            out.append(C.ScheduleTimer(f"exec:{q.quote_id}", now + EXECUTION_FILL_GRACE_NS))
        self.finish_accepted(q)

    def reduce(self, q: QuoteRecord, count: int) -> None:
        left = self.r.ledger.reduce_provisional(q.quote_id, count)
        q.provisional_centi = left if q.provisional_centi > 0 else -left
        self.totals.sync_prov(q)

    def on_fill(self, ev: E.FillReceived, now: int, out: list[C.Command]) -> str | None:
        """Book a fill (authoritative); it replaces the provisional exposure of its quote.

        Returns the reason to halt (the daily loss stop), which the engine applies.
        """
        self.valuation.note_day(now)  # a new day starts before this fill's PnL is booked
        booked = self.r.ledger.book_fill(ev)
        if booked and self.r.cash_micros is not None:
            # Cash it took until the next balance report (a closing buy's payout is not
            # credited: never overstate what is free).
            price = ev.yes_price_micros if ev.outcome_side is Side.YES else (
                MAX_PRICE_MICROS - ev.yes_price_micros)
            self.r.cash_spent_micros += notional_micros(price, ev.count_centi) + ev.fee_micros
        if not booked:
            # A duplicate; if the first copy came without its fee (a legacy frame), this one
            # brings it.
            if self.r.ledger.merge_fee(ev):
                self.valuation.note_day(now)
            return None
        seen = self.r.fill_recv_ns.get(ev.market_ticker)
        if seen is None or ev.ts_recv_ns > seen:
            self.r.fill_recv_ns[ev.market_ticker] = ev.ts_recv_ns
        qid = self.r.orders.get(ev.order_id)
        if qid is not None and qid in self.r.quotes:
            self.reduce(self.r.quotes[qid], ev.count_centi)
        else:
            if ev.order_id not in self.r.early_fills:
                self.r.early_until[ev.order_id] = now + RECORD_RETENTION_NS
                self.retention.retain("early", ev.order_id)
            early = self.r.early_fills
            early[ev.order_id] = early.get(ev.order_id, 0) + ev.count_centi
        self.valuation.note_day(now)
        if not self.r.halted and self.r.risk.daily_stop_hit():
            return f"daily_loss_stop: lost {self.r.risk.daily_loss_micros} micros today"
        self.check_breaches(out)
        return None

    def check_breaches(self, out: list[C.Command]) -> None:
        """Pull quotes on markets whose live quotes now break a loss limit."""
        if not self.r.by_book or not self.r.risk.may_breach(self.r.book):
            return
        for t in self.r.risk.breaches(self.totals.exposures(None)):
            for rfq_id in list(self.r.by_book.get(t, {})):
                rec = self.r.rfqs.get(rfq_id)
                if rec is not None and rec.market_ticker == t:
                    self.tracker.pull(rec, risk("worst_case_loss"), out)

    def on_position(self, ev: E.PositionReported, now: int, out: list[C.Command]) -> str | None:
        """Reconcile: a position mismatch is a reason to halt, unless fills are in flight on
        that market or the report was received before a fill we have booked. A mismatch in a
        feed's report asks for a REST reconcile (``RequestReconcile``) instead: only a
        difference the REST read confirms halts.

        Also compared, where the exchange reports them: the fees paid and the cost of what is
        held (a fill booked at the wrong price or fee leaves the position right and the money
        wrong). Those are recorded (``reconcile_mismatch``, counted) but do not halt: how
        Kalshi rounds fees and carries cost across partial closes is not documented exactly
        enough to stop trading on a difference in it.
        """
        mine = self.r.ledger.market(ev.market_ticker)
        what = _mismatch(mine.position_centi, ev.position_centi, "position_mismatch",
                         "hundredths of a contract")
        money = None
        if what is None:
            money = (_mismatch(mine.fees_micros, ev.fees_paid_micros, "fees_mismatch",
                               "micro-dollars")
                     or _mismatch(mine.cost_micros, ev.position_cost_micros, "cost_mismatch",
                                  "micro-dollars"))
        found = what or money
        if found is None:
            return None
        kind, detail = found
        if self.r.fill_recv_ns.get(ev.market_ticker, ev.ts_recv_ns) > ev.ts_recv_ns:
            # We booked a fill received after this report (it came over REST, or overtook
            # the report in the inbox's priority lane): the report predates what we know, and
            # the next one (or the REST reconcile) compares again. Found by the chaos soak.
            out.append(C.RecordDecision("", ev.market_ticker, "reconcile_deferred",
                                        "report_older_than_fills", detail=detail))
            return None
        if self.r.ledger.provisional_keys(ev.market_ticker):
            out.append(C.RecordDecision("", ev.market_ticker, "reconcile_deferred",
                                        "fills_in_flight", detail=detail))
            return None
        if what is None:
            out.append(C.RecordDecision("", ev.market_ticker, "reconcile_mismatch", kind,
                                        detail=detail))
            return None
        if self.r.halted:
            return None
        if ev.from_feed:
            # A feed's report can be stale (delayed, reordered or duplicated behind a later
            # fill on the wire: the chaos soak shows all three); REST decides. The reconciler
            # reads positions twice and compares only markets that held still, and its report
            # comes back here and halts if the difference is real.
            out.append(C.RecordDecision("", ev.market_ticker, "reconcile_deferred",
                                        "confirming_over_rest", detail=detail))
            out.append(C.RequestReconcile(ev.market_ticker, kind))
            return None
        return f"{kind} {ev.market_ticker}: {detail}"

    def on_balance(self, ev: E.BalanceReported, now: int, out: list[C.Command]) -> None:
        """The exchange's cash balance: what quotes and confirms may spend from now on."""
        r = self.r
        r.cash_micros, r.cash_spent_micros = ev.balance_micros, 0
        if r.cash_paused:
            r.cash_paused = False
            out.append(C.RecordDecision("", "", "collateral_resumed", "balance_reported",
                                        detail=f"balance={ev.balance_micros}"))

    def on_cash_refused(self, code: str, message: str, out: list[C.Command]) -> None:
        """The exchange refused a quote or confirm for want of cash: a state, not a surprise
        per RFQ. Quoting pauses (recorded once) until the next balance report."""
        if code != INSUFFICIENT_BALANCE or self.r.cash_paused:
            return
        self.r.cash_paused = True
        out.append(C.RecordDecision("", "", "collateral_paused", INSUFFICIENT_BALANCE,
                                    detail=message))

    # --- timers and pool answers --------------------------------------------------------------

    def on_confirm_timer(self, quote_id: str, out: list[C.Command]) -> None:
        """A confirm's deadline passed unanswered; we may be committed, so the provisional
        exposure stays until a fill or ``ConfirmFailed`` settles it."""
        q = self.r.quotes.get(quote_id)
        if q is not None and q.state is QuoteState.CONFIRMING:
            out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "confirm_unanswered",
                                        "confirm_deadline_passed", quote_id=q.quote_id))

    def on_exec_timer(self, quote_id: str) -> None:
        """The fills of an execution had their grace: drop what is left of its exposure."""
        q = self.r.quotes.get(quote_id)
        if q is not None:
            self.r.ledger.release_provisional(q.quote_id)
            q.provisional_centi = 0
            self.totals.sync_prov(q)
            if q.rfq_id not in self.r.rfqs:
                self.retention.retain("quote", quote_id)  # late fills still join it meanwhile

    def on_pool_answer(
        self, rfq_id: str, req: PoolRequest, res: Pricing | Decline, now: int,
        out: list[C.Command],
    ) -> None:
        """The pool re-priced an accepted quote: finish its last look."""
        rec, st = self.r.rfqs.get(rfq_id), self.r.ctx.get(rfq_id)
        if rec is None or st is None:
            return
        market = self.r.md.markets[rec.market_ticker]
        q = self.r.quotes.get(req.quote_id)
        if q is None or q.state is not QuoteState.ACCEPTED:
            return  # declined meanwhile (halt) or dead (RFQ deleted)
        reason, detail = self.pre_look(q, rec, st, market, now)
        if reason is None:
            reason, detail = self.post_look(
                q, st, market, self.valuation.conclude(st, market, res, final=False)
            )
        self.finish_look(q, rec, reason, detail, out)


def _mismatch(ours: int, exchange: int | None, kind: str, unit: str) -> tuple[str, str] | None:
    """``(kind, detail)`` if the exchange reported ``exchange`` and it differs from ``ours``."""
    if exchange is None or exchange == ours:
        return None
    return kind, f"ours={ours} exchange={exchange} ({unit})"
