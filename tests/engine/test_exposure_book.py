"""The engine's running risk totals equal a full recomputation, and give the same decisions."""

from __future__ import annotations

from dataclasses import replace

from engine_fixtures import BOOK_MID, T2, Harness, T, config, market, of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.money import notional_micros
from quoter.domain.types import BookSide, Side
from quoter.engine.engine import Engine
from quoter.engine.exposure import ExposureBook
from quoter.engine.lifecycle import LIVE_QUOTE_STATES, QuoteState, RfqState
from quoter.engine.outcomes import exclusive_event_centi
from quoter.engine.positions import PositionLedger
from quoter.engine.risk import MarketExposure, QuoteExposure, Trade, worst_case_loss_micros
from quoter.engine.totals import RISK_LIVE

T3 = "KXOTHER-26JAN01-C"  # another event and series

TIGHT = (
    "{max_position_contracts_per_market: 100, max_position_contracts_per_event: 160, "
    "max_position_contracts_per_series: 200, max_position_contracts_total: 220, "
    'max_worst_case_loss_dollars_per_market: "120", max_worst_case_loss_dollars_total: "200", '
    "max_open_quotes: 6}"
)


def assert_book_matches(eng: Engine) -> None:
    """Every running total equals the one ``_risk_view`` recomputes from scratch."""
    exps, n_open = eng.totals.risk_view(None, None)
    book = eng.book
    for t, e in exps.items():
        m = book.market(t)
        assert m.committed_centi == e.committed_centi, t
        assert m.loss_micros == worst_case_loss_micros(e), t
        assert m.n_quotes == len(e.quotes), t
        assert (m.event_ticker, m.series_ticker) == (e.event_ticker, e.series_ticker), t
    for t, m in book.markets().items():
        if t not in exps:
            assert (m.committed_centi, m.loss_micros, m.n_quotes) == (0, 0, 0), t
    assert book.total_gross_centi == sum(abs(e.committed_centi) for e in exps.values())
    assert book.total_loss_micros == sum(worst_case_loss_micros(e) for e in exps.values())
    for ev in {e.event_ticker for e in exps.values()}:
        assert book.event_gross_centi(ev) == sum(
            abs(e.committed_centi) for e in exps.values() if e.event_ticker == ev
        )
    for se in {e.series_ticker for e in exps.values()}:
        assert book.series_gross_centi(se) == sum(
            abs(e.committed_centi) for e in exps.values() if e.series_ticker == se
        )
    assert book.open_rfqs == n_open

    def worst(e: MarketExposure) -> int:
        y = sum(q.size_centi for q in e.quotes if q.yes_bid_micros > 0)
        n = sum(q.size_centi for q in e.quotes if q.no_bid_micros > 0)
        return max(abs(e.committed_centi + y), abs(e.committed_centi - n))

    # Cash: per RFQ its costliest hittable quote; per confirmed trade what it could lose.
    cash = 0
    for rec in eng.rfqs.values():
        bids = [(s.yes_bid_micros, s.no_bid_micros) for s in rec.in_flight] + [
            (q.yes_bid_micros, q.no_bid_micros) for q in (eng.quotes[i] for i in rec.quote_ids)
            if q.state in RISK_LIVE]
        if bids:
            cash += max(notional_micros(max(y, n), eng.valuation.est_size(rec.rfq, y, n))
                        for y, n in bids)
    assert book.quote_cash_micros == cash
    assert book.provisional_cash_micros == sum(
        -min(t.pnl()) for e in exps.values() for t in e.provisional)
    for t, e in exps.items():
        assert book.market(t).worst_gross_centi == worst(e), t
    assert book.total_worst_centi == sum(worst(e) for e in exps.values())
    for ev in {e.event_ticker for e in exps.values()}:
        assert book.event_worst_centi(ev) == sum(
            worst(e) for e in exps.values() if e.event_ticker == ev)
    for se in {e.series_ticker for e in exps.values()}:
        assert book.series_worst_centi(se) == sum(
            worst(e) for e in exps.values() if e.series_ticker == se)
    # The event measure the limits use: per outcome for an exclusive event, else the sum.
    for t, e in exps.items():
        same = [x for x in exps.values() if x.event_ticker == e.event_ticker]
        y = {x.ticker: sum(q.size_centi for q in x.quotes if q.yes_bid_micros > 0) for x in same}
        n = {x.ticker: sum(q.size_centi for q in x.quotes if q.no_bid_micros > 0) for x in same}
        if e.exclusive:
            held = exclusive_event_centi((x.committed_centi,) * 2 for x in same)
            hit = exclusive_event_centi(
                (x.committed_centi + y[x.ticker], x.committed_centi - n[x.ticker]) for x in same)
        else:
            held = sum(abs(x.committed_centi) for x in same)
            hit = sum(worst(x) for x in same)
        assert book.event_centi_with(t, 0, 0, quotes=False) == held, t
        assert book.event_centi_with(t, 0, 0) == hit, t


