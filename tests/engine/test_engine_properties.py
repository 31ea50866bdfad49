"""Hypothesis properties of the engine: quotes are always quotable and risk is never exceeded."""

from __future__ import annotations

from engine_fixtures import BOOK_MID, T2, Harness, T, config, market, of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.events import FillReceived
from quoter.domain.grid import STRUCTURES
from quoter.domain.types import BookSide, Side
from quoter.engine.lifecycle import QuoteState
from quoter.engine.positions import PositionLedger, reference_recompute
from quoter.engine.pricing import finalize
from quoter.engine.risk import worst_case_loss_micros
from strategies.base import Decline, Pricing

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STRUCTURE_NAMES = sorted(STRUCTURES)


@SETTINGS
@given(
    structure=st.sampled_from(STRUCTURE_NAMES),
    fair=st.integers(1, 999_999),
    yes=st.integers(0, 999_999),
    no=st.integers(0, 999_999),
    spread=st.integers(0, 100_000),
)
def test_finalize_output_is_always_quotable(
    structure: str, fair: int, yes: int, no: int, spread: int
) -> None:
    grid = STRUCTURES[structure]
    out = finalize(Pricing(fair, yes, no), grid, spread)
    if isinstance(out, Decline):
        assert out.reason in ("empty_quote", "spread_unsatisfiable")
        return
    assert out.yes_bid_micros + out.no_bid_micros <= 1_000_000 - spread
    assert (out.yes_bid_micros, out.no_bid_micros) != (0, 0)
    for got, asked in ((out.yes_bid_micros, yes), (out.no_bid_micros, no)):
        assert got == 0 or grid.is_valid(got)
        assert got <= asked  # bids only ever go down


@SETTINGS
@given(
    structure=st.sampled_from(STRUCTURE_NAMES),
    books=st.lists(
        st.tuples(st.integers(1_000, 990_000), st.integers(1_000, 500_000)), min_size=1, max_size=6
    ),
    edge=st.sampled_from(["0", "0.001", "0.0137", "0.05"]),
    spread=st.sampled_from(["0", "0.01", "0.03"]),
)
def test_every_submit_is_on_grid_and_within_spread(
    structure: str, books: list[tuple[int, int]], edge: str, spread: str
) -> None:
    cfg = config(
        pricer=f'book_mid, params: {{edge_dollars: "{edge}", max_spread_dollars: "0.9"}}',
        quoting=f'{{min_spread_dollars: "{spread}"}}',
        lifecycle="{min_replace_interval_ms: 0, replace_tolerance_dollars: \"0.0001\"}",
        risk="{max_position_contracts_per_market: 100}",
    )
    h = Harness(cfg)
    grid = STRUCTURES[structure]
    h.load(market(structure=structure))
    bid, width = books[0]
    h.snapshot(bid=bid, ask=min(bid + width, 999_000))
    h.rfq("r1", contracts_centi=10_000)
    h.placed("r1", "q1")
    for i, (bid, width) in enumerate(books[1:]):
        h.advance_ms(1)
        h.snapshot(bid=bid, ask=min(bid + width, 999_000))
        h.placed("r1", f"q{i + 2}")
    spread_micros = int(float(spread) * 1_000_000)
    for sub in of(h.log, C.SubmitQuote):
        assert sub.yes_bid_micros + sub.no_bid_micros <= 1_000_000 - spread_micros
        assert (sub.yes_bid_micros, sub.no_bid_micros) != (0, 0)
        for b in (sub.yes_bid_micros, sub.no_bid_micros):
            assert b == 0 or grid.is_valid(b)


_rfq_op = st.tuples(st.just("rfq"), st.sampled_from([T, T2]), st.integers(1, 100))
_accept_op = st.tuples(st.just("accept"), st.integers(0, 30), st.sampled_from([Side.YES, Side.NO]))
_op = st.one_of(
    _rfq_op,
    _rfq_op,
    _accept_op,
    _accept_op,
    st.tuples(st.just("execute"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 30), st.booleans()),
)


RISKY = config(risk=(
    "{max_position_contracts_per_market: 100, max_position_contracts_per_event: 160, "
    "max_position_contracts_per_series: 160, max_position_contracts_total: 160, "
    'max_worst_case_loss_dollars_per_market: "150", max_worst_case_loss_dollars_total: "200"}'
))


