"""Process-isolated pricing (``quoting.isolation: process``): the one ``PriceInPool`` in
flight per RFQ, and matching each ``PricingCompleted`` to it. The flows continue from there."""

from __future__ import annotations

from typing import Final

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import MarketInfo
from quoter.engine.lifecycle import RfqRecord
from quoter.engine.records import MS, PoolRequest, Records
from quoter.engine.strategy_set import Strategy
from quoter.engine.valuation import Valuation

#: How long past a ``PriceInPool`` deadline the engine waits for its answer before declining.
POOL_ANSWER_GRACE_NS: Final = 1_000 * MS


class PoolRequests:
    """Ask the worker pool to price an RFQ, one request at a time, and match its answers."""

    def __init__(self, records: Records, valuation: Valuation) -> None:
        """Hand the part its collaborators (the records and the parts below it)."""
        self.r = records
        self.valuation = valuation

    def request(
        self, rec: RfqRecord, st: Strategy, market: MarketInfo, purpose: str, now: int,
        out: list[C.Command], quote_id: str = "", *, cap_ns: int | None = None,
    ) -> None:
        """Ask the pool to price ``rec``; its answer continues ``purpose`` (one per RFQ)."""
        self.r.pool_seq += 1
        deadline = now + st.config.quoting.pricer_timeout_ms * MS
        if cap_ns is not None:
            deadline = min(deadline, cap_ns)
        self.r.pool_reqs[rec.rfq_id] = PoolRequest(self.r.pool_seq, purpose, quote_id)
        out.append(C.PriceInPool(
            rec.rfq_id, st.config.name, self.r.pool_seq,
            self.valuation.input(rec, market, now, copy_books=True),
            st.config.pricer, st.config.overlays, deadline,
        ))
        out.append(C.ScheduleTimer(f"pricing:{rec.rfq_id}", deadline + POOL_ANSWER_GRACE_NS))

    def forget(self, rfq_id: str, out: list[C.Command]) -> PoolRequest | None:
        """Drop ``rfq_id``'s request in flight (its answer will be ignored) and its timer."""
        req = self.r.pool_reqs.pop(rfq_id, None)
        if req is not None:
            out.append(C.CancelTimer(f"pricing:{rfq_id}"))
        return req

    def take(self, ev: E.PricingCompleted, out: list[C.Command]) -> PoolRequest | None:
        """The request ``ev`` answers, taken off the books (its timer cancelled); None for a
        stale answer (not the RFQ's current request), which is ignored."""
        req = self.r.pool_reqs.get(ev.rfq_id)
        if req is None or req.request_id != ev.request_id:
            return None
        self.forget(ev.rfq_id, out)
        return req

    def expire(self, rfq_id: str) -> PoolRequest | None:
        """The answer to ``rfq_id``'s request is overdue: take the request off the books."""
        return self.r.pool_reqs.pop(rfq_id, None)