def assert_same_decisions(eng: Engine, size: int, yes: int, no: int) -> None:
    """The totals-based checks decide exactly as the full-picture checks for a probe quote."""
    probe = QuoteExposure(yes, no, size)
    for rec in eng.rfqs.values():
        if rec.state is not RfqState.QUOTING:
            continue
        t = rec.market_ticker
        full = eng.risk.check_quote(*eng.totals.risk_view(t, rec.rfq_id), t, probe)
        assert eng.totals.check_quote(rec, t, probe) == full
    for t in (T, T2, T3):
        for side, price in ((Side.YES, yes), (Side.NO, no)):
            trade = Trade(side, price, size)
            full = eng.risk.check_fill(eng.totals.exposures(t), t, trade)
            assert eng.risk.check_fill_book(eng.book, t, trade) == full
        full_new = eng.risk.check_quote(*eng.totals.risk_view(t, None), t, probe)
        assert eng.risk.check_quote_book(eng.book, eng.book.open_rfqs, t, probe) == full_new
    assert eng.risk.may_breach(eng.book) or not eng.risk.breaches(eng.totals.exposures(None))


_rfq = st.tuples(st.just("rfq"), st.sampled_from([T, T2, T3]), st.integers(1, 80), st.booleans())
_accept = st.tuples(st.just("accept"), st.integers(0, 40), st.sampled_from([Side.YES, Side.NO]))
_execute = st.tuples(st.just("execute"), st.integers(0, 40), st.integers(0, 3))
_op = st.one_of(
    _rfq,
    _rfq,
    st.tuples(st.just("rfq_cost"), st.sampled_from([T, T2, T3]), st.integers(1, 40),
              st.booleans()),
    st.tuples(st.just("place"), st.integers(0, 40), st.booleans()),
    _accept,
    _accept,
    _execute,
    _execute,
    st.tuples(st.just("confirm_failed"), st.integers(0, 40), st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 40), st.booleans()),
    st.tuples(st.just("book"), st.sampled_from([T, T2, T3]), st.integers(30, 70)),
    st.tuples(st.just("exec_timer"), st.integers(0, 40), st.booleans()),
    st.tuples(st.just("fill_other"), st.sampled_from([T, T2, T3]), st.integers(1, 60)),
    st.tuples(st.just("settle"), st.sampled_from([T, T2, T3]), st.booleans()),
    st.tuples(st.just("wait"), st.integers(1, 70)),  # seconds: stale books, expiry
)


