"""``quoter record``: passive capture of the exchange's feeds into a recording, without quoting.

Connects ``communications`` on ``--shards`` connections (RFQs and quotes, kalshi-api.md §2.6)
and, with ``--markets``, a data connection with ``--channels`` for those markets (order books
YES-priced, as the service subscribes them, §2.6). Every inbound frame is written verbatim to a
recording (``docs/recording-format.md``) with its header; subscribe commands are recorded too.
There is no engine and no REST call at all (so nothing is ever sent to the exchange but the
subscriptions). Runs until SIGINT/SIGTERM or ``--seconds``.

Frames are recorded raw, so ``quoter decode`` reads the files; they hold no engine steps, so
they are market data for backtests, not a service replay (``backtests.replay`` needs those).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from quoter import __version__
from quoter.clock import Clock, LiveClock
from quoter.errors import FatalError, QuoterError, TransportError
from quoter.kalshi.auth import Signer
from quoter.kalshi.source import BOOK_CHANNEL
from quoter.kalshi.ws import KalshiFeed, sharded_feeds
from quoter.kalshi.ws_types import FeedNotice, RawFrame
from quoter.observability.logging import configure_logging
from quoter.recording.recorder import Recorder
from quoter.service.environment import ENDPOINTS, Settings, build_settings

__all__ = ["RecordResult", "record", "register", "run"]

log = structlog.get_logger("quoter.record")

#: Channels the data connection subscribes for ``--markets`` unless ``--channels`` says.
DEFAULT_MARKET_CHANNELS: Final = (BOOK_CHANNEL, "ticker", "trade", "market_lifecycle_v2")
#: Channels that take no market filter (they are exchange-wide).
_UNFILTERED: Final = frozenset({"market_lifecycle_v2", "multivariate_market_lifecycle"})
_KNOWN: Final = frozenset({*DEFAULT_MARKET_CHANNELS, *_UNFILTERED})
_POLL_S: Final = 0.5
#: Failed connection attempts, before any connect succeeded, after which a capture gives up:
#: a recorder that never reached the exchange has recorded nothing and must say so.
MAX_CONNECT_FAILURES_BEFORE_FIRST: Final = 5


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What a capture wrote."""

    frames: int
    files: tuple[Path, ...]
    dropped_lines: int


def register(subparsers: Any) -> None:
    """Add the ``record`` subcommand."""
    p = subparsers.add_parser(
        "record", help="record the exchange's feeds without quoting",
        description=(
            "Connect the WebSocket feeds (communications on N shards, plus market data for "
            "--markets) and write every inbound frame to a recording. Sends no orders and "
            "makes no REST calls. Stops on SIGINT/SIGTERM or after --seconds."
        ),
    )
    p.add_argument("--out", type=Path, help="recording directory (default: the record_dir "
                   "setting, var/recordings)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--shards", type=int, default=1,
                   help="communications connections (shard_factor, 1-100; default 1)")
    p.add_argument("--no-communications", dest="communications", action="store_false",
                   help="do not subscribe to communications (RFQs and quotes)")
    p.add_argument("--markets", default="",
                   help="comma-separated market tickers for the market data channels")
    p.add_argument("--channels", default=",".join(DEFAULT_MARKET_CHANNELS),
                   help="data channels for --markets (default: %(default)s)")
    p.add_argument("--key-id", dest="api_key_id", help="API key id (or QUOTER_API_KEY_ID)")
    p.add_argument("--key-file", dest="private_key_path", type=Path,
                   help="private key PEM (or QUOTER_PRIVATE_KEY_PATH)")
    p.add_argument("--target", default="demo", type=_target, metavar="demo|prod|URL",
                   help="what to record: Kalshi's demo or production exchange, or a "
                   "simulator's URL such as http://127.0.0.1:8765 (default: %(default)s)")
    p.set_defaults(func=run)


def _target(text: str) -> str:
    """Accept ``demo``, ``prod`` or an http(s) URL (a simulator); argparse reports the rest."""
    if text in ENDPOINTS or text.startswith(("http://", "https://")):
        return text.rstrip("/")
    raise argparse.ArgumentTypeError(f"expected demo, prod or an http(s) URL, not {text!r}")


