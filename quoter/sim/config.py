"""Configuration of the simulator's synthetic world and its fault injector.

Loaded from YAML with ``quoter sim --world FILE`` (see ``config/sim-world.yaml``). Models are
strict (``extra="forbid"``) and frozen. Inputs are in human units whatever the caller: prices
are ``*_dollars`` (decimal strings or whole dollars) parsed exactly into ``*_micros`` attributes;
quantities are ``*_contracts`` (numbers or 2-dp strings) parsed into ``*_centi``; build models
from such dicts with ``model_validate``. Rates and probabilities are plain floats: they drive
randomness, never money.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from quoter.domain.grid import STRUCTURES
from quoter.domain.money import MoneyError, parse_dollars, parse_fp
from quoter.errors import ConfigError

__all__ = [
    "BurstConfig",
    "CentiRange",
    "CorruptBodyConfig",
    "FaultConfig",
    "FrameFaultRule",
    "LiquidityConfig",
    "LostResponseConfig",
    "MakersConfig",
    "MarketsConfig",
    "MicrosRange",
    "MsRange",
    "RequestersConfig",
    "RestFaultConfig",
    "SimConfig",
    "TruthConfig",
    "WorldConfig",
    "load_sim_config",
    "parse_multiplier",
    "parse_sim_config",
]


def _dollars(value: object) -> object:
    """Parse a ``*_dollars`` value (string or whole dollars) into micro-dollars, exactly."""
    if isinstance(value, bool):
        raise MoneyError("a dollar amount cannot be a boolean")
    if isinstance(value, int):
        return value * 1_000_000
    if isinstance(value, str):
        return parse_dollars(value)
    if isinstance(value, float):
        raise MoneyError(f"write dollar amounts as strings, e.g. \"0.02\", not {value!r}")
    return value


def _contracts(value: object) -> object:
    """Parse a YAML ``*_contracts`` value (number or 2-dp string) into hundredths exactly."""
    if isinstance(value, bool):
        raise MoneyError("a contract count cannot be a boolean")
    if isinstance(value, int):
        return value * 100
    if isinstance(value, str):
        return parse_fp(value)
    if isinstance(value, float):
        raise MoneyError(f"write fractional contracts as strings, e.g. \"1.50\", not {value!r}")
    return value


def parse_multiplier(text: str) -> Fraction:
    """Parse a fee multiplier written as a decimal string ("1", "0.5") exactly."""
    try:
        value = Fraction(Decimal(text))
    except (InvalidOperation, ValueError):
        raise ValueError(f"fee multiplier {text!r} is not a decimal number") from None
    if value < 0 or value > 10:
        raise ValueError(f"fee multiplier {text!r} must be in [0, 10]")
    return value


Micros = Annotated[int, BeforeValidator(_dollars), Field(ge=0)]
Centi = Annotated[int, BeforeValidator(_contracts), Field(gt=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Rate = Annotated[float, Field(ge=0.0)]
Millis = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Range(_Strict):
    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        lo, hi = (getattr(self, n) for n in type(self).model_fields)
        if lo > hi:
            raise ValueError(f"range minimum {lo} exceeds maximum {hi}")
        return self


class MsRange(_Range):
    """A uniform range of milliseconds ``[min_ms, max_ms]``."""

    min_ms: Millis
    max_ms: Millis


class CentiRange(_Range):
    """A uniform range of sizes in hundredths (YAML: ``min_contracts`` / ``max_contracts``)."""

    min_centi: Centi = Field(validation_alias="min_contracts")
    max_centi: Centi = Field(validation_alias="max_contracts")


class MicrosRange(_Range):
    """A uniform range of dollar amounts (YAML: ``min_dollars`` / ``max_dollars``)."""

    min_micros: Micros = Field(validation_alias="min_dollars")
    max_micros: Micros = Field(validation_alias="max_dollars")


class MarketsConfig(_Strict):
    """What the world lists: series x events x binary markets, plus combos over them."""

    series: int = Field(default=3, ge=1, le=50)
    events_per_series: int = Field(default=2, ge=1, le=20)
    markets_per_event: int = Field(default=3, ge=1, le=20)
    #: ``price_level_structure`` labels drawn for single markets (kalshi-api.md §5.2).
    structures: tuple[str, ...] = (
        "linear_cent",
        "linear_cent",
        "deci_cent",
        "tapered_deci_cent",
        "center_half_edge_half_cent",
    )
    fee_types: tuple[
        Literal["quadratic", "quadratic_with_maker_fees", "flat"], ...
    ] = ("quadratic_with_maker_fees", "quadratic")
    #: Series ``fee_multiplier`` values (decimal strings, exact), drawn per series like
    #: ``fee_types``: the fee terms live on the series (``GET /series/{ticker}``).
    fee_multipliers: tuple[str, ...] = ("1",)
    #: The combo collection's series terms (Kalshi: combo maker fees at 0.5x, §5.4).
    combo_fee_type: Literal[
        "quadratic", "quadratic_with_maker_fees", "quadratic_with_combo_maker_fees", "flat"
    ] = "quadratic_with_combo_maker_fees"
    combo_fee_multiplier: str = "1"
    #: Markets close (and then settle) this long after they are listed; replacements are listed.
    close_after_ms: MsRange = MsRange(min_ms=600_000, max_ms=3_600_000)
    #: Determined -> settled after this long (Kalshi runs a settlement timer; 0 = at once).
    settle_delay_ms: MsRange = MsRange(min_ms=0, max_ms=0)
    #: Fractions of events whose markets share one latent outcome (``quoter.sim.truth``):
    #: nested strikes (``strike_type: greater``, ``floor_strike`` 0, 7, 14, ...: "wins", "wins
    #: by 7+") and mutually exclusive outcomes (``mutually_exclusive: true`` on the event: at
    #: most one YES). Each such event lists ``markets_per_event`` markets that close and settle
    #: together, and is replaced by a new event of the same kind.
    nested_fraction: Probability = 0.0
    exclusive_fraction: Probability = 0.0
    #: This fraction of combos takes two legs from one nested or exclusive event (the rest of
    #: their legs from other events): their true joint is not the product of the legs.
    combo_same_event_fraction: Probability = 0.0
    #: Pauses: single markets are deactivated at this Poisson rate (world-wide) and activated
    #: again after ``pause_ms`` (lifecycle ``deactivated`` -> ``activated``; open RFQs close).
    pause_rate_per_s: Rate = 0.0
    pause_ms: MsRange = MsRange(min_ms=30_000, max_ms=120_000)
    combos: int = Field(default=6, ge=0, le=200)
    combo_legs_min: int = Field(default=2, ge=2, le=10)
    combo_legs_max: int = Field(default=3, ge=2, le=10)
    collection_ticker: str = "KXMVECROSSCATEGORY-SHARD1-R"

    @model_validator(mode="after")
    def _check(self) -> MarketsConfig:
        unknown = [s for s in self.structures if s not in STRUCTURES]
        if unknown:
            raise ValueError(f"unknown price_level_structure(s) {unknown}")
        if not self.structures or not self.fee_types or not self.fee_multipliers:
            raise ValueError("structures, fee_types and fee_multipliers need at least one entry")
        for text in (*self.fee_multipliers, self.combo_fee_multiplier):
            parse_multiplier(text)
        if self.nested_fraction + self.exclusive_fraction > 1:
            raise ValueError("nested_fraction + exclusive_fraction must not exceed 1")
        if self.combo_legs_min > self.combo_legs_max:
            raise ValueError("combo_legs_min exceeds combo_legs_max")
        if not self.collection_ticker.startswith("KXMVE"):
            raise ValueError("combo collection tickers start with KXMVE (kalshi-api.md §6)")
        return self


class TruthConfig(_Strict):
    """How latent YES probabilities move: a random walk in log-odds plus rare jumps."""

    tick_ms: int = Field(default=1_000, ge=10)
    volatility_per_sqrt_s: float = Field(default=0.02, ge=0.0, le=5.0)
    jump_rate_per_s: Rate = 0.005
    jump_std: float = Field(default=0.8, ge=0.0, le=10.0)
    initial_min: Probability = 0.05
    initial_max: Probability = 0.95


class LiquidityConfig(_Strict):
    """The resting book a liquidity provider keeps around each single market's truth."""

    levels: int = Field(default=3, ge=0, le=20)
    size_centi: Centi = Field(default=5_000, validation_alias="size_contracts")
    half_spread_micros: Micros = Field(default=20_000, validation_alias="half_spread_dollars")
    level_step_micros: Micros = Field(default=10_000, validation_alias="level_step_dollars")
    #: Re-quote a market's levels once its truth moved this much since the last refresh.
    refresh_tolerance_micros: Micros = Field(
        default=10_000, validation_alias="refresh_tolerance_dollars"
    )
    #: This fraction of single markets keep their first levels for good: books that stay
    #: quiet for minutes (an illiquid market), while their truth keeps moving.
    quiet_fraction: Probability = 0.0


