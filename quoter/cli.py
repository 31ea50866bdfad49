# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this marker)
"""The ``quoter`` command line.

Each subcommand lives in its own module under ``quoter.commands`` exposing
``register(subparsers)``, which adds a parser whose ``func`` default is ``run(args) -> int``.
Installed packages add subcommands the same way through the ``quoter.commands`` entry-point
group (``backtests`` adds ``backtest`` and ``sweep``; this package never imports it). A
plugin that fails to load is reported on stderr and left out; the built-in commands work.
Every parser shows its defaults and plain text (no reStructuredText markup) in ``--help``.
Shell completion: ``eval "$(register-python-argcomplete quoter)"`` (bash/zsh, argcomplete).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from typing import Any

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
    "explain",
)


#: Entry-point group of command plugins: ``name = "pkg.module:register"``.
PLUGIN_GROUP = "quoter.commands"

_LITERAL = re.compile(r"``([^`]+)``")
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain(text: str) -> str:
    """Strip reStructuredText markup from docstrings used as help (``x`` and :role:`x`)."""
    return _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text))


class HelpFormatter(argparse.HelpFormatter):
    """Show each option's default (unless the help already says it) and plain text."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            text and "%(default)" not in text and "default" not in text.lower()
            and default not in (None, False, argparse.SUPPRESS)
            and not isinstance(action, argparse._SubParsersAction)
            and (action.option_strings or action.nargs in ("?", "*"))
        ):
            text += " (default: %(default)s)"
        return text

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))


class RawHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """:class:`HelpFormatter` keeping the description's and epilog's line breaks."""

    def _format_text(self, text: str) -> str:
        return argparse.RawDescriptionHelpFormatter._format_text(self, plain(text))


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _parsers(sub)


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer a shell's completion request (argcomplete sets _ARGCOMPLETE) and exit."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:  # completion is a convenience: never fail a command for it
        return
    argcomplete.autocomplete(parser)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="quoter",
        description="An automated RFQ market maker for Kalshi.",
        epilog='shell completion: eval "$(register-python-argcomplete quoter)"',
    )
    parser.add_argument("--version", action="version", version=f"quoter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"quoter.commands.{name}")
        module.register(sub)
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        if ep.name in COMMANDS or ep.name in sub.choices:
            continue  # a plugin never shadows a built-in command
        try:
            ep.load()(sub)
        except Exception as exc:  # a third party's code: report it, keep the CLI usable
            print(f"quoter: command plugin {ep.name!r} ({ep.value}) not loaded: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
    for p in _parsers(parser):
        current: Any = p.formatter_class
        raw = isinstance(current, type) and issubclass(
            current, argparse.RawDescriptionHelpFormatter
        )
        formatter: Any = RawHelpFormatter if raw else HelpFormatter
        p.formatter_class = formatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    _complete(parser)
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
