"""``--help`` for every command: every option explained, defaults shown, no markup; completion."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quoter.cli import _parsers, build_parser

ALL = list(_parsers(build_parser()))


def _help(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTER_")}
    env["COLUMNS"] = "100"
    out = subprocess.run([sys.executable, "-m", "quoter.cli", *args, "--help"], env=env,
                         capture_output=True, check=True, timeout=60)
    return out.stdout.decode()


@pytest.mark.parametrize("parser", ALL, ids=[p.prog for p in ALL])
def test_every_option_has_help_and_no_markup(parser: argparse.ArgumentParser) -> None:
    missing = [a.option_strings or a.dest for a in parser._actions
               if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert missing == []
    text = parser.format_help()
    assert "``" not in text
    assert ":class:" not in text


def test_run_help_explains_view_and_reconcile_with_defaults() -> None:
    text = " ".join(_help("run").split())
    assert "--view {auto,live,activity,none} live = a full-screen view" in text
    assert "(default: auto)" in text
    assert "--reconcile-interval SECONDS how often positions are compared" in text
    assert "(default: 30.0)" in text
    assert "(default: shadow, or QUOTER_MODE)" in text


def test_sim_help_is_plain_text() -> None:
    text = _help("sim")
    assert "``" not in text
    assert "--key-dir), serves" in " ".join(text.split())


def test_completion_answers_the_shell(tmp_path: Path) -> None:
    # What bash's completion hook does: argcomplete reads the line from the environment and
    # writes the candidates to file descriptor 8.
    out = tmp_path / "candidates"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTER_")}
    line = "quoter de"
    env |= {"_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line,
            "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
    subprocess.run([sys.executable, "-m", "quoter.cli"], env=env, check=False, timeout=60,
                   capture_output=True)
    assert sorted(out.read_text().split()) == ["decode", "demo"]