class RequestersConfig(_Strict):
    """Accounts that ask for quotes and accept the best one when it beats the book."""

    #: Up to thousands of accounts, so load worlds can offer thousands of RFQs/s: each account
    #: holds at most one open RFQ per market and ``max_open_rfqs`` (100) in all.
    uninformed: int = Field(default=3, ge=0, le=10_000)
    informed: int = Field(default=1, ge=0, le=10_000)
    rfq_rate_per_s: Rate = 0.5
    combo_fraction: Probability = 0.3
    target_cost_fraction: Probability = 0.2
    contracts: CentiRange = CentiRange.model_validate({"min_contracts": 1, "max_contracts": 100})
    target_cost: MicrosRange = MicrosRange.model_validate(
        {"min_dollars": "5.00", "max_dollars": "500.00"}
    )
    rfq_lifetime_ms: MsRange = MsRange(min_ms=5_000, max_ms=30_000)
    accept_delay_ms: MsRange = MsRange(min_ms=300, max_ms=3_000)
    #: An informed (toxic) requester accepts only with at least this edge against the truth.
    informed_min_edge_micros: Micros = Field(
        default=10_000, validation_alias="informed_min_edge_dollars"
    )
    #: How far an uninformed requester's private value of a combo strays from the leg mids.
    combo_tolerance_micros: Micros = Field(
        default=30_000, validation_alias="combo_tolerance_dollars"
    )


