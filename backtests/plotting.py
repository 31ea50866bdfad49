"""The report's plotting helpers: matplotlib figures (Agg, no display) embedded as PNGs, and
exact dollar labels. Shared by ``backtests.report``, its parts and the sweep's overview."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from quoter.domain.money import format_dollars

__all__ = ["MICROS", "NS", "figure_png", "new_figure", "usd"]

NS = 1_000_000_000
MICROS = 1_000_000


def usd(micros: int | None) -> str:
    """Exact dollars with 6 decimals, or a dash."""
    return "—" if micros is None else format_dollars(micros, 6)


def figure_png(fig: Figure) -> str:
    """The figure as an ``<img>`` with an embedded PNG."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    title = fig.axes[0].get_title() if fig.axes else "plot"
    return (f'<img class="plot" alt="{html.escape(title)}" '
            f'src="data:image/png;base64,{data}">')


def new_figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=(7.5, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax
