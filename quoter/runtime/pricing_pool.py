"""Execute ``PriceInPool``: a strategy's modules in worker processes with a hard timeout.

A strategy with ``quoting.isolation: process`` is priced outside the engine (which stays pure:
it emits ``PriceInPool`` and continues on ``PricingCompleted``). Two executors answer it:

* :class:`PricingPool` (live and simulated runs): a ``ProcessPoolExecutor`` on the ``spawn``
  start method, created lazily and warmed up before it is trusted. Each worker rebuilds the
  modules from their ``ModuleRef`` (name + validated params) through ``strategies.registry``
  and caches them; the ``ModuleSpec`` of each module travels along, so a module registered in
  the parent at run time (not only built-ins and entry points) can be built in the worker. A
  request that gets no answer by its deadline is declined ``pricer_timeout`` and the pool is
  **recycled**: its processes are killed (a stuck pricer cannot be interrupted any other way)
  and a fresh pool starts. A request the recycle (or a crashed worker) took down with it is
  tried once more while its deadline allows. An exception in a module, or a module that cannot
  be shipped or built, is ``pricer_error``.
* :class:`InlinePricing` (replays, backtests, tests on a ``ReplayClock``): runs the modules
  synchronously in this process, so a run without a pool decides deterministically.

Requests never queue inside the executor: the runtime runs at most ``workers`` at a time (one
per worker task), so a request that times out was really running; time spent waiting for a
free worker counts against its deadline but never recycles the pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final

import structlog

from quoter.domain.commands import PriceInPool
from quoter.engine.pricing import PRICER_ERROR, PRICER_TIMEOUT, run_pricing
from strategies import registry
from strategies.base import Decline, Overlay, Pricer, Pricing, PricingInput

__all__ = ["InlinePricing", "PricingPool"]

log = structlog.get_logger("quoter.runtime.pricing_pool")

#: Built modules kept per worker process (and per ``InlinePricing``), by module blob.
_MAX_CACHED: Final = 64

_Modules = tuple[Pricer, tuple[Overlay, ...]]
# What a worker sends back: ("p", fair, yes, no) or ("d", reason, detail), plain values only.
_Wire = tuple[Any, ...]

_built: dict[bytes, _Modules] = {}


def _build_modules(blob: bytes) -> _Modules:
    """Build (or reuse) the modules a blob of ``(specs, pricer ref, overlay refs)`` names."""
    modules = _built.get(blob)
    if modules is None:
        specs, pricer_ref, overlay_refs = pickle.loads(blob)  # noqa: S301 - our own parent
        registry.load_entry_points()
        for spec in specs:
            registry.register(spec)
        pricer = registry.build_pricer(pricer_ref.name, pricer_ref.params)
        overlays = tuple(registry.build_overlay(o.name, o.params) for o in overlay_refs)
        if len(_built) >= _MAX_CACHED:
            _built.clear()
        modules = _built[blob] = (pricer, overlays)
    return modules


def _to_wire(res: Pricing | Decline) -> _Wire:
    if isinstance(res, Pricing):
        return ("p", res.fair_yes_micros, res.yes_bid_micros, res.no_bid_micros)
    return ("d", str(res.reason), str(res.detail))


def _from_wire(wire: _Wire) -> Pricing | Decline:
    if wire[0] == "p":
        return Pricing(wire[1], wire[2], wire[3])
    return Decline(wire[1], wire[2])


def _price_in_worker(blob: bytes, inputs: bytes) -> _Wire:
    """Worker entry point: build the modules (cached) and price the unpickled input."""
    pricer, overlays = _build_modules(blob)
    inp = pickle.loads(inputs)  # noqa: S301 - pickled by our own parent process
    # No budget here: the parent's hard timeout is the budget.
    return _to_wire(run_pricing(pricer, overlays, inp, budget_ns=0, perf_ns=None))


def _init_worker() -> None:
    """Worker start: a Ctrl-C is the parent's to handle (it kills the pool on shutdown)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm_worker() -> int:
    """Worker warm-up: load the registry (entry points) before the first real request."""
    registry.load_entry_points()
    return os.getpid()


class _Blobs:
    """Pickled ``(specs, pricer, overlays)`` per strategy's refs, built once per refs object."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, ...], tuple[tuple[object, ...], bytes]] = {}

    def get(self, pricer: Any, overlays: Sequence[Any]) -> bytes:
        refs = (pricer, *overlays)
        key = tuple(id(r) for r in refs)
        hit = self._cache.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], refs, strict=True)):
            return hit[1]
        specs = tuple(registry.get_spec(r.name) for r in refs)
        blob = pickle.dumps((specs, pricer, tuple(overlays)))
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (refs, blob)  # holding the refs keeps their ids unique
        return blob


class InlinePricing:
    """Answer ``PriceInPool`` synchronously in this process (replays, backtests, tests)."""

    def __init__(self) -> None:
        self._blobs = _Blobs()

    def price(self, command: PriceInPool) -> Pricing | Decline:
        """Run the command's modules on its inputs; never raises."""
        try:
            pricer, overlays = _build_modules(self._blobs.get(command.pricer, command.overlays))
        except Exception as exc:  # a module that cannot be built is a strategy error
            return Decline(PRICER_ERROR, f"{type(exc).__name__}: {exc}")
        inp: PricingInput = command.inputs
        return run_pricing(pricer, overlays, inp, budget_ns=0, perf_ns=None)


