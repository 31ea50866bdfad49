"""The ``quoter`` command line.

Each subcommand lives in its own module under ``quoter.commands`` exposing
``register(subparsers)``, which adds a parser whose ``func`` default is ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from quoter import __version__

__all__ = ["main"]

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "run",
    "decode",
    "control",
    "config",
    "sim",
    "demo",
    "record",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="quoter",
        description="An automated RFQ market maker for Kalshi.",
    )
    parser.add_argument("--version", action="version", version=f"quoter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"quoter.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        status: int = func(args)
    except BrokenPipeError:
        # The reader went away (`quoter config schema | head`): that ends the output, it is
        # not a failure. Point stdout at /dev/null so the interpreter's final flush is quiet.
        _silence_stdout()
        return 0
    return status


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
