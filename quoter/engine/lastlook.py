"""Last look: an accept -> confirm or decline, and the confirm's outcome."""

from __future__ import annotations

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.money import MAX_PRICE_MICROS
from quoter.domain.types import MarketInfo, Side
from quoter.engine.lifecycle import QuoteRecord, QuoteState, RfqRecord, RfqState
from quoter.engine.risk import Trade
from quoter.engine.routing import (
    HALTED,
    risk,
)
from quoter.engine.state import (
    MS,
    _EngineState,
    _Strategy,
)
from strategies.base import Decline, Pricing


class _LastLook(_EngineState):
    """Decide accepts of our quotes and follow the confirms."""

    def _on_accepted(self, ev: E.QuoteAccepted, now: int, out: list[C.Command]) -> None:
        """Last look: confirm iff our edge on the hit side survives a re-price, risk and halt.

        ``accepted_side`` "yes" means we buy YES at our ``yes_bid`` (edge = fair - yes_bid);
        "no" means we buy NO at our ``no_bid`` (edge = (1 - fair) - no_bid), kalshi-api.md §0a.
        The prices are those of the quote that was accepted, even if we replaced it since.
        """
        q = self.quotes.get(ev.quote_id)
        if q is None:
            out.append(C.RecordDecision(ev.rfq_id, ev.market_ticker, "ignored", "unknown_quote",
                                        quote_id=ev.quote_id))
            return
        rec = self.rfqs.get(q.rfq_id)
        if not q.is_live or rec is None:
            out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "ignored",
                                        f"quote_{q.state.value}", quote_id=q.quote_id))
            return
        q.move(QuoteState.ACCEPTED)
        rec.move(RfqState.ACCEPTED)
        self._sync(rec)
        st = self._ctx[rec.rfq_id]
        lc = st.lifecycle
        market = self.md.markets[q.market_ticker]
        hvm = market.is_hvm or market.is_combo  # every combo is HVM (kalshi-api.md §6)
        window_ms = lc.hvm_confirm_window_ms if hvm else lc.confirm_window_ms
        q.deadline_ns = ev.ts_recv_ns + (window_ms - lc.confirm_safety_margin_ms) * MS
        q.accepted_side = ev.accepted_side
        q.size_centi = self._accepted_size(ev, rec.rfq)
        if st.config.quoting.isolation == "process":
            reason, detail = self._pre_look(q, rec, st, market, now)
            if reason is None:
                # Never later than the confirm deadline: a timeout is a decline, in time.
                self._request_pool(rec, st, market, "last_look", now, out, q.quote_id,
                                   cap_ns=q.deadline_ns)
                return
        else:
            reason, detail = self._last_look(q, rec, st, market, now)
        self._finish_look(q, rec, reason, detail, out)

    def _finish_look(
        self, q: QuoteRecord, rec: RfqRecord, reason: str | None, detail: str,
        out: list[C.Command],
    ) -> None:
        """Decline (do nothing at the exchange) or confirm an accepted quote."""
        side = q.accepted_side
        if reason is not None:
            q.move(QuoteState.DECLINED)
            rec.move(RfqState.QUOTING)
            self._sync(rec)
            self._settle_rfq(rec)
            out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "declined", reason,
                                        strategy=rec.strategy, quote_id=q.quote_id, detail=detail))
            return
        assert side is not None
        q.move(QuoteState.CONFIRMING)
        q.provisional_centi = q.size_centi if side is Side.YES else -q.size_centi
        self.ledger.add_provisional(q.quote_id, q.market_ticker, q.provisional_centi)
        self._sync_prov(q)
        out.append(C.ConfirmQuote(q.rfq_id, q.quote_id, q.deadline_ns))
        out.append(C.ScheduleTimer(f"confirm:{q.quote_id}", q.deadline_ns))
        out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "confirmed", "edge_ok",
                                    strategy=rec.strategy, quote_id=q.quote_id, detail=detail))

    @staticmethod
    def _accepted_size(ev: E.QuoteAccepted, rfq: E.RfqReceived) -> int:
        if ev.contracts_accepted_centi is not None:
            return ev.contracts_accepted_centi
        offered = (
            ev.yes_contracts_offered_centi if ev.accepted_side is Side.YES
            else ev.no_contracts_offered_centi
        )
        if offered is not None:
            return offered
        return rfq.contracts_centi or 0

    def _last_look(
        self, q: QuoteRecord, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int
    ) -> tuple[str | None, str]:
        """``(None, detail)`` to confirm, else ``(reason code, detail)``."""
        reason, detail = self._pre_look(q, rec, st, market, now)
        if reason is not None:
            return reason, detail
        return self._post_look(q, st, self._price(rec, st, market, now, final=False))

    def _pre_look(
        self, q: QuoteRecord, rec: RfqRecord, st: _Strategy, market: MarketInfo, now: int
    ) -> tuple[str | None, str]:
        """The last-look checks that need no pricing: ``(None, "")`` if they pass."""
        if q.accepted_side is None:
            return "no_accepted_side", ""
        if q.size_centi <= 0:
            return "unknown_size", ""
        if now >= q.deadline_ns:
            return "confirm_deadline_passed", f"late by {(now - q.deadline_ns) // MS} ms"
        if self.halted:
            return HALTED, self.risk.halt_reason
        problem = self._book_problem(self._needs(rec.rfq, market), st.lifecycle, now)
        if problem:
            return problem, ""
        return None, ""

    def _post_look(
        self, q: QuoteRecord, st: _Strategy, res: Pricing | Decline
    ) -> tuple[str | None, str]:
        """The last-look checks on the re-priced fair value: edge, then risk."""
        side = q.accepted_side
        assert side is not None  # checked by _pre_look
        if isinstance(res, Decline):
            return res.reason, res.detail
        fair = res.fair_yes_micros
        bid = q.bid_for(side)
        edge = (fair if side is Side.YES else MAX_PRICE_MICROS - fair) - bid
        detail = f"side={side.value} bid={bid} fair_yes={fair} edge={edge}"
        if bid <= 0 or edge < st.lifecycle.last_look_min_edge_micros:
            return "edge", detail
        reason = self.risk.check_fill_book(
            self.book, q.market_ticker, Trade(side, bid, q.size_centi)
        )
        if reason:
            return (HALTED if reason == HALTED else risk(reason)), detail
        return None, detail

    def _on_confirmed(self, ev: E.QuoteConfirmed, now: int, out: list[C.Command]) -> None:
        q = self.quotes.get(ev.quote_id)
        if q is None or q.state is not QuoteState.CONFIRMING:
            return
        q.move(QuoteState.CONFIRMED)
        out.append(C.CancelTimer(f"confirm:{q.quote_id}"))

    def _on_confirm_failed(self, ev: E.ConfirmFailed, now: int, out: list[C.Command]) -> None:
        """Our confirm failed (e.g. 400 ``expired``): no trade, drop the provisional exposure."""
        q = self.quotes.get(ev.quote_id)
        if q is None or q.state is not QuoteState.CONFIRMING:
            return
        q.move(QuoteState.EXPIRED)
        self.ledger.release_provisional(q.quote_id)
        q.provisional_centi = 0
        self._sync_prov(q)
        out.append(C.CancelTimer(f"confirm:{q.quote_id}"))
        out.append(C.RecordDecision(q.rfq_id, q.market_ticker, "confirm_failed", ev.code,
                                    quote_id=q.quote_id, detail=ev.message))
        self._finish_accepted(q)

    def _finish_accepted(self, q: QuoteRecord) -> None:
        rec = self.rfqs.get(q.rfq_id)
        if rec is not None and rec.state is RfqState.ACCEPTED:
            rec.move(RfqState.DONE)
            self._sync(rec)
            self._retain("rfq", rec.rfq_id)
