"""The configured strategies, built: each with its effective lifecycle and its modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from quoter.config import LifecycleParams, ModuleRef, QuoterConfig, StrategyConfig
from strategies.base import Overlay, Pricer

__all__ = ["ModuleFactory", "Strategy", "build_strategies", "registry_build"]

ModuleFactory = Callable[[ModuleRef], Pricer | Overlay]


def registry_build(ref: ModuleRef) -> Pricer | Overlay:
    """Build a module through ``strategies.registry`` (the default factory)."""
    from strategies import registry

    return registry.build(ref.name, ref.params)


@dataclass(frozen=True, slots=True)
class Strategy:
    """A strategy ready to run: its config, effective lifecycle and built modules."""

    config: StrategyConfig
    lifecycle: LifecycleParams
    pricer: Pricer
    overlays: tuple[Overlay, ...]


def build_strategies(config: QuoterConfig, factory: ModuleFactory) -> dict[str, Strategy]:
    """Build every enabled strategy's modules (raises whatever a module factory raises)."""
    built: dict[str, Strategy] = {}
    for s in config.strategies:
        if not s.enabled:
            continue
        # The config validated each module's kind against the registry.
        pricer = cast(Pricer, factory(s.pricer))
        overlays = tuple(cast(Overlay, factory(o)) for o in s.overlays)
        built[s.name] = Strategy(s, config.lifecycle_for(s), pricer, overlays)
    return built