def settings_for_target(target: str, **values: Any) -> Settings:
    """Return the settings a capture of ``target`` uses (no trading mode: nothing is sent).

    A recorder sends nothing but subscriptions, so recording production needs no
    confirmation flag: the flag guards orders, and this process cannot place one.
    """
    if target in ENDPOINTS:
        values |= {"env": target, "mode": "shadow",
                   "i_understand_this_is_production": target == "prod"}
    else:
        values |= {"env": "demo", "mode": "paper", "sim_url": target}
    return build_settings(**values)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def plan_subscriptions(
    *, shards: int, communications: bool, markets: Sequence[str], channels: Sequence[str]
) -> list[dict[str, Any]]:
    """Return the subscriptions a capture makes, one dict per channel (the header lists them)."""
    plan: list[dict[str, Any]] = []
    if communications:
        plan += [{"feed": f"comms-s{k}", "channel": "communications",
                  "shard_factor": shards, "shard_key": k} for k in range(shards)]
    if markets:
        for channel in channels:
            if channel in _UNFILTERED:
                plan.append({"feed": "data", "channel": channel})
            elif channel == BOOK_CHANNEL:
                # YES-priced, as the service subscribes books (replays decode them so, §2.6).
                plan.append({"feed": "data", "channel": channel,
                             "market_tickers": list(markets), "use_yes_price": True})
            else:
                plan.append({"feed": "data", "channel": channel,
                             "market_tickers": list(markets)})
    return plan


def build_feeds(
    plan: Sequence[dict[str, Any]],
    settings: Settings,
    signer: Signer,
    clock: Clock,
    recorder: Recorder,
    *,
    out: asyncio.Queue[RawFrame],
    control: asyncio.Queue[FeedNotice],
) -> list[KalshiFeed]:
    """Build the feeds for ``plan`` (see :func:`plan_subscriptions`), tapped into ``recorder``."""
    common: dict[str, Any] = {
        "wall_ms": lambda: clock.wall_ns() // 1_000_000, "now_ns": clock.now_ns,
        "out": out, "control": control, "tap": recorder.tap, "tap_out": recorder.tap_out,
    }
    comms = [s for s in plan if s["channel"] == "communications"]
    feeds: list[KalshiFeed] = []
    if comms:
        feeds += sharded_feeds(len(comms), settings.ws_url, signer, **common)
    data_subs = [s for s in plan if s["feed"] == "data"]
    if data_subs:
        data = KalshiFeed(settings.ws_url, signer, name="data", **common)
        for sub in data_subs:
            data.add_subscription([sub["channel"]], market_tickers=sub.get("market_tickers"),
                                  use_yes_price=sub.get("use_yes_price"))
        feeds.append(data)
    return feeds


async def record(
    settings: Settings,
    out_dir: Path,
    *,
    shards: int = 1,
    communications: bool = True,
    markets: Sequence[str] = (),
    channels: Sequence[str] = DEFAULT_MARKET_CHANNELS,
    seconds: float | None = None,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
) -> RecordResult:
    """Capture the feeds into ``out_dir`` until ``stop`` is set or ``seconds`` pass."""
    clock = clock or LiveClock()
    stop = stop or asyncio.Event()
    if settings.api_key_id is None or settings.private_key_path is None:
        raise FatalError("an API key id and a private key file are required "
                         "(QUOTER_API_KEY_ID / QUOTER_PRIVATE_KEY_PATH or --key-id / --key-file)")
    signer = Signer.from_pem_file(settings.api_key_id, settings.private_key_path)
    plan = plan_subscriptions(shards=shards, communications=communications, markets=markets,
                              channels=channels)
    if not plan:
        raise FatalError("nothing to record: no communications and no --markets")
    out: asyncio.Queue[RawFrame] = asyncio.Queue(10_000)
    control: asyncio.Queue[FeedNotice] = asyncio.Queue()
    recorder = Recorder(out_dir, clock=clock, header={
        "subscriptions": plan, "config_hash": None, "mode": "record", "env": settings.env,
        "ws_url": settings.ws_url,
        "shards": shards, "recorder": f"quoter record {__version__}",
    })
    feeds = build_feeds(plan, settings, signer, clock, recorder, out=out, control=control)
    log.info("record_started", out=str(out_dir), feeds=[f.name for f in feeds])
    frames = 0

    async def drain_frames() -> None:
        # Frames are already recorded by the tap; the queue only has to keep moving.
        nonlocal frames
        while True:
            await out.get()
            frames += 1

    async def drain_notices() -> None:
        while True:
            notice = await control.get()
            log.info("record_feed_notice", notice=type(notice).__name__)

    async def housekeeping() -> None:
        while True:
            await asyncio.sleep(_POLL_S)
            recorder.poll()
            _check_reachable(feeds, settings.ws_url, MAX_CONNECT_FAILURES_BEFORE_FIRST)

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(f.run(), name=f"feed-{f.name}") for f in feeds]
            tasks += [
                tg.create_task(drain_frames(), name="frames"),
                tg.create_task(drain_notices(), name="notices"),
                tg.create_task(housekeeping(), name="housekeeping"),
            ]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=seconds)
            for task in tasks:
                task.cancel()
    finally:
        recorder.close()
    # Stopped (by --seconds or a signal) before any connection came up: nothing was recorded.
    _check_reachable(feeds, settings.ws_url, 1)
    log.info("record_stopped", frames=frames, files=len(recorder.files))
    return RecordResult(frames, tuple(recorder.files), recorder.dropped_lines)


