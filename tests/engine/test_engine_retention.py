"""Ended RFQ / quote records, order ids and early fills are dropped after a grace period."""

from __future__ import annotations

from engine_fixtures import MS, Harness, T, config, decisions, of

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import Side
from quoter.engine.engine import EXECUTION_FILL_GRACE_NS, RECORD_RETENTION_NS
from quoter.engine.lifecycle import QuoteState, RfqState

RETENTION_MS = RECORD_RETENTION_NS // MS


def _executed(
    h: Harness, rfq_id: str = "r1", quote_id: str = "q1", order_id: str = "o1",
    side: Side = Side.YES,
) -> None:
    """Quote, accept ``side`` (100 contracts), confirm and execute."""
    h.quote(rfq_id, quote_id)
    assert of(h.accept(quote_id, side, rfq_id=rfq_id), C.ConfirmQuote)
    h.send(E.QuoteConfirmed(rfq_id, quote_id, h.now))
    h.send(E.QuoteExecuted(quote_id, rfq_id, T, order_id, h.now))


def test_done_rfq_serves_late_events_then_is_dropped() -> None:
    h = Harness()
    h.ready()
    h.quote()
    h.send(E.QuoteCancelled("r1", "q1", h.now))
    assert h.engine.rfqs["r1"].state is RfqState.DONE
    h.advance_ms(RETENTION_MS - 1)
    # Within the grace period the records answer a late accept precisely.
    assert decisions(h.accept("q1")) == [("ignored", "quote_cancelled")]
    assert "r1" in h.engine.rfqs
    h.advance_ms(1)
    assert decisions(h.accept("q1")) == [("ignored", "unknown_quote")]
    assert "r1" not in h.engine.rfqs
    assert "q1" not in h.engine.quotes
    assert not h.engine.records.by_book
    assert not h.engine.records.books_of
    assert not h.engine.records.ctx


def test_executed_quote_joins_late_fills_during_grace_then_is_dropped() -> None:
    h = Harness()
    h.ready()
    _executed(h)
    h.fill("t1", "o1", Side.YES, 480_000, 4_000)
    assert h.engine.ledger.provisional_centi(T) == 6_000
    assert h.send(E.RfqDeleted("r1", T, h.now)) == []
    assert "q1" in h.engine.quotes  # committed: kept for its fills
    h.advance_ms(RETENTION_MS)
    h.fill("t2", "o1", Side.YES, 480_000, 1_000)  # late, still joined to q1
    assert h.engine.ledger.provisional_centi(T) == 5_000
    assert h.engine.records.orders == {"o1": "q1"}
    # Still holding provisional exposure: kept past the retention until that is settled.
    h.advance_ms(RETENTION_MS)
    h.send(E.TimerFired("exec:q1", h.now))
    assert h.engine.ledger.provisional_centi(T) == 0
    assert "q1" in h.engine.quotes
    h.fill("t3", "o1", Side.YES, 480_000, 500)  # after the exec grace: booked, joins q1
    assert h.engine.ledger.position_centi(T) == 5_500
    assert not h.engine.records.early_fills
    h.advance_ms(RETENTION_MS)
    h.send(E.TimerFired("noop:x", h.now))
    assert "q1" not in h.engine.quotes
    assert h.engine.records.orders == {}
    assert not h.engine.rfqs
    # A fill after that is still booked (positions are authoritative) but joins nothing.
    h.fill("t4", "o1", Side.YES, 480_000, 500)
    assert h.engine.ledger.position_centi(T) == 6_000
    assert h.engine.ledger.provisional_centi(T) == 0


def test_unjoined_early_fills_are_dropped_after_retention() -> None:
    h = Harness()
    h.ready()
    h.fill("t1", "o-elsewhere", Side.YES, 480_000, 1_000)
    assert h.engine.records.early_fills == {"o-elsewhere": 1_000}
    h.advance_ms(RETENTION_MS - 1)
    h.send(E.TimerFired("noop:x", h.now))
    assert h.engine.records.early_fills == {"o-elsewhere": 1_000}
    h.advance_ms(1)
    h.send(E.TimerFired("noop:x", h.now))
    assert h.engine.records.early_fills == {}
    assert h.engine.records.early_until == {}


def test_early_fill_joined_by_execution_is_pruned_at_once() -> None:
    h = Harness()
    h.ready()
    h.quote()
    h.accept(side=Side.YES)
    h.fill("t1", "o1", Side.YES, 480_000, 10_000)
    h.send(E.QuoteExecuted("q1", "r1", T, "o1", h.now))
    assert h.engine.ledger.provisional_centi(T) == 0
    assert h.engine.records.early_fills == {}
    assert h.engine.records.early_until == {}


def test_unanswered_confirm_keeps_the_quote_until_settled() -> None:
    h = Harness()
    h.ready()
    h.quote()
    h.accept(side=Side.NO)
    h.send(E.RfqDeleted("r1", T, h.now))
    h.advance_ms(3 * RETENTION_MS)
    h.send(E.TimerFired("noop:x", h.now))
    q = h.engine.quotes["q1"]
    assert q.state is QuoteState.CONFIRMING
    assert h.engine.ledger.provisional_centi(T) == -10_000
    assert decisions(h.send(E.ConfirmFailed("r1", "q1", "expired", "", h.now))) == [
        ("confirm_failed", "expired")
    ]
    assert h.engine.ledger.provisional_centi(T) == 0
    h.advance_ms(RETENTION_MS)
    h.send(E.TimerFired("noop:x", h.now))
    assert "q1" not in h.engine.quotes


def test_memory_stays_bounded_over_a_long_run() -> None:
    """Thousands of quote lifecycles whose rfq_deleted never arrives leave few records."""
    h = Harness(config(risk=(
        "{max_position_contracts_per_market: 100000, max_position_contracts_per_event: 100000, "
        "max_position_contracts_per_series: 100000, max_position_contracts_total: 100000, "
        'max_worst_case_loss_dollars_per_market: "1000000", '
        'max_worst_case_loss_dollars_total: "1000000"}'
    )))
    h.ready()
    sizes = []
    for i in range(1_500):
        h.advance_ms(1_000)
        h.snapshot()  # keep the book fresh
        rid, qid, oid = f"r{i}", f"q{i}", f"o{i}"
        if i % 3 == 0:
            side = Side.YES if i % 2 else Side.NO  # alternate so the position stays small
            _executed(h, rid, qid, oid, side)
            h.fill(f"t{i}", oid, side, 480_000 if side is Side.YES else 520_000, 10_000)
            h.fill(f"x{i}", f"other{i}", Side.NO, 480_000, 100)  # never joined
        elif i % 3 == 1:
            h.quote(rid, qid)
            h.send(E.QuoteCancelled(rid, qid, h.now))
        else:
            h.quote(rid, qid)
            h.accept(qid, Side.YES, rfq_id=rid)
            h.send(E.ConfirmFailed(rid, qid, "expired", "", h.now))
        e = h.engine
        r = e.records
        sizes.append(max(len(e.rfqs), len(e.quotes), len(r.orders), len(r.early_fills),
                         len(r.ctx), len(r.books_of), len(r.by_book.get(T, {}))))
    window = RECORD_RETENTION_NS // (1_000 * MS) + 2
    assert max(sizes) <= window
    assert len(h.engine.records.expiry) <= 2 * window
    assert EXECUTION_FILL_GRACE_NS < RECORD_RETENTION_NS
