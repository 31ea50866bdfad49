"""The end-of-run summary (``quoter demo``, ``make demo``): plain text for people, JSON for CI.

Both are pure functions of a :class:`~quoter.service.status.StatusSnapshot` plus the result of
comparing our positions with the simulator's ledger. The text is stable line by line so a
golden test can assert exact lines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from quoter.domain.money import format_fp
from quoter.service.status import (
    StatusSnapshot,
    dollars,
    latency_json,
    markout_json,
    markouts_line,
    ordered_reasons,
    position_json,
    usd,
    venue_text,
)

__all__ = [
    "FUNNEL_KEYS",
    "SUMMARY_VERSION",
    "compare_ledgers",
    "dump_summary_json",
    "ledger_line",
    "render_summary",
    "summary_json",
]

#: Bumped whenever a key of :func:`summary_json` changes meaning or goes away.
SUMMARY_VERSION: Final = 1
#: The RFQ funnel, always present in the summary (0 when the snapshot lacks a count).
FUNNEL_KEYS: Final = ("rfqs_seen", "routed", "quoted", "accepted", "confirmed", "declined", "fills")
_FUNNEL_LABELS: Final = {
    "rfqs_seen": "RFQs seen",
    "routed": "routed",
    "quoted": "quoted",
    "accepted": "accepted",
    "confirmed": "confirmed",
    "declined": "declined",
    "fills": "fills",
}


def compare_ledgers(
    ours_centi: Mapping[str, int], simulator_centi: Mapping[str, int]
) -> tuple[bool, list[str]]:
    """Compare positions per market (a missing market counts as flat); return (match, diff)."""
    diff = [
        f"{ticker}: ours {format_fp(ours_centi.get(ticker, 0))},"
        f" simulator {format_fp(simulator_centi.get(ticker, 0))}"
        for ticker in sorted(set(ours_centi) | set(simulator_centi))
        if ours_centi.get(ticker, 0) != simulator_centi.get(ticker, 0)
    ]
    return not diff, diff


def ledger_line(ledger_match: bool | None, ledger_diff: Sequence[str]) -> str:
    """Return the one line that says whether our positions match the simulator's ledger."""
    prefix = "positions match the simulator's ledger:"
    if ledger_match is None:
        return f"{prefix} not checked"
    if ledger_match:
        return f"{prefix} yes"
    diff = "; ".join(ledger_diff) if ledger_diff else "no details"
    return f"{prefix} NO ({diff})"


def _reasons(reasons: list[tuple[str, int]]) -> str:
    return ", ".join(f"{k} {v}" for k, v in reasons) if reasons else "none"


def _seconds(ms: int) -> str:
    whole, frac = divmod(abs(ms), 1000)
    return f"{'-' if ms < 0 else ''}{whole}.{frac:03d} s"


def strategy_lines(s: StatusSnapshot) -> list[str]:
    """``by strategy:`` lines: fills, contracts, fees, PnL at today's marks, markouts."""
    if not s.strategy_pnl:
        return []
    marks = dict(s.strategy_markouts)
    lines = ["by strategy (fills marked now, net of fees; markouts per contract):"]
    for p in s.strategy_pnl:
        outs = "  ".join(
            f"{m.horizon_s}s {usd(m.per_contract_micros)}"
            for m in marks.get(p.strategy, ()) if m.per_contract_micros is not None)
        lines.append(
            f"  {p.strategy or '(unattributed)'}: fills {p.fills}  contracts "
            f"{format_fp(p.count_centi)}  fees {usd(p.fees_micros)}  PnL {usd(p.pnl_micros)}"
            + (f" ({p.unmarked} fills unmarked)" if p.unmarked else "")
            + (f"  markouts {outs}" if outs else ""))
    return lines


def render_summary(
    snapshot: StatusSnapshot, *, ledger_match: bool | None, ledger_diff: Sequence[str]
) -> str:
    """Render the end-of-run summary as text (ends with a newline)."""
    s = snapshot
    lines = [
        f"quoter summary: mode {s.mode}, {venue_text(s)}, ran {_seconds(s.uptime_ms)}"
        + (f", HALTED ({s.halt_reason})" if s.halted else ""),
        ", ".join(f"{_FUNNEL_LABELS[k]} {s.counts.get(k, 0)}" for k in FUNNEL_KEYS),
        f"declined: {_reasons(ordered_reasons(s.decline_reasons))}",
        f"not quoted: {_reasons(ordered_reasons(s.no_quote_reasons))}",
    ]
    others = sorted((k, v) for k, v in s.counts.items() if k not in FUNNEL_KEYS)
    if others:
        lines.append("other counts: " + ", ".join(f"{k} {v}" for k, v in others))
    lines.append(f"positions ({len(s.positions)} markets):")
    if not s.positions:
        lines.append("  none")
    width = max((len(p.market_ticker) for p in s.positions), default=0)
    for p in s.positions:
        exch = p.exchange_position_centi
        lines.append(
            f"  {p.market_ticker:<{width}}  position {format_fp(p.position_centi)}"
            f"  cost {usd(p.cost_micros)}  realized PnL {usd(p.realized_pnl_micros)}"
            f"  fees {usd(p.fees_micros)}"
            + ("" if exch is None else f"  exchange {format_fp(exch)}")
        )
    fees = sum(p.fees_micros for p in s.positions)
    unrealized = s.pnl_marked_micros - s.pnl_realized_micros
    lines += [
        f"realized PnL: {usd(s.pnl_realized_micros)} (fees {usd(fees)})",
        f"marked-to-mid PnL: {usd(s.pnl_marked_micros)} (realized + {usd(unrealized)} "
        "unrealized at the mid" + (f"; {s.unmarked_positions} positions without a mid, at cost"
                                   if s.unmarked_positions else "") + ")",
        markouts_line(s) or "markouts: no fills measured",
        *strategy_lines(s),
        f"worst-case exposure: {usd(s.exposure_worst_case_micros)}",
        "latency (us):" if s.latencies else "latency (us): none",
    ]
    if s.latencies:
        name_w = max(len(v.name) for v in s.latencies)
        for v in s.latencies:
            lines.append(
                f"  {v.name:<{name_w}}  n {v.count}  p50 {v.p50_us}  p90 {v.p90_us}"
                f"  p99 {v.p99_us}  max {v.max_us}"
            )
    lines += [
        f"recording: {s.recording_path or 'not recorded'}",
        f"database: {s.db_path or 'not stored'}",
        ledger_line(ledger_match, ledger_diff),
    ]
    return "\n".join(lines) + "\n"


