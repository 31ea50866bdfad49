"""Market lifecycle as Kalshi runs it (docs.kalshi.com "market lifecycle"): a deactivation is a
pause that ``activated`` ends; ``determined`` fixes the result while positions stay listed until
``settled`` pays them out; last look re-checks status and the closing window."""

from __future__ import annotations

from engine_fixtures import MS, START_NS, Harness, T, config, decisions, market, of

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import MarketStatus, Side


def test_a_deactivated_market_reopens_when_activated() -> None:
    h = Harness()
    h.ready()
    h.quote()
    out = h.send(E.MarketLifecycleChanged(T, "deactivated", h.now, is_deactivated=True))
    assert of(out, C.CancelQuote) == [C.CancelQuote("r1", "q1", "market_paused")]
    assert h.engine.md.markets[T].status is MarketStatus.INACTIVE
    assert decisions(h.rfq("r2")) == [("not_quoted", "filtered:market_status")]
    h.send(E.MarketLifecycleChanged(T, "activated", h.now, is_deactivated=False))
    assert h.engine.md.markets[T].status is MarketStatus.ACTIVE
    assert decisions(h.rfq("r3")) == [("quoted", "quoted")]


def test_a_determined_market_keeps_its_position_until_settled_and_reconciles() -> None:
    h = Harness()
    h.ready()
    h.fill("t1", "o1", Side.YES, 400_000, 1_000)  # 10 YES at 0.40
    h.send(E.MarketLifecycleChanged(T, "determined", h.now, result="yes",
                                    settlement_value_micros=1_000_000))
    assert h.engine.md.markets[T].status is MarketStatus.DETERMINED
    # The exchange still lists the position while the settlement timer runs: no mismatch.
    assert h.engine.ledger.position_centi(T) == 1_000
    out = h.send(E.PositionReported(T, 1_000, h.now))
    assert of(out, C.Halt) == []
    assert not h.engine.halted
    # "settled" carries no value on the wire: the determined one pays out.
    h.send(E.MarketLifecycleChanged(T, "settled", h.now))
    assert h.engine.ledger.position_centi(T) == 0
    assert h.engine.ledger.realized_pnl_micros() == 6_000_000
    assert of(h.send(E.PositionReported(T, 0, h.now)), C.Halt) == []


def test_last_look_declines_on_a_market_that_stopped_trading() -> None:
    h = Harness()
    h.ready()
    h.quote()
    h.send(E.MarketLifecycleChanged(T, "deactivated", h.now, is_deactivated=True))
    out = h.accept("q1")  # the accept raced our cancel
    assert of(out, C.ConfirmQuote) == []
    assert decisions(out) == [("declined", "market_not_active")]


def test_last_look_declines_inside_the_closing_window() -> None:
    close_ms = START_NS // MS + 3_600_000  # an hour after the harness starts (wall = engine)
    h = Harness(config(lifecycle="{cancel_before_close_ms: 60000}"))
    h.ready(m=market(close_ts_ms=close_ms))
    h.quote()
    h.now = (close_ms - 30_000) * MS  # 30 s before the close: inside the 60 s window
    out = h.accept("q1")
    assert of(out, C.ConfirmQuote) == []
    assert decisions(out) == [("declined", "market_closing")]
