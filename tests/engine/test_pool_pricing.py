"""Process-isolated strategies in the engine: PriceInPool out, PricingCompleted back in.

The pool is stood in for by ``InlinePricing`` (the same modules, run here), so every answer is
a real pricer's; timeouts and stale answers are sent as the runtime would send them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from engine_fixtures import BOOK_MID, MS, Harness, T, config, decisions, market, of

from quoter.config import parse_config
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import Side
from quoter.engine.engine import POOL_ANSWER_GRACE_NS
from quoter.engine.lifecycle import QuoteState, RfqState
from quoter.engine.pricing import pricing_completed
from quoter.errors import ConfigError
from quoter.runtime.pricing_pool import InlinePricing
from strategies.base import Decline, Pricing

POOL = "{isolation: process, pricer_timeout_ms: 300}"
INLINE = InlinePricing()


def pool_harness(**kw: str) -> Harness:
    h = Harness(config(quoting=POOL, **kw))
    h.ready()
    return h


def request(out: list[C.Command]) -> C.PriceInPool:
    (req,) = of(out, C.PriceInPool)
    return req


def answer(
    h: Harness, req: C.PriceInPool, result: Pricing | Decline | None = None
) -> list[C.Command]:
    """Send the pool's answer to ``req`` (by default: the real pricer's, run here)."""
    res = INLINE.price(req) if result is None else result
    return h.send(pricing_completed(req.rfq_id, req.request_id, res, h.now))


def quote_via_pool(h: Harness, rfq_id: str = "r1", quote_id: str = "q1") -> C.SubmitQuote:
    (sub,) = of(answer(h, request(h.rfq(rfq_id))), C.SubmitQuote)
    h.placed(rfq_id, quote_id)
    return sub


# --- config -----------------------------------------------------------------------------------


def test_isolation_defaults_to_inline_and_is_validated() -> None:
    assert config().strategies[0].quoting.isolation == "inline"
    q = config(quoting=POOL).strategies[0].quoting
    assert (q.isolation, q.pricer_timeout_ms) == ("process", 300)
    with pytest.raises(ConfigError, match="isolation"):
        parse_config(
            "version: 1\nstrategies:\n  - {name: a, pricer: book_mid, "
            "quoting: {isolation: thread}}\n"
        )
    with pytest.raises(ConfigError, match="pricer_timeout_ms"):
        config(quoting="{isolation: process, pricer_timeout_ms: 0}")


# --- new RFQs ---------------------------------------------------------------------------------


def test_new_rfq_round_trip_quotes_like_inline() -> None:
    inline = Harness()
    inline.ready()
    (expected,) = of(inline.rfq(), C.SubmitQuote)

    h = pool_harness()
    out = h.rfq()
    req = request(out)
    assert of(out, C.SubmitQuote) == []
    assert h.engine.rfqs["r1"].state is RfqState.PRICING
    assert req.deadline_ns == h.now + 300 * MS
    assert req.strategy == "main"
    assert C.ScheduleTimer("pricing:r1", req.deadline_ns + POOL_ANSWER_GRACE_NS) in out
    h.advance_ms(20)
    done = answer(h, req)
    assert of(done, C.SubmitQuote) == [expected]
    assert C.CancelTimer("pricing:r1") in done
    assert decisions(done) == [("quoted", "quoted")]
    assert h.engine.rfqs["r1"].state is RfqState.QUOTING


def test_request_carries_copies_of_the_books() -> None:
    h = pool_harness()
    req = request(h.rfq())
    before = req.inputs.books[T].yes_levels()
    h.delta(price=490_000, delta=500)  # the engine's book moves on
    assert req.inputs.books[T].yes_levels() == before
    assert h.engine.md.books[T].yes_levels() != before


def test_stale_and_unknown_answers_are_ignored() -> None:
    h = pool_harness()
    req = request(h.rfq())
    assert answer(h, C.PriceInPool("r1", "main", req.request_id + 1, req.inputs, req.pricer,
                                   req.overlays, req.deadline_ns)) == []
    assert answer(h, C.PriceInPool("nope", "main", req.request_id, req.inputs, req.pricer,
                                   req.overlays, req.deadline_ns)) == []
    assert h.engine.rfqs["r1"].state is RfqState.PRICING
    assert of(answer(h, req), C.SubmitQuote)
    assert answer(h, req) == []  # a duplicate answer is stale too


def test_rfq_deleted_while_pricing_ignores_the_answer() -> None:
    h = pool_harness()
    req = request(h.rfq())
    out = h.send(E.RfqDeleted("r1", T, h.now))
    assert decisions(out) == [("not_quoted", "rfq_deleted")]
    assert C.CancelTimer("pricing:r1") in out
    assert answer(h, req) == []
    assert "r1" not in h.engine.rfqs


def test_timeout_answer_declines_the_rfq() -> None:
    h = pool_harness()
    req = request(h.rfq())
    h.advance_ms(300)
    out = answer(h, req, Decline("pricer_timeout", "no answer within 300 ms; worker killed"))
    assert decisions(out) == [("not_quoted", "pricer_timeout")]
    assert of(out, C.SubmitQuote) == []
    assert "r1" not in h.engine.rfqs


def test_no_answer_at_all_declines_at_the_guard_timer() -> None:
    h = pool_harness()
    req = request(h.rfq())
    h.now = req.deadline_ns + POOL_ANSWER_GRACE_NS
    out = h.send(E.TimerFired("pricing:r1", h.now))
    assert decisions(out) == [("not_quoted", "pricer_timeout")]
    assert answer(h, req) == []  # a late answer after that is stale


def test_module_decline_and_error_keep_their_reason_codes() -> None:
    h = pool_harness()
    out = answer(h, request(h.rfq()), Decline("no_fair_value"))
    assert decisions(out) == [("not_quoted", "pricer_declined:no_fair_value")]
    out = answer(h, request(h.rfq("r2")), Decline("pricer_error", "ZeroDivisionError: x"))
    assert decisions(out) == [("not_quoted", "pricer_error")]


def test_answer_after_the_book_went_stale_is_not_quoted() -> None:
    h = pool_harness(lifecycle="{book_stale_after_ms: 100}")
    req = request(h.rfq())
    h.advance_ms(150)
    out = answer(h, req)
    assert decisions(out) == [("not_quoted", "stale_book")]


def test_halt_while_pricing_drops_the_rfq() -> None:
    h = pool_harness()
    req = request(h.rfq())
    out = h.send(E.KillSwitchChanged(True, "op", h.now))
    assert ("not_quoted", "halted") in decisions(out)
    assert answer(h, req) == []


# --- replacement ------------------------------------------------------------------------------


def test_book_move_reprices_through_the_pool_one_at_a_time() -> None:
    h = pool_harness(pricer=BOOK_MID, lifecycle="{min_replace_interval_ms: 0}")
    first = quote_via_pool(h)
    h.advance_ms(10)
    req = request(h.snapshot(bid=560_000, ask=600_000))
    # A second move while that request is in flight sends nothing new.
    h.advance_ms(5)
    assert of(h.snapshot(bid=600_000, ask=640_000), C.PriceInPool) == []
    out = answer(h, req)
    (sub,) = of(out, C.SubmitQuote)
    assert sub.fair_yes_micros == 580_000 != first.fair_yes_micros
    assert ("requoted", "fair_moved") in decisions(out)
    # ... and the move it skipped is priced as soon as the pool is free again.
    nxt = request(out)
    assert nxt.request_id > req.request_id
    assert nxt.inputs.books[T].best_yes_bid() == (600_000, 10_000)


def test_reprice_decline_pulls_the_quote() -> None:
    h = pool_harness(pricer=BOOK_MID, lifecycle="{min_replace_interval_ms: 0}")
    quote_via_pool(h)
    req = request(h.snapshot(bid=560_000, ask=600_000))
    out = answer(h, req, Decline("pricer_timeout", "x"))
    assert of(out, C.CancelQuote) == [C.CancelQuote("r1", "q1", "pricer_timeout")]


# --- last look --------------------------------------------------------------------------------


def test_last_look_reprices_in_the_pool_then_confirms() -> None:
    h = pool_harness()
    quote_via_pool(h)
    out = h.accept()
    req = request(out)
    q = h.engine.quotes["q1"]
    assert q.state is QuoteState.ACCEPTED
    assert of(out, C.ConfirmQuote) == []
    assert req.deadline_ns <= q.deadline_ns
    h.advance_ms(50)
    done = answer(h, req)
    assert of(done, C.ConfirmQuote) == [C.ConfirmQuote("r1", "q1", q.deadline_ns)]
    assert ("confirmed", "edge_ok") in decisions(done)


def test_last_look_request_never_outlives_the_confirm_deadline() -> None:
    h = Harness(config(quoting=POOL,
                       lifecycle="{hvm_confirm_window_ms: 500, confirm_safety_margin_ms: 300}"))
    h.ready(m=market(is_hvm=True))
    quote_via_pool(h)
    req = request(h.accept())
    assert req.deadline_ns == h.now + 200 * MS  # the confirm deadline, not the 300 ms timeout
    h.now = h.engine.quotes["q1"].deadline_ns  # an answer arriving at the deadline is too late
    out = answer(h, req)
    assert of(out, C.ConfirmQuote) == []
    assert decisions(out) == [("declined", "confirm_deadline_passed")]


def test_last_look_timeout_declines() -> None:
    h = pool_harness()
    quote_via_pool(h)
    req = request(h.accept())
    out = answer(h, req, Decline("pricer_timeout", "x"))
    assert decisions(out) == [("declined", "pricer_timeout")]
    assert h.engine.quotes["q1"].state is QuoteState.DECLINED


def test_halt_during_last_look_declines_and_ignores_the_answer() -> None:
    h = pool_harness()
    quote_via_pool(h)
    req = request(h.accept(side=Side.NO))
    out = h.send(E.KillSwitchChanged(True, "op", h.now))
    assert ("declined", "halted") in decisions(out)
    assert answer(h, req) == []


def test_rfq_deleted_during_last_look_records_a_decline() -> None:
    h = pool_harness()
    quote_via_pool(h)
    req = request(h.accept())
    out = h.send(E.RfqDeleted("r1", T, h.now))
    assert decisions(out) == [("declined", "rfq_deleted")]
    assert answer(h, req) == []


def test_same_inputs_same_commands() -> None:
    """Determinism: two engines fed the same events and answers emit identical commands."""
    logs = []
    for _ in range(2):
        h = pool_harness(pricer=BOOK_MID, lifecycle="{min_replace_interval_ms: 0}")
        quote_via_pool(h)
        answer(h, request(h.snapshot(bid=560_000, ask=600_000)))
        answer(h, request(h.accept()))
        logs.append([_comparable(c) for c in h.log])
    assert logs[0] == logs[1]
    assert len([c for c in logs[0] if isinstance(c, C.PriceInPool)]) == 3


def _comparable(c: C.Command) -> object:
    """Commands by value (order books compare by identity: compare their levels)."""
    if not isinstance(c, C.PriceInPool):
        return c
    books = {t: (b.yes_levels(), b.no_levels(), b.updated_ns)
             for t, b in c.inputs.books.items()}
    return replace(c, inputs=(replace(c.inputs, books={}), books))
