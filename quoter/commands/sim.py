"""``quoter sim``: run the local Kalshi simulator (exchange + synthetic world + REST/WS server).

It lists a seeded world of markets, resting liquidity, requesters (some informed) and
competing makers, registers the demo bot account with a fresh RSA key (written 0600 under
``--key-dir``), serves Kalshi's REST API and WebSocket on one loopback port, and prints how to
connect. Faults can be set at start (``--faults FILE`` or the ``faults:`` section of
``--world FILE``) and changed live with ``POST /sim/faults``. Runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from quoter.clock import LiveClock
from quoter.config.shipped import shipped_path
from quoter.errors import ConfigError
from quoter.observability.logging import configure_logging
from quoter.sim.accounts_api import check_user_id
from quoter.sim.config import FaultConfig, SimConfig, load_sim_config
from quoter.sim.exchange import ExchangeConfig, SimError, SimExchange
from quoter.sim.faults import FaultInjector, fault_routes
from quoter.sim.world import World

__all__ = ["REQUESTER_USER_ID", "is_loopback", "register", "run"]

#: The account ``--requester-key`` opens.
REQUESTER_USER_ID = "quoter-requester"

_EPILOG = """\
knobs (a --world YAML sets everything; see config/sim-world.yaml; flags override it):
  rates        --rfq-rate (RFQs/s per requester), --requesters, --informed, --makers
  burst        --burst enables floods of short-lived RFQs at --burst-rate RFQs/s
               (>= 1,000 rfq_created frames/s) for --burst-ms every --burst-every-ms
  last look    --confirm-window-ms / --hvm-confirm-window-ms (Kalshi: 30000 / 3000),
               --execution-timer-ms / --hvm-execution-timer-ms (Kalshi: 15000 / 1000)
  faults       --faults FILE: YAML of the fault config (frames drop/duplicate/delay/reorder/
               overflow rules, accept_notice_delay_ms, rest error bursts and latency);
               live: curl -X POST http://HOST:PORT/sim/faults -d '{"cut_connections": true}'
               (also: restart_lose_open_quotes); GET /sim/faults shows config and counters
  ground truth GET /sim/ledger (balances, positions and fills of every account)
  accounts     --requester-key PATH / --account USER_ID at start; live: POST /sim/accounts
               {"user_id", "public_key_pem", "balance_dollars"?} -> api_key_id
