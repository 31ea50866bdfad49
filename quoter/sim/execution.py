"""Timers and execution of the simulated exchange: confirm windows, execution through the book."""

from __future__ import annotations

import heapq

from quoter.domain.money import MAX_PRICE_MICROS, notional_micros
from quoter.domain.types import MarketStatus, Side
from quoter.sim import wire
from quoter.sim.base import ExchangeBase
from quoter.sim.books import RestingOrder
from quoter.sim.models import OutMessage, QuoteStatus, SimQuote, short_hash

__all__ = ["ExecutionMixin"]


class ExecutionMixin(ExchangeBase):
    """Fire confirm-window expiries and execution timers; execute confirmed quotes (§3.3)."""

    def _schedule(self, due_ns: int, kind: str, quote_id: str) -> None:
        heapq.heappush(self._timers, (due_ns, self._next_seq(), kind, quote_id))

    def next_deadline_ns(self) -> int | None:
        """When :meth:`advance` next has work (clock ``now_ns`` base), or None."""
        return self._timers[0][0] if self._timers else None

    def advance(self, now_ns: int | None = None) -> None:
        """Fire every confirm-window expiry and execution timer due at ``now_ns``."""
        self._fire_due(self.clock.now_ns() if now_ns is None else now_ns)

    def _fire_due(self, now_ns: int) -> None:
        while self._timers and self._timers[0][0] <= now_ns:
            _, _, kind, quote_id = heapq.heappop(self._timers)
            if kind == "fee_change":
                self._apply_fee_change(quote_id)
                continue
            q = self._quotes[quote_id]
            if kind == "confirm_expiry" and q.status == QuoteStatus.ACCEPTED:
                q.voided = True  # status keeps reading "accepted" (§0a)
            elif kind == "execute" and q.status == QuoteStatus.CONFIRMED:
                self._execute(q)

    def _execute(self, q: SimQuote) -> None:
        rfq = self._rfqs[q.rfq_id]
        m = self._markets[q.market_ticker]
        assert q.accepted_side is not None
        assert q.accepted_contracts_centi is not None
        if m.status != MarketStatus.ACTIVE:
            self._cancel_quote(q, "market_not_active")
            return
        maker_side = q.accepted_side
        bid = q.yes_bid_micros if maker_side == Side.YES else q.no_bid_micros
        qty = q.accepted_contracts_centi
        book = self._books[m.ticker]
        if q.post_only and book.crosses(maker_side, bid):
            self._cancel_quote(q, "post_only_cross")
            return
        if self.config.check_balance:
            taker_need = notional_micros(MAX_PRICE_MICROS - bid, qty) + m.fees.fee_micros(
                bid, qty, is_taker=True)
            if (self._accounts[q.user_id].balance_micros < notional_micros(bid, qty)
                    or self._accounts[rfq.user_id].balance_micros < taker_need):
                self._cancel_quote(q, "insufficient_balance")
                return
        maker_order, req_order = self._new_id(), self._new_id()
        maker_coid = f"quote:{short_hash(q.id)}:{q.id}"
        req_coid = f"rfq:{short_hash(rfq.id)}:{rfq.id}"
        q.creator_order_id, q.rfq_creator_order_id = maker_order, req_order
        self._record_order(maker_order, q.user_id, maker_coid, m, maker_side, bid, qty)
        self._record_order(req_order, rfq.user_id, req_coid, m, maker_side.other,
                           MAX_PRICE_MICROS - bid, qty)
        # Maker order first: it may trade with better third-party liquidity, then rests.
        left = self._take(m, q.user_id, maker_order, maker_coid, maker_side, bid, qty)
        maker_rest = RestingOrder(maker_order, q.user_id, maker_side, bid, left, maker_coid,
                                  self._next_seq(), self.clock.now_ns())
        req_left = qty
        if left > 0:
            self._rest(m, maker_rest)
            # The requester's order crosses the maker's at the quote price ($1 - bid).
            req_left = self._take(m, rfq.user_id, req_order, req_coid, maker_side.other,
                                  MAX_PRICE_MICROS - bid, qty, only=maker_rest)
            if maker_rest.remaining_centi > 0 and not q.rest_remainder:
                self._remove_order(m.ticker, maker_order)
        if req_left > 0 and rfq.rest_remainder:
            self._rest(m, RestingOrder(req_order, rfq.user_id, maker_side.other,
                                       MAX_PRICE_MICROS - bid, req_left, req_coid,
                                       self._next_seq(), self.clock.now_ns()))
        now = self._wall()
        q.status = QuoteStatus.EXECUTED
        q.executed_wall_ns = q.updated_wall_ns = now
        rfq.executed = True  # from now on the counterparty sees the real creator id
        maker_comm, req_comm = self.comm_id(q.user_id), self.comm_id(rfq.user_id)
        for user, order_id, coid in ((q.user_id, maker_order, maker_coid),
                                     (rfq.user_id, req_order, req_coid)):
            self._emit(OutMessage("communications", "quote_executed", wire.quote_executed_msg(
                q, maker_comm, req_comm, order_id, coid, now), m.ticker, frozenset({user})))
        self._close_rfq(rfq, "executed")
