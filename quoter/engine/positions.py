"""The positions ledger: authoritative positions from fills, provisional exposure from accepts.

Sign convention: a position is signed hundredths of a contract, ``+`` = long YES, ``-`` = long
NO (Kalshi's ``position_fp``). Cash (kalshi-api.md §0a): a ``yes`` fill at ``yes_price`` costs
``yes_price x count``; a ``no`` fill costs ``(1 - yes_price) x count``; the fee is paid on top.
Holding one YES and one NO is worth exactly $1, so a fill on the side opposite to what we hold
closes that much of the position and realises ``$1 - (held cost) - (new cost)`` per contract.

Cost basis is the average cost of what is held (integer micro-dollars; the rounding remainder
stays in the open basis, so nothing is ever lost). ``realized_pnl_micros`` includes fees paid.
Invariant checked by tests against :func:`reference_recompute`:
``realized_pnl_micros - cost_micros == cash flow of all fills (+$1 per closed pair)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from quoter.domain.checks import check_fill, check_settlement_value
from quoter.domain.events import FillReceived
from quoter.domain.money import MAX_PRICE_MICROS, notional_micros
from quoter.domain.types import Side

__all__ = ["MarketPosition", "PositionLedger", "ReferencePosition", "reference_recompute"]


@dataclass(slots=True)
class MarketPosition:
    """Our holdings in one market."""

    position_centi: int = 0
    cost_micros: int = 0
    realized_pnl_micros: int = 0
    fees_micros: int = 0


@dataclass(frozen=True, slots=True)
class ReferencePosition:
    """What a list of fills adds up to, computed the obvious way (for tests)."""

    position_centi: int
    cash_micros: int
    fees_micros: int


def _side_price(fill: FillReceived) -> int:
    """Price per contract of the side bought by ``fill``."""
    if fill.outcome_side is Side.YES:
        return fill.yes_price_micros
    return MAX_PRICE_MICROS - fill.yes_price_micros


def _booked(pos: MarketPosition, fill: FillReceived) -> MarketPosition:
    """The position record after ``fill`` (a new record; ``pos`` is not touched)."""
    count = fill.count_centi
    price = _side_price(fill)
    sign = 1 if fill.outcome_side is Side.YES else -1
    position, cost = pos.position_centi, pos.cost_micros
    realized = pos.realized_pnl_micros - fill.fee_micros
    fees = pos.fees_micros + fill.fee_micros
    held = abs(position)
    if position == 0 or (position > 0) == (sign > 0):
        return MarketPosition(position + sign * count, cost + notional_micros(price, count),
                              realized, fees)
    closed = min(count, held)
    released = cost if closed == held else cost * closed // held
    cost -= released
    realized += notional_micros(MAX_PRICE_MICROS, closed) - released - notional_micros(
        price, closed)
    position += sign * closed
    opened = count - closed
    if opened:
        position += sign * opened
        cost += notional_micros(price, opened)
    return MarketPosition(position, cost, realized, fees)


class PositionLedger:
    """Positions per market, provisional exposure per key, realised PnL and fees."""

    def __init__(self) -> None:
        self._markets: dict[str, MarketPosition] = {}
        self._provisional: dict[str, tuple[str, int]] = {}
        self._event_of: dict[str, str] = {}
        self._series_of: dict[str, str] = {}
        self._trade_ids: dict[str, None] = {}
        # Trades booked from a frame that carried no fee (legacy fill frames): market by id.
        self._fee_unknown: dict[str, str] = {}
        #: Called with a market's ticker after its position or cost basis changed.
        self.on_position: Callable[[str], None] | None = None
        # Running sums so the per-RFQ queries cost O(1), not O(markets ever traded).
        self._realized_total_micros = 0
        self._event_position: dict[str, int] = {}

    def _reindex(self) -> None:
        """Recompute the running sums from the records (after a restore)."""
        self._realized_total_micros = sum(p.realized_pnl_micros for p in self._markets.values())
        self._event_position = {}
        for t, p in self._markets.items():
            event = self._event_of.get(t)
            if event is not None:
                self._event_position[event] = self._event_position.get(event, 0) + p.position_centi

    def _moved(self, ticker: str, position_delta: int, realized_delta: int) -> None:
        self._realized_total_micros += realized_delta
        event = self._event_of.get(ticker)
        if event is not None and position_delta:
            self._event_position[event] = self._event_position.get(event, 0) + position_delta

    # --- metadata ---------------------------------------------------------------------

    def register_market(self, ticker: str, event_ticker: str, series_ticker: str) -> None:
        """Remember which event and series a market belongs to."""
        pos = self.position_centi(ticker)
        old = self._event_of.get(ticker)
        if old is not None:
            self._event_position[old] = self._event_position.get(old, 0) - pos
        self._event_position[event_ticker] = self._event_position.get(event_ticker, 0) + pos
        self._event_of[ticker] = event_ticker
        self._series_of[ticker] = series_ticker

    def event_of(self, ticker: str) -> str:
        """The market's event ticker ('' if unknown)."""
        return self._event_of.get(ticker, "")

    def series_of(self, ticker: str) -> str:
        """The market's series ticker ('' if unknown)."""
        return self._series_of.get(ticker, "")

    def registered(self) -> list[tuple[str, str, str]]:
        """``(ticker, event, series)`` of every registered market."""
        return [(t, e, self._series_of.get(t, "")) for t, e in self._event_of.items()]

    # --- fills (authoritative) ----------------------------------------------------------

    def book_fill(self, fill: FillReceived) -> bool:
        """Book one fill; returns False (and books nothing) for a duplicate ``trade_id``.

        All or nothing: the fill is checked (:func:`quoter.domain.checks.check_fill`) and its
        effect computed before anything changes, so a fill Kalshi could never send raises
        ``MoneyError`` and leaves the ledger (and its trade ids) exactly as it was.
        """
        if fill.trade_id in self._trade_ids:
            return False
        check_fill(fill)
        old = self._markets.get(fill.market_ticker, MarketPosition())
        new = _booked(old, fill)
        # Nothing above can have changed the ledger; from here on nothing can fail.
        self._trade_ids[fill.trade_id] = None
        if not fill.fee_known:
            self._fee_unknown[fill.trade_id] = fill.market_ticker
        self._markets[fill.market_ticker] = new
        self._moved(fill.market_ticker, new.position_centi - old.position_centi,
                    new.realized_pnl_micros - old.realized_pnl_micros)
        if self.on_position is not None:
            self.on_position(fill.market_ticker)
        return True

    def merge_fee(self, fill: FillReceived) -> bool:
        """A copy of a trade booked without its fee (a legacy fill frame) that carries the fee:
        add the fee once. True if it changed the ledger."""
        ticker = self._fee_unknown.get(fill.trade_id)
        if ticker is None or not fill.fee_known or fill.market_ticker != ticker:
            return False
        check_fill(fill)
        del self._fee_unknown[fill.trade_id]
        pos = self._markets[ticker]
        pos.fees_micros += fill.fee_micros
        pos.realized_pnl_micros -= fill.fee_micros
        self._moved(ticker, 0, -fill.fee_micros)
        if self.on_position is not None:
            self.on_position(ticker)
        return True

    def settle(self, ticker: str, yes_value_micros: int) -> int:
        """Settle a market at ``yes_value_micros`` per YES contract; returns realised PnL."""
        check_settlement_value(yes_value_micros)
        pos = self._markets.get(ticker)
        if pos is None or pos.position_centi == 0:
            return 0
        value = yes_value_micros if pos.position_centi > 0 else MAX_PRICE_MICROS - yes_value_micros
        pnl = value * abs(pos.position_centi) // 100 - pos.cost_micros
        pos.realized_pnl_micros += pnl
        self._moved(ticker, -pos.position_centi, pnl)
        pos.position_centi = 0
        pos.cost_micros = 0
        if self.on_position is not None:
            self.on_position(ticker)
        return pnl

    # --- provisional exposure ---------------------------------------------------------------

    def add_provisional(self, key: str, ticker: str, signed_centi: int) -> None:
        """Book provisional exposure under ``key`` (e.g. a quote id we confirmed)."""
        self._provisional[key] = (ticker, signed_centi)

    def reduce_provisional(self, key: str, by_centi: int) -> int:
        """Shrink ``key``'s provisional size by ``by_centi`` (toward 0); returns what is left."""
        entry = self._provisional.get(key)
        if entry is None:
            return 0
        ticker, signed = entry
        left = max(0, abs(signed) - by_centi)
        if left == 0:
            del self._provisional[key]
            return 0
        self._provisional[key] = (ticker, left if signed > 0 else -left)
        return left

    def provisional_entry(self, key: str) -> tuple[str, int] | None:
        """``(ticker, signed size)`` booked under ``key``, or None."""
        return self._provisional.get(key)

    def release_provisional(self, key: str) -> None:
        """Forget ``key``'s provisional exposure (declined, expired, or fully filled)."""
        self._provisional.pop(key, None)

    def provisional_centi(self, ticker: str) -> int:
        """Signed provisional exposure in a market."""
        return sum(s for t, s in self._provisional.values() if t == ticker)

    def provisional_keys(self, ticker: str) -> list[str]:
        """Keys with provisional exposure in a market."""
        return [k for k, (t, _) in self._provisional.items() if t == ticker]

    # --- queries ------------------------------------------------------------------------

    def market(self, ticker: str) -> MarketPosition:
        """A copy of our position record in a market."""
        pos = self._markets.get(ticker, MarketPosition())
        return MarketPosition(
            pos.position_centi, pos.cost_micros, pos.realized_pnl_micros, pos.fees_micros
        )

    def position_centi(self, ticker: str) -> int:
        """Signed authoritative position in a market."""
        pos = self._markets.get(ticker)
        return pos.position_centi if pos else 0

    def event_position_centi(self, event_ticker: str) -> int:
        """Signed authoritative position summed over the markets of an event."""
        return self._event_position.get(event_ticker, 0)

    def tickers(self) -> list[str]:
        """Markets with a position record or provisional exposure, in first-seen order."""
        seen = dict.fromkeys(self._markets)
        for t, _ in self._provisional.values():
            seen.setdefault(t)
        return list(seen)

    def realized_pnl_micros(self) -> int:
        """Total realised PnL (fees included) over all markets."""
        return self._realized_total_micros

    # --- persistence --------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return the ledger as a plain JSON-able dict."""
        return {
            "markets": {
                t: [p.position_centi, p.cost_micros, p.realized_pnl_micros, p.fees_micros]
                for t, p in self._markets.items()
            },
            "provisional": {k: [t, s] for k, (t, s) in self._provisional.items()},
            "event_of": dict(self._event_of),
            "series_of": dict(self._series_of),
            "trade_ids": list(self._trade_ids),
            "fee_unknown": dict(self._fee_unknown),
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> PositionLedger:
        """Rebuild a ledger from :meth:`snapshot` output."""
        ledger = cls()
        for t, (pos, cost, pnl, fees) in data["markets"].items():
            ledger._markets[t] = MarketPosition(int(pos), int(cost), int(pnl), int(fees))
        for k, (t, s) in data["provisional"].items():
            ledger._provisional[k] = (str(t), int(s))
        ledger._event_of = {str(k): str(v) for k, v in data["event_of"].items()}
        ledger._series_of = {str(k): str(v) for k, v in data["series_of"].items()}
        ledger._trade_ids = dict.fromkeys(str(t) for t in data["trade_ids"])
        ledger._fee_unknown = {str(k): str(v) for k, v in data.get("fee_unknown", {}).items()}
        ledger._reindex()
        return ledger


def reference_recompute(fills: Iterable[FillReceived]) -> dict[str, ReferencePosition]:
    """Recompute positions and cash flow per market from fills, the slow obvious way.

    Cash flow = -(cost of every side bought) - fees + $1 for each YES/NO pair held (pairs =
    (YES bought + NO bought - |position|) / 2). Duplicate ``trade_id`` s count once.
    """
    seen: set[str] = set()
    yes_bought: dict[str, int] = {}
    no_bought: dict[str, int] = {}
    spent: dict[str, int] = {}
    fees: dict[str, int] = {}
    for f in fills:
        if f.trade_id in seen:
            continue
        seen.add(f.trade_id)
        t = f.market_ticker
        book = yes_bought if f.outcome_side is Side.YES else no_bought
        book[t] = book.get(t, 0) + f.count_centi
        spent[t] = spent.get(t, 0) + f.count_centi * _side_price(f) // 100
        fees[t] = fees.get(t, 0) + f.fee_micros
    out: dict[str, ReferencePosition] = {}
    for t, cost in spent.items():
        y, n = yes_bought.get(t, 0), no_bought.get(t, 0)
        position = y - n
        pairs = (y + n - abs(position)) // 2
        cash = pairs * MAX_PRICE_MICROS // 100 - cost - fees[t]
        out[t] = ReferencePosition(position, cash, fees[t])
    return out
