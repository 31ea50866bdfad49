"""``quoter halt | resume | cancel-all | status``: operate a running service.

Each subcommand reads ``QUOTER_CONTROL_HOST`` / ``QUOTER_CONTROL_PORT`` and the token
(``QUOTER_CONTROL_TOKEN`` or the token file, ``QUOTER_CONTROL_TOKEN_FILE``); ``--port`` and
``--token-file`` override them. Exit status: 0 done, 1 the service refused or was unreachable.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from quoter.errors import QuoterError
from quoter.service.control_client import ControlClient
from quoter.service.environment import ControlSettings

__all__ = ["register", "run"]

_HELP = {
    "halt": "stop quoting and pull open quotes",
    "resume": "resume quoting after a halt",
    "cancel-all": "cancel every open quote (quoting continues unless halted)",
    "status": "print the service's status (--json for machines)",
}


def register(subparsers: Any) -> None:
    """Add the halt, resume, cancel-all and status subcommands."""
    for name, help_text in _HELP.items():
        parser: argparse.ArgumentParser = subparsers.add_parser(
            name, help=help_text, description=help_text
        )
        parser.add_argument("--port", type=int, help="control port (default: settings)")
        parser.add_argument("--token-file", type=Path, help="control token file")
        parser.add_argument(
            "--timeout", type=float, default=5.0, help="seconds to wait (default 5)"
        )
        if name == "halt":
            parser.add_argument("--reason", default="operator", help="why (logged and stored)")
        if name == "status":
            parser.add_argument("--json", action="store_true",
                                help="print the status document as JSON (stable keys)")
        parser.set_defaults(func=run, control_action=name)


def run(args: argparse.Namespace) -> int:
    """Send one control action and print the service's answer."""
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["control_port"] = args.port
    if args.token_file is not None:
        overrides["control_token_file"] = args.token_file
    try:
        settings = ControlSettings(**overrides)
        client = ControlClient.from_settings(settings, timeout_s=args.timeout)
        action: str = args.control_action
        if action == "halt":
            result = client.halt(args.reason)
        elif action == "resume":
            result = client.resume()
        elif action == "cancel-all":
            result = client.cancel_all()
        else:
            result = client.status()
    except (QuoterError, ValidationError, ValueError) as exc:
        print(f"quoter {args.control_action}: {exc}", file=sys.stderr)
        return 1
    if action == "status" and not args.json:
        print_status(result)
        return 0
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def print_status(document: dict[str, Any]) -> None:
    """Print the status as the live view draws it, once, at the terminal's width."""
    from rich.console import Console

    from quoter.service.live_view import render
    from quoter.service.status import from_json_dict

    width = shutil.get_terminal_size((120, 40)).columns
    Console(width=width, highlight=False, soft_wrap=False).print(render(from_json_dict(document)))
