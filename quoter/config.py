"""The strategy configuration: strict, frozen models loaded from YAML with line-numbered errors.

YAML keys carry human units (``*_dollars`` exact decimal strings, ``*_contracts``, ``*_ms``);
the models hold internal units (``*_micros``, ``*_centi``) under attribute names that say so.
Every model is ``extra="forbid"`` and frozen. Loading is all-or-nothing: :func:`load_config`
either returns a whole valid :class:`QuoterConfig` or raises ``ConfigError`` whose message
lists every problem, one per line, as ``FILE:LINE: field.path: message``.

YAML anchors and merge keys work (``<<: *defaults``); top-level keys starting with ``x-`` are
ignored so they can hold the anchored fragments.

Each ``pricer``/``overlays`` entry names a module in ``strategies.registry``; its ``params:``
are validated by that module's own ``Params`` model, so errors carry the full path
(``strategies[0].pricer.params.edge_dollars``). Relative file paths inside params (e.g. the
``fixed`` pricer's CSV) are resolved against the config file's directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from fnmatch import translate
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
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
    MoneyError,
    format_dollars,
    format_fp,
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
    "RiskLimits",
    "StrategyConfig",
    "config_hash",
    "config_schema",
    "load_config",
    "parse_config",
    "reload",
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
    confirm_safety_margin_ms: Ms = 200
    cancel_before_close_ms: Ms = 60_000
    book_stale_after_ms: Ms = 30_000
    pending_rfq_timeout_ms: Ms = 2_000

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


class QuoterConfig(_Strict):
    """The whole strategy configuration (one YAML file)."""

    version: Literal[1]
    strategies: tuple[StrategyConfig, ...]
    risk: RiskLimits = RiskLimits()
    lifecycle: LifecycleParams = LifecycleParams()

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


# --- YAML with line numbers ---------------------------------------------------------------------

_Path = tuple[str | int, ...]
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_NODES = 200_000


class _YamlDoc:
    """A YAML document as plain data plus the line of every path in it."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines: dict[_Path, int] = {}
        self.errors: list[tuple[int, str]] = []
        self._constructor = yaml.SafeLoader("")
        self._nodes = 0
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{source}:{line}: invalid YAML: {problem}") from None
        if node is None:
            raise ConfigError(f"{source}:1: the file is empty")
        self.data = self._convert(node, ())

    def _error(self, node: yaml.Node, path: _Path, message: str) -> None:
        self.errors.append((node.start_mark.line + 1, f"{_fmt(path)}: {message}"))

    def _convert(self, node: yaml.Node, path: _Path) -> Any:
        self._nodes += 1
        if self._nodes > _MAX_NODES:
            # Aliases can expand exponentially ("billion laughs"); a config is never this big.
            line = node.start_mark.line + 1
            raise ConfigError(f"{self.source}:{line}: the document is too large")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: _Path) -> Any:
        if node.tag in (_FLOAT_TAG, _TIMESTAMP_TAG):
            # Keep the source text: money is parsed exactly from it, never through a float.
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self._error(node, path, f"invalid YAML value: {getattr(exc, 'problem', None) or exc}")
            return None

    def _mapping(self, node: yaml.MappingNode, path: _Path) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                # "<<: *defaults" (or a list of them): explicit keys win over merged ones.
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [
                    value_node
                ]
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        self._error(source, path, "<< must merge a mapping")
                        continue
                    for k, v in self._mapping(source, path).items():
                        merged.setdefault(k, v)
                continue
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self._error(key_node, path, "keys must be strings")
                continue
            if key in out:
                self._error(key_node, (*path, key), "duplicate key")
                continue
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = self._convert(value_node, (*path, key))
        for k, v in merged.items():
            out.setdefault(k, v)
        return out

    def line_of(self, loc: Sequence[str | int]) -> int:
        """Return the line of the deepest known prefix of ``loc``."""
        path = tuple(loc)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


def _fmt(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top)"


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def _prevalidate_modules(
    data: Any, context: Mapping[str, Any]
) -> tuple[Any, list[tuple[_Path, str]]]:
    """Validate every pricer/overlay ``params`` with its module's model, keeping field paths.

    Returns the data with validated ``Params`` in place (or a placeholder where validation
    failed) and the errors found, each as ``(path, message)``.
    """
    errors: list[tuple[_Path, str]] = []
    if not isinstance(data, Mapping) or not isinstance(data.get("strategies"), list):
        return data, errors

    def resolve(ref: Any, path: _Path, kind: str) -> Any:
        if isinstance(ref, str):
            ref = {"name": ref}
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
            return ref  # let the model report the shape error
        try:
            spec = registry.get_spec(ref["name"])
        except ConfigError as exc:
            errors.append(((*path, "name"), str(exc)))
            return _FAILED
        if spec.kind != kind:
            errors.append(((*path, "name"), f"{spec.name!r} is {_a(spec.kind)}, not {_a(kind)}"))
            return _FAILED
        raw = ref.get("params", {})
        try:
            params = spec.params_model.model_validate({} if raw is None else raw, context=context)
        except ValidationError as exc:
            errors.extend(
                ((*path, "params", *e["loc"]), _message(e)) for e in exc.errors()
            )
            return _FAILED
        except (OSError, ValueError) as exc:
            errors.append(((*path, "params"), str(exc)))
            return _FAILED
        return {**ref, "params": params}

    names: set[Any] = set()
    for i, raw in enumerate(data["strategies"]):
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if isinstance(name, str) and name in names:
            errors.append((("strategies", i, "name"), f"strategy name {name!r} is used twice"))
        names.add(name)
    strategies = []
    for i, raw in enumerate(data["strategies"]):
        if not isinstance(raw, Mapping):
            strategies.append(raw)
            continue
        s = dict(raw)
        if "pricer" in s:
            s["pricer"] = resolve(s["pricer"], ("strategies", i, "pricer"), "pricer")
        if isinstance(s.get("overlays"), list):
            s["overlays"] = [
                resolve(o, ("strategies", i, "overlays", j), "overlay")
                for j, o in enumerate(s["overlays"])
            ]
        strategies.append(s)
    return {**data, "strategies": strategies}, errors


