"""Operator views of a running service: a live terminal dashboard and a line-per-event printer.

* :func:`render` turns a :class:`~quoter.service.status.StatusSnapshot` into rich tables (pure).
* :class:`LiveView` redraws that on a TTY, about 4 times a second.
* :class:`ActivityPrinter` is for logs and CI (no TTY): one compact line per new decision, fill
  or halt change, so a ``make demo`` log shows activity as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from types import TracebackType
from typing import Final, TextIO

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from quoter.domain.money import format_fp
from quoter.observability.logging import format_wall_ns
from quoter.service.status import (
    DecisionView,
    FillView,
    StatusSnapshot,
    dollars,
    markouts_line,
    ordered_counts,
    ordered_reasons,
    pnl_line,
    usd,
    venue_text,
)

__all__ = [
    "ActivityPrinter",
    "LiveView",
    "format_decision",
    "format_duration_ms",
    "format_fill",
    "is_tty",
    "render",
    "render_screen",
    "venue_text",
    "wants_live_view",
]

#: How many recent decisions the live view shows.
RECENT_DECISIONS: Final = 12
#: At most this many open quotes are listed (oldest first); the title keeps the full count.
MAX_QUOTE_ROWS: Final = 15


def format_duration_ms(ms: int) -> str:
    """Format a duration in milliseconds as ``H:MM:SS.mmm``."""
    sign = "-" if ms < 0 else ""
    seconds, millis = divmod(abs(ms), 1000)
    minutes, secs = divmod(seconds, 60)
    hours, mins = divmod(minutes, 60)
    return f"{sign}{hours}:{mins:02d}:{secs:02d}.{millis:03d}"


def _reasons_line(title: str, reasons: Mapping[str, int]) -> Text | None:
    items = ordered_reasons(reasons)
    if not items:
        return None
    return Text(f"{title}: " + ", ".join(f"{k} {v}" for k, v in items))


def _header(s: StatusSnapshot) -> Text:
    state = Text(f"HALTED ({s.halt_reason})" if s.halted else "QUOTING",
                 style="bold red" if s.halted else "bold green")
    text = Text.assemble(
        ("quoter", "bold"), f"  mode {s.mode}  {venue_text(s)}  ", state,
        f"  uptime {format_duration_ms(s.uptime_ms)}",
    )
    counts = "  ".join(f"{k} {v}" for k, v in ordered_counts(s.counts))
    if counts:
        text.append("\n" + counts)
    return text


def _quotes_table(s: StatusSnapshot) -> Table:
    t = Table(title=f"open quotes ({len(s.open_quotes)})", title_justify="left", expand=False)
    for col in ("market", "rfq", "quote", "yes bid", "no bid", "state", "age", "strategy"):
        t.add_column(col, justify="right" if col in ("yes bid", "no bid", "age") else "left")
    for q in s.open_quotes[:MAX_QUOTE_ROWS]:
        t.add_row(
            q.market_ticker, q.rfq_id, q.quote_id, dollars(q.yes_bid_micros),
            dollars(q.no_bid_micros), q.state, f"{q.age_ms} ms", q.strategy,
        )
    hidden = len(s.open_quotes) - MAX_QUOTE_ROWS
    if hidden > 0:
        t.caption = f"... and {hidden} more"
    return t


def _shadow_table(s: StatusSnapshot) -> Table:
    """The quotes shadow mode would have sent, newest first."""
    shown = s.shadow_quotes[-MAX_QUOTE_ROWS:]
    t = Table(title=f"would-be quotes (shadow: nothing sent; {len(s.shadow_quotes)} recent)",
              title_justify="left")
    for col in ("market", "rfq", "yes bid", "no bid", "fair yes", "edge yes", "edge no",
                "strategy"):
        t.add_column(col, justify="left" if col in ("market", "rfq", "strategy") else "right")
    for q in reversed(shown):
        ey, en = q.edge_yes_micros, q.edge_no_micros
        t.add_row(
            q.market_ticker, q.rfq_id, dollars(q.yes_bid_micros), dollars(q.no_bid_micros),
            "-" if q.fair_yes_micros is None else dollars(q.fair_yes_micros),
            "-" if ey is None else dollars(ey), "-" if en is None else dollars(en), q.strategy,
        )
    return t


def _decisions_table(s: StatusSnapshot) -> Table:
    recent = s.recent_decisions[-RECENT_DECISIONS:]
    t = Table(title="recent decisions", title_justify="left")
    for col in ("time (UTC)", "market", "rfq", "decision", "reason", "strategy"):
        t.add_column(col)
    for d in reversed(recent):  # newest at the top
        t.add_row(
            format_wall_ns(d.wall_ns)[11:23], d.market_ticker, d.rfq_id, d.decision,
            d.detail or d.reason, d.strategy,
        )
    return t


def _positions_table(s: StatusSnapshot) -> Table:
    t = Table(
        title=(
            f"positions  {pnl_line(s)}"
            f"  worst-case exposure {usd(s.exposure_worst_case_micros)}"
        ),
        title_justify="left",
    )
    for col in ("market", "position", "exchange", "read (UTC)", "cost", "mid", "unrealized",
                "realized PnL", "fees"):
        t.add_column(col, justify="left" if col == "market" else "right")
    markouts = markouts_line(s)
    if markouts:
        t.caption = markouts
    for p in s.positions:
        exch = p.exchange_position_centi
        mismatch = exch is not None and exch != p.position_centi
        read = p.exchange_read_wall_ns
        t.add_row(
            p.market_ticker,
            format_fp(p.position_centi),
            Text("-" if exch is None else format_fp(exch), style="bold red" if mismatch else ""),
            "-" if read is None else format_wall_ns(read)[11:19],
            usd(p.cost_micros),
            "-" if p.mark_yes_micros is None else dollars(p.mark_yes_micros),
            "-" if p.unrealized_pnl_micros is None else usd(p.unrealized_pnl_micros),
            usd(p.realized_pnl_micros),
            usd(p.fees_micros),
        )
    return t


def _latency_table(s: StatusSnapshot) -> Table:
    t = Table(title="latency (us)", title_justify="left")
    t.add_column("series")
    for col in ("count", "p50", "p90", "p99", "max"):
        t.add_column(col, justify="right")
    for v in s.latencies:
        t.add_row(v.name, str(v.count), str(v.p50_us), str(v.p90_us), str(v.p99_us),
                  str(v.max_us))
    return t


def _log_panel(lines: list[str], height: int) -> RenderableType:
    body = Text("\n".join(line[-500:] for line in lines[-max(1, height - 2):]),
                no_wrap=True, overflow="ellipsis")
    return Panel(body, title="log", title_align="left", border_style="dim")


def render_screen(
    snapshot: StatusSnapshot, *, width: int, height: int, log_lines: Sequence[str] = (),
    banner: str = "",
) -> RenderableType:
    """Lay the view out to fit ``width`` x ``height``: header, tables, and the log's last lines.

    Each region is cropped to its share of the screen, so a small terminal (80 x 24) still
    shows the header, the counts and the top of every table; wide terminals put positions and
    latency beside quotes and decisions.
    """
    head = Text()
    if banner:
        head.append(banner + "\n", style="bold yellow")
    head.append_text(_header(snapshot))
    for line in (
        _reasons_line("declined", snapshot.decline_reasons),
        _reasons_line("not quoted", snapshot.no_quote_reasons),
    ):
        if line is not None:
            head.append("\n")
            head.append_text(line)
    head_lines = min(len(head.wrap(Console(width=width), width)), max(2, height // 3))
    layout = Layout()
    parts = [Layout(head, name="header", size=head_lines)]
    logs = list(log_lines)
    log_rows = min(len(logs) + 2, max(3, height // 4)) if logs else 0
    compact = height < 40
    quotes = _compact(
        _shadow_table(snapshot) if snapshot.mode == "shadow" else _quotes_table(snapshot),
        compact)
    positions = _compact(_positions_table(snapshot), compact)
    decisions = _compact(_decisions_table(snapshot), compact)
    body = Layout(name="body")
    if width >= 140:
        left, right = Layout(name="left"), Layout(name="right")
        left.split_column(Layout(quotes), Layout(decisions))
        right.split_column(Layout(positions),
                           Layout(_compact(_latency_table(snapshot), compact),
                                  size=len(snapshot.latencies) + (3 if compact else 5)))
        body.split_row(left, right)
    elif height < 30:
        # Small terminal: what is at stake first; the log panel shows the activity.
        body.split_column(Layout(quotes), Layout(positions))
    else:
        body.split_column(Layout(quotes), Layout(positions), Layout(decisions))
    parts.append(body)
    if log_rows:
        parts.append(Layout(_log_panel(logs, log_rows), name="log", size=log_rows))
    layout.split_column(*parts)
    return _Sized(layout, width, height)


def _compact(table: Table, compact: bool) -> Table:
    """Fewer rules on small screens: the title, a header line and the rows."""
    if compact:
        table.box = box.SIMPLE_HEAD
        table.show_edge = False
        table.pad_edge = False
    return table


class _Sized:
    """Render ``inner`` at exactly ``width`` x ``height`` (a Layout fills what it is given)."""

    def __init__(self, inner: RenderableType, width: int, height: int) -> None:
        self.inner, self.width, self.height = inner, width, height

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        yield from console.render(
            self.inner, options.update(width=self.width, height=self.height)
        )


def render(snapshot: StatusSnapshot) -> RenderableType:
    """Render a snapshot as a group: header and counts, quotes, decisions, positions, latency."""
    parts: list[RenderableType] = [_header(snapshot)]
    for line in (
        _reasons_line("declined", snapshot.decline_reasons),
        _reasons_line("not quoted", snapshot.no_quote_reasons),
    ):
        if line is not None:
            parts.append(line)
    parts += [
        _shadow_table(snapshot) if snapshot.mode == "shadow" else _quotes_table(snapshot),
        _decisions_table(snapshot),
        _positions_table(snapshot),
        _latency_table(snapshot),
    ]
    return Group(*parts)


def wants_live_view(mode: str, stream: TextIO | None = None) -> bool:
    """True if view ``mode`` means the full-screen view here (``auto``: on a terminal)."""
    return mode == "live" or (mode == "auto" and is_tty(stream))


def is_tty(stream: TextIO | None = None) -> bool:
    """Return True if ``stream`` (default stdout) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class LiveView:
    """Redraw :func:`render` of ``snapshot_fn()`` in place on a TTY.

    Use as a context manager, and drive it with :meth:`run` as a named task of the service's
    TaskGroup. Refreshing happens on the event loop, not on rich's refresh thread, because
    ``snapshot_fn`` reads state that the event loop owns and mutates.
    """

    def __init__(
        self,
        snapshot_fn: Callable[[], StatusSnapshot],
        *,
        console: Console | None = None,
        refresh_per_second: float = 4.0,
        log_lines: Callable[[], Sequence[str]] | None = None,
        banner: Callable[[], str] | None = None,
    ) -> None:
        if refresh_per_second <= 0:
            raise ValueError(f"refresh_per_second must be positive, got {refresh_per_second}")
        self._snapshot_fn = snapshot_fn
        self._log_lines = log_lines
        self._banner = banner
        self.refresh_per_second = refresh_per_second
        self._console = console or Console()
        self._live = Live(
            console=self._console,
            auto_refresh=False,
            refresh_per_second=refresh_per_second,
            transient=False,
            vertical_overflow="crop",
        )

    def __enter__(self) -> LiveView:
        self._live.start()
        self.refresh()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.refresh()  # leave the final state on screen
        self._live.stop()

    def screen(self) -> RenderableType:
        """What one redraw shows, sized to the console (one line spare: no scroll)."""
        width, height = self._console.size
        return render_screen(
            self._snapshot_fn(), width=width, height=max(10, height - 1),
            log_lines=self._log_lines() if self._log_lines is not None else (),
            banner=self._banner() if self._banner is not None else "",
        )

    def refresh(self) -> None:
        """Take a snapshot and redraw now."""
        self._live.update(self.screen(), refresh=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Redraw every ``1 / refresh_per_second`` seconds until ``stop`` is set."""
        interval_s = 1.0 / self.refresh_per_second
        while not stop.is_set():
            self.refresh()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await stop.wait()


class _Seen:
    """A bounded set: remembers the last ``capacity`` keys."""

    def __init__(self, capacity: int) -> None:
        self._order: deque[Hashable] = deque()
        self._keys: set[Hashable] = set()
        self._capacity = capacity

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; return True if it was new."""
        if key in self._keys:
            return False
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self._capacity:
            self._keys.discard(self._order.popleft())
        return True


def format_decision(d: DecisionView) -> str:
    """Format one decision as a compact log line."""
    parts = [format_wall_ns(d.wall_ns)[11:23], d.decision, d.market_ticker or "-",
             f"rfq={d.rfq_id or '-'}", f"reason={d.reason}"]
    if d.strategy:
        parts.append(f"strategy={d.strategy}")
    if d.detail:
        parts.append(d.detail)
    return " ".join(parts)


def format_fill(f: FillView) -> str:
    """Format one fill as a compact log line."""
    return (
        f"{format_wall_ns(f.wall_ns)[11:23]} fill {f.market_ticker} {f.side}"
        f" {format_fp(f.count_centi)} @ {dollars(f.price_micros)} fee {usd(f.fee_micros)}"
        f" trade={f.trade_id}{' taker' if f.is_taker else ''}"
    )


class ActivityPrinter:
    """Print one line per decision, fill or halt change not printed before (for non-TTY output).

    Feed it successive snapshots with :meth:`update`; items are recognised by value (decisions)
    or ``trade_id`` (fills), so overlapping windows of recent items print each item once.
    """

    def __init__(self, stream: TextIO | None = None, *, memory: int = 10_000) -> None:
        self._stream = stream
        self._decisions = _Seen(memory)
        self._fills = _Seen(memory)
        self._halted = False

    def update(self, snapshot: StatusSnapshot) -> list[str]:
        """Print what is new in ``snapshot`` (oldest first) and return the lines printed."""
        lines: list[str] = []
        if snapshot.halted != self._halted:
            self._halted = snapshot.halted
            lines.append(f"HALTED: {snapshot.halt_reason}" if snapshot.halted else "RESUMED")
        # Decisions and fills are merged in time order so the log reads as it happened.
        new: list[tuple[int, int, str]] = []
        for d in snapshot.recent_decisions:
            if self._decisions.add(d):
                new.append((d.wall_ns, len(new), format_decision(d)))
        for f in snapshot.recent_fills:
            if self._fills.add(f.trade_id):
                new.append((f.wall_ns, len(new), format_fill(f)))
        lines += [line for _, _, line in sorted(new)]
        if lines:
            stream = self._stream if self._stream is not None else sys.stdout
            stream.write("".join(f"{line}\n" for line in lines))
            stream.flush()
        return lines
