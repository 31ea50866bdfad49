"""The strategy configuration's models: strict and frozen, in internal units.

YAML keys carry human units (``*_dollars`` exact decimal strings, ``*_contracts``, ``*_ms``);
the models hold internal units (``*_micros``, ``*_centi``) under attribute names that say so.
Every model is ``extra="forbid"`` and frozen. Reading YAML into them is
:mod:`quoter.config.loader`'s job.

Each ``pricer``/``overlays`` entry names a module in ``strategies.registry``; its ``params:``
are validated by that module's own ``Params`` model, so errors carry the full path
(``strategies[0].pricer.params.edge_dollars``). Relative file paths inside params (e.g. the
``fixed`` pricer's CSV) are resolved against the config file's directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fnmatch import translate
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializeAsAny,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from quoter.domain.events import RfqReceived
from quoter.domain.money import (
    CENTI_PER_CONTRACT,
    MICROS_PER_DOLLAR,
)
from quoter.domain.types import MarketInfo, MarketStatus
from quoter.errors import ConfigError
from strategies import registry
from strategies._common import Contracts, Dollars, Edge, SignedDollars
from strategies.base import Params

__all__ = [
    "LifecycleParams",
    "MatchRule",
    "ModuleRef",
    "QuoterConfig",
    "QuotingParams",
    "RequesterParams",
    "RiskLimits",
    "StrategyConfig",
]

Ms = Annotated[StrictInt, Field(ge=0)]
PosInt = Annotated[StrictInt, Field(ge=1)]
Patterns = Annotated[tuple[StrictStr, ...], Field(min_length=1)]

_FAILED_TYPE = "quoter_module_failed"
_DUPLICATE_TYPE = "quoter_duplicate_strategy"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# --- match rules ------------------------------------------------------------------------------


def _compile(patterns: Sequence[str], *, ignore_case: bool) -> re.Pattern[str] | None:
    """Compile fnmatch patterns into one regex; ``None`` means "matches everything"."""
    if not patterns or "*" in patterns:
        return None
    return re.compile("|".join(translate(p) for p in patterns), re.IGNORECASE if ignore_case else 0)


class MatchRule(_Strict):
    """Which RFQs a strategy handles. Patterns are ``fnmatch`` globs (tickers case-insensitive).

    Filters that need market metadata pass while ``market`` is ``None``: the engine checks again
    once the market is loaded. ``collections`` applies to combo RFQs only. An RFQ's notional is
    its target cost, or $1 per contract (the most a contract can pay) for contract RFQs.
    """

    series: Patterns = ("*",)
    events: Patterns = ("*",)
    markets: Patterns = ("*",)
    kind: Literal["single", "combo", "any"] = "any"
    max_legs: PosInt | None = None
    collections: Patterns = ("*",)
    min_contracts_centi: Contracts | None = Field(default=None, validation_alias="min_contracts")
    max_contracts_centi: Contracts | None = Field(default=None, validation_alias="max_contracts")
    max_notional_micros: Dollars | None = Field(
        default=None, validation_alias="max_notional_dollars"
    )
    min_time_to_close_ms: Ms | None = None
    market_statuses: Patterns = ("active",)
    requesters_allow: tuple[StrictStr, ...] = ()
    requesters_deny: tuple[StrictStr, ...] = ()

    _series_re: re.Pattern[str] | None = PrivateAttr(default=None)
    _events_re: re.Pattern[str] | None = PrivateAttr(default=None)
    _markets_re: re.Pattern[str] | None = PrivateAttr(default=None)
    _collections_re: re.Pattern[str] | None = PrivateAttr(default=None)
    _allow_re: re.Pattern[str] | None = PrivateAttr(default=None)
    _deny_re: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("market_statuses")
    @classmethod
    def _known_statuses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = {s.value for s in MarketStatus}
        bad = [s for s in value if s not in known]
        if bad:
            raise ValueError(f"unknown market status {bad[0]!r}; one of {', '.join(sorted(known))}")
        return value

    @model_validator(mode="after")
    def _cross_fields(self) -> Self:
        lo, hi = self.min_contracts_centi, self.max_contracts_centi
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_contracts must be <= max_contracts")
        if self.kind == "single" and self.max_legs is not None:
            raise ValueError("max_legs only applies to combo RFQs (kind: single given)")
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Precompile the patterns once (matching is on the hot path)."""
        self._series_re = _compile(self.series, ignore_case=True)
        self._events_re = _compile(self.events, ignore_case=True)
        self._markets_re = _compile(self.markets, ignore_case=True)
        self._collections_re = _compile(self.collections, ignore_case=True)
        self._allow_re = _compile(self.requesters_allow, ignore_case=False)
        self._deny_re = (
            re.compile("|".join(translate(p) for p in self.requesters_deny))
            if self.requesters_deny else None
        )

    def matches(
        self, rfq: RfqReceived, market: MarketInfo | None, now_wall_ms: int | None
    ) -> str | None:
        """Return ``None`` if ``rfq`` passes every filter, else the first failed filter's code."""
        if market is not None and self._series_re is not None and not self._series_re.fullmatch(
            market.series_ticker
        ):
            return "series"
        event = rfq.event_ticker or (market.event_ticker if market is not None else None)
        if self._events_re is not None and event is not None and not self._events_re.fullmatch(
            event
        ):
            return "event"
        if self._markets_re is not None and not self._markets_re.fullmatch(rfq.market_ticker):
            return "market"
        is_combo = bool(rfq.legs) or rfq.mve_collection_ticker is not None or (
            market is not None and market.is_combo
        )
        if self.kind != "any" and (self.kind == "combo") != is_combo:
            return "kind"
        if is_combo:
            legs = len(rfq.legs) or (len(market.legs) if market is not None else 0)
            if self.max_legs is not None and legs > self.max_legs:
                return "max_legs"
            collection = rfq.mve_collection_ticker or (
                market.mve_collection_ticker if market is not None else None
            )
            if self._collections_re is not None and not self._collections_re.fullmatch(
                collection or ""
            ):
                return "collection"
        contracts = rfq.contracts_centi
        if contracts is not None and (
            (self.min_contracts_centi is not None and contracts < self.min_contracts_centi)
            or (self.max_contracts_centi is not None and contracts > self.max_contracts_centi)
        ):
            return "contracts"
        if self.max_notional_micros is not None:
            notional = rfq.target_cost_micros
            if notional is None and contracts is not None:
                notional = contracts * MICROS_PER_DOLLAR // CENTI_PER_CONTRACT
            if notional is not None and notional > self.max_notional_micros:
                return "notional"
        if (
            self.min_time_to_close_ms is not None
            and market is not None
            and market.close_ts_ms is not None
            and now_wall_ms is not None
            and market.close_ts_ms - now_wall_ms < self.min_time_to_close_ms
        ):
            return "time_to_close"
        if market is not None and market.status.value not in self.market_statuses:
            return "market_status"
        who = rfq.creator_id
        if self._deny_re is not None and self._deny_re.fullmatch(who):
            return "requester"
        if self._allow_re is not None and not self._allow_re.fullmatch(who):
            return "requester"
        return None


