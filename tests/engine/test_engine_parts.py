"""The engine's parts on their own: lifecycle tables, pricing guard, risk maths, ledger, books."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
from engine_fixtures import T2, T, market
from hypothesis import given, settings
from hypothesis import strategies as st

from quoter.domain.book import OrderBook
from quoter.domain.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    FillReceived,
    RfqReceived,
    SequenceGap,
)
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import BookSide, Side
from quoter.engine.lifecycle import (
    InvalidTransitionError,
    QuoteRecord,
    QuoteState,
    RfqRecord,
    RfqState,
)
from quoter.engine.marketdata import MarketData
from quoter.engine.positions import PositionLedger, reference_recompute
from quoter.engine.pricing import finalize, run_pricing
from quoter.engine.risk import (
    MarketExposure,
    QuoteExposure,
    RiskManager,
    Trade,
    worst_case_loss_micros,
)
from strategies.base import Decline, Pricing, PricingInput

# --- lifecycle --------------------------------------------------------------------------------


def _quote(state: QuoteState = QuoteState.OPEN) -> QuoteRecord:
    q = QuoteRecord("q1", "r1", T, 480_000, 480_000, 500_000, 0)
    q.state = state
    return q


def test_quote_transitions_follow_the_table() -> None:
    q = _quote()
    q.move(QuoteState.REPLACED)
    q.move(QuoteState.ACCEPTED)  # a replace can race an accept of the old quote
    q.move(QuoteState.CONFIRMING)
    q.move(QuoteState.CONFIRMED)
    q.move(QuoteState.EXECUTED)
    with pytest.raises(InvalidTransitionError, match="executed to open"):
        q.move(QuoteState.OPEN)


@pytest.mark.parametrize(
    ("start", "bad"),
    [
        (QuoteState.OPEN, QuoteState.CONFIRMING),
        (QuoteState.CANCELLED, QuoteState.ACCEPTED),
        (QuoteState.DECLINED, QuoteState.CONFIRMING),
        (QuoteState.CONFIRMED, QuoteState.DEAD),
        (QuoteState.ACCEPTED, QuoteState.EXECUTED),
    ],
)
def test_invalid_quote_transitions_raise(start: QuoteState, bad: QuoteState) -> None:
    with pytest.raises(InvalidTransitionError):
        _quote(start).move(bad)


def test_rfq_transitions() -> None:
    rec = RfqRecord(RfqReceived("r1", T, 0, contracts_centi=100), 0)
    with pytest.raises(InvalidTransitionError):
        rec.move(RfqState.ACCEPTED)
    rec.move(RfqState.QUOTING)
    rec.move(RfqState.ACCEPTED)
    rec.move(RfqState.DONE)
    with pytest.raises(InvalidTransitionError):
        rec.move(RfqState.QUOTING)


# --- pricing guard -------------------------------------------------------------------------------


def test_finalize_snaps_down_and_keeps_one_sided_quotes() -> None:
    grid = grid_for_structure("tapered_deci_cent")  # 0.001 below 0.10, 0.01 between
    assert finalize(Pricing(500_000, 487_654, 0), grid, 10_000) == Pricing(500_000, 480_000, 0)
    assert finalize(Pricing(50_000, 45_678, 0), grid, 10_000) == Pricing(50_000, 45_000, 0)


def test_finalize_lowers_bids_to_respect_min_spread() -> None:
    grid = grid_for_structure("linear_cent")
    out = finalize(Pricing(500_000, 500_000, 500_000), grid, 20_000)
    assert isinstance(out, Pricing)
    assert out.yes_bid_micros + out.no_bid_micros <= 980_000
    assert (out.yes_bid_micros, out.no_bid_micros) == (490_000, 490_000)


def test_finalize_declines_empty_quotes() -> None:
    grid = grid_for_structure("linear_cent")
    assert finalize(Pricing(500_000, 0, 5_000), grid, 10_000) == Decline("empty_quote")


@dataclass
class _Returns:
    """A pricer returning a fixed value (possibly garbage)."""

    value: object
    name: ClassVar[str] = "returns"

    def price(self, inp: PricingInput) -> Pricing | Decline:
        return self.value  # type: ignore[return-value]


class _VetoOverlay:
    """An overlay that declines."""

    name: ClassVar[str] = "veto"

    def adjust(self, inp: PricingInput, pricing: Pricing) -> Pricing | Decline:
        return Decline("vetoed")


def _inp() -> PricingInput:
    return PricingInput(RfqReceived("r1", T, 0, contracts_centi=100), market(), {}, 0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("junk", "pricer_error"),
        (Pricing(0, 1, 1), "pricer_error"),
        (Pricing(500_000, 1_000_000, 0), "pricer_error"),
        (Pricing(500_000, 0.4, 0), "pricer_error"),  # float money is a bug
    ],
)
def test_run_pricing_turns_bad_answers_into_errors(value: object, reason: str) -> None:
    out = run_pricing(_Returns(value), (), _inp(), budget_ns=10**9, perf_ns=None)
    assert isinstance(out, Decline)
    assert out.reason == reason


_MAX = 1_000_000
_money = st.one_of(st.integers(-10, _MAX + 10), st.sampled_from([True, False, 0.5, None, "1"]))


def _plausible(p: Pricing) -> bool:
    """The sanity rule, written out: integer prices, fair in (0, 1), bids below $1, an
    interval within $0..$1 (None ends: the fair's own)."""
    def is_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)
    if not all(is_int(v) for v in (p.fair_yes_micros, p.yes_bid_micros, p.no_bid_micros)):
        return False
    if not 0 < p.fair_yes_micros < _MAX or max(p.yes_bid_micros, p.no_bid_micros) >= _MAX:
        return False
    low, high = p.fair_low_micros, p.fair_high_micros
    if any(v is not None and not is_int(v) for v in (low, high)):
        return False
    return 0 <= (0 if low is None else low) <= (_MAX if high is None else high) <= _MAX


@settings(max_examples=500)
@given(fair=_money, yes=_money, no=_money,
       low=st.one_of(st.none(), _money), high=st.one_of(st.none(), _money))
def test_run_pricing_accepts_exactly_the_plausible_answers(
    fair: object, yes: object, no: object, low: object, high: object
) -> None:
    # The check has a fast path for the common answer; it must agree with the rule.
    answer = Pricing(fair, yes, no, low, high)  # type: ignore[arg-type]
    out = run_pricing(_Returns(answer), (), _inp(), budget_ns=10**9, perf_ns=None)
    if _plausible(answer):
        assert out is answer
    else:
        assert isinstance(out, Decline)
        assert out.reason == "pricer_error"


def test_run_pricing_applies_overlays() -> None:
    out = run_pricing(_Returns(Pricing(500_000, 480_000, 480_000)), (_VetoOverlay(),), _inp(),
                      budget_ns=10**9, perf_ns=None)
    assert out == Decline("vetoed")


# --- risk ---------------------------------------------------------------------------------------


def test_worst_case_loss_of_the_worked_example() -> None:
    # kalshi-api.md §5.3: yes_bid 0.40, no_bid 0.55, 100 contracts. If YES: YES hit +60, NO hit -55;
    # if NO: YES hit -40, NO hit +45. Worst: -55.
    exp = MarketExposure(T, quotes=[QuoteExposure(400_000, 550_000, 10_000)])
    assert worst_case_loss_micros(exp) == 55_000_000
    # Long 100 YES bought at 0.40 plus the quote: if NO: -40 - 40 = -80; if YES: +60 - 55 = +5.
    exp = MarketExposure(T, position_centi=10_000, cost_micros=40_000_000, quotes=exp.quotes)
    assert worst_case_loss_micros(exp) == 80_000_000
    # A provisional NO purchase at 0.55 hedges the YES: pair worth $1, cost 0.95 -> +5 either way.
    exp = MarketExposure(T, position_centi=10_000, cost_micros=40_000_000,
                         provisional=[Trade(Side.NO, 550_000, 10_000)])
    assert worst_case_loss_micros(exp) == 0


def test_one_sided_quote_is_not_counted_as_a_sure_gain() -> None:
    # Long 100 NO bought at 0.60 ($60) plus a YES-only bid at 0.40: if YES
    # wins the quote may simply not be hit, so the short's -$60 stands.
    exp = MarketExposure(T, position_centi=-10_000, cost_micros=60_000_000,
                         quotes=[QuoteExposure(400_000, 0, 10_000)])
    assert worst_case_loss_micros(exp) == 60_000_000


