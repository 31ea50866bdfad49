"""The daily loss stop counts every loss of the UTC day, including the one that starts it."""

from __future__ import annotations

from engine_fixtures import Harness, T, config, of

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.types import Side
from quoter.engine.valuation import DAY_NS

STOP = config(risk='{daily_loss_stop_dollars: "10"}')


def _to_next_utc_day(h: Harness) -> None:
    h.now = (h.now // DAY_NS + 1) * DAY_NS


def test_a_loss_booked_by_the_first_event_of_a_day_counts_toward_that_day() -> None:
    h = Harness(STOP)
    h.ready()
    h.fill("t1", "o9", Side.YES, 900_000, 10_000)  # buy 100 YES at 0.90: nothing realised
    _to_next_utc_day(h)
    # The day's first event: buy 100 NO at 0.20 closes the pair at $1.10, a $10 loss today.
    out = h.fill("t2", "o9", Side.NO, 800_000, 10_000)
    (halt,) = of(out, C.Halt)
    assert halt.reason.startswith("daily_loss_stop")
    assert h.engine.risk.daily_loss_micros == 10_000_000


def test_a_settlement_loss_that_opens_a_day_counts_toward_that_day() -> None:
    h = Harness(STOP)
    h.ready()
    h.fill("t1", "o9", Side.YES, 900_000, 2_000)  # 20 YES at 0.90 cost $18
    _to_next_utc_day(h)
    h.send(E.MarketLifecycleChanged(T, "settled", h.now, result="no",
                                    settlement_value_micros=0))
    assert h.engine.risk.daily_loss_micros == 18_000_000
    # The next quote is refused: the stop was reached by the settlement.
    assert of(h.rfq("r1"), C.SubmitQuote) == []


def test_yesterdays_loss_does_not_count_today() -> None:
    h = Harness(STOP)
    h.ready()
    h.fill("t1", "o9", Side.YES, 900_000, 10_000)
    h.fill("t2", "o9", Side.NO, 850_000, 10_000)  # NO at 0.15: the pair cost $1.05, lose $5
    assert h.engine.risk.daily_loss_micros == 5_000_000
    _to_next_utc_day(h)
    h.fill("t3", "o9", Side.YES, 900_000, 10_000)
    out = h.fill("t4", "o9", Side.NO, 850_000, 10_000)  # another $5: $10 over two days
    assert of(out, C.Halt) == []
    assert h.engine.risk.daily_loss_micros == 5_000_000
