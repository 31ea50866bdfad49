"""``quoter demo``: the simulator and the real service, side by side on loopback.

The simulator (exchange + synthetic world) and the service run in one process and one event
loop, but talk only over real sockets: signed REST and a WebSocket, exactly as the service would
talk to Kalshi's demo exchange (paper mode). After ``seconds`` the service stops quoting, lets
confirmed quotes execute (so every trade it committed to is filled), and the run ends with a
summary whose positions, fees and cash are compared with the simulator's own ledger to the
micro-dollar.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from quoter.clock import LiveClock
from quoter.config import load_config
from quoter.domain.money import format_dollars, format_fp
from quoter.service.app import Service, ServiceOptions, ViewMode
from quoter.service.environment import Settings
from quoter.service.live_view import wants_live_view
from quoter.service.status import StatusSnapshot
from quoter.sim.config import SimConfig, load_sim_config
from quoter.sim.exchange import ExchangeConfig, SimExchange
from quoter.sim.server import serve_sim
from quoter.sim.world import World

__all__ = ["DemoResult", "compare_with_exchange", "run_demo"]

log = structlog.get_logger("quoter.service.demo")

#: How long to wait, after quoting stops, for committed quotes to execute and fill.
SETTLE_TIMEOUT_S = 25.0


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What a demo run produced."""

    snapshot: StatusSnapshot
    ledger_match: bool
    ledger_diff: list[str]
    run_dir: Path


def compare_with_exchange(
    service: Service, exchange: SimExchange, user_id: str, start_balance_micros: int
) -> list[str]:
    """Differences between the bot's books and the simulator's ledger (empty = identical).

    Compared exactly: the position in every market, the fees paid, and the cash spent
    (our ``cost - realized PnL`` summed over markets equals the exchange's balance change).
    """
    diffs: list[str] = []
    ledger = service.engine.ledger
    theirs = exchange.positions(user_id)
    for ticker in sorted(set(ledger.tickers()) | set(theirs)):
        ours = ledger.position_centi(ticker)
        their = theirs[ticker].position_centi if ticker in theirs else 0
        if ours != their:
            diffs.append(f"{ticker}: position ours {format_fp(ours)}, exchange {format_fp(their)}")
    our_fees = sum(ledger.market(t).fees_micros for t in ledger.tickers())
    their_fees = sum(f.fee_micros for f in exchange.fills(user_id))
    if our_fees != their_fees:
        diffs.append(f"fees: ours {format_dollars(our_fees, 6)}, "
                     f"exchange {format_dollars(their_fees, 6)}")
    our_cash = sum(ledger.market(t).cost_micros - ledger.market(t).realized_pnl_micros
                   for t in ledger.tickers())
    their_cash = start_balance_micros - exchange.balance_micros(user_id)
    if our_cash != their_cash:
        diffs.append(f"cash spent: ours {format_dollars(our_cash, 6)}, "
                     f"exchange {format_dollars(their_cash, 6)}")
    return diffs


