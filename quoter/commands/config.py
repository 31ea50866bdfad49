"""``quoter config validate FILE...`` and ``quoter config schema``.

``validate`` loads each strategy config exactly as the service would (third-party modules from
entry points included) and prints ``FILE: OK (N strategies, hash H)`` or every error as
``FILE:LINE: field.path: message``; exit status 1 if any file is invalid. ``schema`` prints the
JSON Schema of the YAML (human-unit keys, each module's params) for editors and reviews.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from quoter.config import config_hash, config_schema, load_config
from quoter.config.shipped import shipped_path
from quoter.errors import ConfigError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``config`` subcommand with ``validate`` and ``schema``."""
    parser = subparsers.add_parser(
        "config",
        help="validate strategy configs or print their JSON Schema",
        description="Validate YAML strategy configs, or print the JSON Schema they follow.",
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    validate = actions.add_parser(
        "validate", help="validate config files (exit 1 on any error)",
        description="Validate each FILE; print OK or every error as FILE:LINE: path: message.",
    )
    validate.add_argument("files", nargs="+", type=shipped_path, metavar="FILE",
                          help="strategy config YAML (config/... also finds the shipped ones)")
    actions.add_parser("schema", help="print the JSON Schema of a config file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``config validate`` or ``config schema``."""
    if args.config_action == "schema":
        try:
            schema = config_schema()
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(json.dumps(schema, indent=2, sort_keys=True))
        return 0
    status = 0
    for path in args.files:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            print(exc)
            status = 1
            continue
        n = len(cfg.strategies)
        noun = "strategy" if n == 1 else "strategies"
        print(f"{path}: OK ({n} {noun}, hash {config_hash(cfg)[:12]})")
    return status
