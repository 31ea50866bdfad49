"""``quoter demo``: run the simulator and the service together, then print a summary."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from quoter.clock import LiveClock
from quoter.config.shipped import shipped_path
from quoter.errors import QuoterError
from quoter.observability.logging import LogTail, configure_logging
from quoter.service.live_view import wants_live_view
from quoter.service.summary import dump_summary_json, render_summary, summary_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="run the built-in simulated exchange and the service for a while, then summarize",
        description=(
            "Start the local Kalshi simulator and the quoting service (paper mode) on "
            "loopback, show activity as it happens, then stop quoting, let committed quotes "
            "fill, and print a summary checked against the simulator's ledger."
        ),
    )
    p.add_argument("--seconds", type=float, default=60.0, help="how long to quote (default 60)")
    p.add_argument("--config", type=shipped_path, default="config/demo.yaml",
                   help="strategy config (default config/demo.yaml)")
    p.add_argument("--world", type=shipped_path,
                   help="simulator world YAML (default: built-in world)")
    p.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    p.add_argument("--workdir", type=Path, default=Path("var/demo"),
                   help="where each run's database, recording and key go (default var/demo)")
    p.add_argument("--summary-json", type=Path, help="also write the summary as JSON here")
    p.add_argument("--view", choices=["auto", "live", "activity", "none"], default="auto",
                   help="live terminal view, activity lines, or nothing (default: auto)")
    p.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"],
                   help="least severe log lines shown (on stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 if the bot's books match the simulator's ledger."""
    from quoter.service.demo import run_demo

    if args.seconds <= 0:
        print("quoter demo: --seconds must be positive", file=sys.stderr)
        return 2
    # While the full-screen view is up, logs show below it (and go to a file), never over it.
    tail = LogTail(path=args.workdir / "demo.log") if wants_live_view(args.view) else None
    configure_logging(LiveClock(), fmt="console", level=args.log_level,
                      stream=tail if tail is not None else sys.stderr)
    try:
        result = asyncio.run(run_demo(
            seconds=args.seconds, config_path=args.config, workdir=args.workdir,
            seed=args.seed, world_path=args.world, view=args.view,
            log_lines=(lambda: list(tail.lines)) if tail is not None else None,
        ))
    except QuoterError as exc:
        print(f"quoter demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if tail is not None:
            tail.close()
    print(render_summary(result.snapshot, ledger_match=result.ledger_match,
                         ledger_diff=result.ledger_diff), end="")
    if args.summary_json is not None:
        data = summary_json(result.snapshot, result.ledger_match, result.ledger_diff)
        args.summary_json.write_text(dump_summary_json(data), encoding="utf-8")
        print(f"summary JSON: {args.summary_json}")
    return 0 if result.ledger_match else 1