# --- modules --------------------------------------------------------------------------------


class ModuleRef(_Strict):
    """A pricer or overlay by registry name, with its validated ``Params``.

    YAML: ``{name: book_mid, params: {...}}``, or just ``book_mid`` for default params.
    """

    name: StrictStr
    params: SerializeAsAny[Params]

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any, info: ValidationInfo) -> Any:
        if data is _FAILED:
            # Already reported, with its full field path, by the pre-pass in _validate().
            raise PydanticCustomError(_FAILED_TYPE, "module reference failed validation")
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            return data
        try:
            spec = registry.get_spec(data["name"])
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        raw = data.get("params", {})
        if isinstance(raw, Params):
            if not isinstance(raw, spec.params_model):
                raise ValueError(f"params for {spec.name!r} must be {spec.params_model.__name__}")
            return data
        try:
            params = spec.params_model.model_validate(
                {} if raw is None else raw, context=info.context
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"params.{where}: {first['msg']}") from None
        return {**data, "params": params}


class _Failed:
    """Placeholder for a module reference whose errors were already collected."""


_FAILED = _Failed()


# --- quoting, lifecycle, risk ------------------------------------------------------------------


class QuotingParams(_Strict):
    """How a strategy turns a pricing into a quote."""

    # The engine enforces yes_bid + no_bid <= $1 - min_spread after snapping.
    min_spread_micros: Edge = Field(default=10_000, validation_alias="min_spread_dollars")
    rest_remainder: StrictBool = False
    post_only: StrictBool = False
    # A pricer that overruns this budget is treated as a decline (strategy error).
    pricer_budget_us: PosInt = 2000
    # ``inline``: the engine calls the modules itself (budget measured, never interrupted);
    # ``process``: they run in a worker process (quoter.runtime.pricing_pool), killed after
    # ``pricer_timeout_ms`` (docs/strategies.md, "Isolation").
    isolation: Literal["inline", "process"] = "inline"
    pricer_timeout_ms: Annotated[StrictInt, Field(ge=1, le=10_000)] = 250