@dataclass(frozen=True)
class _Limits:
    max_position_centi_per_market: int | None = None
    max_position_centi_per_event: int | None = None
    max_position_centi_per_series: int | None = None
    max_position_centi_total: int | None = None
    max_worst_case_loss_micros_per_market: int | None = None
    max_worst_case_loss_micros_total: int | None = None
    max_open_quotes: int | None = None
    daily_realized_loss_stop_micros: int | None = None


def _exps() -> dict[str, MarketExposure]:
    return {
        T: MarketExposure(T, "E1", "S", position_centi=5_000, cost_micros=25_000_000),
        T2: MarketExposure(T2, "E1", "S", position_centi=-3_000, cost_micros=15_000_000),
        "X-1": MarketExposure("X-1", "E2", "X", position_centi=1_000, cost_micros=5_000_000),
    }


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (_Limits(max_position_centi_per_market=14_000), "max_position_per_market"),
        (_Limits(max_position_centi_per_event=17_000), "max_position_per_event"),
        (_Limits(max_position_centi_per_series=17_000), "max_position_per_series"),
        (_Limits(max_position_centi_total=18_000), "max_position_total"),
        (
            _Limits(max_worst_case_loss_micros_per_market=70_000_000),
            "max_worst_case_loss_per_market",
        ),
        (_Limits(max_worst_case_loss_micros_total=90_000_000), "max_worst_case_loss_total"),
        (_Limits(max_open_quotes=3), "max_open_quotes"),
        (_Limits(max_position_centi_per_market=15_000, max_position_centi_total=19_000), None),
    ],
)
def test_check_quote_limits(limits: _Limits, reason: str | None) -> None:
    # New quote of 100 on T: T gross 50 + 100 = 150; event 150 + 30 = 180; total 190.
    # Worst loss on T: position if NO -25; quote 0.50/0.50 x 100 -> -50 either way: -75.
    # Total: 75 + T2 (15 if YES) + X-1 (5 if NO) = 95.
    risk = RiskManager(limits)
    got = risk.check_quote(_exps(), 3, T, QuoteExposure(500_000, 500_000, 10_000))
    assert got == reason


def test_check_fill_allows_reducing_trades_over_the_limit() -> None:
    risk = RiskManager(_Limits(max_position_centi_per_market=4_000))
    assert risk.check_fill(_exps(), T, Trade(Side.NO, 500_000, 1_000)) is None
    assert risk.check_fill(_exps(), T, Trade(Side.YES, 500_000, 1)) == "max_position_per_market"


def test_kill_state_and_daily_stop() -> None:
    risk = RiskManager(_Limits(daily_realized_loss_stop_micros=1_000))
    q = QuoteExposure(500_000, 500_000, 100)
    risk.note_realized(day_key=1, realized_total_micros=-5_000)  # yesterday's losses don't count
    risk.note_realized(day_key=1, realized_total_micros=-5_999)
    assert risk.check_quote(_exps(), 0, T, q) is None
    risk.note_realized(day_key=1, realized_total_micros=-6_000)
    assert risk.check_quote(_exps(), 0, T, q) == "daily_loss_stop"
    risk.note_realized(day_key=2, realized_total_micros=-6_000)  # a new day
    assert risk.check_quote(_exps(), 0, T, q) is None
    risk.halt("operator")
    assert risk.check_fill(_exps(), T, Trade(Side.YES, 500_000, 100)) == "halted"
    risk.resume()
    assert risk.check_fill(_exps(), T, Trade(Side.YES, 500_000, 100)) is None


# --- positions --------------------------------------------------------------------------------


def _fill(
    tid: str, side: Side, yes_price: int, count: int, fee: int = 0, t: str = T
) -> FillReceived:
    bs = BookSide.BID if side is Side.YES else BookSide.ASK
    return FillReceived(tid, "o1", t, side, bs, yes_price, count, fee, False, 0)