def _validate(doc: _YamlDoc, config_dir: Path) -> QuoterConfig:
    context = {"config_dir": config_dir}
    data = doc.data
    if isinstance(data, dict):
        # Top-level "x-..." keys hold YAML anchors for reuse ("<<: *name"); they are not config.
        data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    data, module_errors = _prevalidate_modules(data, context)
    located: list[tuple[int, str]] = [
        *doc.errors,
        *((doc.line_of(loc), f"{_fmt(loc)}: {msg}") for loc, msg in module_errors),
    ]
    config: QuoterConfig | None = None
    try:
        config = QuoterConfig.model_validate(data, context=context)
    except ValidationError as exc:
        for err in exc.errors():
            if err["type"] in (_FAILED_TYPE, _DUPLICATE_TYPE):
                continue  # reported by the pre-pass, with a better location
            located.append((doc.line_of(err["loc"]), f"{_fmt(err['loc'])}: {_message(err)}"))
    except ConfigError as exc:  # e.g. an unknown module name reached a model validator
        located.append((1, str(exc)))
    lines = [f"{doc.source}:{line}: {text}" for line, text in sorted(located, key=lambda t: t[0])]
    if lines or config is None:
        raise ConfigError("\n".join(lines or [f"{doc.source}:1: invalid configuration"]))
    return config


def parse_config(
    text: str, source: str = "<string>", *, base_dir: Path | None = None
) -> QuoterConfig:
    """Parse and validate a YAML config from ``text``; raise ``ConfigError`` listing every error."""
    registry.load_entry_points()
    doc = _YamlDoc(text, source)
    return _validate(doc, base_dir if base_dir is not None else Path.cwd())


def load_config(path: Path) -> QuoterConfig:
    """Load and validate a YAML config file (all or nothing)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}:0: cannot read: {exc.strerror or exc}") from None
    return parse_config(text, str(path), base_dir=path.parent)


def reload(path: Path, current: QuoterConfig) -> tuple[QuoterConfig, str | None]:
    """Return ``(new config, None)`` if ``path`` is valid, else ``(current, why)``."""
    try:
        return load_config(path), None
    except ConfigError as exc:
        return current, str(exc)


def config_hash(cfg: QuoterConfig) -> str:
    """Return a stable SHA-256 hex digest of a config's validated content."""
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _dollar_text(micros: int) -> str:
    for places in range(2, 7):
        try:
            return format_dollars(micros, places)
        except MoneyError:
            continue
    return format_dollars(micros, 6)


def _human_defaults(node: Any) -> None:
    """Rewrite integer defaults of ``*_dollars``/``*_contracts`` keys in their YAML units."""
    if isinstance(node, list):
        for item in node:
            _human_defaults(item)
        return
    if not isinstance(node, dict):
        return
    for key, prop in (node.get("properties") or {}).items():
        if not isinstance(prop, dict) or not isinstance(prop.get("default"), int):
            continue
        if key.endswith("_dollars"):
            prop["default"] = _dollar_text(prop["default"])
        elif key.endswith("_contracts"):
            prop["default"] = format_fp(prop["default"])
    for value in node.values():
        _human_defaults(value)


def config_schema() -> dict[str, Any]:
    """Return the JSON Schema of the YAML file (human-unit keys; module params per name)."""
    registry.load_entry_points()
    schema = QuoterConfig.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    refs: dict[str, list[dict[str, Any]]] = {"pricer": [], "overlay": []}
    for name in registry.available():
        spec = registry.get_spec(name)
        sub = spec.params_model.model_json_schema(
            by_alias=True, mode="validation", ref_template="#/$defs/{model}"
        )
        defs.update(sub.pop("$defs", {}))
        key = f"{name}.params"
        defs[key] = sub
        refs[spec.kind].append(
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"const": name},
                    "params": {"$ref": f"#/$defs/{key}"},
                },
            }
        )
    for kind, options in refs.items():
        names = [o["properties"]["name"]["const"] for o in options]
        defs[f"{kind.capitalize()}Ref"] = {
            "description": f"a {kind} module: {{name, params}} or just its name",
            "anyOf": [*options, {"enum": names}],
        }
    defs.pop("ModuleRef", None)
    defs.pop("Params", None)
    _human_defaults(schema)
    schema["patternProperties"] = {"^x-": {"description": "ignored: holds YAML anchors"}}
    props = defs["StrategyConfig"]["properties"]
    props["pricer"] = {"$ref": "#/$defs/PricerRef"}
    props["overlays"] = {
        "type": "array", "items": {"$ref": "#/$defs/OverlayRef"}, "default": [],
    }
    return schema
