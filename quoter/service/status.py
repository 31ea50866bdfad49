"""A plain, frozen snapshot of the service's state, for the operator views (no IO here).

The service builds a :class:`StatusSnapshot` from its parts (runtime stats, engine, ledger,
store paths) and hands it to the renderers: the live terminal view
(``quoter.service.live_view``), the end-of-run summary (``quoter.service.summary``) and the JSON
status endpoint (:func:`to_json_dict`). The renderers depend only on this module, never on
runtime internals.

Money stays integer: ``*_micros`` (micro-dollars) and ``*_centi`` (hundredths of a contract).
JSON output carries both the raw integers and exact strings (``*_dollars`` / ``*_fp``).
Tuples of recent items are ordered oldest first.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from quoter.domain.money import format_dollars, format_fp
from quoter.service.markouts import MarkoutView, StrategyPnl, marked_value_micros

__all__ = [
    "COUNT_ORDER",
    "DecisionView",
    "FillView",
    "LatencyRecorder",
    "LatencyView",
    "PositionView",
    "QuoteView",
    "ShadowQuoteView",
    "StatusSnapshot",
    "dollars",
    "from_json_dict",
    "latency_json",
    "markout_json",
    "markouts_line",
    "nearest_rank",
    "ordered_counts",
    "ordered_reasons",
    "pnl_line",
    "position_json",
    "to_json_dict",
    "usd",
    "venue_text",
]

_NS_PER_US: Final = 1_000
#: The count keys shown first, in pipeline order; any other counts follow alphabetically.
COUNT_ORDER: Final = (
    "rfqs_seen", "routed", "quoted", "shadow_quoted", "accepted", "confirmed", "declined", "fills",
    "decode_errors", "reconnects",
)


@dataclass(frozen=True, slots=True)
class QuoteView:
    """One of our quotes that has not ended yet."""

    rfq_id: str
    quote_id: str
    market_ticker: str
    yes_bid_micros: int
    no_bid_micros: int
    state: str
    age_ms: int
    strategy: str = ""


@dataclass(frozen=True, slots=True)
class DecisionView:
    """One engine decision (``RecordDecision``) stamped with wall-clock nanoseconds."""

    wall_ns: int
    rfq_id: str
    market_ticker: str
    decision: str
    reason: str
    strategy: str = ""
    #: Extra facts for people (e.g. the would-be prices of a shadow quote).
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ShadowQuoteView:
    """A quote shadow mode would have sent: its bids, the fair value, and the edge per side."""

    wall_ns: int
    rfq_id: str
    market_ticker: str
    yes_bid_micros: int
    no_bid_micros: int
    fair_yes_micros: int | None
    strategy: str = ""

    @property
    def edge_yes_micros(self) -> int | None:
        """What a YES fill at our bid would earn against the fair value (None: no fair)."""
        return None if self.fair_yes_micros is None else self.fair_yes_micros - self.yes_bid_micros

    @property
    def edge_no_micros(self) -> int | None:
        """The same for NO, whose fair value is $1 minus the YES fair value."""
        if self.fair_yes_micros is None:
            return None
        return (ONE_DOLLAR_MICROS - self.fair_yes_micros) - self.no_bid_micros

    def describe(self) -> str:
        """``yes 0.4800 no 0.4800 fair 0.5000 edge 0.0200/0.0200``, exact."""
        text = f"yes {dollars(self.yes_bid_micros)} no {dollars(self.no_bid_micros)}"
        if self.fair_yes_micros is not None:
            fair = self.fair_yes_micros
            ey, en = fair - self.yes_bid_micros, ONE_DOLLAR_MICROS - fair - self.no_bid_micros
            text += f" fair {dollars(fair)} edge {dollars(ey)}/{dollars(en)}"
        return text


@dataclass(frozen=True, slots=True)
class FillView:
    """One of our fills; ``price_micros`` is the price of the side bought (``side``)."""

    wall_ns: int
    trade_id: str
    market_ticker: str
    side: str
    price_micros: int
    count_centi: int
    fee_micros: int
    is_taker: bool = False


@dataclass(frozen=True, slots=True)
class PositionView:
    """Our position in one market, and the exchange's figure when we have one."""

    market_ticker: str
    position_centi: int
    cost_micros: int
    realized_pnl_micros: int
    fees_micros: int
    exchange_position_centi: int | None = None
    #: When the exchange's figure was read (wall ns; None: not reconciled yet).
    exchange_read_wall_ns: int | None = None
    #: The YES mid the position is marked at (None: no two-sided book known).
    mark_yes_micros: int | None = None

    @property
    def marked_value_micros(self) -> int | None:
        """What the position is worth at the mid (None without a mid)."""
        if self.mark_yes_micros is None:
            return None
        return marked_value_micros(self.position_centi, self.mark_yes_micros)

    @property
    def unrealized_pnl_micros(self) -> int | None:
        """Marked value minus cost basis (None without a mid)."""
        value = self.marked_value_micros
        return None if value is None else value - self.cost_micros