class LifecycleParams(_Strict):
    """Timings and tolerances of the quote lifecycle (kalshi-api.md §3.3)."""

    replace_tolerance_micros: Edge = Field(
        default=10_000, validation_alias="replace_tolerance_dollars"
    )
    min_replace_interval_ms: Ms = 250
    # Confirm an accept if the accepted side's edge vs the re-priced fair is >= this.
    last_look_min_edge_micros: SignedDollars = Field(
        default=0, validation_alias="last_look_min_edge_dollars"
    )
    confirm_window_ms: Ms = 30_000
    # HVM (all combos): 3 s to confirm; we design for 1 s (kalshi-api.md §0, §6).
    hvm_confirm_window_ms: Ms = 3_000
    # Market tickers (fnmatch globs, case-insensitive) the operator knows are HVM: no documented
    # field marks a single market HVM, so its shorter window is opt-in ("*" for every market).
    hvm_markets: tuple[StrictStr, ...] = ()
    confirm_safety_margin_ms: Ms = 200
    cancel_before_close_ms: Ms = 60_000
    # Opt-in age limit for a book that has not changed. Off by default: a quiet book is not a
    # stale one (illiquid markets are where RFQs matter most); a book is untrusted only when we
    # cannot know it is current (no snapshot yet, a sequence gap, a lost connection).
    book_stale_after_ms: Ms | None = None
    pending_rfq_timeout_ms: Ms = 2_000

    _hvm_re: re.Pattern[str] | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        """Precompile the HVM patterns once (read at every accept)."""
        self._hvm_re = _compile(self.hvm_markets, ignore_case=True) if self.hvm_markets else None

    def declared_hvm(self, market_ticker: str) -> bool:
        """True when ``hvm_markets`` names the market (``"*"`` names every one)."""
        if not self.hvm_markets:
            return False
        return self._hvm_re is None or self._hvm_re.fullmatch(market_ticker) is not None

    @model_validator(mode="after")
    def _windows(self) -> Self:
        if self.hvm_confirm_window_ms > self.confirm_window_ms:
            raise ValueError("hvm_confirm_window_ms must be <= confirm_window_ms")
        if self.confirm_safety_margin_ms >= self.hvm_confirm_window_ms:
            raise ValueError("confirm_safety_margin_ms must be < hvm_confirm_window_ms")
        return self


class RiskLimits(_Strict):
    """Hard limits the engine enforces before quoting and before confirming."""

    max_position_centi_per_market: Contracts = Field(
        default=10_000, validation_alias="max_position_contracts_per_market"
    )
    max_position_centi_per_event: Contracts = Field(
        default=20_000, validation_alias="max_position_contracts_per_event"
    )
    max_position_centi_per_series: Contracts = Field(
        default=50_000, validation_alias="max_position_contracts_per_series"
    )
    max_position_centi_total: Contracts = Field(
        default=100_000, validation_alias="max_position_contracts_total"
    )
    max_worst_case_loss_micros_per_market: Dollars = Field(
        default=100 * MICROS_PER_DOLLAR, validation_alias="max_worst_case_loss_dollars_per_market"
    )
    max_worst_case_loss_micros_total: Dollars = Field(
        default=1_000 * MICROS_PER_DOLLAR, validation_alias="max_worst_case_loss_dollars_total"
    )
    max_open_quotes: PosInt = 100
    daily_realized_loss_stop_micros: Dollars = Field(
        default=500 * MICROS_PER_DOLLAR, validation_alias="daily_loss_stop_dollars"
    )

    @model_validator(mode="after")
    def _nested(self) -> Self:
        total = self.max_position_centi_total
        for scope in ("market", "event", "series"):
            if getattr(self, f"max_position_centi_per_{scope}") > total:
                raise ValueError(
                    f"max_position_contracts_per_{scope} must be <= max_position_contracts_total"
                )
        if self.max_worst_case_loss_micros_per_market > self.max_worst_case_loss_micros_total:
            raise ValueError(
                "max_worst_case_loss_dollars_per_market must be <= "
                "max_worst_case_loss_dollars_total"
            )
        return self