class BurstConfig(_Strict):
    """Bursts of short-lived RFQs (created then deleted): the ``rfq_created`` flood."""

    enabled: bool = False
    rfq_rate_per_s: Rate = 1_500.0
    duration_ms: int = Field(default=5_000, ge=1)
    start_after_ms: Millis = 10_000
    #: Repeat every this many ms (0 = once).
    every_ms: Millis = 0
    lifetime_ms: Millis = 200
    accounts: int = Field(default=20, ge=1, le=1_000)


class MakersConfig(_Strict):
    """Competing market makers that quote around the truth with noise and an edge."""

    count: int = Field(default=2, ge=0, le=100)
    quote_probability: Probability = 0.8
    edge_micros: Micros = Field(default=20_000, validation_alias="edge_dollars")
    noise_micros: Micros = Field(default=10_000, validation_alias="noise_dollars")
    quote_delay_ms: MsRange = MsRange(min_ms=20, max_ms=400)
    confirm_probability: Probability = 0.9
    confirm_delay_ms: MsRange = MsRange(min_ms=50, max_ms=800)
    hvm_confirm_delay_ms: MsRange = MsRange(min_ms=20, max_ms=500)


class WorldConfig(_Strict):
    """The whole synthetic world."""

    markets: MarketsConfig = MarketsConfig()
    truth: TruthConfig = TruthConfig()
    liquidity: LiquidityConfig = LiquidityConfig()
    requesters: RequestersConfig = RequestersConfig()
    burst: BurstConfig = BurstConfig()
    makers: MakersConfig = MakersConfig()
    demo_user_id: str = "quoter-demo"
    demo_balance_micros: Micros = Field(
        default=10_000_000_000, validation_alias="demo_balance_dollars"
    )
    agent_balance_micros: Micros = Field(
        default=1_000_000_000_000, validation_alias="agent_balance_dollars"
    )


class FrameFaultRule(_Strict):
    """Faults for outbound WebSocket frames matching a channel and/or message type."""

    channel: str | None = None
    type: str | None = None
    drop_probability: Probability = 0.0
    duplicate_probability: Probability = 0.0
    delay_probability: Probability = 0.0
    delay_ms: MsRange = MsRange(min_ms=0, max_ms=0)
    #: Reorder = hold the frame back ``reorder_delay_ms`` so frames sent meanwhile overtake it.
    reorder_probability: Probability = 0.0
    reorder_delay_ms: Millis = 50
    #: Replace the frame by error 25 (buffer overflow) and kill that subscription's stream.
    overflow_probability: Probability = 0.0
    #: Add a field no client reads (``"sim_padding"``) holding ``nest_depth`` nested arrays to
    #: the frame's ``msg``: a deep frame must be refused before decoding, not crash the feed.
    nest_probability: Probability = 0.0
    nest_depth: int = Field(default=1_000, ge=1, le=100_000)


