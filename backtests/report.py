"""A backtest's files: ``summary.json`` (integers, byte-identical for the same inputs and seed),
``fills.csv`` and one self-contained ``report.html`` with plots made by matplotlib (Agg, no
display; each plot embedded as a base64 PNG).

Money stays integer micro-dollars in the JSON and CSV; the plots convert to dollars only to
draw axes.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from backtests.metrics import MARKOUT_HORIZONS_S
from backtests.plotting import MICROS, NS, figure_png, new_figure, usd
from backtests.report_parts import (
    TOP_ROWS,
    breakdown_rows,
    exposure_plot,
    fair_markout_plot,
    inventory_plot,
    latency_plots,
    latency_rows,
)
from backtests.runner import BacktestResult, write_fills_csv
from quoter.domain.money import format_fp

__all__ = ["figure_png", "html_page", "new_figure", "table", "usd", "write_reports",
           "write_summary"]

_NS = NS
_MICROS = MICROS


def _pnl_plot(result: BacktestResult) -> str:
    fig, ax = new_figure("PnL over time", "seconds since the first frame", "USD")
    curve = [(result.start_ns, 0, 0), *result.pnl_curve]
    xs = [(t - result.start_ns) / _NS for t, _, _ in curve]
    ax.step(xs, [r / _MICROS for _, r, _ in curve], where="post", label="realised")
    ax.step(xs, [m / _MICROS for _, _, m in curve], where="post", label="marked to the mid")
    ax.axhline(0, color="grey", lw=0.8)
    ax.legend(loc="best")
    return figure_png(fig)


def _fills_plot(result: BacktestResult) -> str:
    fig, ax = new_figure("Fills: contracts filled over time", "seconds since the first frame",
                   "contracts (cumulative)")
    total = 0
    xs, ys = [0.0], [0.0]
    for fill in result.fills:
        total += fill[5]
        xs.append((fill[0] - result.start_ns) / _NS)
        ys.append(total / 100)
    ax.step(xs, ys, where="post")
    return figure_png(fig)


def _markout_plot(result: BacktestResult) -> str:
    fig, ax = new_figure("Markouts by horizon (against the mid)", "horizon (s)",
                   "USD per contract (mean)")
    hs, means = [], []
    for h in MARKOUT_HORIZONS_S:
        pairs = [(f[7][h], f[5]) for f in result.fills if f[7].get(h) is not None]
        contracts = sum(c for _, c in pairs)
        if contracts:
            hs.append(h)
            means.append(sum(v for v, _ in pairs) / _MICROS / (contracts / 100))
    ax.plot(hs, means, marker="o")
    ax.set_xscale("log")
    ax.axhline(0, color="grey", lw=0.8)
    return figure_png(fig)


def _win_rate_plot(result: BacktestResult, bin_micros: int = 5_000) -> str:
    fig, ax = new_figure("Win rate against our edge over the mid", "our edge (USD)", "win rate")
    bins: dict[int, list[int]] = {}
    for edge, accepted in result.quote_edges:
        b = bins.setdefault(edge // bin_micros, [0, 0])
        b[0] += 1
        b[1] += int(accepted)
    keys = sorted(bins)
    ax.bar([k * bin_micros / _MICROS for k in keys], [bins[k][1] / bins[k][0] for k in keys],
           width=bin_micros / _MICROS * 0.9, align="edge")
    ax.set_ylim(0, 1)
    return figure_png(fig)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}img.plot{display:block;
margin:1em 0}"""


def html_page(title: str, sections: Iterable[str]) -> str:
    """A self-contained page (inline CSS, embedded images)."""
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            + "".join(sections) + "</body></html>\n")


def write_summary(summary: Mapping[str, Any], path: Path) -> None:
    """Sorted keys, fixed indent: the same run gives the same bytes."""
    path.write_text(json.dumps(summary, sort_keys=True, indent=2) + "\n", encoding="utf-8")


def write_reports(result: BacktestResult, out_dir: Path) -> dict[str, Path]:
    """Write ``summary.json``, ``fills.csv`` and ``report.html`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out_dir / "summary.json", "fills": out_dir / "fills.csv",
             "report": out_dir / "report.html"}
    write_summary(result.summary, paths["summary"])
    write_fills_csv(result, paths["fills"])
    m = result.summary["metrics"]
    key = [
        ["RFQs seen", m["rfqs_seen"]], ["quotes placed", m["quotes_placed"]],
        ["accepts", m["accepts"]], ["win rate", f"{m['win_rate']:.1%}"],
        ["confirms", m["confirms"]], ["confirm failures", m["confirm_failures"]],
        ["fills", m["fills"]], ["contracts", format_fp(m["contracts_centi"])],
        ["fees", usd(m["fees_micros"])], ["PnL realised", usd(m["pnl_realized_micros"])],
        ["PnL marked to the mid", usd(m["pnl_marked_micros"])],
        *([f"markout {h}", usd(v)] for h, v in m["markouts_micros"].items()),
        *([f"markout against our fair {h}", usd(v)]
          for h, v in m["markouts_fair_micros"].items()),
        ["max |net contracts|", format_fp(m["inventory"]["max_abs_net_centi"])],
        ["max worst-case loss", usd(m["inventory"]["max_worst_case_loss_micros"])],
    ]
    headers = ["quotes", "accepts", "win rate", "fills", "contracts", "fees", "PnL realised",
               "PnL marked", "markout 60s (mid)", "markout at fill (fair)"]
    breakdowns = []
    for name, title in (("by_strategy", "strategy"), ("by_series", "series"),
                        ("by_market", "market"), ("by_requester", "requester")):
        table_of = m[name]
        note = (f" (the {TOP_ROWS} largest by |PnL marked|, then the rest as one row; "
                "summary.json holds all)" if len(table_of) > TOP_ROWS else "")
        breakdowns += [f"<h3>By {title}{html.escape(note)}</h3>",
                       table([title, *headers],
                             breakdown_rows(table_of, short_names=name == "by_requester"))]
    auction = result.summary["auction"]
    sections = [
        f"<p>Inputs: {html.escape(', '.join(result.summary['inputs']))}; auction model "
        f"<b>{html.escape(auction['model'])}</b> (seed {auction['seed']}, fallback "
        f"{html.escape(auction['fallback'])}); config {result.summary['config_hash'][:12]}.</p>",
        "<h2>Summary</h2>", table(["", "value"], key),
        "<h2>Breakdowns</h2>", *breakdowns,
        "<h2>PnL</h2>", _pnl_plot(result),
        "<h2>Fills and markouts</h2>", _fills_plot(result), _markout_plot(result),
        fair_markout_plot(result),
        "<h2>Inventory and exposure</h2>", inventory_plot(result), exposure_plot(result),
        "<h2>Win rate</h2>", _win_rate_plot(result),
        "<h2>Decisions</h2>",
        table(["reason", "count"], sorted(m["decline_reasons"].items())),
        "<h2>Latency (virtual time)</h2>",
        table(["", "count", "p50", "p90", "p99", "max"], latency_rows(m["latency_ns"],
                                  result.summary.get("round_trips_drawn_ns", {}))),
        *latency_plots(result),
    ]
    paths["report"].write_text(html_page("Backtest report", sections), encoding="utf-8")
    return paths