def summary_json(
    snapshot: StatusSnapshot, ledger_match: bool | None, ledger_diff: Sequence[str]
) -> dict[str, Any]:
    """Return the summary as JSON-ready data, with stable keys.

    Keys:

    * ``summary_version`` (int, :data:`SUMMARY_VERSION`), ``mode``, ``env``, ``uptime_ms``,
      ``halted``, ``halt_reason``;
    * ``funnel``: ``{key: int}`` for every key of :data:`FUNNEL_KEYS` (0 when absent);
      ``counts``: every count of the snapshot; ``decline_reasons``, ``no_quote_reasons``:
      ``{reason: int}``;
    * ``positions``: list of ``{market_ticker, position_centi, position_fp, cost_micros,
      cost_dollars, realized_pnl_micros, realized_pnl_dollars, fees_micros, fees_dollars,
      exchange_position_centi, exchange_position_fp}`` (the exchange fields may be null);
    * ``pnl_realized_micros`` / ``pnl_realized_dollars``, ``fees_micros`` / ``fees_dollars``
      (sum over positions), ``exposure_worst_case_micros`` / ``exposure_worst_case_dollars``;
    * ``markouts``: list of ``{horizon_s, fills, count_centi, total_micros, ...}``;
      ``by_strategy``: ``{strategy: {fills, count_centi, fees_micros, pnl_marked_micros,
      pnl_marked_dollars, unmarked_fills, markouts}}`` (fills marked now at the mid, or the
      settlement value once known, net of fees; ``(unattributed)`` for fills no quote of a
      known strategy made);
    * ``latencies``: list of ``{name, count, p50_us, p90_us, p99_us, max_us}``;
    * ``recording_path``, ``db_path`` (null when not written);
    * ``ledger_match`` (true / false / null = not checked), ``ledger_diff`` (list of str).

    Money is exact: ``*_micros`` integers and ``*_dollars`` strings with 4 decimals (6 when a
    finer amount needs it); quantities are ``*_centi`` integers and ``*_fp`` strings.
    """
    s = snapshot
    fees = sum(p.fees_micros for p in s.positions)
    return {
        "summary_version": SUMMARY_VERSION,
        "mode": s.mode,
        "env": s.env,
        "uptime_ms": s.uptime_ms,
        "halted": s.halted,
        "halt_reason": s.halt_reason,
        "funnel": {k: s.counts.get(k, 0) for k in FUNNEL_KEYS},
        "counts": dict(sorted(s.counts.items())),
        "decline_reasons": dict(ordered_reasons(s.decline_reasons)),
        "no_quote_reasons": dict(ordered_reasons(s.no_quote_reasons)),
        "positions": [position_json(p) for p in s.positions],
        "pnl_realized_micros": s.pnl_realized_micros,
        "pnl_realized_dollars": dollars(s.pnl_realized_micros),
        "pnl_marked_micros": s.pnl_marked_micros,
        "pnl_marked_dollars": dollars(s.pnl_marked_micros),
        "markouts": [markout_json(m) for m in s.markouts],
        "by_strategy": {
            p.strategy or "(unattributed)": {
                "fills": p.fills, "count_centi": p.count_centi, "fees_micros": p.fees_micros,
                "pnl_marked_micros": p.pnl_micros, "pnl_marked_dollars": dollars(p.pnl_micros),
                "unmarked_fills": p.unmarked,
                "markouts": [markout_json(m) for m in dict(s.strategy_markouts).get(
                    p.strategy, ())],
            } for p in s.strategy_pnl
        },
        "fees_micros": fees,
        "fees_dollars": dollars(fees),
        "exposure_worst_case_micros": s.exposure_worst_case_micros,
        "exposure_worst_case_dollars": dollars(s.exposure_worst_case_micros),
        "latencies": [latency_json(v) for v in s.latencies],
        "recording_path": s.recording_path,
        "db_path": s.db_path,
        "ledger_match": ledger_match,
        "ledger_diff": list(ledger_diff),
    }


def dump_summary_json(summary: dict[str, Any]) -> str:
    """Serialise :func:`summary_json` output deterministically (indented, newline-terminated)."""
    return json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
