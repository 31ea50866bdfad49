"""A third-party pricer: quote a constant fair value, skewed by a tilt for NO.

It lives outside the quoter tree and reaches the registry only through its entry point
(``[project.entry-points."quoter.strategies"] my_pricer = "thirdparty_pricer:SPEC"``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from strategies._common import Dollars, Price, bids_from_fair
from strategies.base import Decline, Params, Pricing, PricingInput
from strategies.registry import ModuleSpec

__all__ = ["SPEC", "MyPricer", "MyPricerParams"]


class MyPricerParams(Params):
    """``my_pricer`` parameters: a constant ``fair_dollars`` and an ``edge_dollars``."""

    fair_micros: Price = Field(validation_alias="fair_dollars")
    edge_micros: Dollars = Field(default=50_000, validation_alias="edge_dollars")


class MyPricer:
    """Quote every RFQ around one constant fair value."""

    name: ClassVar[str] = "my_pricer"

    def __init__(self, params: MyPricerParams) -> None:
        self.params = params

    def price(self, inp: PricingInput) -> Pricing | Decline:
        """Price an RFQ at the constant fair value."""
        yes, no = bids_from_fair(self.params.fair_micros, self.params.edge_micros)
        return Pricing(self.params.fair_micros, yes, no)


def _build(params: Params) -> MyPricer:
    if not isinstance(params, MyPricerParams):
        raise TypeError(f"my_pricer needs MyPricerParams, got {type(params).__name__}")
    return MyPricer(params)


SPEC = ModuleSpec(name="my_pricer", kind="pricer", params_model=MyPricerParams, factory=_build)
