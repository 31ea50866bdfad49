"""Overlays: modules that adjust (or veto) an upstream pricing.

* ``inventory_skew`` shifts the fair and both bids against our position (market and event):
  long YES lowers the YES bid and raises the NO bid by the same amount (a reservation price),
  so the quote leans toward trades that flatten us; while both sides stay bid their sum
  never grows, and each bid keeps its edge against the shifted fair.
* ``size_edge`` adds edge that grows linearly with the quoted size beyond a free size.
* ``fee_edge`` subtracts the maker fee we would pay at each bid (kalshi-api.md §5.4).
* ``requester_profile`` widens for, or declines, requesters whose past fills marked out
  badly for us (``PricingInput.requester``, kept by the engine: ``quoter.engine.requesters``).

A bid of 0 means "no bid on that side" and stays 0; a bid pushed to 0 or below becomes 0.
"""

from __future__ import annotations

from fractions import Fraction
from typing import ClassVar

from pydantic import Field, StrictBool, StrictInt

from quoter.domain.fees import FeeSchedule
from quoter.domain.money import CENTI_PER_CONTRACT, MAX_PRICE_MICROS
from strategies._common import (
    Bps,
    Contracts,
    Edge,
    SignedDollars,
    clamp_fair,
)
from strategies.base import Decline, Params, Pricing, PricingInput
from strategies.registry import ModuleSpec

__all__ = [
    "SPECS",
    "FeeEdge",
    "FeeEdgeParams",
    "InventorySkew",
    "InventorySkewParams",
    "RequesterProfile",
    "RequesterProfileParams",
    "SizeEdge",
    "SizeEdgeParams",
    "widen",
]


# Overlays run on every priced RFQ (benchmark B6): their arithmetic is on integers scaled to
# be exact (a skew in 1/100 micro-dollar, a ratio as numerator and denominator) because
# Fraction arithmetic and ``dataclasses.replace`` cost more than the pricing itself.