def _check_reachable(feeds: Sequence[KalshiFeed], ws_url: str, max_failures: int) -> None:
    """Raise ``TransportError`` if no feed ever connected and ``max_failures`` attempts failed."""
    if any(f.stats.connects for f in feeds):
        return
    failures = sum(f.stats.connect_failures for f in feeds)
    if failures >= max_failures:
        raise TransportError(f"cannot connect to {ws_url} ({failures} attempts failed); "
                             "is the exchange or simulator reachable?")


def run(args: argparse.Namespace) -> int:
    """Record until SIGINT/SIGTERM or ``--seconds``; 0 after an orderly stop, 1 on errors."""
    if not 1 <= args.shards <= 100:
        print("quoter record: --shards must be 1..100", file=sys.stderr)
        return 2
    if args.seconds is not None and args.seconds <= 0:
        print("quoter record: --seconds must be positive", file=sys.stderr)
        return 2
    markets, channels = _split(args.markets), _split(args.channels)
    unknown = [c for c in channels if c not in _KNOWN]
    if unknown:
        print(f"quoter record: unknown channel(s) {', '.join(unknown)}; known: "
              f"{', '.join(sorted(_KNOWN))}", file=sys.stderr)
        return 2
    overrides = {k: getattr(args, k) for k in ("api_key_id", "private_key_path")
                 if getattr(args, k) is not None}
    clock = LiveClock()
    try:
        settings = settings_for_target(args.target, **overrides)
        out_dir = args.out or settings.record_dir
        if out_dir is None:
            print("quoter record: --out is required (record_dir is unset)", file=sys.stderr)
            return 2
        redactor = configure_logging(clock, fmt=settings.log_format, level=settings.log_level)
        if settings.api_key_id:
            redactor.add_secret(settings.api_key_id)
        result = asyncio.run(_main(settings, Path(out_dir), args, markets, channels, clock))
    except QuoterError as exc:
        print(f"quoter record: {exc}", file=sys.stderr)
        return 1
    except ExceptionGroup as group:
        ours, rest = group.split(QuoterError)
        if ours is None or rest is not None:
            raise
        print(f"quoter record: {_first(ours)}", file=sys.stderr)
        return 1
    print(f"quoter record: {result.frames} frames in {len(result.files)} file(s) under "
          f"{out_dir}" + (f"; {result.dropped_lines} lines DROPPED" if result.dropped_lines
                          else ""))
    return 1 if result.dropped_lines else 0


def _first(group: BaseExceptionGroup[QuoterError]) -> BaseException:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


async def _main(
    settings: Settings, out_dir: Path, args: argparse.Namespace, markets: list[str],
    channels: list[str], clock: Clock,
) -> RecordResult:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, stop.set)  # main thread only
    return await record(
        settings, out_dir, shards=args.shards, communications=args.communications,
        markets=markets, channels=channels, seconds=args.seconds, stop=stop, clock=clock,
    )
