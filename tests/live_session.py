"""A live session for tests: the real service against the simulator over loopback sockets (as
``quoter demo`` runs it), with the service's own hooks capturing every command the live engine
returned. Shared by the replay and the backtest-parity tests, which compare against it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from quoter.clock import LiveClock
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.service.app import Service, ServiceOptions
from quoter.service.environment import Settings
from quoter.service.hooks import ServiceHooks
from quoter.sim.config import SimConfig
from quoter.sim.exchange import ExchangeConfig, SimExchange
from quoter.sim.server import serve_sim
from quoter.sim.world import World

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"


class CapturingHooks(ServiceHooks):
    """The service's hooks, also keeping every command list the live engine returned."""

    def __init__(self, base: ServiceHooks) -> None:
        super().__init__(clock=base.clock, engine=base.engine, store=base.store,
                         metrics=base.metrics, recorder=base.recorder, perf=base.perf)
        self.live: list[cmd.Command] = []
        self.fills: list[ev.FillReceived] = []
        self.steps = 0

    def on_engine_step(self, event: ev.Event, commands: list[cmd.Command], now_ns: int) -> None:
        self.steps += 1
        self.live.extend(commands)
        if isinstance(event, ev.FillReceived):
            self.fills.append(event)
        super().on_engine_step(event, commands, now_ns)


async def run_live_session(
    workdir: Path, *, seed: int, seconds: float, exchange: ExchangeConfig | None = None,
) -> tuple[Service, CapturingHooks]:
    """Quote for ``seconds``, then halt (a recorded step), wait for the halt's cancels to be
    answered and stop; the database is in ``workdir`` and the recording in ``workdir/rec``."""
    clock = LiveClock()
    sim_config = SimConfig()
    sim_exchange = SimExchange(clock, exchange or ExchangeConfig(id_seed=seed))
    world = World(sim_exchange, clock, sim_config.world, seed)
    key_path = workdir / "key.pem"
    key_id = world.register_demo_key(key_path)
    stop = asyncio.Event()
    async with serve_sim(sim_exchange, "127.0.0.1", 0, clock=clock) as sim:
        settings = Settings(
            env="demo", mode="paper", sim_url=sim.base_url, api_key_id=key_id,
            private_key_path=key_path, db_path=workdir / "quoter.db",
            record_dir=workdir / "rec", control_port=0,
            control_token_file=workdir / "control.token",
        )
        service = Service(settings, ServiceOptions(
            config_path=DEMO_CONFIG, view="none", http=False, reconcile_interval_s=2.0,
            kill_file=workdir / "KILL",
        ), clock=clock)
        hooks = CapturingHooks(service.hooks)
        service.hooks = service.runtime.hooks = hooks
        async with asyncio.TaskGroup() as tg:
            world_task = tg.create_task(world.run(asyncio.sleep), name="sim-world")
            service_task = tg.create_task(service.run(stop), name="service")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(service_task), timeout=seconds)
            service.halt("test_finished")  # a kill switch step, recorded like any other
            await service.runtime.drained()  # the halt's cancels sent and answered
            stop.set()
            await service_task
            world_task.cancel()
    return service, hooks
