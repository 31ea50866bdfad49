"""The strategy configuration (YAML): its models and its loader.

Not the environment (URLs, keys, modes: ``quoter.service.environment``): this is what a
maker writes to say which RFQs to quote and how.
"""

from quoter.config.loader import config_hash, config_schema, load_config, parse_config, reload
from quoter.config.model import (
    LifecycleParams,
    MatchRule,
    ModuleRef,
    QuoterConfig,
    QuotingParams,
    RequesterParams,
    RiskLimits,
    StrategyConfig,
)

__all__ = [
    "LifecycleParams",
    "MatchRule",
    "ModuleRef",
    "QuoterConfig",
    "QuotingParams",
    "RequesterParams",
    "RiskLimits",
    "StrategyConfig",
    "config_hash",
    "config_schema",
    "load_config",
    "parse_config",
    "reload",
]