@settings(SETTINGS, max_examples=150)
@given(ops=st.lists(_op, min_size=10, max_size=40))
def test_risk_limits_hold_under_random_event_sequences(ops: list[tuple[object, ...]]) -> None:
    h = Harness(RISKY)
    h.ready(T)
    h.ready(T2)
    placed: list[str] = []
    n = 0
    for op in ops:
        h.advance_ms(1)
        if op[0] == "rfq":
            n += 1
            _, ticker, contracts = op
            subs = of(h.rfq(f"r{n}", str(ticker), int(contracts) * 100), C.SubmitQuote)
            if subs:
                h.placed(f"r{n}", f"q{n}")
                placed.append(f"q{n}")
        elif placed:
            qid = placed[int(op[1]) % len(placed)]  # type: ignore[call-overload]
            q = h.engine.quotes.get(qid)
            if q is None:
                continue
            if op[0] == "accept":
                h.accept(qid, op[2], rfq_id=q.rfq_id, ticker=q.market_ticker)  # type: ignore[arg-type]
            elif op[0] == "execute" and q.state in (QuoteState.CONFIRMING, QuoteState.CONFIRMED):
                # Only what we confirmed can execute (the exchange needs our confirm).
                assert q.accepted_side is not None
                h.send(E.QuoteExecuted(qid, q.rfq_id, q.market_ticker, f"o-{qid}", h.now))
                if op[2]:
                    side = q.accepted_side
                    bid = q.bid_for(side)
                    yes_price = bid if side is Side.YES else 1_000_000 - bid
                    h.fill(f"t-{qid}", f"o-{qid}", side, yes_price, q.size_centi, q.market_ticker)
            elif op[0] == "cancel":
                if op[2]:
                    h.send(E.QuoteCancelled(q.rfq_id, qid, h.now))
                else:
                    h.send(E.RfqDeleted(q.rfq_id, q.market_ticker, h.now))
        exps = h.engine.totals.exposures(None)
        total = 0
        for e in exps.values():
            loss = worst_case_loss_micros(e)
            assert loss <= 150_000_000
            assert abs(e.committed_centi) <= 10_000
            total += loss
        assert total <= 200_000_000
        assert sum(abs(e.committed_centi) for e in exps.values()) <= 16_000


_fill = st.builds(
    lambda t, side, price, count, fee: (t, side, price, count, fee),
    st.sampled_from([T, T2]),
    st.sampled_from([Side.YES, Side.NO]),
    st.integers(1, 99).map(lambda c: c * 10_000),
    st.integers(1, 5_000),
    st.integers(0, 20_000),
)


@SETTINGS
@given(raw=st.lists(_fill, max_size=40), dup=st.integers(0, 39))
def test_ledger_equals_reference_recompute(
    raw: list[tuple[str, Side, int, int, int]], dup: int
) -> None:
    fills = [
        FillReceived(f"t{i}", "o", t, side, BookSide.BID if side is Side.YES else BookSide.ASK,
                     price, count, fee, False, 0)
        for i, (t, side, price, count, fee) in enumerate(raw)
    ]
    if fills:
        fills.append(fills[dup % len(fills)])  # a redelivered fill counts once
    led = PositionLedger()
    for f in fills:
        led.book_fill(f)
    ref = reference_recompute(fills)
    for t, r in ref.items():
        m = led.market(t)
        assert m.position_centi == r.position_centi
        assert m.fees_micros == r.fees_micros
        assert m.realized_pnl_micros - m.cost_micros == r.cash_micros
        assert m.cost_micros >= 0
    assert PositionLedger.restore(led.snapshot()).snapshot() == led.snapshot()


def test_three_hundred_rfqs_within_the_limits_are_all_quoted() -> None:
    # Timings are measured by ``make bench`` (benchmarks/bench_engine.py), not asserted here.
    h = Harness(config(risk=(
        '{max_open_quotes: 1000, max_worst_case_loss_dollars_per_market: "100000", '
        'max_worst_case_loss_dollars_total: "100000", max_position_contracts_per_market: 1000, '
        'max_position_contracts_per_event: 1000, max_position_contracts_per_series: 1000, '
        'max_position_contracts_total: 1000}'
    )))
    h.ready()
    h.ready(T2)
    n = 300
    for i in range(n):
        out = h.rfq(f"r{i}", T if i % 2 else T2, 100)
        assert len(of(out, C.SubmitQuote)) == 1
        h.placed(f"r{i}", f"q{i}")
    assert h.engine.book.open_rfqs == n


def test_book_mid_replace_path_requotes_on_book_moves() -> None:
    h = Harness(config(pricer=BOOK_MID, lifecycle="{min_replace_interval_ms: 0}"))
    h.ready()
    for i in range(20):
        h.rfq(f"r{i}")
        h.placed(f"r{i}", f"q{i}")
    moved = []
    for i in range(100):
        h.advance_ms(1)
        moved += of(h.delta(price=480_000 + (i % 3) * 10_000, delta=100), C.SubmitQuote)
    assert moved  # the moving book re-priced quotes (timings: make bench)
