"""Control: config reloads, swapped in whole or not at all."""

from __future__ import annotations

from quoter.config import QuoterConfig
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.engine.records import Records
from quoter.engine.strategy_set import ModuleFactory, Strategy, build_strategies


class Control:
    """Apply config reloads: a whole validated config with its built modules, or none."""

    def __init__(self, records: Records, factory: ModuleFactory) -> None:
        self.r = records
        self.factory = factory

    def build(self, config: QuoterConfig) -> dict[str, Strategy]:
        """Build ``config``'s strategies with this engine's module factory."""
        return build_strategies(config, self.factory)

    def on_config(self, ev: E.ConfigReloaded, now: int, out: list[C.Command]) -> None:
        """Swap the whole config atomically; keep the old one if its modules fail to build."""
        config = ev.config
        if not isinstance(config, QuoterConfig):
            out.append(C.RecordDecision("", "", "config_rejected", "not_a_config"))
            return
        try:
            strategies = self.build(config)
        except Exception as exc:  # a module factory failing must not leave half a config
            out.append(C.RecordDecision("", "", "config_rejected", "build_failed", detail=str(exc)))
            return
        self.r.config, self.r.strategies = config, strategies
        self.r.risk.limits = config.risk
        out.append(C.RecordDecision("", "", "config_applied", "reloaded"))
