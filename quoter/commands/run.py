"""``quoter run``: the long-lived quoting service against Kalshi (demo by default) or the sim."""

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
from quoter.service.environment import add_settings_arguments, settings_from_args
from quoter.service.live_view import wants_live_view

__all__ = ["register", "run"]

_EPILOG = """\
credentials come from the environment (never from YAML):
  QUOTER_API_KEY_ID         the API key id shown when the key was created
  QUOTER_PRIVATE_KEY_PATH   its PEM private key file (must be chmod 600)
modes: shadow = decode and price, send nothing; paper = against the simulator
       (QUOTER_SIM_URL, default http://127.0.0.1:8765, see `quoter sim`); live = real orders.
production needs --env prod AND --i-understand-this-is-production on the command line.
control: `quoter halt|resume|cancel-all|status`; a KILL file next to the database, or SIGUSR1,
also halts; SIGHUP (or editing the config file) reloads the strategy config.
"""


def register(subparsers: Any) -> None:
    """Add the ``run`` subcommand."""
    p = subparsers.add_parser(
        "run", help="run the quoting service",
        description="Run the RFQ quoting service until SIGINT/SIGTERM.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=shipped_path, required=True,
                   help="strategy config YAML (config/... also finds the shipped examples)")
    p.add_argument("--key-id", dest="api_key_id", help="API key id (or QUOTER_API_KEY_ID)")
    p.add_argument("--key-file", dest="private_key_path", type=Path,
                   help="private key PEM (or QUOTER_PRIVATE_KEY_PATH)")
    p.add_argument("--shards", type=int, default=1,
                   help="communications connections (shard_factor, 1-100; default 1)")
    p.add_argument("--sim-url", dest="sim_url",
                   help="simulator URL for --mode paper (or QUOTER_SIM_URL; "
                   "default http://127.0.0.1:8765)")
    p.add_argument("--view", choices=["auto", "live", "activity", "none"], default="auto",
                   help="live = a full-screen view on a terminal, activity = one line per "
                   "decision or fill, auto = live on a terminal else activity "
                   "(default: %(default)s)")
    p.add_argument("--log-file", type=Path, metavar="PATH",
                   help="while the live view is up, logs show below it and go to this file "
                   "(default: quoter.log next to the database); otherwise logs go to stderr")
    p.add_argument("--reconcile-interval", type=float, default=30.0, metavar="SECONDS",
                   help="how often positions are compared with the exchange's "
                   "(default: %(default)s)")
    add_settings_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the service; 0 after an orderly stop, 1 on a fatal error."""
    from quoter.service.app import Service, ServiceOptions

    if not 1 <= args.shards <= 100:
        print("quoter run: --shards must be 1..100", file=sys.stderr)
        return 2
    overrides = {k: getattr(args, k) for k in ("api_key_id", "private_key_path", "sim_url")
                 if getattr(args, k) is not None}
    clock = LiveClock()
    try:
        settings = settings_from_args(args, **overrides)
        live = wants_live_view(args.view, sys.stdout)
        tail = None
        if live or args.log_file is not None:
            tail = LogTail(path=args.log_file or settings.db_path.parent / "quoter.log")
        redactor = configure_logging(clock, fmt="console" if live else settings.log_format,
                                     level=settings.log_level, stream=tail)
        if settings.api_key_id:
            redactor.add_secret(settings.api_key_id)
        service = Service(settings, ServiceOptions(
            config_path=args.config, shards=args.shards, view=args.view,
            reconcile_interval_s=args.reconcile_interval, install_signals=True,
            log_lines=(lambda: list(tail.lines)) if live and tail is not None else None,
        ), clock=clock)
        try:
            asyncio.run(service.run())
        finally:
            if tail is not None:
                tail.close()
                print(f"quoter run: log in {tail.path}", file=sys.stderr)
    except QuoterError as exc:
        print(f"quoter run: {exc}", file=sys.stderr)
        return 1
    return 0
