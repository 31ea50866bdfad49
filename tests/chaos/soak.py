"""The chaos soak: the real service, as a child process, against the simulator with every fault on.

One run (``run_soak``) serves the simulator in this process (``e2e_helpers.sim_env``: three
KXE2E markets, the fixed pricer) and spawns ``quoter run --mode paper`` against it. Requesters
(driven here through ``SimExchange`` calls) ask for quotes and accept some; the simulator's
fault injector drops, duplicates, delays and reorders frames, overflows subscriptions
(error 25), nests frames 1,000 deep, spoils REST bodies, injects 5xx and slow REST, holds
create responses until the accept, delays accept notices and loses confirm responses; a
seeded schedule adds 429 and 5xx bursts, connection cuts, lost quotes, an operator halt and
resume, ``kill -9`` of the service at random moments and at confirm moments (when a confirm
reaches the simulator, or just after the exchange applied it), and one restart of the
simulator's server on the same port with the exchange's state kept.

Invariants, checked as things happen (``violations``):

* a confirm never arrives after its window, while halted, after a 204 for the same quote was
  delivered, or from two processes (the journal of a killed process binds the next one);
* positions on the exchange stay inside the config's limits; the service's exported worst-case
  exposure stays under its limit; RSS, open file descriptors and live tasks stay bounded;
* after every restart the quotes a killed process left are cancelled;

and at the end: positions, fees and cash equal ``GET /sim/ledger`` to the micro-dollar; every
accept ended confirmed, declined with a reason or lapsed with a reason; no quote of ours is live
after the service exits; no traceback or crash event in any log. The confirm success rate is
confirmed / accepts the engine meant to confirm (a ``confirmed`` decision) that arrived inside
the window while both the service and the simulator were up.

No sleep synchronises anything: waits are conditions with bounded timeouts (``until``); the
sleeps that remain pace the requesters and the schedule, or are the deliberate downtime of a
kill or a simulator restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import random
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from e2e_helpers import (
    BOT,
    CONFIG_YAML,
    T1,
    T2,
    T3,
    CountingFaults,
    SimEnv,
    sim_env,
    spawn_service,
    stored_fills,
    until,
)
from starlette.responses import Response

from quoter.domain.types import Side
from quoter.sim.config import FaultConfig
from quoter.sim.models import QuoteStatus, SimError

__all__ = ["FAST", "SoakProfile", "SoakReport", "long_profile", "run_soak"]

NS = 1_000_000_000
TICKERS = (T1, T2, T3)
MAX_POSITION_CONTRACTS_PER_MARKET = 8
MAX_POSITION_CONTRACTS_TOTAL = 16
MAX_WORST_CASE_LOSS_DOLLARS_TOTAL = 12
CONFIRM_WINDOW_MS = 6_000
#: Limits tight enough that the risk checks decline often; a short confirm window (on both
#: sides) so that lapsed accepts settle within a fast run.
CHAOS_CONFIG = CONFIG_YAML + f"""
risk:
  max_position_contracts_per_market: {MAX_POSITION_CONTRACTS_PER_MARKET}
  max_position_contracts_per_event: {MAX_POSITION_CONTRACTS_TOTAL}
  max_position_contracts_per_series: {MAX_POSITION_CONTRACTS_TOTAL}
  max_position_contracts_total: {MAX_POSITION_CONTRACTS_TOTAL}
  max_worst_case_loss_dollars_per_market: "8.00"
  max_worst_case_loss_dollars_total: "{MAX_WORST_CASE_LOSS_DOLLARS_TOTAL}.00"
lifecycle:
  confirm_window_ms: {CONFIRM_WINDOW_MS}
  hvm_confirm_window_ms: 3000
