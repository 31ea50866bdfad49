"""The live view fits the terminal: rendered to fixed-size consoles, logs below, a banner above."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import structlog
from rich.console import Console
from test_status_views import snapshot

from quoter.clock import ReplayClock
from quoter.observability.logging import LogTail, configure_logging
from quoter.service.demo import DemoStage
from quoter.service.live_view import LiveView, render_screen

LOGS = [f"2026-12-01T00:00:{i:02d}Z [info] event_{i}" for i in range(40)]


def _screen(width: int, height: int, **kw: object) -> list[str]:
    console = Console(width=width, height=height, record=True, color_system=None,
                      file=io.StringIO())
    console.print(render_screen(snapshot(), width=width, height=height, **kw))  # type: ignore[arg-type]
    return console.export_text().splitlines()


@pytest.mark.parametrize(("width", "height"), [(80, 24), (100, 30), (160, 50)])
def test_the_screen_is_exactly_the_terminal(width: int, height: int) -> None:
    lines = _screen(width, height, log_lines=LOGS, banner="demo: quoting, 42 s left")
    assert len(lines) == height
    assert all(len(line) <= width for line in lines)
    assert lines[0].startswith("demo: quoting, 42 s left")
    assert lines[1].startswith("quoter  mode sim  env demo  QUOTING")
    text = "\n".join(lines)
    # The open quote's row and the position's row are on screen, not only their titles.
    assert "rfq-7" in text
    assert "positions  realized PnL $0.1184" in text
    # The newest log lines are at the bottom, inside the log panel.
    assert "event_39" in lines[-2]
    assert "event_0 " not in text


def test_wide_terminals_put_positions_and_latency_beside_the_quotes() -> None:
    lines = _screen(160, 50)
    row = next(line for line in lines if "open quotes" in line)
    assert "positions" in row
    assert any("latency (us)" in line for line in lines)


def test_the_log_goes_to_the_tail_and_its_file_not_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "quoter.log"
    tail = LogTail(capacity=3, path=path)
    try:
        configure_logging(ReplayClock(0), fmt="console", level="info", stream=tail)
        log = structlog.get_logger("t")
        for i in range(5):
            log.info("tick", i=i)
    finally:
        tail.close()
        configure_logging(ReplayClock(0), fmt="json", level="info", stream=io.StringIO())
    assert [line.split()[-1] for line in tail.lines] == ["i=2", "i=3", "i=4"]
    assert len(path.read_text().splitlines()) == 5


def test_the_live_view_draws_the_banner_and_the_log_tail() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=80, height=24, force_terminal=True, color_system=None)
    with LiveView(snapshot, console=console, log_lines=lambda: LOGS[:3],
                  banner=lambda: "demo: winding down") as view:
        view.refresh()
    out = buf.getvalue()
    assert "demo: winding down" in out
    assert "event_2" in out


def test_demo_stage_counts_down_then_winds_down() -> None:
    stage = DemoStage(60, start_ns=0)
    assert stage.banner(0) == "demo: quoting, 60 s left (Ctrl-C stops early)"
    assert stage.banner(59_000_000_001) == "demo: quoting, 1 s left (Ctrl-C stops early)"
    assert stage.remaining_s(61_000_000_000) == 0
    stage.winding_down = True
    assert stage.banner(61_000_000_000).startswith("demo: winding down")
    json.dumps(stage.banner(0))