@dataclass(frozen=True, slots=True)
class LatencyView:
    """Percentiles of one latency series, in whole microseconds."""

    name: str
    count: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything the operator views show, captured at one instant (treat mappings as read-only).

    ``counts`` uses the keys ``rfqs_seen``, ``routed``, ``quoted``, ``accepted``,
    ``confirmed``, ``declined``, ``fills``, ``decode_errors``, ``reconnects`` (others are shown
    too). ``recent_fills`` is optional so snapshot builders that have no fill list still work.
    """

    mode: str
    env: str
    halted: bool
    halt_reason: str
    uptime_ms: int
    counts: Mapping[str, int]
    decline_reasons: Mapping[str, int]
    no_quote_reasons: Mapping[str, int]
    open_quotes: tuple[QuoteView, ...]
    recent_decisions: tuple[DecisionView, ...]
    positions: tuple[PositionView, ...]
    pnl_realized_micros: int
    exposure_worst_case_micros: int
    latencies: tuple[LatencyView, ...]
    recording_path: str | None = None
    db_path: str | None = None
    recent_fills: tuple[FillView, ...] = ()
    #: Where orders go, for people: ``sim http://127.0.0.1:8765`` in paper mode, else the
    #: exchange's host (``env`` alone would say "demo" for a simulator run).
    venue: str = ""
    #: Shadow mode: the quotes it would have sent, newest last.
    shadow_quotes: tuple[ShadowQuoteView, ...] = ()
    #: Our fills against the mid 1 s / 10 s / 60 s later.
    markouts: tuple[MarkoutView, ...] = ()
    #: By strategy: fills marked now (PnL), and markouts ("" = fills not attributed).
    strategy_pnl: tuple[StrategyPnl, ...] = ()
    strategy_markouts: tuple[tuple[str, tuple[MarkoutView, ...]], ...] = ()

    @property
    def pnl_marked_micros(self) -> int:
        """Realised PnL plus every position marked to its mid (unmarked ones at cost)."""
        return self.pnl_realized_micros + sum(p.unrealized_pnl_micros or 0
                                              for p in self.positions)

    @property
    def unmarked_positions(self) -> int:
        """Open positions with no mid to mark them at."""
        return sum(1 for p in self.positions
                   if p.position_centi != 0 and p.mark_yes_micros is None)


ONE_DOLLAR_MICROS: Final = 1_000_000


# -- money formatting ----------------------------------------------------------------------


def dollars(micros: int) -> str:
    """Format micro-dollars exactly: 4 decimals (Kalshi's tick), 6 when finer amounts need it."""
    return format_dollars(micros, 4 if micros % 100 == 0 else 6)


def usd(micros: int) -> str:
    """Format micro-dollars for people: ``$1.2345`` / ``-$0.0070``, exact."""
    text = dollars(micros)
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


def venue_text(s: StatusSnapshot) -> str:
    """Say where orders go: the simulator's URL in paper mode, else the environment and host."""
    if s.venue.startswith("sim "):
        return s.venue
    return f"env {s.env}" + (f" ({s.venue})" if s.venue else "")


def pnl_line(s: StatusSnapshot) -> str:
    """``realized PnL $x  marked to mid $y`` (+ how many positions have no mid), for people."""
    text = f"realized PnL {usd(s.pnl_realized_micros)}  marked to mid {usd(s.pnl_marked_micros)}"
    if s.unmarked_positions:
        text += f" ({s.unmarked_positions} at cost: no mid)"
    return text


def markouts_line(s: StatusSnapshot) -> str:
    """``markouts 1s $0.0040/contract (n 3)  10s ...`` for people; empty without fills."""
    parts = []
    for m in s.markouts:
        per = m.per_contract_micros
        if per is not None:
            parts.append(f"{m.horizon_s}s {usd(per)}/contract (n {m.fills})")
    return ("markouts " + "  ".join(parts)) if parts else ""


def ordered_counts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Return counts in pipeline order, then the rest alphabetically."""
    known = [(k, counts[k]) for k in COUNT_ORDER if k in counts]
    rest = sorted((k, v) for k, v in counts.items() if k not in COUNT_ORDER)
    return known + rest


def ordered_reasons(reasons: Mapping[str, int]) -> list[tuple[str, int]]:
    """Return reason counts, most frequent first (ties by name)."""
    return sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))


# -- JSON ----------------------------------------------------------------------------------


def _money(prefix: str, micros: int) -> dict[str, Any]:
    return {f"{prefix}_micros": micros, f"{prefix}_dollars": dollars(micros)}


def _quote_json(q: QuoteView) -> dict[str, Any]:
    return {
        "rfq_id": q.rfq_id,
        "quote_id": q.quote_id,
        "market_ticker": q.market_ticker,
        **_money("yes_bid", q.yes_bid_micros),
        **_money("no_bid", q.no_bid_micros),
        "state": q.state,
        "age_ms": q.age_ms,
        "strategy": q.strategy,
    }


def _decision_json(d: DecisionView) -> dict[str, Any]:
    return {
        "wall_ns": d.wall_ns,
        "rfq_id": d.rfq_id,
        "market_ticker": d.market_ticker,
        "decision": d.decision,
        "reason": d.reason,
        "strategy": d.strategy,
        "detail": d.detail,
    }


def _shadow_json(q: ShadowQuoteView) -> dict[str, Any]:
    fair = q.fair_yes_micros
    return {
        "wall_ns": q.wall_ns,
        "rfq_id": q.rfq_id,
        "market_ticker": q.market_ticker,
        **_money("yes_bid", q.yes_bid_micros),
        **_money("no_bid", q.no_bid_micros),
        "fair_yes_micros": fair,
        "fair_yes_dollars": None if fair is None else dollars(fair),
        "edge_yes_micros": q.edge_yes_micros,
        "edge_no_micros": q.edge_no_micros,
        "strategy": q.strategy,
    }


def _fill_json(f: FillView) -> dict[str, Any]:
    return {
        "wall_ns": f.wall_ns,
        "trade_id": f.trade_id,
        "market_ticker": f.market_ticker,
        "side": f.side,
        **_money("price", f.price_micros),
        "count_centi": f.count_centi,
        "count_fp": format_fp(f.count_centi),
        **_money("fee", f.fee_micros),
        "is_taker": f.is_taker,
    }


def position_json(p: PositionView) -> dict[str, Any]:
    """Describe one position as JSON-ready data (integers plus exact strings)."""
    exch = p.exchange_position_centi
    return {
        "market_ticker": p.market_ticker,
        "position_centi": p.position_centi,
        "position_fp": format_fp(p.position_centi),
        **_money("cost", p.cost_micros),
        **_money("realized_pnl", p.realized_pnl_micros),
        **_money("fees", p.fees_micros),
        "exchange_position_centi": exch,
        "exchange_position_fp": None if exch is None else format_fp(exch),
        "exchange_read_wall_ns": p.exchange_read_wall_ns,
        "mark_yes_micros": p.mark_yes_micros,
        "unrealized_pnl_micros": p.unrealized_pnl_micros,
    }


def markout_json(m: MarkoutView) -> dict[str, Any]:
    """Describe the markouts at one horizon as JSON-ready data."""
    per = m.per_contract_micros
    return {
        "horizon_s": m.horizon_s,
        "fills": m.fills,
        "count_centi": m.count_centi,
        **_money("total", m.total_micros),
        "per_contract_micros": per,
        "per_contract_dollars": None if per is None else dollars(per),
    }


def latency_json(v: LatencyView) -> dict[str, Any]:
    """Describe one latency series as JSON-ready data."""
    return {
        "name": v.name,
        "count": v.count,
        "p50_us": v.p50_us,
        "p90_us": v.p90_us,
        "p99_us": v.p99_us,
        "max_us": v.max_us,
    }


def to_json_dict(s: StatusSnapshot) -> dict[str, Any]:
    """Convert a snapshot to JSON-ready data: raw integers plus exact ``*_dollars``/``*_fp``.

    Keys: ``mode env venue halted halt_reason uptime_ms counts decline_reasons no_quote_reasons
    open_quotes recent_decisions recent_fills positions pnl_realized_micros
    pnl_realized_dollars exposure_worst_case_micros exposure_worst_case_dollars latencies
    recording_path db_path``. :func:`from_json_dict` reads it back from the integer fields.
    """
    return {
        "mode": s.mode,
        "env": s.env,
        "venue": s.venue,
        "halted": s.halted,
        "halt_reason": s.halt_reason,
        "uptime_ms": s.uptime_ms,
        "counts": dict(s.counts),
        "decline_reasons": dict(s.decline_reasons),
        "no_quote_reasons": dict(s.no_quote_reasons),
        "open_quotes": [_quote_json(q) for q in s.open_quotes],
        "recent_decisions": [_decision_json(d) for d in s.recent_decisions],
        "recent_fills": [_fill_json(f) for f in s.recent_fills],
        "positions": [position_json(p) for p in s.positions],
        **_money("pnl_realized", s.pnl_realized_micros),
        **_money("pnl_marked", s.pnl_marked_micros),
        "unmarked_positions": s.unmarked_positions,
        "markouts": [markout_json(m) for m in s.markouts],
        **_money("exposure_worst_case", s.exposure_worst_case_micros),
        "latencies": [latency_json(v) for v in s.latencies],
        "recording_path": s.recording_path,
        "db_path": s.db_path,
        "shadow_quotes": [_shadow_json(q) for q in s.shadow_quotes],
        "strategy_pnl": [dataclasses.asdict(p) for p in s.strategy_pnl],
        "strategy_markouts": {name: [markout_json(m) for m in views]
                              for name, views in s.strategy_markouts},
    }


def from_json_dict(d: Mapping[str, Any]) -> StatusSnapshot:
    """Rebuild a snapshot from :func:`to_json_dict` output (e.g. fetched from /status)."""
    return StatusSnapshot(
        mode=d["mode"],
        env=d["env"],
        halted=d["halted"],
        halt_reason=d["halt_reason"],
        uptime_ms=d["uptime_ms"],
        counts=dict(d["counts"]),
        decline_reasons=dict(d["decline_reasons"]),
        no_quote_reasons=dict(d["no_quote_reasons"]),
        open_quotes=tuple(
            QuoteView(
                q["rfq_id"], q["quote_id"], q["market_ticker"], q["yes_bid_micros"],
                q["no_bid_micros"], q["state"], q["age_ms"], q["strategy"],
            )
            for q in d["open_quotes"]
        ),
        recent_decisions=tuple(
            DecisionView(
                x["wall_ns"], x["rfq_id"], x["market_ticker"], x["decision"], x["reason"],
                x["strategy"], x.get("detail", ""),
            )
            for x in d["recent_decisions"]
        ),
        positions=tuple(
            PositionView(
                p["market_ticker"], p["position_centi"], p["cost_micros"],
                p["realized_pnl_micros"], p["fees_micros"], p["exchange_position_centi"],
                p.get("exchange_read_wall_ns"), p.get("mark_yes_micros"),
            )
            for p in d["positions"]
        ),
        pnl_realized_micros=d["pnl_realized_micros"],
        exposure_worst_case_micros=d["exposure_worst_case_micros"],
        latencies=tuple(
            LatencyView(v["name"], v["count"], v["p50_us"], v["p90_us"], v["p99_us"], v["max_us"])
            for v in d["latencies"]
        ),
        recording_path=d.get("recording_path"),
        db_path=d.get("db_path"),
        venue=d.get("venue", ""),
        markouts=tuple(
            MarkoutView(m["horizon_s"], m["fills"], m["count_centi"], m["total_micros"])
            for m in d.get("markouts", ())
        ),
        shadow_quotes=tuple(
            ShadowQuoteView(
                q["wall_ns"], q["rfq_id"], q["market_ticker"], q["yes_bid_micros"],
                q["no_bid_micros"], q["fair_yes_micros"], q["strategy"],
            )
            for q in d.get("shadow_quotes", ())
        ),
        recent_fills=tuple(
            FillView(
                f["wall_ns"], f["trade_id"], f["market_ticker"], f["side"], f["price_micros"],
                f["count_centi"], f["fee_micros"], f["is_taker"],
            )
            for f in d.get("recent_fills", ())
        ),
        strategy_pnl=tuple(StrategyPnl(**p) for p in d.get("strategy_pnl", ())),
        strategy_markouts=tuple(
            (name, tuple(MarkoutView(m["horizon_s"], m["fills"], m["count_centi"],
                                     m["total_micros"]) for m in views))
            for name, views in d.get("strategy_markouts", {}).items()
        ),
    )


# -- latency -------------------------------------------------------------------------------


def nearest_rank(sorted_values: list[int], percent: int) -> int:
    """Return the nearest-rank ``percent``-th percentile of ascending, non-empty values."""
    if not sorted_values:
        raise ValueError("no samples")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    rank = -(-percent * len(sorted_values) // 100)  # ceil(p/100 * n), in integers
    return sorted_values[rank - 1]


def _ns_to_us(ns: int) -> int:
    """Round nanoseconds to the nearest microsecond (halves up)."""
    return (ns + _NS_PER_US // 2) // _NS_PER_US


class LatencyRecorder:
    """Keep the last ``capacity`` samples (ns) per series; report exact nearest-rank percentiles.

    Deterministic (a sliding window, no random sampling). ``LatencyView.count`` is the number of
    samples ever added; the percentiles cover the window. Series are reported in the order they
    were first seen.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self._capacity = capacity
        self._windows: dict[str, deque[int]] = {}
        self._counts: dict[str, int] = {}

    def add(self, name: str, ns: int) -> None:
        """Record one latency sample of ``ns`` nanoseconds in series ``name``."""
        if isinstance(ns, bool) or not isinstance(ns, int):
            raise TypeError(f"latency must be integer nanoseconds, got {ns!r}")
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = deque(maxlen=self._capacity)
            self._counts[name] = 0
        window.append(ns)
        self._counts[name] += 1

    def views(self) -> tuple[LatencyView, ...]:
        """Return the percentiles of every series, in microseconds."""
        out = []
        for name, window in self._windows.items():
            values = sorted(window)
            out.append(
                LatencyView(
                    name=name,
                    count=self._counts[name],
                    p50_us=_ns_to_us(nearest_rank(values, 50)),
                    p90_us=_ns_to_us(nearest_rank(values, 90)),
                    p99_us=_ns_to_us(nearest_rank(values, 99)),
                    max_us=_ns_to_us(values[-1]),
                )
            )
        return tuple(out)