def _run(h: Harness, ops: list[tuple[object, ...]], probe: tuple[int, int, int]) -> None:
    n = 0
    for op in ops:
        h.advance_ms(1)
        kind = op[0]
        if kind in ("rfq", "rfq_cost"):
            n += 1
            _, ticker, amount, place = op
            rid = f"r{n}"
            if kind == "rfq":
                out = h.rfq(rid, str(ticker), int(amount) * 100)  # type: ignore[call-overload]
            else:
                out = h.rfq(rid, str(ticker), None, target_cost_micros=int(amount) * 1_000_000)  # type: ignore[call-overload]
            if place and of(out, C.SubmitQuote):
                h.placed(rid, f"q{n}")
        elif kind == "book":
            _, ticker, mid = op
            h.snapshot(str(ticker), bid=int(mid) * 10_000 - 20_000, ask=int(mid) * 10_000 + 20_000)  # type: ignore[call-overload]
        elif kind == "wait":
            h.advance_ms(int(op[1]) * 1_000)  # type: ignore[call-overload]
            for t in (T, T2, T3):
                h.send(E.TimerFired(f"stale:{t}", h.now))
        elif kind == "fill_other":
            _, ticker, count = op
            h.fill(f"x{h.now}", "o-unknown", Side.YES, 500_000, int(count) * 100, str(ticker))  # type: ignore[call-overload]
        elif kind == "settle":
            _, ticker, yes = op
            h.send(E.MarketLifecycleChanged(str(ticker), "settled", h.now,
                                            result="yes" if yes else "no"))
            h.ready(str(ticker))  # the series lists a fresh market under the same ticker
        elif kind == "place":
            waiting = [r for r, rec in h.engine.rfqs.items() if rec.in_flight]
            if waiting:
                rid = waiting[int(op[1]) % len(waiting)]  # type: ignore[call-overload]
                if op[2]:
                    h.placed(rid, f"q{h.now}")
                else:
                    h.send(E.QuoteRejected(rid, "bad", "", h.now))
        elif kind in ("accept", "execute", "confirm_failed", "cancel", "exec_timer"):
            # Pick among the quotes the event makes sense for, so that sequences get deep.
            want = {
                "accept": LIVE_QUOTE_STATES,
                "execute": (QuoteState.CONFIRMING, QuoteState.CONFIRMED),
                "confirm_failed": (QuoteState.CONFIRMING,),
                "cancel": tuple(QuoteState),
                "exec_timer": (QuoteState.EXECUTED,),
            }[str(kind)]
            qids = [k for k, q in h.engine.quotes.items() if q.state in want]
            if not qids:
                continue
            qid = qids[int(op[1]) % len(qids)]  # type: ignore[call-overload]
            q = h.engine.quotes[qid]
            if kind == "accept":
                rfq = h.engine.rfqs[q.rfq_id].rfq
                size = rfq.contracts_centi or 1_000  # target-cost RFQs: the accept names it
                h.accept(qid, op[2], rfq_id=q.rfq_id, ticker=q.market_ticker, size=size)  # type: ignore[arg-type]
            elif kind == "execute":
                h.send(E.QuoteExecuted(qid, q.rfq_id, q.market_ticker, f"o-{qid}", h.now))
                side = q.accepted_side
                assert side is not None
                bid = q.bid_for(side)
                yes_price = bid if side is Side.YES else 1_000_000 - bid
                parts = int(op[2])  # type: ignore[call-overload]
                for i in range(parts):
                    h.fill(f"t-{qid}-{i}", f"o-{qid}", side, yes_price,
                           max(1, q.size_centi // 3), q.market_ticker)
            elif kind == "confirm_failed":
                h.send(E.ConfirmFailed(q.rfq_id, qid, "expired", "", h.now))
            elif kind == "cancel":
                if op[2]:
                    h.send(E.QuoteCancelled(q.rfq_id, qid, h.now))
                else:
                    h.send(E.RfqDeleted(q.rfq_id, q.market_ticker, h.now))
            else:
                h.send(E.TimerFired(f"exec:{qid}", h.now))
        assert_book_matches(h.engine)
        assert_same_decisions(h.engine, *probe)


def _harness(pricer: str, exclusive: bool = False) -> Harness:
    """T and T2 share an event (its markets mutually exclusive if ``exclusive``); T3 not."""
    h = Harness(config(
        pricer=pricer, risk=TIGHT, match="{series: [KXTEST, KXOTHER]}",
        lifecycle="{min_replace_interval_ms: 0}",
    ))
    h.ready(T, replace(market(T), mutually_exclusive=exclusive))
    h.ready(T2, replace(market(T2), mutually_exclusive=exclusive))
    h.ready(T3)
    return h


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(_op, min_size=5, max_size=45),
    probe=st.tuples(st.integers(1, 9000), st.integers(0, 99).map(lambda c: c * 10_000),
                    st.integers(0, 99).map(lambda c: c * 10_000)),
    mid=st.booleans(),
    exclusive=st.booleans(),
)
def test_running_totals_equal_full_recompute(
    ops: list[tuple[object, ...]], probe: tuple[int, int, int], mid: bool, exclusive: bool
) -> None:
    h = _harness(BOOK_MID if mid else
                 'fixed, params: {edge_dollars: "0.02", fair_yes_dollars: '
                 f'{{{T}: "0.50", {T2}: "0.30", {T3}: "0.70"}}}}', exclusive)
    _run(h, ops, probe)


def test_restored_ledger_rebuilds_the_totals() -> None:
    h = _harness(BOOK_MID)
    assert len(of(h.rfq("r1", T, 5_000), C.SubmitQuote)) == 1
    h.placed("r1", "q1")
    h.fill("t1", "o1", Side.YES, 400_000, 3_000, T2)
    led = PositionLedger.restore(h.engine.ledger.snapshot())
    h.engine.ledger = led
    assert_book_matches(h.engine)
    assert h.engine.book.market(T2).position_centi == 3_000
    # Fills booked straight into the new ledger (as the service does at start-up) are seen too.
    led.book_fill(E.FillReceived("t2", "o2", T, Side.NO, BookSide.ASK, 600_000, 1_000, 0, False,
                                 h.now))
    assert_book_matches(h.engine)
    assert h.engine.book.market(T).position_centi == -1_000


def test_book_totals_by_hand() -> None:
    book = ExposureBook()
    book.set_meta("A", "E", "S")
    book.set_meta("B", "E", "S")
    book.set_position("A", 1_000, 4_000_000)  # 10 YES at 0.40
    book.set_position("B", -500, 3_000_000)  # 5 NO at 0.60
    assert book.event_gross_centi("E") == 1_500
    assert book.total_gross_centi == 1_500
    # A loses $4 if NO wins; B loses $3 if YES wins.
    assert book.total_loss_micros == 7_000_000
    book.add_quotes("A", 500_000 * 1_000, 400_000 * 1_000, 1, 1)  # 10 contracts at 0.40/0.50
    assert book.market("A").loss_micros == 8_000_000  # NO wins: 4 held + 4 on our YES bid
    assert book.open_rfqs == 1
    book.add_quotes("A", 500_000 * 1_000, 400_000 * 1_000, 1, -1)
    assert book.market("A").loss_micros == 4_000_000
    assert book.open_rfqs == 0


def test_replace_then_place_or_reject_keeps_totals() -> None:
    h = _harness(BOOK_MID)
    for rid in ("r1", "r2"):
        assert len(of(h.rfq(rid, T, 1_000), C.SubmitQuote)) == 1
        h.placed(rid, f"{rid}q1")
    h.advance_ms(1)
    assert len(of(h.snapshot(T, bid=560_000, ask=600_000), C.SubmitQuote)) == 2  # both requote
    assert h.engine.book.market(T).n_quotes == 4  # old live quotes + in-flight replacements
    assert_book_matches(h.engine)
    h.placed("r1", "r1q2")  # the first quote is now replaced: gone at the exchange
    h.send(E.QuoteRejected("r2", "bad", "", h.now))  # the old quote stays live
    assert h.engine.book.market(T).n_quotes == 2
    assert_book_matches(h.engine)


_ledger_op = st.one_of(
    st.tuples(st.just("fill"), st.sampled_from(["A", "B", "C"]),
              st.sampled_from([Side.YES, Side.NO]), st.integers(1, 99), st.integers(1, 500)),
    st.tuples(st.just("register"), st.sampled_from(["A", "B", "C"]), st.sampled_from(["E1", "E2"])),
    st.tuples(st.just("settle"), st.sampled_from(["A", "B", "C"]), st.booleans()),
    st.tuples(st.just("restore")),
)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(_ledger_op, max_size=40))
def test_ledger_running_sums_equal_brute_force(ops: list[tuple[object, ...]]) -> None:
    led = PositionLedger()
    for i, op in enumerate(ops):
        if op[0] == "fill":
            _, t, side, cents, count = op
            assert isinstance(side, Side)
            led.book_fill(E.FillReceived(
                f"t{i}", "o", str(t), side, BookSide.BID, int(cents) * 10_000,  # type: ignore[call-overload]
                int(count) * 100, 7, False, 0))  # type: ignore[call-overload]
        elif op[0] == "register":
            led.register_market(str(op[1]), str(op[2]), "S")
        elif op[0] == "settle":
            led.settle(str(op[1]), 1_000_000 if op[2] else 0)
        else:
            led = PositionLedger.restore(led.snapshot())
        markets = {t: led.market(t) for t in led.tickers()}
        assert led.realized_pnl_micros() == sum(m.realized_pnl_micros for m in markets.values())
        for ev in ("E1", "E2", ""):
            assert led.event_position_centi(ev) == sum(
                m.position_centi for t, m in markets.items()
                if t in {r[0] for r in led.registered() if r[1] == ev}
            )
