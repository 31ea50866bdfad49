"""Pricers for the pricing-pool tests, importable by spawned workers (``tests`` is on sys.path).

Importing this module registers them; a worker gets their specs shipped with each request.
``pool_sleepy`` really sleeps (a stand-in for a runaway CPU-heavy model), so it only belongs in
a worker process, and with ``report_pid`` declines with its worker's pid as the detail;
``pool_boom`` raises.
"""

from __future__ import annotations

import os
import time
from typing import ClassVar

from pydantic import Field

from strategies._common import Price, bids_from_fair
from strategies.base import Decline, Params, Pricing, PricingInput
from strategies.registry import ModuleSpec, register


class SleepyParams(Params):
    """How long to sleep before answering, and the fair value to answer."""

    sleep_ms: int = 0
    fair_micros: Price = Field(default=500_000, validation_alias="fair_dollars")
    report_pid: bool = False


class Sleepy:
    """Sleep, then quote ``fair`` +- 2 cents (or decline with the worker's pid)."""

    name: ClassVar[str] = "pool_sleepy"

    def __init__(self, params: SleepyParams) -> None:
        self.params = params

    def price(self, inp: PricingInput) -> Pricing | Decline:
        """Sleep ``sleep_ms`` (blocking, like a heavy model) and price."""
        if self.params.sleep_ms:
            time.sleep(self.params.sleep_ms / 1000)
        if self.params.report_pid:
            return Decline("pid", str(os.getpid()))
        yes, no = bids_from_fair(self.params.fair_micros, 20_000)
        return Pricing(self.params.fair_micros, yes, no)


class BoomParams(Params):
    """No parameters."""


class Boom:
    """Always raises."""

    name: ClassVar[str] = "pool_boom"

    def __init__(self, params: BoomParams) -> None:
        self.params = params

    def price(self, inp: PricingInput) -> Pricing | Decline:
        """Raise."""
        raise ZeroDivisionError("boom in the worker")


def _sleepy(params: Params) -> Sleepy:
    assert isinstance(params, SleepyParams)
    return Sleepy(params)


def _boom(params: Params) -> Boom:
    assert isinstance(params, BoomParams)
    return Boom(params)


SPECS = (
    ModuleSpec(name="pool_sleepy", kind="pricer", params_model=SleepyParams, factory=_sleepy),
    ModuleSpec(name="pool_boom", kind="pricer", params_model=BoomParams, factory=_boom),
)
for _spec in SPECS:
    register(_spec)
