"""Quotes of the simulated exchange: create/replace, withdraw, accept, confirm, read."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from quoter.domain.fees import FeeSchedule
from quoter.domain.money import (
    CENTI_PER_CONTRACT,
    MAX_PRICE_MICROS,
    MoneyError,
    check_bid,
    notional_micros,
)
from quoter.domain.types import Side
from quoter.sim import wire
from quoter.sim.base import ExchangeBase
from quoter.sim.models import (
    NS_PER_MS,
    OutMessage,
    QuoteStatus,
    RfqStatus,
    SimError,
    SimMarket,
    SimQuote,
    SimRfq,
)

__all__ = ["QuotesMixin"]


class QuotesMixin(ExchangeBase):
    """The quote lifecycle up to confirmation; timers and execution are ``execution``'s."""

    def create_quote(
        self, user_id: str, rfq_id: str, yes_bid_micros: int, no_bid_micros: int,
        *, rest_remainder: bool = False, post_only: bool = False,
    ) -> str:
        """Answer an RFQ with a two-sided quote; replaces the maker's open quote on it."""
        self._account(user_id)
        rfq = self._rfqs.get(rfq_id)
        if rfq is None:
            raise SimError(404, "not_found", f"rfq {rfq_id} not found")
        if rfq.status != RfqStatus.OPEN:
            raise SimError(400, "invalid_parameters", f"RFQ_CLOSED: rfq {rfq_id} is closed")
        if rfq.user_id == user_id:
            raise SimError(400, "invalid_parameters", "cannot quote your own RFQ")
        m = self._active_market(rfq.market_ticker)
        try:
            yes_bid, no_bid = check_bid(yes_bid_micros), check_bid(no_bid_micros)
        except MoneyError as exc:
            raise SimError(400, "invalid_parameters", str(exc)) from None
        if yes_bid == 0 and no_bid == 0:
            raise SimError(400, "invalid_parameters", "yes_bid and no_bid cannot both be 0")
        if yes_bid + no_bid > MAX_PRICE_MICROS:
            raise SimError(400, "invalid_parameters", "yes_bid + no_bid must not exceed 1")
        if yes_bid % 100 or no_bid % 100:  # nothing trades finer than $0.0001 (§5.2)
            raise SimError(400, "invalid_parameters", "prices must be multiples of $0.0001")
        for bid in (yes_bid, no_bid):
            if bid and self.config.reject_off_grid_quotes and not m.grid.is_valid(bid):
                raise SimError(400, "invalid_parameters", "price is not on the market's grid")
        for q in self._quotes_by_rfq.get(rfq_id, ()):
            if q.user_id == user_id and q.status == QuoteStatus.OPEN:
                self._cancel_quote(q, "replaced")
        yes_n, no_n = self._offered(m, rfq, yes_bid, no_bid)
        now = self._wall()
        q = SimQuote(
            id=self._new_id(), rfq_id=rfq_id, user_id=user_id, rfq_user_id=rfq.user_id,
            market_ticker=m.ticker, yes_bid_micros=yes_bid, no_bid_micros=no_bid,
            yes_contracts_centi=yes_n, no_contracts_centi=no_n,
            rest_remainder=rest_remainder, post_only=post_only,
            created_wall_ns=now, updated_wall_ns=now,
            rfq_target_cost_micros=rfq.target_cost_micros,
            target_cost_excludes_fees=(rfq.target_cost_excludes_fees
                                       if rfq.target_cost_micros is not None else None),
        )
        self._quotes[q.id] = q
        self._quotes_by_rfq.setdefault(rfq_id, []).append(q)
        self._quote_msg("quote_created", q, rfq, lambda cid: wire.quote_created_msg(
            q, self.comm_id(user_id), cid, rfq, now))
        return q.id

    def _offered(self, m: SimMarket, rfq: SimRfq, yes_bid: int, no_bid: int) -> tuple[int, int]:
        if rfq.contracts_centi is not None:
            return (rfq.contracts_centi if yes_bid else 0, rfq.contracts_centi if no_bid else 0)
        assert rfq.target_cost_micros is not None
        return tuple(  # type: ignore[return-value]
            _target_count(m.fees, MAX_PRICE_MICROS - bid, rfq.target_cost_micros,
                          rfq.target_cost_excludes_fees) if bid else 0
            for bid in (yes_bid, no_bid)
        )

    def delete_quote(self, user_id: str, quote_id: str, rfq_id: str | None = None) -> None:
        """Withdraw an open quote; anything else (accepted included, §0a) is 404."""
        q = self._quotes.get(quote_id)
        if (q is None or q.user_id != user_id or (rfq_id is not None and q.rfq_id != rfq_id)
                or q.status != QuoteStatus.OPEN):
            raise SimError(404, "not_found", f"quote {quote_id} not found")
        self._cancel_quote(q, "user_requested")

    def _cancel_quote(self, q: SimQuote, reason: str) -> None:
        now = self._wall()
        q.status = QuoteStatus.CANCELLED
        q.cancelled_wall_ns = q.updated_wall_ns = now
        q.cancellation_reason = reason

    def cancel_open_quotes_silently(self) -> int:
        """Cancel every open quote without a message (a server roll loses them, §3.1)."""
        n = 0
        for q in self._quotes.values():
            if q.status == QuoteStatus.OPEN:
                self._cancel_quote(q, "exchange_restart")
                n += 1
        return n

    def accept_quote(
        self, user_id: str, rfq_id: str | None, quote_id: str, side: Side,
        contracts_centi: int | None = None,
    ) -> None:
        """Requester accepts one side of a quote; starts the maker's confirm window."""
        q = self._quotes.get(quote_id)
        if q is None or (rfq_id is not None and q.rfq_id != rfq_id):
            raise SimError(404, "not_found", f"quote {quote_id} not found")
        rfq = self._rfqs[q.rfq_id]
        if rfq.user_id != user_id:
            raise SimError(404, "not_found", f"quote {quote_id} not found")
        if rfq.status != RfqStatus.OPEN:
            raise SimError(400, "invalid_parameters", f"RFQ_CLOSED: rfq {rfq.id} is closed")
        if q.status != QuoteStatus.OPEN:
            raise SimError(400, "invalid_parameters", f"quote is {q.status}, not open")
        if any(not o.voided and o.status in (QuoteStatus.ACCEPTED, QuoteStatus.CONFIRMED)
               for o in self._quotes_by_rfq.get(rfq.id, ())):
            raise SimError(400, "invalid_parameters", "another quote on this rfq is pending")
        side = Side(side)
        bid = q.yes_bid_micros if side == Side.YES else q.no_bid_micros
        offered = q.yes_contracts_centi if side == Side.YES else q.no_contracts_centi
        if bid == 0 or offered <= 0:
            raise SimError(400, "invalid_parameters", f"the quote has no {side} bid")
        qty = offered if contracts_centi is None else contracts_centi
        if not 0 < qty <= offered:
            raise SimError(400, "invalid_parameters", "contracts must be in (0, offered]")
        m = self._active_market(q.market_ticker)
        price = MAX_PRICE_MICROS - bid
        need = notional_micros(price, qty) + m.fees.fee_micros(price, qty, is_taker=True)
        if self.config.check_balance and self._accounts[user_id].balance_micros < need:
            raise SimError(400, "insufficient_balance", "INSUFFICIENT_BALANCE")
        now = self._wall()
        q.status = QuoteStatus.ACCEPTED
        q.accepted_side = side
        q.accepted_contracts_centi = qty
        q.accepted_wall_ns = q.updated_wall_ns = now
        window_ms = self.config.hvm_confirm_window_ms if m.is_hvm else self.config.confirm_window_ms
        self._schedule(self.clock.now_ns() + window_ms * NS_PER_MS, "confirm_expiry", q.id)
        self._quote_msg("quote_accepted", q, rfq, lambda cid: wire.quote_accepted_msg(
            q, self.comm_id(q.user_id), cid, rfq))

    def confirm_quote(self, user_id: str, quote_id: str, rfq_id: str | None = None) -> None:
        """Maker's last-look confirm: starts the execution timer (400 ``expired`` if late)."""
        q = self._quotes.get(quote_id)
        if (q is None or q.user_id != user_id or (rfq_id is not None and q.rfq_id != rfq_id)):
            raise SimError(404, "not_found", f"quote {quote_id} not found")
        m = self.get_market(q.market_ticker)
        self._fire_due(self.clock.now_ns())
        if q.status == QuoteStatus.ACCEPTED and q.voided:
            raise SimError(400, "expired", "the confirmation window has expired")
        if q.status != QuoteStatus.ACCEPTED:
            raise SimError(400, "invalid_parameters", f"quote is {q.status}, not accepted")
        need = _maker_need(m, q)
        # The cash this maker's other confirmed quotes will take at execution is spoken for:
        # confirms that together cannot be paid are refused here, not cancelled later.
        if self.config.check_balance and (
                self._accounts[user_id].balance_micros - self._reserved_micros(user_id) < need):
            raise SimError(400, "insufficient_balance", "INSUFFICIENT_BALANCE")
        self._confirmed_by_user.setdefault(user_id, set()).add(q.id)
        q.status = QuoteStatus.CONFIRMED
        q.confirmed_wall_ns = q.updated_wall_ns = self._wall()
        cfg = self.config
        timer_ms = cfg.hvm_execution_timer_ms if m.is_hvm else cfg.execution_timer_ms
        self._schedule(self.clock.now_ns() + timer_ms * NS_PER_MS, "execute", q.id)

    def _reserved_micros(self, user_id: str) -> int:
        """Cash the user's confirmed, not yet executed quotes will need (drops finished ones)."""
        ids = self._confirmed_by_user.get(user_id)
        if not ids:
            return 0
        total = 0
        for qid in list(ids):
            q = self._quotes[qid]
            if q.status != QuoteStatus.CONFIRMED:
                ids.discard(qid)
                continue
            total += _maker_need(self._markets[q.market_ticker], q)
        return total

    def get_quote(self, quote_id: str, rfq_id: str | None = None) -> SimQuote:
        """A copy of the quote, or 404 (also when it is not in ``rfq_id``)."""
        q = self._quotes.get(quote_id)
        if q is None or (rfq_id is not None and q.rfq_id != rfq_id):
            raise SimError(404, "not_found", f"quote {quote_id} not found")
        return copy.copy(q)

    def list_quotes(
        self, *, status: str | None = None, rfq_id: str | None = None,
        creator_user_id: str | None = None, rfq_creator_user_id: str | None = None,
        min_updated_wall_ns: int | None = None, max_updated_wall_ns: int | None = None,
    ) -> list[SimQuote]:
        """Quotes matching the filters, newest first."""
        out = [
            copy.copy(q) for q in self._quotes.values()
            if (status is None or q.status == status)
            and (rfq_id is None or q.rfq_id == rfq_id)
            and (creator_user_id is None or q.user_id == creator_user_id)
            and (rfq_creator_user_id is None or q.rfq_user_id == rfq_creator_user_id)
            and (min_updated_wall_ns is None or q.updated_wall_ns >= min_updated_wall_ns)
            and (max_updated_wall_ns is None or q.updated_wall_ns <= max_updated_wall_ns)
        ]
        return out[::-1]

    def _quote_msg(self, kind: str, q: SimQuote, rfq: SimRfq,
                   render: Callable[[str], dict[str, Any]]) -> None:
        # quote_* messages go only to the quote's creator and the RFQ's creator (§2.6).
        if not rfq.obscure_creator_id:
            self._emit(OutMessage("communications", kind, render(self.comm_id(rfq.user_id)),
                                  q.market_ticker, frozenset({q.user_id, q.rfq_user_id})))
            return
        for viewer in (q.user_id, q.rfq_user_id):
            self._emit(OutMessage("communications", kind,
                                  render(self.rfq_creator_id_for(rfq, viewer)),
                                  q.market_ticker, frozenset({viewer})))


def _maker_need(m: SimMarket, q: SimQuote) -> int:
    """What executing an accepted quote costs its maker: the hit side's bid x size + fee."""
    assert q.accepted_side is not None
    assert q.accepted_contracts_centi is not None
    bid = q.yes_bid_micros if q.accepted_side == Side.YES else q.no_bid_micros
    return notional_micros(bid, q.accepted_contracts_centi) + m.fees.fee_micros(
        bid, q.accepted_contracts_centi, is_taker=False)


def _target_count(fees: FeeSchedule, price: int, target: int, excludes_fees: bool) -> int:
    """Largest quantity (0.01 contracts) whose cost at ``price`` (+ taker fee) fits ``target``."""

    def cost(n: int) -> int:
        principal = price * n // CENTI_PER_CONTRACT
        return principal if excludes_fees else principal + fees.fee_micros(price, n, is_taker=True)

    lo, hi = 0, target * CENTI_PER_CONTRACT // price + 1
    while lo < hi:  # binary search: cost is monotone in n
        mid = (lo + hi + 1) // 2
        if cost(mid) <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo
