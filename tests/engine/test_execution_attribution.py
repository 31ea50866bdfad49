"""A fill is attributed to the strategy whose quote executed, even when the RFQ's record is
gone by the time the execution is stepped (the RFQ closes at the accept; with the priority
lane from the socket its delete can be stepped before the execution arrives)."""

from __future__ import annotations

from pathlib import Path

from engine_fixtures import START_NS, Harness, T

from quoter.clock import ReplayClock
from quoter.domain import events as E
from quoter.domain.types import BookSide, Side
from quoter.observability.metrics import Metrics
from quoter.service.hooks import ServiceHooks
from quoter.service.store import Store


def test_an_execution_after_its_rfq_is_gone_is_still_attributed(tmp_path: Path) -> None:
    h = Harness()
    h.ready()
    with Store(tmp_path / "q.db") as store:
        hooks = ServiceHooks(clock=ReplayClock(start_ns=START_NS), engine=h.engine,
                             store=store, metrics=Metrics())

        def step(event: E.Event) -> None:
            hooks.on_engine_step(event, h.send(event), h.now)

        step(E.RfqReceived("r1", T, h.now, creator_id="req",
                           contracts_centi=10_000))
        step(E.QuotePlaced("r1", "q1", h.now))
        strategy = h.engine.records.rfqs["r1"].strategy
        assert strategy
        step(E.QuoteAccepted("q1", "r1", T, 0, 0, Side.YES, h.now))
        step(E.RfqDeleted("r1", T, h.now))
        h.engine.records.rfqs.pop("r1", None)  # retired (retention), as in the live race
        step(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
        step(E.FillReceived("t1", "o1", T, Side.YES, BookSide.BID, 470_000, 10_000, 0, False,
                            h.now))
        pnl = {p.strategy: p for p in hooks.markouts.strategy_pnl(lambda t: 500_000)}
    assert set(pnl) == {strategy}
    assert pnl[strategy].fills == 1
