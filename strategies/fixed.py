"""``fixed``: fair values given by the operator, inline or from a CSV file.

``params.fair_yes_dollars`` maps tickers to fair YES prices; ``params.csv`` names a CSV file with
columns ``ticker,fair_yes_dollars`` (relative to the config file). The file is read once, when
the params are validated at config load; pricing afterwards is pure. Inline values override
the CSV. Tickers compare case-insensitively. Declines ``no_fair_value`` for unknown markets.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from quoter.domain.money import MAX_PRICE_MICROS, MoneyError, parse_dollars
from strategies._common import Edge, Price, bids_from_fair
from strategies.base import Decline, Params, Pricing, PricingInput
from strategies.registry import ModuleSpec

__all__ = ["SPEC", "Fixed", "FixedParams", "read_fair_values_csv"]

_COLUMNS = ("ticker", "fair_yes_dollars")


def read_fair_values_csv(path: Path) -> dict[str, str]:
    """Read ``ticker,fair_yes_dollars`` rows; raise ``ValueError`` naming ``FILE:LINE``."""
    text = path.read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise ValueError(f"{path}:1: the header must be exactly {','.join(_COLUMNS)}")
    out: dict[str, str] = {}
    for row in reader:
        line = reader.line_num
        ticker, price = ((row.get(c) or "").strip() for c in _COLUMNS)
        if not ticker:
            raise ValueError(f"{path}:{line}: empty ticker")
        try:
            micros = parse_dollars(price)
        except MoneyError as exc:
            raise ValueError(f"{path}:{line}: {exc}") from None
        if not 0 < micros < MAX_PRICE_MICROS:
            raise ValueError(f"{path}:{line}: fair value {price!r} must be between 0 and 1")
        if ticker.upper() in out:
            raise ValueError(f"{path}:{line}: duplicate ticker {ticker!r}")
        out[ticker.upper()] = price
    return out


class FixedParams(Params):
    """``fixed`` parameters: ``edge_dollars``, ``fair_yes_dollars`` (ticker -> price), ``csv``."""

    edge_micros: Edge = Field(default=20_000, validation_alias="edge_dollars")
    fair_yes_micros: dict[str, Price] = Field(
        default_factory=dict, validation_alias="fair_yes_dollars"
    )
    csv_path: Path | None = Field(default=None, validation_alias="csv")

    @model_validator(mode="before")
    @classmethod
    def _load_csv(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping) or data.get("csv") is None:
            return data
        raw_path = data["csv"]
        if not isinstance(raw_path, str | Path):
            return data  # the field's own validator reports the type error
        path = Path(raw_path)
        base = (info.context or {}).get("config_dir")
        if not path.is_absolute() and isinstance(base, Path):
            path = base / path
        try:
            from_csv = read_fair_values_csv(path)
        except OSError as exc:
            raise ValueError(f"cannot read csv {str(path)!r}: {exc.strerror or exc}") from None
        inline = data.get("fair_yes_dollars") or {}
        if not isinstance(inline, Mapping):
            return data
        merged = {**from_csv, **{str(k).upper(): v for k, v in inline.items()}}
        return {**data, "csv": str(path), "fair_yes_dollars": merged}

    @field_validator("fair_yes_micros")
    @classmethod
    def _upper(cls, value: dict[str, int]) -> dict[str, int]:
        return {k.upper(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _not_empty(self) -> FixedParams:
        if not self.fair_yes_micros:
            raise ValueError("give fair values: fair_yes_dollars and/or csv")
        return self


class Fixed:
    """Quote around operator-given fair values."""

    name: ClassVar[str] = "fixed"

    def __init__(self, params: FixedParams) -> None:
        self.params = params

    def price(self, inp: PricingInput) -> Pricing | Decline:
        """Price an RFQ from the fair value table."""
        fair = self.params.fair_yes_micros.get(inp.rfq.market_ticker.upper())
        if fair is None:
            return Decline("no_fair_value", inp.rfq.market_ticker)
        yes, no = bids_from_fair(fair, self.params.edge_micros)
        return Pricing(fair_yes_micros=fair, yes_bid_micros=yes, no_bid_micros=no)


def _build(params: Params) -> Fixed:
    if not isinstance(params, FixedParams):
        raise TypeError(f"fixed needs FixedParams, got {type(params).__name__}")
    return Fixed(params)


SPEC = ModuleSpec(name="fixed", kind="pricer", params_model=FixedParams, factory=_build)
