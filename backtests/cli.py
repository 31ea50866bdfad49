"""The backtest command line: ``python -m backtests`` / ``quoter-backtest``.

``run`` backtests one config on recorded inputs and writes ``summary.json``, ``fills.csv`` and
``report.html``; ``sweep`` runs a grid of config overrides and writes a ranked table. It lives
here, not in ``quoter.cli``, because the service package never imports ``backtests``: the
same two commands reach ``quoter`` as ``quoter backtest`` and ``quoter sweep`` through its
``quoter.commands`` entry-point group (:func:`register_backtest`, :func:`register_sweep`).

Errors are one line on stderr, never a traceback. Exit status: 0 done; 1 the inputs cannot be
read (missing, not gzip, a broken recording, no decodable frame); 2 bad usage, config or grid;
3 the requested sweep backend is not available here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backtests.names import CALIBRATIONS, FALLBACKS, OBJECTIVE_NAMES, auction_names
from quoter.config import load_config
from quoter.errors import ConfigError, QuoterError

__all__ = ["EXIT_BACKEND", "EXIT_INPUT", "EXIT_USAGE", "build_parser", "main",
           "register_backtest", "register_sweep"]

PROG = "quoter-backtest"
EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, metavar="C",
                   help="the strategy config (YAML) to backtest")
    p.add_argument("--input", "--frames", dest="input", required=True, type=Path, nargs="+",
                   action="extend", metavar="FILE", help="recordings, captures or interchange "
                   "files (any mix; merged by receive time)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="where the reports are written (created)")
    p.add_argument("--auction", choices=auction_names(), default=None,
                   help="what the requester does with our quotes: a built-in model or a user "
                   "model of the quoter.auction_models entry-point group (default: recorded; "
                   "synthetic with --synthetic-rfqs)")
    p.add_argument("--calibration", choices=CALIBRATIONS, default="binned",
                   help="with --auction calibrated: fit P(taken) by our edge in 1-cent bins, "
                   "or by a logistic regression on our edge, the RFQ's size, requester, "
                   "series, time to close and side (default: %(default)s)")
    p.add_argument("--fallback", choices=FALLBACKS, default="none",
                   help="with --auction recorded: who decides quotes the recording never saw "
                   "(default: %(default)s, they are not accepted)")
    p.add_argument("--synthetic-rfqs", type=float, default=None,
                   metavar="RATE_PER_MARKET_PER_MIN",
                   help="add Poisson RFQ arrivals on every market the inputs have books for "
                   "(for market-data-only captures); written to DIR/synthetic-rfqs.jsonl.gz")
    p.add_argument("--yes-share", type=_share, default=0.5, metavar="SHARE",
                   help="with --synthetic-rfqs: the share of uninformed requesters who want "
                   "YES (default: %(default)s)")
    p.add_argument("--informed-share", type=_share, default=0.0, metavar="SHARE",
                   help="with --synthetic-rfqs: the share of requesters who know the mid "
                   "--informed-horizon-s ahead (default: %(default)s)")
    p.add_argument("--informed-horizon-s", type=int, default=60, metavar="S",
                   help="how far ahead informed requesters see (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of every model (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a share: {text!r}") from None
    if not 0 <= value <= 1:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"a share is in [0, 1], got {text}")
    return value


def _add_run(sub: Any, name: str) -> argparse.ArgumentParser:
    run: argparse.ArgumentParser = sub.add_parser(
        name, help="backtest one config; write summary.json and report.html",
        description="Backtest one config on recorded frames through the production kernel.")
    _common(run)
    run.set_defaults(func=_guarded(_run, run.prog))
    return run


def _add_sweep(sub: Any, name: str) -> argparse.ArgumentParser:
    sweep: argparse.ArgumentParser = sub.add_parser(
        name, help="backtest a grid of config overrides; rank them",
        description="Backtest every point of a grid of config overrides and rank them.")
    _common(sweep)
    sweep.add_argument("--grid", required=True, type=Path, metavar="GRID",
                       help="YAML: parameter path -> list of values (cartesian product)")
    sweep.add_argument("--workers", type=int, default=2,
                       help="worker processes (--backend local) or CPUs of a local Ray "
                       "(default: %(default)s)")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="local processes or a Ray cluster (default: %(default)s)")
    sweep.add_argument("--address", default=None,
                       help="with --backend ray: the cluster address (default: a local Ray)")
    sweep.add_argument("--objective", choices=OBJECTIVE_NAMES, default="pnl_marked",
                       help="what ranks the points: PnL marked or realised, the fills' 60 s "
                       "markouts net of fees, or PnL per dollar of worst-case loss (default: "
                       "%(default)s)")
    sweep.add_argument("--samples", type=int, default=None, metavar="N",
                       help="run N points drawn at random (with --seed) instead of the whole "
                       "grid")
    sweep.set_defaults(func=_guarded(_sweep, sweep.prog))
    return sweep


def build_parser() -> argparse.ArgumentParser:
    """The parser with the ``run`` and ``sweep`` subcommands."""
    parser = argparse.ArgumentParser(prog=PROG, description="Backtest strategy configs on "
                                     "recorded frames through the production kernel.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(sub, "run")
    _add_sweep(sub, "sweep")
    return parser


def register_backtest(sub: Any) -> None:
    """``quoter backtest`` (the ``quoter.commands`` entry point): ``run`` under that name."""
    _add_run(sub, "backtest")


def register_sweep(sub: Any) -> None:
    """``quoter sweep`` (the ``quoter.commands`` entry point)."""
    _add_sweep(sub, "sweep")


@contextmanager
def _progress(enabled: bool, what: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (``done, total`` updates), when it is a terminal."""
    # rich is imported here, not at the top: ``quoter`` builds this module's parsers on
    # every start, and only a backtest draws a bar.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class _Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.speed or 0:,.0f} {unit}/s")

    console = Console(stderr=True)
    bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), _Rate(),
                   TimeRemainingColumn(), console=console,
                   disable=not (enabled and console.is_terminal), transient=True)
    task = bar.add_task(what, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def _inputs(paths: Sequence[Path]) -> list[Path]:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise _InputError(f"no such input file: {', '.join(missing)}")
    return list(paths)


class _InputError(Exception):
    pass


def _auction(args: argparse.Namespace) -> str:
    if args.auction is not None:
        return str(args.auction)
    # Synthetic RFQs have no recorded outcome: their requesters act on their drawn intents.
    return "synthetic" if args.synthetic_rfqs is not None else "recorded"


def _with_synthetic(args: argparse.Namespace,
                    inputs: list[Path]) -> tuple[list[Path], Path | None]:
    """The inputs plus ``DIR/synthetic-rfqs.jsonl.gz`` when ``--synthetic-rfqs`` asks, and
    the intents file of those RFQs."""
    if args.synthetic_rfqs is None:
        return inputs, None
    from backtests.synthetic import SyntheticRfqs, intents_path, write_synthetic_rfqs

    spec = SyntheticRfqs(args.synthetic_rfqs, seed=args.seed, yes_share=args.yes_share,
                         informed_share=args.informed_share,
                         informed_horizon_s=args.informed_horizon_s)  # ConfigError if bad
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "synthetic-rfqs.jsonl.gz"
    if write_synthetic_rfqs(inputs, path, spec) == 0:
        raise _InputError("--synthetic-rfqs: the inputs hold no order book to put RFQs on")
    return [*inputs, path], intents_path(path)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from backtests.report import usd, write_reports
    from backtests.runner import auction_spec, backtest

    inputs = _inputs(args.input)
    config = load_config(args.config)
    inputs, intents = _with_synthetic(args, inputs)
    spec = auction_spec(_auction(args), inputs, config, seed=args.seed,
                        fallback=args.fallback, intents=intents,
                        calibration=args.calibration)
    with _progress(not args.no_progress, "backtest", "frames") as progress:
        result = backtest(inputs, config, spec, seed=args.seed, progress=progress)
    m = result.summary["metrics"]
    if m["frames"] and m["decode_errors"] == m["frames"]:
        raise _InputError("no frame of the inputs decoded: are they Kalshi frames?")
    paths = write_reports(result, args.out)
    table = Table(title=f"backtest ({spec.name})", show_header=False)
    for label, value in (
        ("frames", m["frames"]), ("RFQs seen", m["rfqs_seen"]),
        ("quotes placed", m["quotes_placed"]), ("accepts", m["accepts"]),
        ("win rate", f"{m['win_rate']:.1%}"), ("fills", m["fills"]),
        ("PnL realised", usd(m["pnl_realized_micros"])),
        ("PnL marked", usd(m["pnl_marked_micros"])),
    ):
        table.add_row(label, str(value))
    console = Console()
    console.print(table)
    console.print(f"wrote {paths['summary']} and {paths['report']}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from backtests.runner import auction_spec
    from backtests.sweep import load_grid, objective_text, points_of, run_sweep, write_sweep_reports

    inputs = _inputs(args.input)
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    points = points_of(args.config, load_grid(args.grid), samples=args.samples, seed=args.seed)
    inputs, intents = _with_synthetic(args, inputs)
    spec = auction_spec(_auction(args), inputs, load_config(args.config), seed=args.seed,
                        fallback=args.fallback, intents=intents,
                        calibration=args.calibration)
    with _progress(not args.no_progress, "sweep", "points") as progress:
        ranked = run_sweep(points, inputs, spec, args.out, seed=args.seed,
                           workers=args.workers, backend=args.backend, address=args.address,
                           objective=args.objective, progress=progress)
    paths = write_sweep_reports(ranked, args.out)
    table = Table(title=f"sweep ranked by {args.objective}")
    for col in ("rank", "overrides", args.objective, "fills", "win rate"):
        table.add_column(col)
    for r in ranked:
        table.add_row(str(r["rank"]), ", ".join(f"{k}={v}" for k, v in r["overrides"].items()),
                      objective_text(args.objective, r["value"]), str(r["metrics"]["fills"]),
                      f"{r['metrics']['win_rate']:.1%}")
    console = Console()
    console.print(table)
    console.print(f"wrote {paths['table']} and {paths['report']}")
    return 0


def _fail(prog: str, code: int, message: str) -> int:
    print(f"{prog}: error: {'; '.join(message.splitlines()) or 'failed'}", file=sys.stderr)
    return code


def _guarded(func: Callable[[argparse.Namespace], int],
             prog: str) -> Callable[[argparse.Namespace], int]:
    """``func`` with every expected failure as one line on stderr and its exit status."""
    def run(args: argparse.Namespace) -> int:
        from backtests.sweep import BackendUnavailableError

        try:
            return func(args)
        except ConfigError as exc:
            return _fail(prog, EXIT_USAGE, str(exc))
        except BackendUnavailableError as exc:
            return _fail(prog, EXIT_BACKEND, str(exc))
        except _InputError as exc:
            return _fail(prog, EXIT_INPUT, str(exc))
        except (QuoterError, OSError, EOFError, UnicodeDecodeError) as exc:
            # A broken input (not gzip, a truncated or malformed recording) or an unwritable
            # --out.
            return _fail(prog, EXIT_INPUT, f"{type(exc).__name__}: {exc}")
        except KeyboardInterrupt:
            return _fail(prog, 130, "interrupted")

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    status: int = func(args)
    return status
