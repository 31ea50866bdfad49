"""``quoter decode FILE... [--json]``: check that recorded frames decode, and show them.

Every line is decoded and translated to domain events, exactly as the live feed would. The
report counts frames per ``type`` (``unknown:<type>`` for types we do not model) and lists
every failure as ``file:line: reason``.

Exit status: 0 when every line decoded (unknown types included: they are well-formed frames
the feed counts and skips, so new Kalshi message types do not fail a check of old tooling);
1 when any line was malformed or a file could not be read; 2 for usage errors (argparse).
With ``--json`` each decoded frame is printed on stdout as one JSON line (unknown frames as
their raw text) and the report goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import msgspec

from quoter.errors import DecodeError
from quoter.kalshi.frames import iter_frames
from quoter.kalshi.schemas import UnknownMessage, decode_frame, frame_type
from quoter.kalshi.translate import to_events
from quoter.recording.format import SUFFIX, recording_files

__all__ = ["expand_paths", "register", "run"]

_MAX_REASON_CHARS = 300


def register(subparsers: Any) -> None:
    """Add the ``decode`` subcommand."""
    parser = subparsers.add_parser(
        "decode",
        help="decode recorded WebSocket frames and report counts and errors",
        description=(
            "Decode frame files (one Kalshi frame per line, bare or wrapped as "
            '{"ts_recv_ns": N, "frame": ...}; "-" is stdin; .gz accepted; a directory means '
            "its recording files, in order)."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="frame file, recording directory (its files in order), or - for "
                        "stdin")
    parser.add_argument(
        "--json", action="store_true", help="print each decoded frame as one JSON line"
    )
    parser.set_defaults(func=run)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[:_MAX_REASON_CHARS] + "..."


def expand_paths(paths: list[str], errors: list[str]) -> list[str]:
    """Replace each directory by its recording files, in recording order (``rec-*.jsonl.gz``)."""
    out: list[str] = []
    for path in paths:
        if path != "-" and Path(path).is_dir():
            files = recording_files(path)
            if not files:
                errors.append(f"{path}: no recording files (rec-*{SUFFIX}) in this directory")
            out += [str(f) for f in files]
        else:
            out.append(path)
    return out


def run(args: argparse.Namespace) -> int:
    """Decode every line of every file; return 0 only if none was malformed."""
    out: TextIO = sys.stdout
    report: TextIO = sys.stderr if args.json else sys.stdout
    counts: Counter[str] = Counter()
    errors: list[str] = []
    for path in expand_paths(args.files, errors):
        name = "<stdin>" if path == "-" else path
        try:
            for line in iter_frames(path):
                ts = line.ts_recv_ns or 0
                try:
                    msg = decode_frame(line.raw, ts)
                    to_events(msg, ts)
                except DecodeError as exc:
                    errors.append(f"{name}:{line.line_no}: {_short(str(exc))}")
                    counts["error:" + (exc.msg_type or "frame")] += 1
                    continue
                counts[frame_type(msg)] += 1
                if args.json:
                    if isinstance(msg, UnknownMessage):
                        out.write(msg.raw.decode("utf-8", "replace") + "\n")
                    else:
                        out.write(msgspec.json.encode(msg).decode("utf-8") + "\n")
        except BrokenPipeError:
            raise  # our stdout was closed (`| head`): not the input's fault; cli.main handles it
        except FileNotFoundError:
            errors.append(f"{name}: not found")
        except (OSError, EOFError, zlib.error) as exc:
            # A corrupt .gz raises zlib.error (bad data) or BadGzipFile / EOFError (bad framing).
            errors.append(f"{name}: cannot read: {exc}")
    for msg_type, count in sorted(counts.items()):
        report.write(f"{count:8d}  {msg_type}\n")
    for error in errors:
        report.write(f"error: {error}\n")
    total = sum(counts.values())
    report.write(f"{total} frames, {len(errors)} errors\n")
    return 1 if errors else 0