def test_ledger_books_fills_with_the_ground_truth_cash() -> None:
    led = PositionLedger()
    # kalshi-api.md §0a: accepted "yes", maker buys 1 YES at 0.48, fee 0.
    led.book_fill(_fill("t1", Side.YES, 480_000, 100))
    assert led.market(T).position_centi == 100
    assert led.market(T).cost_micros == 480_000
    # Then buys 1 NO at 0.48 (yes price 0.52): the pair is worth $1; profit 0.04 minus fee.
    led.book_fill(_fill("t2", Side.NO, 520_000, 100, fee=100))
    m = led.market(T)
    assert (m.position_centi, m.cost_micros, m.realized_pnl_micros, m.fees_micros) == (
        0, 0, 40_000 - 100, 100
    )
    assert not led.book_fill(_fill("t2", Side.NO, 520_000, 100))  # duplicate trade id
    assert led.position_centi(T) == 0


def test_ledger_settlement_and_event_position() -> None:
    led = PositionLedger()
    led.register_market(T, "E1", "S")
    led.register_market(T2, "E1", "S")
    led.book_fill(_fill("t1", Side.NO, 700_000, 1_000))  # 10 NO at 0.30
    led.book_fill(_fill("t2", Side.YES, 200_000, 500, t=T2))
    assert led.event_position_centi("E1") == -500
    assert led.settle(T, 0) == 7_000_000  # NO wins: 10 x $1 - $3
    assert led.position_centi(T) == 0


def test_ledger_snapshot_restore_round_trip() -> None:
    led = PositionLedger()
    led.register_market(T, "E1", "S")
    led.book_fill(_fill("t1", Side.YES, 330_000, 700, fee=300))
    led.add_provisional("q9", T, -400)
    back = PositionLedger.restore(led.snapshot())
    assert back.snapshot() == led.snapshot()
    assert back.provisional_centi(T) == -400
    assert not back.book_fill(_fill("t1", Side.YES, 330_000, 700))


def test_reference_recompute_counts_pairs() -> None:
    fills = [_fill("a", Side.YES, 400_000, 300), _fill("b", Side.NO, 450_000, 100, fee=100)]
    (ref,) = reference_recompute(fills).values()
    # 3 YES at 0.40 (1.20) + 1 NO at 0.55 (0.55) + fee; one pair pays $1.
    assert (ref.position_centi, ref.cash_micros, ref.fees_micros) == (200, -750_100, 100)


# --- market data ------------------------------------------------------------------------------


def _snap(t: str, seq: int, sid: int | None = 1) -> BookSnapshotReceived:
    return BookSnapshotReceived(t, ((400_000, 100),), ((500_000, 100),), 5, seq=seq, sid=sid)


def _delta(t: str, seq: int | None, delta: int = 100, sid: int | None = 1) -> BookDeltaReceived:
    return BookDeltaReceived(t, Side.YES, 400_000, delta, 6, seq=seq, sid=sid)


def test_a_gap_on_a_shared_subscription_distrusts_every_book_on_it() -> None:
    md = MarketData()
    md.on_snapshot(_snap(T, 1))
    md.on_snapshot(_snap(T2, 2))
    assert md.on_delta(_delta(T, 3)).changed == (T,)
    upd = md.on_delta(_delta(T2, 5))
    assert set(upd.gapped) == {T, T2}
    assert not md.is_ready(T)
    assert md.books[T].is_empty
    # Deltas before the next snapshot are ignored; the snapshot restores trust.
    assert md.on_delta(_delta(T, 6)).changed == ()
    md.on_snapshot(_snap(T, 7))
    assert md.is_ready(T)
    assert not md.is_ready(T2)


def test_a_level_going_negative_is_a_gap() -> None:
    md = MarketData()
    md.on_snapshot(_snap(T, 1, sid=None))
    assert md.on_delta(_delta(T, None, delta=-101, sid=None)).gapped == (T,)


def test_transport_gap_event() -> None:
    md = MarketData()
    md.on_snapshot(_snap(T, 1, sid=3))
    md.on_snapshot(_snap(T2, 2, sid=4))
    assert md.on_gap(SequenceGap("orderbook_delta", 3, 3, 5, 0)).gapped == (T,)
    assert md.is_ready(T2)
    assert md.age_ns(T2, 1_005) == 1_000
    assert isinstance(md.book(T), OrderBook)
