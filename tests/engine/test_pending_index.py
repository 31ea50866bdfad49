"""Parked RFQs are found through a per-market index, in arrival order, and leave no trace."""

from __future__ import annotations

from engine_fixtures import T2, Harness, T, config, decisions, market, of

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import ComboLeg, Side

T3 = "KXTEST-26JAN01-C"


def _index_is_empty(h: Harness) -> bool:
    e = h.engine
    return not e.records.pending and not e.records.pending_by and not e.records.pending_keys


def test_a_book_prices_only_the_rfqs_parked_on_it_in_arrival_order() -> None:
    h = Harness()
    for rid, t in (("a1", T), ("b1", T2), ("a2", T), ("c1", T3), ("a3", T)):
        assert of(h.rfq(rid, t, 1_000), C.ScheduleTimer)  # parked: no metadata yet
    h.load(market(T))
    h.load(market(T2))
    assert of(h.log, C.SubmitQuote) == []
    out = h.snapshot(T)
    assert [s.rfq_id for s in of(out, C.SubmitQuote)] == ["a1", "a2", "a3"]
    assert of(out, C.CancelTimer) == [C.CancelTimer(f"pending:{r}") for r in ("a1", "a2", "a3")]
    assert list(h.engine.records.pending) == ["b1", "c1"]
    assert set(h.engine.records.pending_by) == {T2, T3}
    assert [s.rfq_id for s in of(h.snapshot(T2), C.SubmitQuote)] == ["b1"]
    h.send(E.RfqDeleted("c1", T3, h.now))
    assert _index_is_empty(h)


def test_combo_legs_learned_from_metadata_are_indexed() -> None:
    combo_t = "KXMVECOMBO-1-X"
    legs = (ComboLeg("KXTEST-26JAN01", T, Side.YES), ComboLeg("KXTEST-26JAN01", T2, Side.NO))
    h = Harness(config(pricer='combo, params: {edge_dollars: "0.01"}', match="{kind: combo}"))
    # The RFQ names no legs: only the market's metadata will.
    out = h.rfq("c1", combo_t, mve_collection_ticker="KXMVECOLL")
    assert of(out, C.FetchMarket) == [C.FetchMarket(combo_t)]
    out = h.load(market(combo_t, legs=legs))
    assert of(out, C.FetchMarket) == [C.FetchMarket(T), C.FetchMarket(T2)]
    assert set(h.engine.records.pending_by) == {combo_t, T, T2}
    h.ready(T, bid=490_000, ask=510_000)
    assert of(h.log, C.SubmitQuote) == []
    h.ready(T2, bid=290_000, ask=310_000)
    (sub,) = of(h.log, C.SubmitQuote)
    assert sub.rfq_id == "c1"
    assert _index_is_empty(h)


def test_index_is_cleared_on_timeout_failure_and_deletion() -> None:
    h = Harness()
    h.rfq("r1", T)
    h.rfq("r2", T2)
    h.rfq("r3", T3)
    h.send(E.TimerFired("pending:r1", h.now))
    h.send(E.MarketLoadFailed(T2, "not_found", h.now))
    out = h.send(E.RfqDeleted("r3", T3, h.now))
    assert decisions(out) == [("not_quoted", "rfq_deleted")]
    assert _index_is_empty(h)
    assert not h.engine.rfqs