# --- strategies and the whole config ----------------------------------------------------------


class StrategyConfig(_Strict):
    """One strategy: which RFQs it takes, how it prices them, how it quotes."""

    name: Annotated[StrictStr, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    enabled: StrictBool = True
    match: MatchRule = MatchRule()
    pricer: ModuleRef
    overlays: tuple[ModuleRef, ...] = ()
    quoting: QuotingParams = QuotingParams()
    # Keys given here override the top-level lifecycle; omitted keys inherit it.
    lifecycle: LifecycleParams | None = None

    @model_validator(mode="after")
    def _kinds(self) -> Self:
        if registry.get_spec(self.pricer.name).kind != "pricer":
            raise ValueError(f"pricer {self.pricer.name!r} is an overlay, not a pricer")
        for ref in self.overlays:
            if registry.get_spec(ref.name).kind != "overlay":
                raise ValueError(f"overlay {ref.name!r} is a pricer, not an overlay")
        return self


class RequesterParams(_Strict):
    """What the engine learns about requesters (``PricingInput.requester``)."""

    # Each fill of ours is marked to the book mid this long after it; the first horizon is
    # the one ``requester_profile`` judges by unless it names another.
    markout_horizons_ms: Annotated[tuple[PosInt, ...], Field(min_length=1, max_length=8)] = (
        5_000, 60_000,
    )

    @field_validator("markout_horizons_ms")
    @classmethod
    def _distinct(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(value)) != len(value):
            raise ValueError("mark-out horizons must be distinct")
        return value


class QuoterConfig(_Strict):
    """The whole strategy configuration (one YAML file)."""

    version: Literal[1]
    strategies: tuple[StrategyConfig, ...]
    risk: RiskLimits = RiskLimits()
    lifecycle: LifecycleParams = LifecycleParams()
    requesters: RequesterParams = RequesterParams()

    @model_validator(mode="before")
    @classmethod
    def _inherit_lifecycle(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        top = data.get("lifecycle") or {}
        strategies = data.get("strategies")
        if not isinstance(top, Mapping) or not isinstance(strategies, list | tuple):
            return data
        merged = []
        for s in strategies:
            if isinstance(s, Mapping) and isinstance(s.get("lifecycle"), Mapping):
                merged.append({**s, "lifecycle": {**top, **s["lifecycle"]}})
            else:
                merged.append(s)
        return {**data, "strategies": merged}

    @field_validator("strategies", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        # Checked before item validation: pydantic's min_length counts only valid items.
        if isinstance(value, list | tuple) and not value:
            raise ValueError("at least one strategy is required")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        seen: set[str] = set()
        for s in self.strategies:
            if s.name in seen:
                raise PydanticCustomError(
                    _DUPLICATE_TYPE, "strategy name {name!r} is used twice", {"name": s.name}
                )
            seen.add(s.name)
        return self

    def lifecycle_for(self, strategy: StrategyConfig) -> LifecycleParams:
        """Return the lifecycle a strategy runs with (its override, else the default)."""
        return strategy.lifecycle if strategy.lifecycle is not None else self.lifecycle

    def route(
        self, rfq: RfqReceived, market: MarketInfo | None, now_wall_ms: int | None
    ) -> tuple[StrategyConfig | None, str | None]:
        """Return the first enabled strategy matching ``rfq``, else ``(None, first reason)``."""
        reason: str | None = "no_strategy"
        for s in self.strategies:
            if not s.enabled:
                continue
            why = s.match.matches(rfq, market, now_wall_ms)
            if why is None:
                return s, None
            if reason == "no_strategy":
                reason = why
        return None, reason
