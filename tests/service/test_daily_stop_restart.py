"""The daily loss stop's day survives a restart: losses before and after it add up."""

from __future__ import annotations

from pathlib import Path

from quoter.clock import ReplayClock
from quoter.config import parse_config
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import BookSide, MarketInfo, MarketStatus, Side
from quoter.engine.engine import Engine
from quoter.engine.positions import PositionLedger
from quoter.observability.metrics import Metrics
from quoter.service.hooks import RISK_DAY_META, ServiceHooks, restore_risk_day
from quoter.service.store import Store

T = "KXTEST-26JAN01-A"
CFG = parse_config("""
version: 1
strategies:
  - name: main
    match: {series: [KXTEST]}
    pricer:
      name: fixed
      params: {edge_dollars: "0.02", fair_yes_dollars: {KXTEST-26JAN01-A: "0.5"}}
risk: {daily_loss_stop_dollars: "10"}
""")
NOW = 1_000_000_000_000


def _step(engine: Engine, hooks: ServiceHooks | None, event: E.Event) -> list[C.Command]:
    out = engine.on_event(event, NOW)
    if hooks is not None:
        hooks.on_engine_step(event, out, NOW)
    return out


def _fill(trade_id: str, side: Side, yes_price: int) -> E.FillReceived:
    book = BookSide.BID if side is Side.YES else BookSide.ASK
    return E.FillReceived(trade_id, "o1", T, side, book, yes_price, 10_000, 0, False, NOW)


def _engine() -> Engine:
    engine = Engine(CFG)
    engine.on_event(E.MarketLoaded(MarketInfo(
        T, "KXTEST-26JAN01", "KXTEST", MarketStatus.ACTIVE, grid_for_structure("linear_cent"),
    ), NOW), NOW)
    return engine


def test_a_restart_keeps_the_days_losses(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        first = _engine()
        hooks = ServiceHooks(clock=ReplayClock(start_ns=NOW), engine=first, store=store,
                             metrics=Metrics())
        _step(first, hooks, _fill("t1", Side.YES, 900_000))
        _step(first, hooks, _fill("t2", Side.NO, 850_000))  # lose $5 today
        assert first.risk.daily_loss_micros == 5_000_000
        assert store.get_meta(RISK_DAY_META) is not None
        snapshot = first.ledger.snapshot()

        def restarted(restore: bool) -> list[C.Command]:
            engine = _engine()
            engine.ledger = PositionLedger.restore(snapshot)
            if restore:
                restore_risk_day(engine, store)
            _step(engine, None, _fill("t3", Side.YES, 900_000))
            return _step(engine, None, _fill("t4", Side.NO, 850_000))  # another $5 today

        # Without the stored day a restart starts the day afresh and forgets the first $5.
        assert [c for c in restarted(False) if isinstance(c, C.Halt)] == []
        (halt,) = [c for c in restarted(True) if isinstance(c, C.Halt)]
        assert halt.reason.startswith("daily_loss_stop")


def test_an_unreadable_stored_day_is_ignored_not_a_crash(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        engine = _engine()
        store.set_meta(RISK_DAY_META, "[11574, -2500000]")
        restore_risk_day(engine, store)
        assert engine.risk.day_state() == (11574, -2500000)
        for bad in ('["x", 1]', "{not json", "[1]", "[1.5, 2]", '{"a": 1}'):
            store.set_meta(RISK_DAY_META, bad)
            restore_risk_day(engine, store)
            assert engine.risk.day_state() == (11574, -2500000), bad
