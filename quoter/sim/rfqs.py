"""RFQs of the simulated exchange: create, obscure the creator, delete, close, read."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from quoter.sim import wire
from quoter.sim.base import ExchangeBase
from quoter.sim.models import (
    OBSCURED_CREATOR_ID,
    OutMessage,
    QuoteStatus,
    RfqStatus,
    SimError,
    SimRfq,
)

__all__ = ["RfqsMixin"]


class RfqsMixin(ExchangeBase):
    """The RFQ lifecycle: open, broadcast, close (cancelling live quotes) and read."""

    def create_rfq(
        self, user_id: str, market_ticker: str, *, contracts_centi: int | None = None,
        target_cost_micros: int | None = None, rest_remainder: bool = False,
        target_cost_excludes_fees: bool = False, replace_existing: bool = False,
        obscure_creator_id: bool = False,
    ) -> str:
        """Open an RFQ for exactly one of a size or a target cost; broadcasts ``rfq_created``."""
        self._account(user_id)
        m = self._active_market(market_ticker)
        if (contracts_centi is None) == (target_cost_micros is None):
            raise SimError(400, "invalid_parameters",
                           "exactly one of contracts_fp and target_cost_dollars is required")
        if contracts_centi is not None and contracts_centi <= 0:
            raise SimError(400, "invalid_parameters", "contracts must be positive")
        if target_cost_micros is not None and target_cost_micros <= 0:
            raise SimError(400, "invalid_parameters", "target cost must be positive")
        mine = self._open_by_user.setdefault(user_id, {})
        if replace_existing:
            for r in list(mine.values()):
                self._close_rfq(r, "replaced")
        if market_ticker in mine:
            raise SimError(409, "conflict", "an open RFQ on this market already exists")
        if len(mine) >= self.config.max_open_rfqs:
            raise SimError(400, "too_many_open_rfqs",
                           f"at most {self.config.max_open_rfqs} open RFQs per user")
        now = self._wall()
        rfq = SimRfq(
            id=self._new_id(), user_id=user_id, market_ticker=m.ticker,
            event_ticker=m.event_ticker, contracts_centi=contracts_centi,
            target_cost_micros=target_cost_micros,
            target_cost_excludes_fees=target_cost_excludes_fees,
            rest_remainder=rest_remainder, created_wall_ns=now, updated_wall_ns=now,
            mve_collection_ticker=m.mve_collection_ticker, legs=m.legs,
            obscure_creator_id=obscure_creator_id,
        )
        self._rfqs[rfq.id] = rfq
        self._open_rfqs[rfq.id] = rfq
        mine[m.ticker] = rfq
        self._rfq_broadcast(rfq, "rfq_created", lambda cid: wire.rfq_created_msg(rfq, cid))
        return rfq.id

    def open_rfq_tickers(self, user_id: str) -> frozenset[str]:
        """Markets on which ``user_id`` has an open RFQ (Kalshi allows one per market)."""
        return frozenset(self._open_by_user.get(user_id, ()))

    def open_rfq_count(self, user_id: str) -> int:
        """How many RFQs ``user_id`` has open (at most ``max_open_rfqs``)."""
        return len(self._open_by_user.get(user_id, ()))

    def rfq_creator_id_for(self, rfq: SimRfq, viewer: str | None) -> str:
        """The RFQ creator's communications id as ``viewer`` sees it (obscured or not)."""
        if rfq.obscure_creator_id and viewer != rfq.user_id and not rfq.executed:
            return OBSCURED_CREATOR_ID
        return self.comm_id(rfq.user_id)

    def _rfq_broadcast(self, rfq: SimRfq, kind: str,
                       render: Callable[[str], dict[str, Any]]) -> None:
        real = render(self.comm_id(rfq.user_id))
        if not rfq.obscure_creator_id:
            self._emit(OutMessage("communications", kind, real, rfq.market_ticker, None))
            return
        # The creator sees its own id; everyone else the placeholder (§2.6).
        others = frozenset(u for u in self._accounts if u != rfq.user_id)
        self._emit(OutMessage("communications", kind, real, rfq.market_ticker,
                              frozenset({rfq.user_id})))
        self._emit(OutMessage("communications", kind, render(self.rfq_creator_id_for(rfq, None)),
                              rfq.market_ticker, others))

    def delete_rfq(self, user_id: str, rfq_id: str) -> None:
        """Close the caller's open RFQ (404 if not theirs/open); broadcasts ``rfq_deleted``."""
        rfq = self._rfqs.get(rfq_id)
        if rfq is None or rfq.user_id != user_id or rfq.status != RfqStatus.OPEN:
            raise SimError(404, "not_found", f"rfq {rfq_id} not found")
        if any(q.status == QuoteStatus.CONFIRMED for q in self._quotes_by_rfq.get(rfq_id, ())):
            raise SimError(400, "invalid_parameters", "rfq has a confirmed quote executing")
        self._close_rfq(rfq, "user_requested")

    def _close_rfq(self, rfq: SimRfq, reason: str) -> None:
        now = self._wall()
        rfq.status = RfqStatus.CLOSED
        self._open_rfqs.pop(rfq.id, None)
        mine = self._open_by_user.get(rfq.user_id, {})
        if mine.get(rfq.market_ticker) is rfq:
            del mine[rfq.market_ticker]
        rfq.updated_wall_ns = now
        if reason != "executed":
            rfq.cancelled_wall_ns = now
            rfq.cancellation_reason = reason
        for q in self._quotes_by_rfq.get(rfq.id, ()):
            live = q.status in (QuoteStatus.OPEN, QuoteStatus.CONFIRMED) or (
                q.status == QuoteStatus.ACCEPTED and not q.voided)
            if live:
                self._cancel_quote(q, "rfq_closed")
        self._rfq_broadcast(rfq, "rfq_deleted", lambda cid: wire.rfq_deleted_msg(rfq, cid, now))

    def get_rfq(self, rfq_id: str) -> SimRfq:
        """A copy of the RFQ, or 404."""
        rfq = self._rfqs.get(rfq_id)
        if rfq is None:
            raise SimError(404, "not_found", f"rfq {rfq_id} not found")
        return copy.copy(rfq)

    def list_rfqs(
        self, *, status: str | None = None, market_ticker: str | None = None,
        event_ticker: str | None = None, user_id: str | None = None,
    ) -> list[SimRfq]:
        """RFQs matching the filters, newest first (``user_id`` = created by that user)."""
        out = [
            copy.copy(r) for r in self._rfqs.values()
            if (status is None or r.status == status)
            and (market_ticker is None or r.market_ticker == market_ticker)
            and (event_ticker is None or r.event_ticker == event_ticker)
            and (user_id is None or r.user_id == user_id)
        ]
        return out[::-1]
