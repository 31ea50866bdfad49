"""Marked-to-mid PnL and fill markouts: what our fills and positions are worth at the mid now.

Realised PnL alone makes every short run look like a loss of its fees: the contracts we
bought are worth something before their market settles. Two views, both exact integers:

* :func:`marked_value_micros` values a position at the YES mid (a NO position at ``$1 - mid``);
  marked PnL = realised PnL + (marked value - cost basis) over markets with a mid.
* :class:`MarkoutTracker` measures each of our fills against the mid ``h`` seconds later
  (1 s, 10 s, 60 s): ``(mid of the side bought - price paid) x contracts``. A positive markout
  means the fill was good for us; informed requesters show up as negative markouts.

Values of fractional contracts round toward zero to the micro-dollar (a display figure; the
ledger stays exact). Time is the monotonic ``now_ns`` of the caller's clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MARKOUT_HORIZONS_S",
    "MarkoutTracker",
    "MarkoutView",
    "StrategyPnl",
    "marked_value_micros",
    "side_value_micros",
]

ONE_DOLLAR_MICROS: Final = 1_000_000
NS_PER_S: Final = 1_000_000_000
#: Markout horizons, seconds after the fill.
MARKOUT_HORIZONS_S: Final = (1, 10, 60)
#: Fills waiting for their last horizon; older ones are dropped (counted in ``dropped``).
MAX_PENDING: Final = 10_000


def side_value_micros(side: str, yes_mid_micros: int, count_centi: int) -> int:
    """Value of ``count_centi`` hundredths of ``side`` ("yes"/"no") contracts at the YES mid."""
    price = yes_mid_micros if side == "yes" else ONE_DOLLAR_MICROS - yes_mid_micros
    return _mul_centi(price, count_centi)


def marked_value_micros(position_centi: int, yes_mid_micros: int) -> int:
    """Value at the mid of a signed position (+YES / -NO), in micro-dollars."""
    if position_centi >= 0:
        return side_value_micros("yes", yes_mid_micros, position_centi)
    return side_value_micros("no", yes_mid_micros, -position_centi)


def _mul_centi(price_micros: int, count_centi: int) -> int:
    value = price_micros * count_centi
    return value // 100 if value >= 0 else -(-value // 100)


@dataclass(frozen=True, slots=True)
class MarkoutView:
    """Markouts at one horizon: fills measured, contracts, and the total in micro-dollars."""

    horizon_s: int
    fills: int
    count_centi: int
    total_micros: int

    @property
    def per_contract_micros(self) -> int | None:
        """Average markout per contract (None before any fill was measured)."""
        if self.count_centi == 0:
            return None
        return _div_round(self.total_micros * 100, self.count_centi)


def _div_round(a: int, b: int) -> int:
    q, r = divmod(abs(a), b)
    q += 1 if 2 * r >= b else 0
    return q if a >= 0 else -q


@dataclass(slots=True)
class _Pending:
    fill_ns: int
    ticker: str
    side: str
    price_micros: int
    count_centi: int
    order_id: str = ""
    next_horizon: int = 0  # index into the horizons


@dataclass(frozen=True, slots=True)
class StrategyPnl:
    """One strategy's fills marked now: contracts, fees, and PnL at the current marks
    (``(mark of the side bought - price paid) x contracts - fees``; a fill with no mark counts
    at its price and is listed in ``unmarked``)."""

    strategy: str
    fills: int
    count_centi: int
    fees_micros: int
    pnl_micros: int
    unmarked: int


class MarkoutTracker:
    """Collect our fills and mark each one at every horizon once its time has come."""

    def __init__(self, horizons_s: Iterable[int] = MARKOUT_HORIZONS_S) -> None:
        self.horizons_s = tuple(sorted(horizons_s))
        self._pending: deque[_Pending] = deque()
        self._fills = dict.fromkeys(self.horizons_s, 0)
        self._count = dict.fromkeys(self.horizons_s, 0)
        self._total = dict.fromkeys(self.horizons_s, 0)
        self.dropped = 0
        self.unmarked = 0  # horizons passed with no mid for the market
        # Per strategy: the same sums by horizon, and every fill (to mark it now).
        self._by_strategy: dict[str, dict[int, list[int]]] = {}
        self._fill_log: list[tuple[str, str, str, int, int, int]] = []
        # Order id -> the strategy whose quote it executed (a fill can arrive first).
        self._strategy_of: dict[str, str] = {}

    def add_fill(
        self, now_ns: int, ticker: str, side: str, price_micros: int, count_centi: int,
        order_id: str = "", fee_micros: int = 0,
    ) -> None:
        """Start measuring a fill of ours (``price_micros`` is the price of ``side`` bought);
        ``order_id`` joins it to a strategy (:meth:`attribute`, before or after)."""
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(_Pending(now_ns, ticker, side, price_micros, count_centi, order_id))
        if len(self._fill_log) < MAX_PENDING * 10:
            self._fill_log.append((order_id, ticker, side, price_micros, count_centi, fee_micros))

    def attribute(self, order_id: str, strategy: str) -> None:
        """The order ``order_id`` executed a quote of ``strategy``."""
        if order_id and strategy and len(self._strategy_of) < MAX_PENDING * 10:
            self._strategy_of[order_id] = strategy

    def poll(self, now_ns: int, yes_mid: Callable[[str], int | None]) -> None:
        """Mark every fill whose next horizon has passed at the current mid."""
        keep: deque[_Pending] = deque()
        for p in self._pending:
            while p.next_horizon < len(self.horizons_s):
                h = self.horizons_s[p.next_horizon]
                if now_ns - p.fill_ns < h * NS_PER_S:
                    break
                mid = yes_mid(p.ticker)
                if mid is None:
                    self.unmarked += 1
                else:
                    value = side_value_micros(p.side, mid, p.count_centi)
                    markout = value - _mul_centi(p.price_micros, p.count_centi)
                    self._fills[h] += 1
                    self._count[h] += p.count_centi
                    self._total[h] += markout
                    sums = self._by_strategy.setdefault(
                        self._strategy_of.get(p.order_id, ""),
                        {x: [0, 0, 0] for x in self.horizons_s})[h]
                    sums[0] += 1
                    sums[1] += p.count_centi
                    sums[2] += markout
                p.next_horizon += 1
            if p.next_horizon < len(self.horizons_s):
                keep.append(p)
        self._pending = keep

    def views(self) -> tuple[MarkoutView, ...]:
        """Markouts so far, one per horizon."""
        return tuple(MarkoutView(h, self._fills[h], self._count[h], self._total[h])
                     for h in self.horizons_s)

    def strategy_views(self) -> dict[str, tuple[MarkoutView, ...]]:
        """Markouts so far by strategy ("" = fills we could not attribute)."""
        return {s: tuple(MarkoutView(h, *sums[h]) for h in self.horizons_s)
                for s, sums in sorted(self._by_strategy.items())}

    def strategy_pnl(self, yes_mark: Callable[[str], int | None]) -> tuple[StrategyPnl, ...]:
        """Each strategy's fills marked at ``yes_mark`` now (mid, or settlement value)."""
        by: dict[str, list[tuple[str, str, int, int, int]]] = {}
        for order_id, ticker, side, price, qty, fee in self._fill_log:
            by.setdefault(self._strategy_of.get(order_id, ""), []).append(
                (ticker, side, price, qty, fee))
        out = []
        for strategy, fills in sorted(by.items()):
            pnl = count = fees = unmarked = 0
            for ticker, side, price, qty, fee in fills:
                mark = yes_mark(ticker)
                count += qty
                fees += fee
                if mark is None:
                    unmarked += 1
                else:
                    pnl += side_value_micros(side, mark, qty) - _mul_centi(price, qty)
            out.append(StrategyPnl(strategy, len(fills), count, fees, pnl - fees, unmarked))
        return tuple(out)