async def run_demo(
    *,
    seconds: float,
    config_path: Path,
    workdir: Path,
    seed: int = 1,
    world_path: Path | None = None,
    view: ViewMode = "auto",
    install_signals: bool = True,
    exchange_config: ExchangeConfig | None = None,
    log_lines: Callable[[], Sequence[str]] | None = None,
) -> DemoResult:
    """Run the simulator and the service for ``seconds``; return the summary inputs.

    ``exchange_config`` overrides the simulator's timers (default: Kalshi's, kalshi-api.md §3.3).
    """
    clock = LiveClock()
    # Check the inputs before anything is created on disk: a bad path leaves no empty run dir.
    load_config(config_path)
    sim_config = load_sim_config(world_path) if world_path else SimConfig()
    exchange = SimExchange(clock, exchange_config or ExchangeConfig(id_seed=seed))
    world = World(exchange, clock, sim_config.world, seed)
    user_id = sim_config.world.demo_user_id
    run_dir = workdir / f"run-{clock.wall_ns() // 1_000_000}"
    run_dir.mkdir(parents=True, exist_ok=False)
    key_path = run_dir / "demo-key.pem"
    key_id = world.register_demo_key(key_path)
    start_balance = exchange.balance_micros(user_id)
    stop = asyncio.Event()
    async with serve_sim(exchange, "127.0.0.1", 0, clock=clock) as sim:
        settings = Settings(
            env="demo", mode="paper", sim_url=sim.base_url, api_key_id=key_id,
            private_key_path=key_path, db_path=run_dir / "quoter.db",
            record_dir=run_dir / "recordings", control_port=0,
            control_token_file=run_dir / "control.token",
        )
        stage = DemoStage(seconds, clock.now_ns())
        service = Service(settings, ServiceOptions(
            config_path=config_path, view=view, reconcile_interval_s=10.0,
            kill_file=run_dir / "KILL", log_lines=log_lines,
            banner=lambda: stage.banner(clock.now_ns()),
        ), clock=clock)
        print(f"quoter demo: simulator on {sim.base_url} (seed {seed}); "
              f"service in paper mode for {seconds:g}s; workdir {run_dir}", flush=True)
        async with asyncio.TaskGroup() as tg:
            world_task = tg.create_task(world.run(asyncio.sleep), name="sim-world")
            service_task = tg.create_task(service.run(stop), name="service")
            ticker = None
            if view != "none" and not wants_live_view(view):
                # Activity lines (no full-screen view): say how long is left now and then.
                ticker = tg.create_task(_countdown(stage, clock), name="demo-countdown")
            interrupted = asyncio.Event()
            if install_signals:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, interrupted.set)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupted.wait(), timeout=seconds)
            stage.winding_down = True
            if ticker is not None:
                ticker.cancel()
            if not wants_live_view(view):
                print("quoter demo: winding down: quoting stopped; waiting for confirmed quotes "
                      "to execute, then a last reconciliation", flush=True)
            await _wind_down(service, service_task)
            stop.set()
            await service_task
            world_task.cancel()
    diffs = compare_with_exchange(service, exchange, user_id, start_balance)
    return DemoResult(service.snapshot(), not diffs, diffs, run_dir)


class DemoStage:
    """Where the demo is: quoting (with the time left) or winding down; the view's banner."""

    def __init__(self, seconds: float, start_ns: int) -> None:
        self.end_ns = start_ns + int(seconds * 1_000_000_000)
        self.winding_down = False

    def remaining_s(self, now_ns: int) -> int:
        """Whole seconds of quoting left (rounded up)."""
        return max(0, -(-(self.end_ns - now_ns) // 1_000_000_000))

    def banner(self, now_ns: int) -> str:
        """``demo: quoting, 42 s left (Ctrl-C stops early)`` or the winding-down line."""
        if self.winding_down:
            return ("demo: winding down: quoting stopped, waiting for confirmed quotes to "
                    "execute, then a last reconciliation")
        return f"demo: quoting, {self.remaining_s(now_ns)} s left (Ctrl-C stops early)"


async def _countdown(stage: DemoStage, clock: LiveClock, every_s: float = 15.0) -> None:
    while True:
        await asyncio.sleep(every_s)
        left = stage.remaining_s(clock.now_ns())
        if left > 0:
            print(f"quoter demo: {left} s of quoting left", flush=True)


async def _wind_down(service: Service, service_task: asyncio.Task[Any]) -> None:
    """Stop quoting, then wait (bounded) until every committed quote has filled."""
    if service_task.done():
        return
    service.halt("demo_finished")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    while loop.time() < deadline and not service_task.done():
        if not any(q.provisional_centi for q in service.engine.quotes.values()):
            break
        await asyncio.sleep(0.2)
    # One last reconciliation so late fills are booked before we compare.
    with contextlib.suppress(Exception):
        await service.notices.reconcile()
    await asyncio.sleep(0.5)
