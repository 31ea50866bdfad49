"""The report's inventory, exposure, fair-markout and latency plots and its breakdown tables.

Inputs are the run's plain data (``BacktestResult.summary`` and ``.series``); money stays
integer micro-dollars until an axis or a cell is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backtests.plotting import MICROS, NS, figure_png, new_figure, usd
from backtests.runner import BacktestResult
from quoter.domain.money import CENTI_PER_CONTRACT, format_fp

__all__ = ["TOP_MARKETS_PLOTTED", "TOP_ROWS", "breakdown_rows", "exposure_plot",
           "fair_markout_plot", "inventory_plot", "latency_plots", "latency_rows"]

#: Rows of a per-market or per-requester table before the rest is summed into "other".
TOP_ROWS = 20
#: Markets drawn on the inventory plot besides the total (the largest by |net|).
TOP_MARKETS_PLOTTED = 5
_NS_PER_MS = 1_000_000
_SUMMED = ("quotes", "accepts", "fills", "contracts_centi", "fees_micros",
           "pnl_realized_micros", "pnl_marked_micros", "markout_60s_micros",
           "markout_fair_at_fill_micros")


def _seconds(result: BacktestResult, ts_ns: int) -> float:
    return (ts_ns - result.start_ns) / NS


def _no_data(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this run", ha="center", va="center",
            transform=ax.transAxes, color="grey")


def inventory_plot(result: BacktestResult) -> str:
    """Net contracts (YES minus NO) in total and for the markets held most, over time."""
    fig, ax = new_figure("Inventory over time", "seconds since the first frame",
                         "net contracts (YES - NO)")
    points = result.series.get("inventory", [])
    if not points:
        _no_data(ax, "position")
        return figure_png(fig)
    ax.step([_seconds(result, p[0]) for p in points],
            [p[1] / CENTI_PER_CONTRACT for p in points], where="post", label="total", lw=2)
    by_market: Mapping[str, list[list[int]]] = result.series.get("inventory_by_market", {})
    largest = sorted(by_market, key=lambda t: (-max(abs(p[1]) for p in by_market[t]), t))
    for ticker in largest[:TOP_MARKETS_PLOTTED]:
        pts = by_market[ticker]
        ax.step([_seconds(result, p[0]) for p in pts], [p[1] / CENTI_PER_CONTRACT for p in pts],
                where="post", label=ticker, lw=1)
    ax.axhline(0, color="grey", lw=0.8)
    ax.legend(loc="best", fontsize="small")
    return figure_png(fig)


def exposure_plot(result: BacktestResult) -> str:
    """The worst-case loss of the open positions over time."""
    fig, ax = new_figure("Worst-case exposure over time", "seconds since the first frame",
                         "USD (worst-case loss)")
    points = result.series.get("inventory", [])
    if not points:
        _no_data(ax, "position")
        return figure_png(fig)
    ax.step([_seconds(result, p[0]) for p in points], [p[2] / MICROS for p in points],
            where="post", color="tab:red")
    ax.set_ylim(bottom=0)
    return figure_png(fig)


def fair_markout_plot(result: BacktestResult) -> str:
    """Mean markout per contract against the mid and against our fair, by horizon."""
    fig, ax = new_figure("Markouts by horizon (against the mid and against our fair)",
                         "horizon (s)", "USD per contract (mean)")
    curves: Mapping[str, list[list[Any]]] = result.series.get("markout_curves", {})
    drawn = False
    for name, label in (("mid", "against the mid"), ("fair", "against our fair")):
        rows = [(int(h[:-1]), total / MICROS / (contracts / CENTI_PER_CONTRACT))
                for h, total, contracts in curves.get(name, []) if h != "at_fill" and contracts]
        if rows:
            ax.plot([h for h, _ in rows], [v for _, v in rows], marker="o", label=label)
            drawn = True
    at_fill = [(total, contracts) for h, total, contracts in curves.get("fair", [])
               if h == "at_fill" and contracts]
    if at_fill:
        total, contracts = at_fill[0]
        ax.axhline(total / MICROS / (contracts / CENTI_PER_CONTRACT), color="tab:orange",
                   ls="--", lw=1, label="against our fair at the fill")
        drawn = True
    if drawn:
        ax.set_xscale("log")
        ax.legend(loc="best", fontsize="small")
    else:
        _no_data(ax, "fill")
    ax.axhline(0, color="grey", lw=0.8)
    return figure_png(fig)


def _histogram(ax: Any, h: Mapping[str, Any], label: str) -> bool:
    bins_ns: Sequence[Sequence[int]] = h["bins_ns"]
    if not bins_ns:
        return False
    # Each bin drawn at its top, capped at the exact maximum (a constant shows as itself).
    ax.hist([min(upper, h["max_ns"]) / _NS_PER_MS for _, upper, _ in bins_ns], bins=30,
            weights=[count for _, _, count in bins_ns], alpha=0.6, label=label)
    return True


def latency_plots(result: BacktestResult) -> list[str]:
    """Histograms: time to quote and to confirm; the round trips drawn per request type."""
    lat = result.summary["metrics"]["latency_ns"]
    out = []
    fig, ax = new_figure("Latency: RFQ to quote and accept to confirm (virtual time)",
                         "milliseconds", "count")
    drawn = [_histogram(ax, lat["rfq_to_quote"], "RFQ seen -> first quote sent"),
             _histogram(ax, lat["accept_to_confirm"], "accept seen -> confirm sent")]
    if any(drawn):
        ax.legend(loc="best", fontsize="small")
    else:
        _no_data(ax, "RFQ quoted or accepted")
    out.append(figure_png(fig))
    fig, ax = new_figure("Latency: round trips by request type", "milliseconds", "count")
    trips = result.summary.get("round_trips_drawn_ns", {})
    drawn = [_histogram(ax, h, kind) for kind, h in trips.items()]
    if any(drawn):
        ax.legend(loc="best", fontsize="small")
    else:
        _no_data(ax, "round trip drawn from the latency model (recorded answers)")
    out.append(figure_png(fig))
    return out


def _ms(ns: int | None) -> str:
    return "—" if ns is None else f"{ns / _NS_PER_MS:.3f} ms"


def latency_rows(lat: Mapping[str, Any],
                 trips: Mapping[str, Any]) -> list[list[object]]:
    """Count and quantiles of each measured latency (a table's rows)."""
    named = [("RFQ seen -> first quote sent", lat["rfq_to_quote"]),
             ("accept seen -> confirm sent", lat["accept_to_confirm"]),
             *((f"round trip: {kind}", h) for kind, h in trips.items())]
    return [[name, h["count"], _ms(h["p50_ns"]), _ms(h["p90_ns"]), _ms(h["p99_ns"]),
             _ms(h["max_ns"])] for name, h in named]


def _short(name: str, width: int = 24) -> str:
    # Requester ids are 64-hex hashes: the head identifies them on the page.
    return name if len(name) <= width else name[: width - 1] + "…"


def _row(name: str, s: Mapping[str, Any]) -> list[object]:
    quotes, accepts = s.get("quotes", 0), s.get("accepts", 0)
    return [name or "(none)", quotes, accepts, f"{accepts / quotes if quotes else 0.0:.1%}",
            s.get("fills", 0), format_fp(s.get("contracts_centi", 0)),
            usd(s.get("fees_micros", 0)), usd(s.get("pnl_realized_micros", 0)),
            usd(s.get("pnl_marked_micros", 0)), usd(s.get("markout_60s_micros")),
            usd(s.get("markout_fair_at_fill_micros"))]


def breakdown_rows(table: Mapping[str, Mapping[str, Any]], top: int = TOP_ROWS, *,
                   short_names: bool = False) -> list[list[object]]:
    """The ``top`` rows by |PnL marked| (ties by name), then one "other" row summing the rest;
    ``short_names`` cuts long names (requester ids) to their head."""
    names = sorted(table, key=lambda n: (-abs(table[n].get("pnl_marked_micros", 0)), n))
    rows = [_row(_short(n) if short_names else n, table[n]) for n in names[:top]]
    rest = names[top:]
    if rest:
        other: dict[str, Any] = {}
        for n in rest:
            for key in _SUMMED:
                v = table[n].get(key)
                if v is not None:
                    other[key] = other.get(key, 0) + v
        rows.append(_row(f"other ({len(rest)})", other))
    return rows
