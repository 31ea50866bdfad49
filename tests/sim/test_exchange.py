"""The simulated exchange core against kalshi-api.md §0a (demo ground truth) and §3."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quoter.clock import ReplayClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import BookSide, ComboLeg, MarketStatus, Side
from quoter.sim.exchange import (
    OBSCURED_CREATOR_ID,
    ExchangeConfig,
    OutMessage,
    QuoteStatus,
    SimError,
    SimExchange,
    SimMarket,
)

S = 1_000_000_000
TICKER = "KXMLBGAME-26JUL081840NYYTB-NYY"
START = 10_000 * 1_000_000  # $10,000


def market(ticker: str = TICKER, **kw: object) -> SimMarket:
    base: dict[str, object] = {
        "ticker": ticker, "event_ticker": "KXMLBGAME-26JUL081840NYYTB",
        "series_ticker": "KXMLBGAME", "title": "NYY win",
        "grid": grid_for_structure("linear_cent"),
        "fees": FeeSchedule(FeeType.QUADRATIC),
    }
    base.update(kw)
    return SimMarket(**base)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ReplayClock:
    return ReplayClock(start_ns=1_000 * S, wall_offset_ns=1_780_000_000 * S)


@pytest.fixture
def ex(clock: ReplayClock) -> SimExchange:
    x = SimExchange(clock)
    for u in ("maker", "req", "lp", "other"):
        x.register_account(u, balance_micros=START)
    x.add_market(market())
    return x


def lifecycle(ex: SimExchange, clock: ReplayClock, side: Side, yes: int = 480_000,
              no: int = 480_000, qty: int = 100) -> str:
    rfq = ex.create_rfq("req", TICKER, contracts_centi=qty)
    qid = ex.create_quote("maker", rfq, yes, no)
    ex.accept_quote("req", rfq, qid, side)
    clock.advance(S // 10)
    ex.confirm_quote("maker", qid, rfq)
    clock.advance(15 * S)
    ex.advance()
    return qid


def test_accept_yes_matches_demo_ground_truth(ex: SimExchange, clock: ReplayClock) -> None:
    qid = lifecycle(ex, clock, Side.YES)
    [mf] = ex.fills("maker")
    assert (mf.outcome_side, mf.book_side, mf.is_taker) == (Side.YES, BookSide.BID, False)
    assert (mf.yes_price_micros, mf.qty_centi, mf.fee_micros) == (480_000, 100, 0)
    assert ex.positions("maker")[TICKER].position_centi == 100
    assert ex.balance_micros("maker") == START - 480_000
    [rf] = ex.fills("req")
    assert (rf.outcome_side, rf.book_side, rf.is_taker) == (Side.NO, BookSide.ASK, True)
    assert rf.fee_micros == 17_500  # 0.07 x 0.48 x 0.52 = 0.017472 rounded up
    assert ex.positions("req")[TICKER].position_centi == -100
    assert ex.balance_micros("req") == START - 520_000 - 17_500
    q = ex.get_quote(qid)
    assert q.status == QuoteStatus.EXECUTED
    assert q.creator_order_id == mf.order_id
    assert q.accepted_wall_ns
    assert q.confirmed_wall_ns
    assert q.executed_wall_ns
    assert mf.client_order_id == f"quote:{mf.client_order_id.split(':')[1]}:{qid}"
    assert re.fullmatch(r"quote:[0-9a-f]{8}:" + qid, mf.client_order_id)


def test_accept_no_maker_buys_no(ex: SimExchange, clock: ReplayClock) -> None:
    lifecycle(ex, clock, Side.NO, yes=400_000, no=550_000)
    [mf] = ex.fills("maker")
    assert (mf.outcome_side, mf.book_side) == (Side.NO, BookSide.ASK)
    assert mf.yes_price_micros == 450_000  # no_price 0.55
    assert ex.positions("maker")[TICKER].position_centi == -100
    assert ex.balance_micros("maker") == START - 550_000
    assert ex.positions("req")[TICKER].position_centi == 100
    assert ex.balance_micros("req") == START - 450_000 - 17_400  # 0.07*.45*.55=.017325


def test_maker_fee_charged_under_maker_fee_schedule(clock: ReplayClock) -> None:
    ex = SimExchange(clock)
    for u in ("maker", "req"):
        ex.register_account(u, balance_micros=START)
    ex.add_market(market(fees=FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES)))
    lifecycle(ex, clock, Side.YES)
    assert ex.fills("maker")[0].fee_micros == 4_400  # 0.0175*.48*.52=.004368 -> .0044
    assert ex.balance_micros("maker") == START - 480_000 - 4_400


def test_execution_waits_for_the_timer(ex: SimExchange, clock: ReplayClock) -> None:
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100)
    qid = ex.create_quote("maker", rfq, 480_000, 480_000)
    ex.accept_quote("req", rfq, qid, Side.YES)
    ex.confirm_quote("maker", qid, rfq)
    assert ex.next_deadline_ns() is not None
    clock.advance(15 * S - 1)
    ex.advance()
    assert ex.get_quote(qid).status == QuoteStatus.CONFIRMED
    assert ex.fills("maker") == []
    clock.advance(1)
    ex.advance()
    assert ex.get_quote(qid).status == QuoteStatus.EXECUTED
    assert ex.get_rfq(rfq).status == "closed"


def test_late_confirm_is_expired_and_status_stays_accepted(
    ex: SimExchange, clock: ReplayClock
) -> None:
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100)
    qid = ex.create_quote("maker", rfq, 480_000, 480_000)
    ex.accept_quote("req", rfq, qid, Side.YES)
    clock.advance(40 * S)  # no advance() call: confirm itself must notice the lapse
    with pytest.raises(SimError) as err:
        ex.confirm_quote("maker", qid, rfq)
    assert (err.value.status, err.value.code) == (400, "expired")
    assert ex.get_quote(qid).status == QuoteStatus.ACCEPTED
    # The RFQ is open again: a fresh quote can be accepted.
    q2 = ex.create_quote("other", rfq, 470_000, 500_000)
    ex.accept_quote("req", rfq, q2, Side.NO)


def test_delete_after_accept_is_404_and_quote_stays_accepted(
    ex: SimExchange, clock: ReplayClock
) -> None:
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100)
    qid = ex.create_quote("maker", rfq, 480_000, 480_000)
    ex.accept_quote("req", rfq, qid, Side.YES)
    with pytest.raises(SimError) as err:
        ex.delete_quote("maker", qid, rfq)
    assert (err.value.status, err.value.code) == (404, "not_found")
    assert ex.get_quote(qid).status == QuoteStatus.ACCEPTED


def test_new_quote_replaces_the_makers_previous_one(ex: SimExchange) -> None:
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100)
    q1 = ex.create_quote("maker", rfq, 480_000, 480_000)
    q_other = ex.create_quote("other", rfq, 470_000, 470_000)
    q2 = ex.create_quote("maker", rfq, 490_000, 470_000)
    assert ex.get_quote(q1).status == QuoteStatus.CANCELLED
    assert ex.get_quote(q1).cancellation_reason == "replaced"
    assert ex.get_quote(q2).status == QuoteStatus.OPEN
    assert ex.get_quote(q_other).status == QuoteStatus.OPEN


@pytest.mark.parametrize(
    ("yes", "no", "code"),
    [(0, 0, "invalid_parameters"), (600_000, 500_000, "invalid_parameters"),
     (485_050, 0, "invalid_parameters"), (1_000_000, 0, "invalid_parameters")],
)
def test_quote_validation(ex: SimExchange, yes: int, no: int, code: str) -> None:
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100)
    with pytest.raises(SimError) as err:
        ex.create_quote("maker", rfq, yes, no)
    assert (err.value.status, err.value.code) == (400, code)


def test_quote_on_closed_rfq_and_deleted_rfq(ex: SimExchange) -> None:
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100)
    qid = ex.create_quote("maker", rfq, 480_000, 480_000)
    ex.delete_rfq("req", rfq)
    assert ex.get_quote(qid).status == QuoteStatus.CANCELLED
    with pytest.raises(SimError) as err:
        ex.create_quote("maker", rfq, 480_000, 480_000)
    assert err.value.code == "invalid_parameters"
    assert "RFQ_CLOSED" in err.value.message


def test_duplicate_open_rfq_is_409_and_cap(clock: ReplayClock) -> None:
    ex = SimExchange(clock, ExchangeConfig(max_open_rfqs=2))
    ex.register_account("req", balance_micros=START)
    for t in ("A-1", "A-2", "A-3"):
        ex.add_market(market(t))
    ex.create_rfq("req", "A-1", contracts_centi=100)
    with pytest.raises(SimError) as err:
        ex.create_rfq("req", "A-1", contracts_centi=100)
    assert err.value.status == 409
    ex.create_rfq("req", "A-2", contracts_centi=100)
    with pytest.raises(SimError) as err:
        ex.create_rfq("req", "A-3", contracts_centi=100)
    assert err.value.status == 400


def test_hvm_combo_windows(clock: ReplayClock) -> None:
    ex = SimExchange(clock)
    for u in ("maker", "req"):
        ex.register_account(u, balance_micros=START)
    combo = market("KXMVECROSS-1", mve_collection_ticker="KXMVECROSSCATEGORY-R",
                   legs=(ComboLeg("E", "A-1", Side.YES),),
                   grid=grid_for_structure("center_deci_edge_centi_cent"))
    ex.add_market(combo)
    assert ex.get_market("KXMVECROSS-1").is_hvm
    rfq = ex.create_rfq("req", "KXMVECROSS-1", contracts_centi=100)
    qid = ex.create_quote("maker", rfq, 123_000, 800_000)
    ex.accept_quote("req", rfq, qid, Side.YES)
    clock.advance(3 * S)
    with pytest.raises(SimError) as err:
        ex.confirm_quote("maker", qid, rfq)
    assert err.value.code == "expired"
    rfq2 = ex.create_rfq("req", "KXMVECROSS-1", replace_existing=True, contracts_centi=100)
    q2 = ex.create_quote("maker", rfq2, 123_000, 800_000)
    ex.accept_quote("req", rfq2, q2, Side.YES)
    clock.advance(2 * S)
    ex.confirm_quote("maker", q2, rfq2)
    clock.advance(1 * S)
    ex.advance()
    assert ex.get_quote(q2).status == QuoteStatus.EXECUTED


def test_delivery_rules(ex: SimExchange, clock: ReplayClock) -> None:
    out: list[OutMessage] = []
    ex.add_listener(out.append)
    lifecycle(ex, clock, Side.YES)
    comms = [m for m in out if m.channel == "communications"]
    by_type = {m.type: m for m in comms}
    assert by_type["rfq_created"].recipients is None
    assert by_type["rfq_deleted"].recipients is None
    for t in ("quote_created", "quote_accepted"):
        assert by_type[t].recipients == frozenset({"maker", "req"})
    executed = [m for m in comms if m.type == "quote_executed"]
    assert {m.recipients for m in executed} == {frozenset({"maker"}), frozenset({"req"})}
    maker_exec = next(m for m in executed if m.recipients == frozenset({"maker"}))
    assert maker_exec.msg["client_order_id"].startswith("quote:")
    fills = [m for m in out if m.channel == "fill"]
    assert {m.recipients for m in fills} == {frozenset({"maker"}), frozenset({"req"})}
    positions = [m for m in out if m.type == "market_position"]
    assert {m.msg["position_fp"] for m in positions} == {"1.00", "-1.00"}
    assert by_type["quote_accepted"].msg["accepted_side"] == "yes"
    assert by_type["quote_accepted"].msg["contracts_accepted_fp"] == "1.00"


def test_settlement_pays_winners(ex: SimExchange, clock: ReplayClock) -> None:
    out: list[OutMessage] = []
    ex.add_listener(out.append)
    lifecycle(ex, clock, Side.YES)
    ex.settle_market(TICKER, Side.YES)
    assert ex.balance_micros("maker") == START - 480_000 + 1_000_000
    assert ex.balance_micros("req") == START - 520_000 - 17_500
    assert ex.positions("maker") == {}
    [s] = ex.settlements("maker")
    assert (s.revenue_micros, s.yes_count_centi, s.yes_cost_micros) == (1_000_000, 100, 480_000)
    events = [m.msg["event_type"] for m in out if m.channel == "market_lifecycle_v2"]
    assert events[-2:] == ["determined", "settled"]
    with pytest.raises(SimError):
        ex.create_rfq("req", TICKER, contracts_centi=100)


def test_target_cost_sizes_each_side(ex: SimExchange) -> None:
    rfq = ex.create_rfq("req", TICKER, target_cost_micros=10_000_000)  # $10
    qid = ex.create_quote("maker", rfq, 400_000, 550_000)
    q = ex.get_quote(qid)
    # YES hit -> requester buys NO at 0.60: n*0.60 + ceil4(0.07*n*.4*.6) <= 10
    # 16.21 x 0.60 = 9.726 + fee ceil4(0.07 x 16.21 x 0.24 = 0.272328) 0.2724 = 9.9984;
    # 16.22 would cost 9.732 + 0.2725 = 10.0045.
    assert q.yes_contracts_centi == 1621
    fee = ex.get_market(TICKER).fees.fee_micros
    for n, p in ((q.yes_contracts_centi, 600_000), (q.no_contracts_centi, 450_000)):
        assert n * p // 100 + fee(p, n, is_taker=True) <= 10_000_000
        assert (n + 1) * p // 100 + fee(p, n + 1, is_taker=True) > 10_000_000


def test_execution_through_book_and_post_only(ex: SimExchange, clock: ReplayClock) -> None:
    # A third party rests a NO bid at 0.55 (= YES offer 0.45): the maker, buying YES at
    # 0.48, takes it first, and the requester only gets what is left.
    ex.place_order("lp", TICKER, Side.NO, 550_000, 40)
    lifecycle(ex, clock, Side.YES)
    maker_fills = ex.fills("maker")
    assert [(f.yes_price_micros, f.qty_centi, f.is_taker) for f in maker_fills] == [
        (450_000, 40, True), (480_000, 60, False)]
    assert ex.positions("maker")[TICKER].position_centi == 100
    assert ex.positions("req")[TICKER].position_centi == -60
    # post_only: the same cross cancels the execution instead.
    ex.place_order("lp", TICKER, Side.NO, 550_000, 40)
    rfq = ex.create_rfq("other", TICKER, contracts_centi=100)
    qid = ex.create_quote("maker", rfq, 480_000, 480_000, post_only=True)
    ex.accept_quote("other", rfq, qid, Side.YES)
    ex.confirm_quote("maker", qid, rfq)
    clock.advance(15 * S)
    ex.advance()
    assert ex.get_quote(qid).status == QuoteStatus.CANCELLED
    assert ex.get_quote(qid).cancellation_reason == "post_only_cross"


def test_opposite_fill_nets_pairs_for_a_dollar(ex: SimExchange) -> None:
    ex.place_order("lp", TICKER, Side.NO, 600_000, 100)   # YES offer at 0.40
    ex.place_order("maker", TICKER, Side.YES, 400_000, 100)  # maker buys YES @0.40
    ex.place_order("lp", TICKER, Side.YES, 450_000, 100)  # YES bid 0.45
    ex.place_order("maker", TICKER, Side.NO, 550_000, 100)  # maker buys NO @0.55 -> nets
    pos = ex.positions("maker")[TICKER]
    assert pos.position_centi == 0
    assert pos.realized_pnl_micros == 1_000_000 - 400_000 - 550_000
    fees = sum(f.fee_micros for f in ex.fills("maker"))
    assert ex.balance_micros("maker") == START + 50_000 - fees


def test_partial_accept_and_ledger(ex: SimExchange, clock: ReplayClock) -> None:
    rfq = ex.create_rfq("req", TICKER, contracts_centi=1000)
    qid = ex.create_quote("maker", rfq, 480_000, 480_000)
    ex.accept_quote("req", rfq, qid, Side.NO, contracts_centi=250)
    ex.confirm_quote("maker", qid, rfq)
    clock.advance(15 * S)
    ex.advance()
    snap = ex.ledger_snapshot()
    assert snap["accounts"]["maker"]["positions"][TICKER]["position_centi"] == -250
    assert snap["accounts"]["req"]["positions"][TICKER]["position_centi"] == 250
    total = sum(a["balance_micros"] for a in snap["accounts"].values())
    # cash conservation: what left the accounts is $1 x pairs outstanding plus fees
    assert START * 4 - total == 250 * 10_000 + snap["fees_collected_micros"]


def test_market_leaving_active_closes_rfqs(ex: SimExchange) -> None:
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100)
    ex.set_market_status(TICKER, MarketStatus.INACTIVE)
    assert ex.get_rfq(rfq).status == "closed"
    with pytest.raises(SimError) as err:
        ex.create_rfq("req", TICKER, contracts_centi=100)
    assert err.value.code == "market_not_active"


_order = st.tuples(
    st.sampled_from(["maker", "req", "lp", "other"]),
    st.sampled_from([Side.YES, Side.NO]),
    st.integers(1, 99).map(lambda c: c * 10_000),
    st.integers(1, 500),
)


@settings(max_examples=40, deadline=None)
@given(orders=st.lists(_order, max_size=25), result=st.sampled_from([Side.YES, Side.NO]))
def test_cash_is_conserved(orders: list[tuple[str, Side, int, int]], result: Side) -> None:
    """Cash that left the accounts = fees + $1 per YES contract outstanding, always."""
    ex = SimExchange(ReplayClock(), ExchangeConfig(check_balance=False))
    users = ("maker", "req", "lp", "other")
    for u in users:
        ex.register_account(u, balance_micros=START)
    ex.add_market(market(fees=FeeSchedule(FeeType.QUADRATIC_WITH_MAKER_FEES)))

    def outstanding_yes() -> int:
        return sum(max(p.position_centi, 0) for u in users for p in ex.positions(u).values())

    for user, side, price, qty in orders:
        ex.place_order(user, TICKER, side, price, qty)
        total = sum(ex.balance_micros(u) for u in users)
        assert START * 4 - total == ex.fees_collected_micros + outstanding_yes() * 10_000
        no_total = sum(max(-p.position_centi, 0) for u in users
                       for p in ex.positions(u).values())
        assert no_total == outstanding_yes()
    ex.settle_market(TICKER, result)
    assert START * 4 - sum(ex.balance_micros(u) for u in users) == ex.fees_collected_micros


def test_off_grid_quote_is_rejected_under_the_docs_rule(clock: ReplayClock) -> None:
    ex = SimExchange(clock, ExchangeConfig(reject_off_grid_quotes=True))
    for u in ("maker", "req"):
        ex.register_account(u, balance_micros=START)
    ex.add_market(market())
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100)
    with pytest.raises(SimError) as err:
        ex.create_quote("maker", rfq, 355_000, 0)
    assert (err.value.status, err.value.code) == (400, "invalid_parameters")


def test_off_grid_quote_is_accepted_by_default_like_demo(clock: ReplayClock) -> None:
    ex = SimExchange(clock)
    for u in ("maker", "req"):
        ex.register_account(u, balance_micros=START)
    ex.add_market(market())
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100)
    qid = ex.create_quote("maker", rfq, 485_000, 0)  # half a cent on a linear_cent market
    ex.accept_quote("req", rfq, qid, Side.YES)
    ex.confirm_quote("maker", qid, rfq)
    clock.advance(15 * S)
    ex.advance()
    assert ex.fills("maker")[0].yes_price_micros == 485_000
    with pytest.raises(SimError):
        ex.create_quote("maker", ex.create_rfq("req", TICKER, replace_existing=True,
                                               contracts_centi=100), 485_050, 0)


def test_obscured_creator_id_until_execution(ex: SimExchange, clock: ReplayClock) -> None:
    out: list[OutMessage] = []
    ex.add_listener(out.append)
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100, obscure_creator_id=True)
    created = {m.recipients: m.msg["creator_id"] for m in out if m.type == "rfq_created"}
    assert created[frozenset({"req"})] == ex.comm_id("req")
    assert created[frozenset({"maker", "lp", "other"})] == OBSCURED_CREATOR_ID
    qid = ex.create_quote("maker", rfq, 480_000, 480_000)
    quote_created = {m.recipients: m.msg["rfq_creator_id"] for m in out
                     if m.type == "quote_created"}
    assert quote_created == {frozenset({"maker"}): OBSCURED_CREATOR_ID,
                             frozenset({"req"}): ex.comm_id("req")}
    assert ex.rfq_creator_id_for(ex.get_rfq(rfq), "maker") == OBSCURED_CREATOR_ID
    ex.accept_quote("req", rfq, qid, Side.YES)
    ex.confirm_quote("maker", qid, rfq)
    clock.advance(15 * S)
    ex.advance()
    assert ex.rfq_creator_id_for(ex.get_rfq(rfq), "maker") == ex.comm_id("req")
    executed = [m for m in out if m.type == "quote_executed"]
    assert {m.msg["rfq_creator_id"] for m in executed} == {ex.comm_id("req")}


def test_requester_remainder_rests_only_when_asked(ex: SimExchange, clock: ReplayClock) -> None:
    ex.place_order("lp", TICKER, Side.NO, 550_000, 40)  # the maker will take these first
    rfq = ex.create_rfq("req", TICKER, contracts_centi=100, rest_remainder=True)
    qid = ex.create_quote("maker", rfq, 480_000, 480_000)
    ex.accept_quote("req", rfq, qid, Side.YES)
    ex.confirm_quote("maker", qid, rfq)
    clock.advance(15 * S)
    ex.advance()
    assert ex.positions("req")[TICKER].position_centi == -60
    # The requester's unfilled 0.40 of NO rests at its limit, $1 - yes_bid = 0.52.
    assert ex.book(TICKER).levels(Side.NO) == [(520_000, 40)]
    resting = ex.book(TICKER).orders()[0]
    assert (resting.user_id, resting.order_id) == ("req", ex.get_quote(qid).rfq_creator_order_id)