Only loopback hosts are accepted: the simulator is a test tool, not a service.
"""


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (it names a key), replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def register(subparsers: Any) -> None:
    """Add the ``sim`` subcommand."""
    p = subparsers.add_parser(
        "sim",
        help="run the local Kalshi simulator (REST + WebSocket + synthetic market world)",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="loopback address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=8765,
                   help="port; 0 picks a free one (default %(default)s)")
    p.add_argument("--seed", type=int, default=1,
                   help="world randomness seed (default %(default)s)")
    p.add_argument("--world", type=shipped_path, metavar="FILE", help="world + faults YAML")
    p.add_argument("--faults", type=Path, metavar="FILE", help="initial fault config YAML")
    p.add_argument("--key-dir", type=Path, metavar="DIR",
                   help="where to write the demo key (default: a new temp dir)")
    p.add_argument("--requester-key", type=Path, metavar="PATH",
                   help="also open the account 'quoter-requester' (to create RFQs and accept "
                        "quotes) with a fresh key written to PATH (0600)")
    p.add_argument("--account", action="append", default=[], metavar="USER_ID",
                   help="open another account with a key in --key-dir (repeatable); "
                        "at run time: POST /sim/accounts")
    p.add_argument("--env-file", type=Path, metavar="PATH",
                   help="also write the export lines to this file (mode 0600), once serving: "
                   "`. PATH` sets up a shell or container for `quoter run`")
    p.add_argument("--rfq-rate", type=float, metavar="PER_S", help="RFQs/s per requester")
    p.add_argument("--requesters", type=int, metavar="N", help="uninformed requester accounts")
    p.add_argument("--informed", type=int, metavar="N", help="informed (toxic) requester accounts")
    p.add_argument("--makers", type=int, metavar="N", help="competing maker accounts")
    p.add_argument("--burst", action="store_true", help="enable RFQ bursts")
    p.add_argument("--burst-rate", type=float, metavar="PER_S", help="burst RFQs/s")
    p.add_argument("--burst-ms", type=int, metavar="MS", help="burst duration")
    p.add_argument("--burst-every-ms", type=int, metavar="MS", help="burst period (0 = once)")
    p.add_argument("--burst-start-ms", type=int, metavar="MS", help="first burst after this long")
    p.add_argument("--confirm-window-ms", type=int, default=30_000, metavar="MS",
                   help="accept -> confirm deadline (default %(default)s)")
    p.add_argument("--hvm-confirm-window-ms", type=int, default=3_000, metavar="MS",
                   help="the same for HVM markets and all combos (default %(default)s)")
    p.add_argument("--execution-timer-ms", type=int, default=15_000, metavar="MS",
                   help="confirm -> execution delay (default %(default)s)")
    p.add_argument("--hvm-execution-timer-ms", type=int, default=1_000, metavar="MS",
                   help="the same for HVM markets and all combos (default %(default)s)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="least severe log lines shown")
    p.add_argument("--log-format", default="auto", choices=["auto", "json", "console"],
                   help="auto = console on a terminal, JSON otherwise")
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _set(model: Any, **changes: Any) -> Any:
    """Copy a frozen config model with the given (already validated-type) fields changed."""
    return model.model_copy(update={k: v for k, v in changes.items() if v is not None})


def _build_config(args: argparse.Namespace) -> SimConfig:
    cfg = load_sim_config(args.world) if args.world else SimConfig()
    if args.faults:
        try:
            data = yaml.safe_load(args.faults.read_text(encoding="utf-8")) or {}
            faults = FaultConfig.model_validate(data)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"{args.faults}: {exc}") from None
        cfg = _set(cfg, faults=faults)
    for name in ("rfq_rate", "burst_rate", "requesters", "informed", "makers", "burst_ms",
                 "burst_every_ms", "burst_start_ms", "confirm_window_ms",
                 "hvm_confirm_window_ms", "execution_timer_ms", "hvm_execution_timer_ms"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0")
    if args.burst_ms == 0:
        raise ConfigError("--burst-ms must be > 0")
    w = cfg.world
    w = _set(w, requesters=_set(w.requesters, rfq_rate_per_s=args.rfq_rate,
                                uninformed=args.requesters, informed=args.informed))
    w = _set(w, makers=_set(w.makers, count=args.makers))
    w = _set(w, burst=_set(w.burst, enabled=True if args.burst else None,
                           rfq_rate_per_s=args.burst_rate, duration_ms=args.burst_ms,
                           every_ms=args.burst_every_ms, start_after_ms=args.burst_start_ms))
    return _set(cfg, world=w)  # type: ignore[no-any-return]


def _check_accounts(args: argparse.Namespace, cfg: SimConfig) -> None:
    """Refuse bad or repeated ``--account`` names (they also name key files) up front."""
    users = [cfg.world.demo_user_id, *([REQUESTER_USER_ID] if args.requester_key else []),
             *args.account]
    for user in args.account:
        try:
            check_user_id(user)
        except SimError as exc:
            raise ConfigError(f"--account {user!r}: {exc.message}") from None
    repeated = sorted({u for u in users if users.count(u) > 1})
    if repeated:
        raise ConfigError(f"--account: account(s) {repeated} already exist")


def run(args: argparse.Namespace) -> int:
    """Run the simulator until SIGINT/SIGTERM; 2 on a bad host or config."""
    if not is_loopback(args.host):
        print(f"quoter sim: refusing non-loopback host {args.host!r} (use 127.0.0.1)",
              file=sys.stderr)
        return 2
    try:
        cfg = _build_config(args)
        _check_accounts(args, cfg)
    except ConfigError as exc:
        print(f"quoter sim: {exc}", file=sys.stderr)
        return 2
    clock = LiveClock()
    configure_logging(clock, fmt=args.log_format, level=args.log_level)
    return asyncio.run(_serve(args, cfg, clock))


async def _serve(args: argparse.Namespace, cfg: SimConfig, clock: LiveClock) -> int:
    from quoter.sim.server import serve_sim

    exchange = SimExchange(clock, ExchangeConfig(
        confirm_window_ms=args.confirm_window_ms,
        hvm_confirm_window_ms=args.hvm_confirm_window_ms,
        execution_timer_ms=args.execution_timer_ms,
        hvm_execution_timer_ms=args.hvm_execution_timer_ms,
        id_seed=args.seed,
    ))
    world = World(exchange, clock, cfg.world, args.seed)
    key_dir = args.key_dir or Path(tempfile.mkdtemp(prefix="quoter-sim-"))
    key_path = (key_dir / f"{cfg.world.demo_user_id}.pem").resolve()
    key_id = world.register_demo_key(key_path)
    extra = [(REQUESTER_USER_ID, args.requester_key)] if args.requester_key else []
    extra += [(user, key_dir / f"{user}.pem") for user in args.account]
    try:
        accounts = [(world.open_keyed_account(user, path), path.resolve())
                    for user, path in extra]
    except SimError as exc:
        print(f"quoter sim: {exc.message}", file=sys.stderr)
        return 2
    faults = FaultInjector(clock, cfg.faults, seed=args.seed, exchange=exchange)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve_sim(
        exchange, args.host, args.port, faults=faults, extra_routes=fault_routes(faults)
    ) as sim:
        origin = sim.base_url
        exports = (
            "export QUOTER_MODE=paper\n"
            f"export QUOTER_SIM_URL={shlex.quote(origin)}\n"
            f"export QUOTER_API_KEY_ID={shlex.quote(key_id)}\n"
            f"export QUOTER_PRIVATE_KEY_PATH={shlex.quote(str(key_path.resolve()))}\n"
        )
        if args.env_file is not None:
            _write_private(args.env_file, exports)
        print(
            f"quoter sim: seed {args.seed}, {len(world.markets)} markets\n"
            f"rest_base_url: {sim.url}\n"
            f"ws_url: {sim.ws_url}\n"
            f"user_id: {cfg.world.demo_user_id}\n"
            f"api_key_id: {key_id}\n"
            f"private_key_file: {key_path}\n"
            + "".join(f"account: {a.user_id} api_key_id={a.api_key_id} "
                      f"private_key_file={path}\n" for a, path in accounts)
            + f"accounts: {origin}/sim/accounts\n"
            f"fault_control: {origin}/sim/faults\n"
            f"ledger: {origin}/sim/ledger\n"
            "# paper trading against this simulator: paste these lines in another terminal,\n"
            "# then run:  quoter run --config config/demo.yaml\n"
            f"{exports}"
            "ready (Ctrl-C to stop)",
            flush=True,
        )
        async with asyncio.TaskGroup() as tg:
            world_task = tg.create_task(world.run(asyncio.sleep), name="sim-world")
            await stop.wait()
            world_task.cancel()
    print("quoter sim: stopped", flush=True)
    return 0