class RestFaultConfig(_Strict):
    """Faults for REST requests: error bursts and latency."""

    #: Status of injected errors: 5xx, or 429 with Kalshi's ``{"error": "too many requests"}``.
    error_status: int = Field(default=503, ge=429, le=599)
    #: Fail the next N matching requests (0 = none).
    error_count: int = Field(default=0, ge=0)
    #: Fail every matching request for this long after the config is applied (0 = none).
    error_duration_ms: Millis = 0
    #: Fail each matching request with this probability.
    error_probability: Probability = 0.0
    #: Only requests whose path starts with one of these (empty = all).
    path_prefixes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    latency_ms: MsRange = MsRange(min_ms=0, max_ms=0)

    @model_validator(mode="after")
    def _status(self) -> RestFaultConfig:
        if self.error_status != 429 and self.error_status < 500:
            raise ValueError("error_status must be 429 or 5xx")
        return self


class CorruptBodyConfig(_Strict):
    """Successful REST answers whose body is spoiled on the way back: the exchange applied the
    request (a quote really exists), the client cannot read the answer."""

    probability: Probability = 0.0
    #: Drawn uniformly per spoiled answer: ``bad_gzip`` (``content-encoding: gzip`` over bytes
    #: that are not gzip), ``deep_json`` (3,000 nested arrays), ``truncated`` (half the body).
    kinds: tuple[Literal["bad_gzip", "deep_json", "truncated"], ...] = (
        "bad_gzip", "deep_json", "truncated")
    #: Only requests whose path starts with one of these (empty = all), and these methods.
    path_prefixes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _kinds(self) -> CorruptBodyConfig:
        if not self.kinds:
            raise ValueError("kinds needs at least one entry")
        return self


class LostResponseConfig(_Strict):
    """Confirms that succeed but whose HTTP response is lost: the exchange applies the confirm
    (the quote executes), then the client gets an error or nothing at all."""

    probability: Probability = 0.0
    #: ``error``: answer ``error_status`` after applying; ``timeout``: hold the response
    #: ``hold_ms`` (longer than a client's timeout: it gives up, or reads a stale 204 late).
    mode: Literal["error", "timeout"] = "error"
    error_status: int = Field(default=503, ge=500, le=599)
    hold_ms: Millis = 60_000


class FaultConfig(_Strict):
    """Everything the fault injector does; POST /sim/faults applies a new one at once."""

    frames: tuple[FrameFaultRule, ...] = ()
    #: Delay every ``quote_accepted`` frame by this much (a slow last-look notice).
    accept_notice_delay_ms: Millis = 0
    #: Hold each create-quote response until its quote is accepted, at most this long: the
    #: accept notice then beats the maker's create response, as Kalshi allows (§0a).
    quote_response_hold_ms: Millis = 0
    lost_confirm_responses: LostResponseConfig = LostResponseConfig()
    corrupt_bodies: CorruptBodyConfig = CorruptBodyConfig()
    rest: RestFaultConfig = RestFaultConfig()
    #: One-shot actions performed when the config is applied (not remembered).
    cut_connections: bool = False
    restart_lose_open_quotes: bool = False


class SimConfig(_Strict):
    """A ``--world`` file: the world plus the initial faults."""

    world: WorldConfig = WorldConfig()
    faults: FaultConfig = FaultConfig()


def _format_errors(exc: ValidationError, source: str, text: str) -> str:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        line = _line_of(text, [str(p) for p in err["loc"]])
        lines.append(f"{source}:{line}: {path or '<root>'}: {err['msg']}")
    return "\n".join(lines)


def _line_of(text: str, loc: list[str]) -> int:
    """Best-effort line number of the last key of ``loc`` in the YAML text (1 if unknown)."""
    for key in reversed(loc):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip().startswith(f"{key}:") or line.strip().startswith(f"- {key}:"):
                return number
    return 1


def parse_sim_config(text: str, source: str = "<string>") -> SimConfig:
    """Parse a YAML world file; raises ``ConfigError`` naming file, line and field."""
    try:
        data: Any = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: <root>: expected a mapping")
    try:
        return SimConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, text)) from None


def load_sim_config(path: Path) -> SimConfig:
    """Load a ``--world`` YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_sim_config(text, str(path))
