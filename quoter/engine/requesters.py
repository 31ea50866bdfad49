"""Per-requester statistics: what each RFQ creator (pseudonymous ``creator_id``) has done with
our quotes, and how our fills on its RFQs marked out.

Pure: the engine shows it each event and the commands that event produced (after they were
decided) and the engine time; it answers with more commands (mark-out timers). Counted:

* ``rfqs``: RFQs it created that we saw (duplicates once);
* ``quotes``: those we quoted (the engine's ``quoted`` decision, once per RFQ);
* ``accepts``: accepts of our quotes on its RFQs;
* ``fills``: our fills on its RFQs (joined through ``quote_executed``'s order id; a fill that
  beats its ``quote_executed`` is attributed when the execution names the order).

Each fill is marked out at every configured horizon (``requesters.markout_horizons_ms``): a
``markout:<trade_id>:<horizon_ms>`` timer reads the fill market's book mid then (or its
settlement value once determined); with neither (no two-sided book: e.g. a combo market with no
resting orders) that horizon is skipped for the fill, never guessed. The mark-out is per
contract, positive when good for us. Pending mark-outs are not persisted: a restart forgets
the ones not yet due (the totals so far survive, see ``quoter.service.store``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.money import MAX_PRICE_MICROS
from quoter.domain.types import Side
from quoter.engine.marketdata import MarketData
from strategies.base import RequesterStats

__all__ = ["MARKOUT_TIMER", "RequesterBook", "RequesterRecord"]

MS: Final = 1_000_000
#: Timer key kind of a mark-out (``markout:<trade_id>:<horizon_ms>``).
MARKOUT_TIMER: Final = "markout"
#: Joins kept (quote -> requester, order -> requester, fills waiting for a mark-out): enough
#: for every quote alive at once many times over; the oldest are forgotten first.
MAX_TRACKED: Final = 20_000


@dataclass(slots=True)
class RequesterRecord:
    """One requester's running counts (mutable; ``stats()`` freezes it for the pricers)."""

    rfqs: int = 0
    quotes: int = 0
    accepts: int = 0
    fills: int = 0
    # horizon_ms -> [count, sum of per-contract mark-outs in micro-dollars]
    markouts: dict[int, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able copy (integers only)."""
        return {"rfqs": self.rfqs, "quotes": self.quotes, "accepts": self.accepts,
                "fills": self.fills,
                "markouts": {str(h): list(v) for h, v in sorted(self.markouts.items())}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequesterRecord:
        """Rebuild from :meth:`to_json` output; raises ``ValueError`` on anything else."""
        def count(v: Any) -> int:
            if type(v) is not int:
                raise ValueError(f"not an integer: {v!r}")
            return v

        rec = cls(count(data.get("rfqs", 0)), count(data.get("quotes", 0)),
                  count(data.get("accepts", 0)), count(data.get("fills", 0)))
        for h, pair in dict(data.get("markouts", {})).items():
            n, total = pair
            rec.markouts[int(h)] = [count(n), count(total)]
        return rec


@dataclass(frozen=True, slots=True)
class _Fill:
    creator: str
    market_ticker: str
    side: Side
    yes_price_micros: int


class RequesterBook:
    """Every requester's record, the joins from our quotes and orders to them, and the fills
    waiting to be marked out."""

    def __init__(self, horizons_ms: tuple[int, ...]) -> None:
        self.horizons_ms = horizons_ms
        self.records: dict[str, RequesterRecord] = {}
        self.dirty: dict[str, None] = {}
        self._quote_creator: OrderedDict[str, str] = OrderedDict()
        self._order_creator: OrderedDict[str, str] = OrderedDict()
        self._unjoined: OrderedDict[str, list[E.FillReceived]] = OrderedDict()
        self._pending: OrderedDict[str, _Fill] = OrderedDict()
        self._seen_trades: OrderedDict[str, None] = OrderedDict()

    # --- what the pricers see ------------------------------------------------------------

    def stats(self, creator: str) -> RequesterStats:
        """A frozen view of ``creator``'s record (empty if unknown)."""
        rec = self.records.get(creator)
        if rec is None:
            return RequesterStats()
        first = rec.markouts.get(self.horizons_ms[0], [0, 0])
        return RequesterStats(
            accepts=rec.accepts, markout_sum_micros=first[1], markout_count=first[0],
            rfqs=rec.rfqs, quotes=rec.quotes, fills=rec.fills,
            markouts=tuple(
                (h, pair[0], pair[1]) for h in self.horizons_ms
                for pair in (rec.markouts.get(h, [0, 0]),)
            ),
        )

    # --- persistence -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every record as JSON-able data."""
        return {c: r.to_json() for c, r in self.records.items()}

    def take_dirty(self) -> dict[str, dict[str, Any]]:
        """The records changed since the last call (for the store), as JSON-able data."""
        out = {c: self.records[c].to_json() for c in self.dirty}
        self.dirty.clear()
        return out

    def restore(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        """Load records saved by :meth:`snapshot` (replacing those of the same requesters)."""
        for creator, rec in data.items():
            self.records[creator] = RequesterRecord.from_json(rec)

    # --- observing the engine ----------------------------------------------------------------

    def _rec(self, creator: str) -> RequesterRecord:
        self.dirty[creator] = None
        rec = self.records.get(creator)
        if rec is None:
            rec = self.records[creator] = RequesterRecord()
        return rec

    @staticmethod
    def _remember(d: OrderedDict[str, Any], key: str, value: Any) -> None:
        d[key] = value
        if len(d) > MAX_TRACKED:
            d.popitem(last=False)

    def observe(
        self, event: E.Event, out: list[C.Command], now: int, *, new_rfq: bool,
        creator_of_rfq: Mapping[str, str], is_ours: bool,
    ) -> None:
        """Count what ``event`` and the engine's answer ``out`` say about a requester.

        ``new_rfq``: the event is an RFQ the engine had not seen; ``creator_of_rfq``: RFQ id ->
        creator of the RFQs the engine holds; ``is_ours``: an accept is of one of our quotes.
        """
        match event:
            case E.RfqReceived() if new_rfq and event.creator_id:
                self._rec(event.creator_id).rfqs += 1
            case E.QuoteAccepted() if is_ours:
                creator = event.rfq_creator_id or creator_of_rfq.get(event.rfq_id, "")
                if creator:
                    self._rec(creator).accepts += 1
                    self._remember(self._quote_creator, event.quote_id, creator)
            case E.QuoteExecuted():
                joined = self._quote_creator.get(event.quote_id)
                if joined:
                    self._remember(self._order_creator, event.order_id, joined)
                    for early in self._unjoined.pop(event.order_id, ()):
                        self._on_fill(early, joined, now, out)
            case E.FillReceived():
                if event.trade_id in self._seen_trades:
                    return
                self._remember(self._seen_trades, event.trade_id, None)
                owner = self._order_creator.get(event.order_id)
                if owner:
                    self._on_fill(event, owner, now, out)
                else:
                    # ``quote_executed`` may come after its fills: they wait for it.
                    waiting = self._unjoined.get(event.order_id)
                    if waiting is None:
                        self._remember(self._unjoined, event.order_id, [event])
                    else:
                        waiting.append(event)
            case _:
                pass
        for c in out:
            if isinstance(c, C.RecordDecision) and c.decision == "quoted":
                creator = creator_of_rfq.get(c.rfq_id, "")
                if creator:
                    self._rec(creator).quotes += 1

    def _on_fill(self, fill: E.FillReceived, creator: str, now: int,
                 out: list[C.Command]) -> None:
        self._rec(creator).fills += 1
        self._remember(self._pending, fill.trade_id, _Fill(
            creator, fill.market_ticker, fill.outcome_side, fill.yes_price_micros))
        for h in self.horizons_ms:
            out.append(C.ScheduleTimer(f"{MARKOUT_TIMER}:{fill.trade_id}:{h}", now + h * MS))

    def on_timer(self, arg: str, md: MarketData, determined: Mapping[str, int]) -> None:
        """A mark-out is due: value the fill at the mid now (or the settlement value)."""
        trade_id, _, horizon = arg.rpartition(":")
        fill = self._pending.get(trade_id)
        if fill is None or not horizon.isdigit():
            return
        h = int(horizon)
        if h == max(self.horizons_ms) or h not in self.horizons_ms:
            del self._pending[trade_id]
        mid = self._mid(fill.market_ticker, md, determined)
        if mid is None:
            return
        value = mid - fill.yes_price_micros
        markout = value if fill.side is Side.YES else -value
        pair = self._rec(fill.creator).markouts.setdefault(h, [0, 0])
        pair[0] += 1
        pair[1] += markout

    @staticmethod
    def _mid(ticker: str, md: MarketData, determined: Mapping[str, int]) -> int | None:
        if ticker in determined:
            return determined[ticker]
        m = md.markets.get(ticker)
        if m is not None and m.settlement_value_micros is not None:
            return m.settlement_value_micros
        if not md.is_ready(ticker):
            return None
        mid = md.books[ticker].mid_micros()
        return None if mid is None else min(max(mid, 0), MAX_PRICE_MICROS)