"""
#: Bounds on the child (a leak shows long before these).
MAX_RSS_KB = 400_000
MAX_FDS = 256
MAX_TASKS = 300
CRASH_EVENTS = ("runtime_task_crashed", "service_task_crashed", "engine_event_crashed")

_CONFIRM_PATH = re.compile(r"/quotes/([^/]+)/confirm$")
#: The quote a confirm request is about, from its arrival to its answer (one request = one
#: task: the server calls the hooks of one request in the same context).
_confirm_quote: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chaos_confirm_quote", default=None)


def base_faults() -> FaultConfig:
    """Every standing fault of the simulator at once, at rates a run survives."""
    frame_faults = {"drop_probability": 0.01, "duplicate_probability": 0.03,
                    "delay_probability": 0.05, "delay_ms": {"min_ms": 5, "max_ms": 150},
                    "reorder_probability": 0.03, "reorder_delay_ms": 60}
    return FaultConfig.model_validate({
        "frames": [
            {"channel": "communications", **frame_faults, "overflow_probability": 0.002,
             "nest_probability": 0.01},
            {"channel": "fill", **frame_faults},
            # A delayed, reordered or duplicated market_position frame arrives stale (older
            # than fills already booked): the engine asks for a REST reconcile instead of
            # halting on it (it halted, position_mismatch ours=-300 exchange=-100, before).
            {"channel": "market_positions", **frame_faults},
            {**frame_faults, "nest_probability": 0.01},
        ],
        "accept_notice_delay_ms": 150,                   # slow accepts
        "quote_response_hold_ms": 400,                   # accepts that beat the 201
        "lost_confirm_responses": {"probability": 0.1, "mode": "error", "error_status": 503},
        "corrupt_bodies": {"probability": 0.02},
        "rest": {"error_probability": 0.01, "error_status": 503,
                 "latency_ms": {"min_ms": 0, "max_ms": 40}},   # slow REST
    })


@dataclass(frozen=True)
class SoakProfile:
    """What one run does: its length, load and schedule of discrete faults."""

    name: str
    seed: int
    duration_s: float
    #: ``(seconds after start, action)``; actions: kill, confirm_kill_arrival,
    #: confirm_kill_applied, halt (resumed ``halt_s`` later), sim_restart, cut, lose_quotes,
    #: burst_429, burst_5xx, and the forced ones (``_FORCED``: overflow, nest_frame,
    #: spoil_body, lose_confirm_response) that make a rare standing fault happen once.
    schedule: tuple[tuple[float, str], ...]
    requesters: int = 6
    rfq_probability_per_tick: float = 0.5
    accept_probability: float = 0.6
    tick_s: float = 0.05
    rfq_lifetime_s: float = 3.0
    #: A requester whose quote is accepted waits out the confirm window before closing its
    #: RFQ, except with this probability: then it closes the RFQ anyway (it walked away).
    withdraw_probability: float = 0.05
    halt_s: float = 2.5
    sim_down_s: float = 1.5


#: The fast profile of ``make test``: every kind of discrete fault once or twice in 45 s.
FAST = SoakProfile(name="fast", seed=12, duration_s=45.0, schedule=(
    (3.0, "spoil_body"), (4.0, "confirm_kill_arrival"), (8.0, "nest_frame"),
    (9.0, "burst_429"), (11.0, "cut"), (12.0, "lose_confirm_response"), (14.0, "kill"),
    (17.0, "overflow"), (19.0, "lose_quotes"), (21.0, "halt"), (27.0, "sim_restart"),
    (33.0, "burst_5xx"),
    (35.0, "confirm_kill_applied"), (41.0, "cut"),
))

_ACTIONS = ("kill", "confirm_kill_arrival", "confirm_kill_applied", "halt", "sim_restart",
            "cut", "lose_quotes", "burst_429", "burst_5xx", "overflow", "nest_frame",
            "spoil_body", "lose_confirm_response")


def long_profile(duration_s: float, seed: int = 7) -> SoakProfile:
    """A seeded schedule over ``duration_s``: a discrete fault every 6-14 s (a kill about
    every 40 s, half of them at confirm moments), one simulator restart in the middle."""
    rng = random.Random(seed)
    schedule: list[tuple[float, str]] = []
    t = 5.0
    weights = (1.0, 0.6, 0.6, 0.5, 0.0, 1.0, 0.7, 0.7, 0.7, 0.4, 0.3, 0.3, 0.3)
    while t < duration_s - 20:
        schedule.append((t, rng.choices(_ACTIONS, weights)[0]))
        t += rng.uniform(6.0, 14.0)
    middle = min(range(len(schedule)), key=lambda i: abs(schedule[i][0] - duration_s / 2))
    schedule[middle] = (schedule[middle][0], "sim_restart")
    return SoakProfile(name="long", seed=seed, duration_s=duration_s, schedule=tuple(schedule))


def _comms_rule(base: FaultConfig, **update: float) -> FaultConfig:
    rules = tuple(r.model_copy(update=update) if r.channel == "communications" else r
                  for r in base.frames)
    return base.model_copy(update={"frames": rules})


#: Forced actions: the stat that must move, and the config that makes it move.
_FORCED: dict[str, tuple[str, Callable[[FaultConfig], FaultConfig]]] = {
    # error 25 on a communications frame: that subscription is killed
    "overflow": ("overflowed", lambda b: _comms_rule(b, overflow_probability=0.5)),
    "nest_frame": ("nested", lambda b: _comms_rule(b, nest_probability=1.0)),
    "spoil_body": ("bodies_corrupted", lambda b: b.model_copy(update={
        "corrupt_bodies": b.corrupt_bodies.model_copy(update={
            "probability": 1.0, "methods": ("POST",),
            "path_prefixes": ("/trade-api/v2/communications/quotes",)})})),
    "lose_confirm_response": ("confirm_responses_lost", lambda b: b.model_copy(update={
        "lost_confirm_responses": b.lost_confirm_responses.model_copy(
            update={"probability": 1.0})})),
}


class ChaosFaults(CountingFaults):
    """The e2e ``CountingFaults`` that also tells the soak about every confirm it sees."""

    soak: Soak | None = None

    async def on_request(self, method: str, path: str) -> Response | None:
        """Check a confirm as it arrives (before the injector may fail it)."""
        m = _CONFIRM_PATH.search(path) if method.upper() == "PUT" else None
        if m is not None:
            _confirm_quote.set(m.group(1))
            if self.soak is not None:
                self.soak.confirm_arrived(m.group(1))
        return await super().on_request(method, path)

    async def lose_confirm_response(self) -> Response | None:
        """After the exchange applied a confirm: maybe kill the service right there."""
        quote_id = _confirm_quote.get()
        if quote_id is not None and self.soak is not None:
            self.soak.confirm_applied(quote_id)
        return await super().lose_confirm_response()

    def corrupt_response(self, method: str, path: str, response: Response) -> Response:
        """Note which confirms were answered 204 (the service knows they succeeded)."""
        out = super().corrupt_response(method, path, response)
        m = _CONFIRM_PATH.search(path) if method.upper() == "PUT" else None
        if m is not None and out.status_code == 204 and self.soak is not None:
            self.soak.confirm_delivered.add(m.group(1))
        return out


@dataclass
class SoakReport:
    """The figures of one run."""

    profile: str
    duration_s: float
    rfqs: int
    quotes: int
    accepts: int
    confirm_requests: int
    fills: int
    restarts: int
    faults: dict[str, int]
    violations: list[str]
    meant_to_confirm: int
    confirmed_of_meant: int
    outcomes: dict[str, int]
    max_rss_kb: int
    max_fds: int
    max_tasks: int
    notes: list[str] = field(default_factory=list)

    @property
    def confirm_success_rate(self) -> float:
        """Confirmed / meant to confirm inside the window (1.0 when none)."""
        return self.confirmed_of_meant / self.meant_to_confirm if self.meant_to_confirm else 1.0

    def table(self) -> str:
        """The figures as a plain table."""
        rows = [
            ("profile", self.profile), ("duration", f"{self.duration_s:.0f} s"),
            ("RFQs", self.rfqs), ("bot quotes", self.quotes), ("accepts", self.accepts),
            ("confirm requests", self.confirm_requests), ("fills", self.fills),
            ("service restarts", self.restarts),
            *((f"fault: {k}", v) for k, v in sorted(self.faults.items())),
            *((f"outcome: {k}", v) for k, v in sorted(self.outcomes.items())),
            ("meant to confirm (in window, up)", self.meant_to_confirm),
            ("of those confirmed", self.confirmed_of_meant),
            ("confirm success rate", f"{100 * self.confirm_success_rate:.2f}%"),
            ("max RSS", f"{self.max_rss_kb / 1024:.1f} MiB"), ("max open fds", self.max_fds),
            ("max asyncio tasks", self.max_tasks),
            ("invariant violations", len(self.violations)),
        ]
        width = max(len(str(k)) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        lines += [f"VIOLATION: {v}" for v in self.violations]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class _Interval:
    start_ns: int
    end_ns: int | None = None

    def overlaps(self, lo: int, hi: int) -> bool:
        end = self.end_ns if self.end_ns is not None else 2**63
        return self.start_ns <= hi and end >= lo


class Soak:
    """One run: the child, the requesters, the schedule and the invariant checks."""

    def __init__(self, env: SimEnv, profile: SoakProfile) -> None:
        self.env = env
        self.profile = profile
        self.rng = random.Random(profile.seed)
        self.violations: list[str] = []
        self._seen_violations: set[str] = set()
        self.notes: list[str] = []
        self.gen = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.control_url: str | None = None
        self.token = ""
        self.stop = asyncio.Event()
        self.halted = False
        self.down: list[_Interval] = []        # service not running (killed, restarting)
        self.sim_down: list[_Interval] = []
        self.halts: list[_Interval] = []
        self.kills: list[int] = []
        self.confirm_gens: dict[str, set[int]] = {}
        self.confirm_delivered: set[str] = set()
        self.confirm_requests = 0
        self.armed: str | None = None
        self.killed_at_confirm = asyncio.Event()
        self.counts: Counter[str] = Counter()
        self.rfqs = 0
        #: RFQs a requester closed while a quote of ours on it was accepted, unconfirmed.
        self.withdrawn: set[str] = set()
        self.max_rss_kb = self.max_fds = self.max_tasks = 0
        self.t0_ns = env.clock.now_ns()

    # --- invariants as they happen ---------------------------------------------------------

    def violation(self, text: str, key: str | None = None) -> None:
        """Record one violation (once per ``key``)."""
        key = key or text
        if key not in self._seen_violations:
            self._seen_violations.add(key)
            self.violations.append(text)

    def confirm_arrived(self, quote_id: str) -> None:
        """A confirm reached the simulator: in time, not halted, not twice, one process."""
        self.confirm_requests += 1
        now = self.env.clock.wall_ns()
        try:
            q = self.env.exchange.get_quote(quote_id)
        except SimError:
            return
        if q.user_id != BOT:
            return
        if q.accepted_wall_ns is not None and now > q.accepted_wall_ns + CONFIRM_WINDOW_MS * 10**6:
            self.violation(f"confirm of {quote_id} {(now - q.accepted_wall_ns) / 1e6:.0f} ms "
                           "after its accept: past the window")
        if self.halted:
            self.violation(f"confirm of {quote_id} while halted")
        if quote_id in self.confirm_delivered:
            self.violation(f"confirm of {quote_id} again after a 204 was delivered")
        gens = self.confirm_gens.setdefault(quote_id, set())
        gens.add(self.gen)
        if len(gens) > 1:
            self.violation(f"confirm of {quote_id} from processes {sorted(gens)}")
        if self.armed == "confirm_kill_arrival":
            self._kill_now("confirm_kill_arrival")

    def confirm_applied(self, quote_id: str) -> None:
        """The exchange applied a confirm; its answer has not left yet."""
        if self.armed == "confirm_kill_applied":
            self._kill_now("confirm_kill_applied")

    def _kill_now(self, kind: str) -> None:
        self.armed = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL, this test's own child
            self._mark_down()
            self.counts[kind] += 1
            self.killed_at_confirm.set()

    def _mark_down(self) -> None:
        now = self.env.clock.wall_ns()
        self.kills.append(now)
        self.down.append(_Interval(now))

    # --- the child ----------------------------------------------------------------------

    def _log_path(self, gen: int) -> Path:
        return self.env.workdir / f"child-{gen}.log"

    def _log_events(self, gen: int) -> list[dict[str, Any]]:
        out = []
        path = self._log_path(gen)
        if not path.exists():
            return out
        for line in path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def _tail(self, gen: int, n: int = 40) -> str:
        lines = self._log_path(gen).read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    async def start_child(self) -> None:
        """Spawn the next process on the same database; wait until it is up and clean."""
        self.gen += 1
        gen = self.gen
        spawned_wall = self.env.clock.wall_ns()
        self.control_url = None
        self.proc = proc = spawn_service(self.env, self._log_path(gen))

        def started() -> bool:
            # Up = its control endpoint listens (orphans were cancelled before it) and its
            # feeds connected and backfilled once.
            if proc.poll() is not None:
                return True
            events = self._log_events(gen)
            for event in events:
                if event.get("event") == "control_listening":
                    self.control_url = str(event["url"])
            return self.control_url is not None and any(
                e.get("event") == "resync_backfilled" for e in events)

        await until(started, timeout_s=60.0, what=f"process {gen} to start")
        if proc.poll() is not None:
            raise AssertionError(f"process {gen} exited {proc.returncode}:\n{self._tail(gen)}")
        self.token = (self.env.workdir / "control.token").read_text().strip()
        if self.down and self.down[-1].end_ns is None:
            self.down[-1].end_ns = self.env.clock.wall_ns()
        if gen > 1:
            self.counts["restarts"] += 1

            # The quotes a killed process left resting are cancelled by the next start.
            def orphans() -> list[str]:
                return [q.id for q in self.env.exchange.list_quotes(creator_user_id=BOT)
                        if q.status == QuoteStatus.OPEN and q.created_wall_ns < spawned_wall]

            try:
                await until(lambda: not orphans(), timeout_s=20.0, what="orphans cancelled")
            except AssertionError:
                self.violation(f"process {gen} left quotes of a dead process live: {orphans()}")

    async def kill(self) -> None:
        """``kill -9`` now, a short downtime, then the next process."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
            self._mark_down()
            self.counts["kill_random"] += 1
        await self._restart_after_kill()

    async def _restart_after_kill(self) -> None:
        assert self.proc is not None
        await asyncio.to_thread(self.proc.wait, 10)
        if self.proc.returncode != -signal.SIGKILL:
            self.violation(f"process {self.gen} exited {self.proc.returncode} before the kill")
        await asyncio.sleep(self.rng.uniform(0.1, 1.5))  # the downtime itself, not a sync
        await self.start_child()

    async def control(self, action: str) -> None:
        """POST /control/<action> to the running child."""
        assert self.control_url is not None
        async with httpx.AsyncClient(timeout=10.0) as client:
            r = await client.post(f"{self.control_url}/control/{action}", json={
                "reason": "chaos"} if action == "halt" else {},
                headers={"Authorization": f"Bearer {self.token}"})
        if r.status_code != 200:
            raise AssertionError(f"/control/{action}: {r.status_code} {r.text}")

    # --- the schedule -------------------------------------------------------------------

    def _elapsed_s(self) -> float:
        return (self.env.clock.now_ns() - self.t0_ns) / NS

    async def director(self) -> None:
        """Run the schedule, then let the load run to the end of the profile."""
        for at_s, action in self.profile.schedule:
            await asyncio.sleep(max(0.0, at_s - self._elapsed_s()))  # the schedule's pace
            await self.act(action)
        await asyncio.sleep(max(0.0, self.profile.duration_s - self._elapsed_s()))
        await self.ensure_child()

    async def ensure_child(self) -> None:
        """A process that exited without being killed is a violation; restart it (as a
        supervisor would) so that the run goes on and reports everything it finds."""
        if self.proc is not None and self.proc.poll() is not None:
            self.violation(f"process {self.gen} exited {self.proc.returncode} on its own")
            self.down.append(_Interval(self.env.clock.wall_ns()))
            await self.start_child()

    async def act(self, action: str) -> None:
        """One discrete fault."""
        await self.ensure_child()
        injector = self.env.faults.injector
        if action == "kill":
            await self.kill()
        elif action in ("confirm_kill_arrival", "confirm_kill_applied"):
            self.killed_at_confirm.clear()
            self.armed = action
            try:
                await until(self.killed_at_confirm.is_set, timeout_s=30.0, what="a confirm")
            except AssertionError:
                self.armed = None
                self.notes.append(f"{action} at {self._elapsed_s():.0f} s: no confirm in 30 s")
                return
            await self._restart_after_kill()
        elif action == "halt":
            await self.control("halt")
            self.halted = True
            self.halts.append(_Interval(self.env.clock.wall_ns()))
            self.counts["halts"] += 1
            await asyncio.sleep(self.profile.halt_s)  # how long the operator waits
            self.halted = False  # before the request: a confirm may follow the resume at once
            self.halts[-1].end_ns = self.env.clock.wall_ns()
            await self.control("resume")
        elif action == "sim_restart":
            await self.restart_sim()
        elif action == "cut":
            injector.cut_connections()
            self.counts["cuts"] += 1
        elif action == "lose_quotes":
            injector.restart_lose_open_quotes()
            self.counts["lose_quotes"] += 1
        elif action in _FORCED:
            # A rare fault made certain once: raise its rate until it happened, then back.
            base = base_faults()
            stat, update = _FORCED[action]
            before = injector.stats.as_dict()[stat]
            injector.apply(update(base))
            try:
                await until(lambda: injector.stats.as_dict()[stat] > before, timeout_s=20.0,
                            what=stat)
            except AssertionError:
                self.notes.append(f"{action} at {self._elapsed_s():.0f} s: no {stat} in 20 s")
            injector.apply(base)
            self.counts[action] += 1
        elif action in ("burst_429", "burst_5xx"):
            base = base_faults()
            status = 429 if action == "burst_429" else 502
            injector.apply(base.model_copy(update={"rest": base.rest.model_copy(update={
                "error_status": status, "error_duration_ms": 1_500})}))
            self.counts[action] += 1
        else:
            raise AssertionError(f"unknown action {action}")

    async def restart_sim(self) -> None:
        """Stop the simulator's server, keep the exchange, serve it again on the same port."""
        self.sim_down.append(_Interval(self.env.clock.wall_ns()))
        backfills = self.env.faults.count("GET", "/communications/quotes")
        await self.env.stop_sim()
        await asyncio.sleep(self.profile.sim_down_s)  # the simulator's downtime
        await self.env.start_sim()
        self.sim_down[-1].end_ns = self.env.clock.wall_ns()
        self.counts["sim_restarts"] += 1
        try:
            # Reconnected = the service listed our quotes again (its resync backfill).
            await until(lambda: self.env.faults.count("GET", "/communications/quotes")
                        > backfills, timeout_s=30.0, what="the service to reconnect")
        except AssertionError:
            self.violation("the service did not reconnect after the simulator restart")

    # --- load and sampling --------------------------------------------------------------

    async def requesters(self) -> None:
        """Requesters ask for quotes, accept some after a short think, delete stale RFQs."""
        ex = self.env.exchange
        rng = random.Random(self.profile.seed + 1)
        names = [f"chaos-req-{i}" for i in range(self.profile.requesters)]
        for name in names:
            ex.register_account(name, balance_micros=10**12)
        open_rfqs: dict[str, tuple[str, str, int]] = {}
        decided: set[str] = set()
        walked: set[str] = set()  # RFQs whose requester decided to walk away
        due: list[tuple[int, str, str, str, Side]] = []
        while not self.stop.is_set():
            await asyncio.sleep(self.profile.tick_s)  # the requesters' pace
            if not self.env.sim_running:
                continue
            now = self.env.clock.now_ns()
            if rng.random() < self.profile.rfq_probability_per_tick:
                name, ticker = rng.choice(names), rng.choice(TICKERS)
                if all((n, t) != (name, ticker) for n, t, _ in open_rfqs.values()):
                    try:
                        rfq_id = ex.create_rfq(name, ticker,
                                               contracts_centi=100 * rng.randint(1, 3))
                        open_rfqs[rfq_id] = (name, ticker,
                                             now + int(self.profile.rfq_lifetime_s * NS))
                        self.rfqs += 1
                    except SimError:
                        self.counts["requester_refused"] += 1
            for rfq_id, (name, _, expires) in list(open_rfqs.items()):
                pending = any(d[2] == rfq_id for d in due)
                if now >= expires and not pending:
                    awaiting = self._awaiting_confirm(rfq_id)
                    if awaiting and rfq_id not in walked:
                        if rng.random() >= self.profile.withdraw_probability:
                            continue  # it waits for the confirm (or the window's end)
                        walked.add(rfq_id)
                    del open_rfqs[rfq_id]
                    if awaiting:
                        self.withdrawn.add(rfq_id)
                        self.counts["requester_withdrew"] += 1
                    with contextlib.suppress(SimError):  # closed already
                        ex.delete_rfq(name, rfq_id)
                    continue
                for q in ex.list_quotes(rfq_id=rfq_id, creator_user_id=BOT):
                    if q.status == QuoteStatus.OPEN and q.id not in decided:
                        decided.add(q.id)
                        if rng.random() < self.profile.accept_probability:
                            due.append((now + int(rng.uniform(0.0, 0.3) * NS), name, rfq_id,
                                        q.id, rng.choice((Side.YES, Side.NO))))
            for item in [d for d in due if d[0] <= now]:
                due.remove(item)
                _, name, rfq_id, quote_id, side = item
                try:
                    ex.accept_quote(name, rfq_id, quote_id, side)
                    self.counts["requester_accepts"] += 1
                except SimError:
                    self.counts["requester_accept_refused"] += 1
        for rfq_id, (name, _, _) in open_rfqs.items():
            with contextlib.suppress(SimError):
                ex.delete_rfq(name, rfq_id)

    def _awaiting_confirm(self, rfq_id: str) -> bool:
        """A quote of ours on ``rfq_id`` is accepted, not yet confirmed, its window open."""
        wall = self.env.clock.wall_ns()
        return any(q.status == QuoteStatus.ACCEPTED and not q.voided
                   and q.accepted_wall_ns is not None
                   and wall < q.accepted_wall_ns + CONFIRM_WINDOW_MS * 10**6
                   for q in self.env.exchange.list_quotes(rfq_id=rfq_id, creator_user_id=BOT))

    async def monitor(self) -> None:
        """Sample the child (RSS, fds, tasks, exposure) and the exchange's positions."""
        async with httpx.AsyncClient(timeout=2.0) as client:
            while not self.stop.is_set():
                await asyncio.sleep(0.5)  # the sampling period
                self._check_positions()
                proc = self.proc
                if proc is None or proc.poll() is not None:
                    continue
                sample = _proc_sample(proc.pid)
                if sample is None:
                    continue  # it just died
                rss, fds = sample
                self.max_rss_kb, self.max_fds = max(self.max_rss_kb, rss), max(self.max_fds, fds)
                if rss > MAX_RSS_KB:
                    self.violation(f"RSS {rss} kB > {MAX_RSS_KB} kB", "rss")
                if fds > MAX_FDS:
                    self.violation(f"{fds} open fds > {MAX_FDS}", "fds")
                if self.control_url is not None:
                    await self._check_metrics(client)

    async def _check_metrics(self, client: httpx.AsyncClient) -> None:
        try:
            text = (await client.get(f"{self.control_url}/metrics")).text
        except httpx.HTTPError:
            return  # restarting
        values = {}
        for line in text.splitlines():
            if line.startswith(("quoter_tasks ", "quoter_exposure_worst_case_dollars ")):
                name, value = line.split()
                values[name] = float(value)
        tasks = int(values.get("quoter_tasks", 0))
        self.max_tasks = max(self.max_tasks, tasks)
        if tasks > MAX_TASKS:
            self.violation(f"{tasks} asyncio tasks > {MAX_TASKS}", "tasks")
        exposure = values.get("quoter_exposure_worst_case_dollars", 0.0)
        if exposure > MAX_WORST_CASE_LOSS_DOLLARS_TOTAL + 1e-9:
            self.violation(f"worst-case exposure ${exposure:.2f} over the "
                           f"${MAX_WORST_CASE_LOSS_DOLLARS_TOTAL} limit", "exposure")

    def _check_positions(self) -> None:
        positions = {t: p.position_centi for t, p in self.env.exchange.positions(BOT).items()}
        for ticker, pos in positions.items():
            if abs(pos) > MAX_POSITION_CONTRACTS_PER_MARKET * 100:
                self.violation(f"position {pos / 100} on {ticker} over the per-market limit",
                               f"pos-{ticker}")
        total = sum(abs(p) for p in positions.values())
        if total > MAX_POSITION_CONTRACTS_TOTAL * 100:
            self.violation(f"total position {total / 100} over the limit", "pos-total")

    # --- the run and the final checks ---------------------------------------------------

    async def run(self) -> SoakReport:
        """The whole run: start, load + schedule, quiesce, stop in order, check."""
        self.env.faults.injector.apply(base_faults())
        await self.start_child()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.requesters(), name="chaos-requesters")
            tg.create_task(self.monitor(), name="chaos-monitor")
            try:
                await self.director()
            finally:
                self.stop.set()
        await self.quiesce()
        await self.stop_child()
        return await self.final_report()

    async def quiesce(self) -> None:
        """Let every accept settle (executed or lapsed) and every fill reach the store."""
        ex = self.env.exchange

        def settled() -> bool:
            return all(q.voided or q.status not in (QuoteStatus.ACCEPTED, QuoteStatus.CONFIRMED)
                       for q in ex.list_quotes(creator_user_id=BOT))

        await until(settled, timeout_s=CONFIRM_WINDOW_MS / 1000 + 20, what="accepts to settle")
        db = self.env.workdir / "quoter.db"
        await until(lambda: stored_fills(db) >= len(ex.fills(BOT)), timeout_s=30.0,
                    what="every fill stored by the service")

    async def stop_child(self) -> None:
        """SIGTERM: the ordered shutdown; then no quote of ours may rest on the exchange."""
        assert self.proc is not None
        self.proc.terminate()
        await asyncio.to_thread(self.proc.wait, 60)
        if self.proc.returncode != 0:
            self.violation(f"the last process exited {self.proc.returncode}:\n"
                           + self._tail(self.gen))
        live = [q.id for q in self.env.exchange.list_quotes(creator_user_id=BOT)
                if q.status == QuoteStatus.OPEN]
        if live:
            self.violation(f"quotes live after the service exited: {live}")

    async def final_report(self) -> SoakReport:
        """Ledger to the cent, accept outcomes, logs; the figures."""
        self._check_ledger(await self._sim_ledger())
        outcomes, meant, confirmed = self._accept_outcomes()
        self._check_logs()
        quotes = self.env.exchange.list_quotes(creator_user_id=BOT)
        stats = self.env.faults.injector.stats.as_dict()
        faults = {k: v for k, v in stats.items() if k != "frames_seen"}
        for kind in ("kill_random", "confirm_kill_arrival", "confirm_kill_applied", "halts",
                     "sim_restarts", "cuts", "lose_quotes", "burst_429", "burst_5xx",
                     "requester_withdrew", *_FORCED):
            faults[kind] = self.counts[kind]
        return SoakReport(
            profile=self.profile.name, duration_s=self._elapsed_s(), rfqs=self.rfqs,
            quotes=len(quotes), accepts=sum(q.accepted_wall_ns is not None for q in quotes),
            confirm_requests=self.confirm_requests, fills=len(self.env.exchange.fills(BOT)),
            restarts=self.counts["restarts"], faults=faults, violations=self.violations,
            meant_to_confirm=meant, confirmed_of_meant=confirmed, outcomes=outcomes,
            max_rss_kb=self.max_rss_kb, max_fds=self.max_fds, max_tasks=self.max_tasks,
            notes=self.notes,
        )

    async def _sim_ledger(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10.0) as client:
            r = await client.get(f"{self.env.sim.base_url}/sim/ledger")
        r.raise_for_status()
        ledger: dict[str, Any] = r.json()["accounts"][BOT]
        return ledger

    def _check_ledger(self, theirs: dict[str, Any]) -> None:
        """The service's books (rebuilt from its database) equal the exchange's, exactly."""
        svc = self.env.service(self.env.settings(record_dir=None))
        try:
            ledger = svc.engine.ledger
            positions = {t: p["position_centi"] for t, p in theirs["positions"].items()}
            for ticker in sorted(set(ledger.tickers()) | set(positions)):
                ours, their = ledger.position_centi(ticker), positions.get(ticker, 0)
                if ours != their:
                    self.violation(f"{ticker}: position ours {ours}, exchange {their}")
            our_fees = sum(ledger.market(t).fees_micros for t in ledger.tickers())
            if our_fees != theirs["fees_paid_micros"]:
                self.violation(f"fees: ours {our_fees}, exchange {theirs['fees_paid_micros']}")
            our_cash = sum(ledger.market(t).cost_micros - ledger.market(t).realized_pnl_micros
                           for t in ledger.tickers())
            their_cash = self.env.start_balance_micros - theirs["balance_micros"]
            if our_cash != their_cash:
                self.violation(f"cash spent: ours {our_cash}, exchange {their_cash} (micros)")
        finally:
            svc.store.close()

    def _accept_outcomes(self) -> tuple[dict[str, int], int, int]:
        """Every accept: confirmed, declined with a reason, or lapsed with a reason."""
        from quoter.service.store import Store

        window_ns = CONFIRM_WINDOW_MS * 10**6
        outcomes: Counter[str] = Counter()
        meant = confirmed = 0
        with Store(self.env.workdir / "quoter.db") as db:
            decisions = db.decisions()
            known = {q.id for q in self.env.exchange.list_quotes(creator_user_id=BOT)
                     if db.quote(q.id) is not None}
        by_rfq: dict[str, list[Any]] = {}
        for d in decisions:
            by_rfq.setdefault(d.rfq_id, []).append(d)
        for q in self.env.exchange.list_quotes(creator_user_id=BOT):
            acc = q.accepted_wall_ns
            if acc is None:
                continue
            lo, hi = acc, acc + window_ns
            # A kill just after the window may still lose the decision (flushed every 1 s),
            # so it excuses a missing reason; only an outage inside the window excuses a lapse.
            down = any(i.overlaps(lo, hi + 5 * NS) for i in self.down)
            down_in_window = any(i.overlaps(lo, hi) for i in self.down)
            sim_down = any(i.overlaps(lo, hi) for i in self.sim_down)
            halted = any(i.overlaps(lo, hi) for i in self.halts)
            # The requester closed its RFQ while our confirm was due (a requester may walk
            # away): no confirm can land after that, ours or anyone's.
            walked = (q.rfq_id in self.withdrawn and q.status == QuoteStatus.CANCELLED
                      and q.cancellation_reason == "rfq_closed")
            later = [d for d in by_rfq.get(q.rfq_id, ())
                     if d.ts_wall_ns >= lo - NS and d.decision not in ("quoted", "held")]
            decided = [d for d in later if d.reason]
            ok = q.status in (QuoteStatus.CONFIRMED, QuoteStatus.EXECUTED) and not q.voided
            excused = down_in_window or sim_down or halted or walked
            if not excused and (ok or any(d.decision == "confirmed" for d in decided)):
                meant += 1
                confirmed += ok
            if ok:
                outcomes["confirmed"] += 1
            elif down:
                outcomes["lapsed: service down"] += 1
            elif sim_down:
                outcomes["lapsed: simulator down"] += 1
            elif halted:
                outcomes["declined: halted"] += 1
            elif walked:
                outcomes["lapsed: the requester closed its RFQ before our confirm"] += 1
            elif decided:
                last = decided[-1]
                outcomes[f"{last.decision}: {last.reason}"] += 1
            elif q.id not in known and any(d.decision == "rejected"
                                           for d in by_rfq.get(q.rfq_id, ())):
                # Its create answer was unreadable (a spoiled body): the service never learned
                # the id, so it cannot confirm; the exit sweep would withdraw it.
                outcomes["lapsed: quote unknown to the service (create answer unreadable)"] += 1
            else:
                outcomes["no outcome"] += 1
                self.violation(f"accept of {q.id} (rfq {q.rfq_id}) ended {q.status} "
                               "with no decision and no excuse")
        return dict(outcomes), meant, confirmed

    def _check_logs(self) -> None:
        for gen in range(1, self.gen + 1):
            text = self._log_path(gen).read_text(errors="replace")
            if "Traceback" in text:
                at = text.index("Traceback")
                self.violation(f"traceback in process {gen}'s log:\n{text[at:at + 2000]}")
            for event in self._log_events(gen):
                if event.get("event") in CRASH_EVENTS:
                    self.violation(f"process {gen}: {event}")


def _proc_sample(pid: int) -> tuple[int, int] | None:
    """``(VmRSS kB, open fds)`` of a live process, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return None
    rss = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")), 0)
    return rss, fds


async def run_soak(workdir: Path, profile: SoakProfile) -> SoakReport:
    """Run one soak in ``workdir``; the report says what happened and what broke."""
    async with sim_env(workdir, execution_timer_ms=300, confirm_window_ms=CONFIRM_WINDOW_MS,
                       config_yaml=CHAOS_CONFIG, fault_seed=profile.seed,
                       faults_class=ChaosFaults) as env:
        assert isinstance(env.faults, ChaosFaults)
        soak = Soak(env, profile)
        env.faults.soak = soak
        try:
            return await soak.run()
        finally:
            env.faults.soak = None
            if soak.proc is not None and soak.proc.poll() is None:
                soak.proc.kill()
                soak.proc.wait(10)