def _ceil_div(num: int, den: int) -> int:
    """``ceil(num / den)`` for ``den > 0``, exactly."""
    return -((-num) // den)


def _with_bids(pricing: Pricing, yes_bid_micros: int, no_bid_micros: int) -> Pricing:
    return Pricing(pricing.fair_yes_micros, yes_bid_micros, no_bid_micros,
                   pricing.fair_low_micros, pricing.fair_high_micros)


def widen(pricing: Pricing, extra_micros: int) -> Pricing:
    """Lower both bids by ``extra_micros`` (a side that reaches 0 is dropped)."""
    return _with_bids(pricing, max(pricing.yes_bid_micros - extra_micros, 0),
                      max(pricing.no_bid_micros - extra_micros, 0))


# --- inventory_skew -------------------------------------------------------------------------


class InventorySkewParams(Params):
    """``inventory_skew`` parameters (per contract of signed position, +YES / -NO)."""

    skew_per_contract_micros: Edge = Field(
        default=500, validation_alias="skew_per_contract_dollars"
    )
    event_skew_per_contract_micros: Edge = Field(
        default=0, validation_alias="event_skew_per_contract_dollars"
    )
    max_skew_micros: Edge = Field(default=50_000, validation_alias="max_skew_dollars")


class InventorySkew:
    """Lean the quote against our inventory."""

    name: ClassVar[str] = "inventory_skew"

    def __init__(self, params: InventorySkewParams) -> None:
        self.params = params

    def skew_hundredths(self, inp: PricingInput) -> int:
        """The shift in 1/100 micro-dollar (exact: positions are in hundredths)."""
        p = self.params
        raw = (inp.position_centi * p.skew_per_contract_micros
               + inp.event_position_centi * p.event_skew_per_contract_micros)
        cap = p.max_skew_micros * CENTI_PER_CONTRACT
        return max(min(raw, cap), -cap)

    def skew(self, inp: PricingInput) -> Fraction:
        """Return the shift (micro-dollars, exact) to take off the YES side; + when long YES."""
        return Fraction(self.skew_hundredths(inp), CENTI_PER_CONTRACT)

    def adjust(self, inp: PricingInput, pricing: Pricing) -> Pricing | Decline:
        """Shift fair and bids against our position."""
        s = self.skew_hundredths(inp)
        if not s:
            return pricing
        c = CENTI_PER_CONTRACT
        yes = pricing.yes_bid_micros
        no = pricing.no_bid_micros
        # Round both bids down: the sum can only shrink.
        top = MAX_PRICE_MICROS - 1
        new_yes = min(max((yes * c - s) // c, 0), top) if yes else 0
        new_no = min(max((no * c + s) // c, 0), top) if no else 0
        fair = clamp_fair((pricing.fair_yes_micros * c - s) // c)
        # An interval moves with the fair value (a reservation price), rounded outward.
        low, high = pricing.fair_low_micros, pricing.fair_high_micros
        return Pricing(
            fair, new_yes, new_no,
            None if low is None else min(max((low * c - s) // c, 0), top),
            None if high is None else min(max(_ceil_div(high * c - s, c), 0), MAX_PRICE_MICROS),
        )


# --- size_edge ------------------------------------------------------------------------------


class SizeEdgeParams(Params):
    """``size_edge`` parameters."""

    free_centi: Contracts = Field(default=0, validation_alias="free_contracts")
    edge_per_contract_micros: Edge = Field(
        default=100, validation_alias="edge_per_contract_dollars"
    )
    max_extra_edge_micros: Edge = Field(
        default=50_000, validation_alias="max_extra_edge_dollars"
    )
    # Decline RFQs larger than this (None: never).
    decline_above_centi: Contracts | None = Field(
        default=None, validation_alias="decline_above_contracts"
    )


class SizeEdge:
    """Ask for more edge on bigger trades."""

    name: ClassVar[str] = "size_edge"

    def __init__(self, params: SizeEdgeParams) -> None:
        self.params = params

    def extra_micros(self, size_centi: int) -> int:
        """Return the extra edge for a trade of ``size_centi`` (rounded up, capped)."""
        p = self.params
        over = max(size_centi - p.free_centi, 0)
        return min(_ceil_div(over * p.edge_per_contract_micros, CENTI_PER_CONTRACT),
                   p.max_extra_edge_micros)

    def adjust(self, inp: PricingInput, pricing: Pricing) -> Pricing | Decline:
        """Widen by the size-dependent edge, or decline oversize RFQs."""
        limit = self.params.decline_above_centi
        if limit is not None and inp.size_centi > limit:
            return Decline("too_large", f"{inp.size_centi} > {limit} hundredths")
        return widen(pricing, self.extra_micros(inp.size_centi))


_FEE_ITERATIONS = 16
_FEE_MEMO_MAX = 65_536

# --- fee_edge -------------------------------------------------------------------------------


class FeeEdgeParams(Params):
    """``fee_edge`` parameters."""

    # Charge ourselves the taker fee (e.g. combos against orders resting < 5 s, §5.4).
    assume_taker: StrictBool = False


class FeeEdge:
    """Pay for the fee out of the bid."""

    name: ClassVar[str] = "fee_edge"

    def __init__(self, params: FeeEdgeParams) -> None:
        self.params = params
        # (fee schedule, bid, size) -> net bid: the fee iteration is pure, and bids sit on a
        # grid while sizes repeat (B6). Bounded: cleared when full.
        self._memo: dict[tuple[FeeSchedule, int, int], int] = {}

    def _fee_per_contract(self, inp: PricingInput, price_micros: int, size_centi: int) -> int:
        total = inp.market.fees.fee_micros(
            price_micros, size_centi, is_taker=self.params.assume_taker
        )
        return _ceil_div(total * CENTI_PER_CONTRACT, size_centi)

    def _net(self, inp: PricingInput, bid: int, size_centi: int) -> int:
        """Largest-found ``b <= bid`` with ``b + fee_per_contract(b) <= bid``, or 0."""
        key = (inp.market.fees, bid, size_centi)
        net = self._memo.get(key)
        if net is None:
            if len(self._memo) >= _FEE_MEMO_MAX:
                self._memo.clear()
            net = self._memo[key] = self._net_of(inp, bid, size_centi)
        return net

    def _net_of(self, inp: PricingInput, bid: int, size_centi: int) -> int:
        b = bid
        # The fee moves with the price (up as p nears 0.5): iterate b = bid - fee(b). The
        # sequence only decreases and the fee's slope is < 0.07, so it settles in a few steps.
        for _ in range(_FEE_ITERATIONS):
            if b <= 0:
                return 0
            fee = self._fee_per_contract(inp, b, size_centi)
            if b + fee <= bid:
                return b
            b = bid - fee
        return 0

    def adjust(self, inp: PricingInput, pricing: Pricing) -> Pricing | Decline:
        """Lower each bid by the fee per contract at that bid."""
        size = inp.size_centi if inp.size_centi > 0 else CENTI_PER_CONTRACT
        return _with_bids(pricing, self._net(inp, pricing.yes_bid_micros, size),
                          self._net(inp, pricing.no_bid_micros, size))


# --- requester_profile ----------------------------------------------------------------------


class RequesterProfileParams(Params):
    """``requester_profile`` parameters (mark-outs are per contract, positive = good for us)."""

    # Judge a requester once this many of our fills on its RFQs have been marked out.
    min_accepts: StrictInt = Field(default=5, ge=1)
    # The mark-out horizon to judge by (one of ``requesters.markout_horizons_ms``; None: the
    # first).
    horizon_ms: StrictInt | None = Field(default=None, ge=1)
    widen_below_micros: SignedDollars = Field(default=0, validation_alias="widen_below_dollars")
    widen_factor_bps: Bps = Field(default=10_000, ge=0, le=10_000)
    max_widen_micros: Edge = Field(default=50_000, validation_alias="max_widen_dollars")
    decline_below_micros: SignedDollars = Field(
        default=-50_000, validation_alias="decline_below_dollars"
    )


class RequesterProfile:
    """Widen for, or refuse, requesters who have been picking us off."""

    name: ClassVar[str] = "requester_profile"

    def __init__(self, params: RequesterProfileParams) -> None:
        self.params = params

    def adjust(self, inp: PricingInput, pricing: Pricing) -> Pricing | Decline:
        """Judge the requester by its average mark-out once enough fills are marked out."""
        p = self.params
        count, total = inp.requester.markout(p.horizon_ms)
        if count < p.min_accepts:
            return pricing
        # avg = total / count, compared and scaled without a Fraction (count >= 1).
        if total < p.decline_below_micros * count:
            avg = Fraction(total, count)
            return Decline("toxic_requester", f"average mark-out {float(avg):.0f} micros")
        if total < p.widen_below_micros * count:
            shortfall = _ceil_div((p.widen_below_micros * count - total) * p.widen_factor_bps,
                                  count * 10_000)
            return widen(pricing, min(shortfall, p.max_widen_micros))
        return pricing


# --- registration -----------------------------------------------------------------------------


def _build_inventory_skew(params: Params) -> InventorySkew:
    if not isinstance(params, InventorySkewParams):
        raise TypeError(f"inventory_skew needs InventorySkewParams, got {type(params).__name__}")
    return InventorySkew(params)


def _build_size_edge(params: Params) -> SizeEdge:
    if not isinstance(params, SizeEdgeParams):
        raise TypeError(f"size_edge needs SizeEdgeParams, got {type(params).__name__}")
    return SizeEdge(params)


def _build_fee_edge(params: Params) -> FeeEdge:
    if not isinstance(params, FeeEdgeParams):
        raise TypeError(f"fee_edge needs FeeEdgeParams, got {type(params).__name__}")
    return FeeEdge(params)


def _build_requester_profile(params: Params) -> RequesterProfile:
    if not isinstance(params, RequesterProfileParams):
        raise TypeError(
            f"requester_profile needs RequesterProfileParams, got {type(params).__name__}"
        )
    return RequesterProfile(params)


SPECS = (
    ModuleSpec("inventory_skew", "overlay", InventorySkewParams, _build_inventory_skew),
    ModuleSpec("size_edge", "overlay", SizeEdgeParams, _build_size_edge),
    ModuleSpec("fee_edge", "overlay", FeeEdgeParams, _build_fee_edge),
    ModuleSpec("requester_profile", "overlay", RequesterProfileParams, _build_requester_profile),
)