class PricingPool:
    """Worker processes that price ``PriceInPool`` requests under a hard timeout."""

    def __init__(
        self, workers: int = 2, *, eager: bool = False, start_method: str = "spawn"
    ) -> None:
        """Configure the pool; processes start at ``start()`` or on the first request.

        ``eager``: the runtime starts it with the run (a config that uses it from the start),
        so the first requests do not wait for workers to spawn.
        """
        if workers < 1:
            raise ValueError("a pricing pool needs at least one worker")
        self.workers = workers
        self.eager = eager
        self._context = multiprocessing.get_context(start_method)
        self._executor: ProcessPoolExecutor | None = None
        self._warming: list[asyncio.Future[int]] = []
        self._generation = 0
        self._blobs = _Blobs()
        #: How many times a pool was killed and replaced (timeouts, broken workers).
        self.recycles = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker processes now (they warm up in the background)."""
        self._ensure()

    async def ready(self, timeout_s: float | None = None) -> bool:
        """Start if needed and wait until every worker is up; False if ``timeout_s`` passed."""
        self._ensure()
        warming = self._warming
        if not warming:
            return True
        done, _ = await asyncio.wait(warming, timeout=timeout_s)
        for fut in done:
            if not fut.cancelled():
                fut.exception()  # a failed warm-up surfaces on the next submit
        return len(done) == len(warming)

    def close(self) -> None:
        """Kill the workers and drop the pool (idempotent)."""
        self._kill("close")

    def _ensure(self) -> tuple[ProcessPoolExecutor, int]:
        if self._executor is None:
            ex = ProcessPoolExecutor(self.workers, mp_context=self._context,
                                     initializer=_init_worker)
            # Submitting ``workers`` tasks at once spawns every process now.
            self._warming = [asyncio.wrap_future(ex.submit(_warm_worker))
                             for _ in range(self.workers)]
            self._executor = ex
        return self._executor, self._generation

    def _kill(self, why: str) -> None:
        ex, self._executor = self._executor, None
        self._generation += 1
        for fut in self._warming:
            fut.cancel()
        self._warming = []
        if ex is None:
            return
        processes = list((ex._processes or {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.kill()
        log.info("pricing_pool_stopped", reason=why, processes=len(processes))

    def _recycle(self, generation: int, why: str) -> None:
        """Replace the pool ``generation`` (once, however many requests saw it fail)."""
        if generation != self._generation:
            return
        self.recycles += 1
        log.warning("pricing_pool_recycled", reason=why, recycles=self.recycles)
        self._kill(why)
        self._ensure()

    # -- pricing -------------------------------------------------------------------------

    async def price(self, command: PriceInPool, timeout_s: float) -> Pricing | Decline:
        """Price ``command`` within ``timeout_s`` seconds; never raises (but cancellation)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            blob = self._blobs.get(command.pricer, command.overlays)
            inputs = pickle.dumps(command.inputs)
        except Exception as exc:  # unpicklable params or inputs: cannot leave this process
            return Decline(PRICER_ERROR, f"cannot ship to a worker: {type(exc).__name__}: {exc}")
        for _attempt in range(2):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Decline(PRICER_TIMEOUT, "deadline passed before a worker was free")
            ex, generation = self._ensure()
            if not await self.ready(remaining):
                # Starting workers are not stuck ones: no recycle.
                return Decline(PRICER_TIMEOUT, "pricing pool still starting")
            if generation != self._generation or self._executor is not ex:
                continue
            try:
                cfut: Future[_Wire] = ex.submit(_price_in_worker, blob, inputs)
            except (BrokenProcessPool, RuntimeError) as exc:
                self._recycle(generation, f"submit failed: {type(exc).__name__}")
                continue
            afut = asyncio.wrap_future(cfut)
            try:
                done, _ = await asyncio.wait({afut}, timeout=max(0.0, deadline - loop.time()))
            finally:
                if not afut.done():
                    afut.cancel()
            if not done:
                self._recycle(generation, f"timeout rfq={command.rfq_id}")
                ms = round(timeout_s * 1000)
                return Decline(PRICER_TIMEOUT, f"no answer within {ms} ms; worker killed")
            if afut.cancelled():
                continue  # another request's timeout recycled the pool under this one
            error = afut.exception()
            if error is None:
                return _from_wire(afut.result())
            if isinstance(error, BrokenProcessPool):
                self._recycle(generation, "worker died")
                continue
            return Decline(PRICER_ERROR, f"{type(error).__name__}: {error}")
        return Decline(PRICER_ERROR, "the pricing pool failed twice for this request")
