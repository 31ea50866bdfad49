"""``combo``: price a multivariate (combo) RFQ from its legs (kalshi-api.md §6), within the
bounds that no-arbitrage and the events' structure prove.

A combo pays $1 only if every leg resolves on its selected side. Each leg's probability ``q``
of doing so comes from its own book (mid or microprice; ``1 - p`` for a NO leg), or is exact
once the leg is determined (its ``yes_settlement_value``). Legs are not independent in
general ("wins" and "wins by 7+" are nested), so the joint probability ``P`` is only known to
lie in an interval, and we bid only outside it:

1. **Structure** collapses the legs of one event into one exact probability when the
   exchange's metadata proves how they relate: a ``mutually_exclusive`` event (at most one
   market YES: two YES legs -> 0, one YES leg -> its ``p``, all NO -> ``1 - sum p``), or nested
   strikes (all legs of the event ``strike_type`` greater[_or_equal] with ``floor_strike``, or
   less[_or_equal] with ``cap_strike``: the legs pin one variable into an interval, ``P =
   p(lower end) - p(upper end)``). Each result is clamped into its Fréchet bounds, so books
   that contradict the structure can only widen the quote.
2. **Fréchet bounds** over what is left (units ``q_1..q_m``): ``L = max(0, sum q - (m - 1))
   <= P <= U = min q``.
3. **Dependence model** (optional, per series): ``P(rho) = Pi + rho * (U - Pi)`` for ``rho >=
   0`` and ``Pi + rho * (Pi - L)`` below, where ``Pi`` is the independent product; a series
   configured with ``{min_rho, max_rho}`` narrows the interval to ``[P(min_rho),
   P(max_rho)]``. A combo uses the widest range among its legs' series, and ``[-1, 1]``
   (plain Fréchet) if any of them has no model. ``{min_rho: "0", max_rho: "0"}`` is the
   independent product.

The YES bid is ``low - edge``, the NO bid ``(1 - high) - edge``; the fair value reported is
the middle, and ``fair_low`` / ``fair_high`` carry the interval to last look, which measures
the edge of the side hit against its end. Legs of one event the structure cannot collapse
add ``same_event_edge`` each after the first. Declines: ``not_a_combo``, ``unknown_leg``,
``leg_closed``, ``leg_paused``, ``leg_not_open``, ``no_leg_book``, ``one_sided_leg_book``,
``crossed_leg_book``, ``wide_leg_book``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from quoter.domain.money import MAX_PRICE_MICROS
from quoter.domain.types import ComboLeg, MarketInfo, MarketStatus, Side
from strategies._common import (
    Edge,
    clamp_fair,
    sane_two_sided,
)
from strategies.base import Decline, Params, Pricing, PricingInput
from strategies.registry import ModuleSpec

__all__ = ["SPEC", "Combo", "ComboParams", "Dependence", "joint_bounds", "joint_bounds_micros"]

ONE: Final = Fraction(1)
#: Probabilities are exact integers over D (every leg's is a micro-dollar price over $1), so
#: the pricing path never builds a Fraction: it was most of a combo's pricing time (B6).
D: Final = MAX_PRICE_MICROS
_RHO_MEMO_MAX: Final = 4_096
_GREATER: Final = ("greater", "greater_or_equal")
_LESS: Final = ("less", "less_or_equal")


def _rho(value: Any) -> Fraction:
    """A correlation-like weight in [-1, 1] from an exact decimal string (no floats)."""
    if isinstance(value, bool | float):
        raise ValueError(f"write rho as a decimal string like \"0.3\", not {value!r}")
    if isinstance(value, Fraction):
        rho = value
    elif isinstance(value, int | str):
        try:
            rho = Fraction(str(value))
        except ValueError as exc:
            raise ValueError(f"rho {value!r} is not a decimal number") from exc
    else:
        raise ValueError(f"rho must be a decimal string, got {type(value).__name__}")
    if not -1 <= rho <= 1:
        raise ValueError(f"rho {value!r} must be in [-1, 1]")
    return rho


Rho = Annotated[
    Fraction,
    BeforeValidator(_rho),
    WithJsonSchema({"type": "string", "description": "a decimal in [-1, 1], e.g. \"0.3\""}),
]


class Dependence(Params):
    """How a series' legs co-move: the dependence weight lies in ``[min_rho, max_rho]``."""

    min_rho: Rho = Fraction(-1)
    max_rho: Rho = Fraction(1)

    @model_validator(mode="after")
    def _ordered(self) -> Dependence:
        if self.min_rho > self.max_rho:
            raise ValueError("min_rho must not exceed max_rho")
        return self


class ComboParams(Params):
    """``combo`` parameters."""

    edge_micros: Edge = Field(default=30_000, validation_alias="edge_dollars")
    leg_fair: Literal["mid", "microprice"] = "mid"
    # Extra edge (both sides) per leg sharing its event with an earlier leg, when the event's
    # structure does not pin their joint outcome.
    same_event_edge_micros: Edge = Field(
        default=20_000, validation_alias="same_event_edge_dollars"
    )
    # Decline if any leg's YES spread (ask - bid) is wider than this.
    max_leg_spread_micros: Edge = Field(
        default=200_000, validation_alias="max_leg_spread_dollars"
    )
    # Per series ticker: the dependence model of its legs (absent: plain Fréchet bounds).
    dependence: dict[str, Dependence] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Unit:
    """One factor of the joint: a leg, or the legs of one event collapsed by its structure."""

    q: int  # its probability, over D
    series: str


def joint_bounds(
    units: Sequence[Fraction], rho: tuple[Fraction, Fraction] = (Fraction(-1), ONE)
) -> tuple[Fraction, Fraction]:
    """``[low, high]`` for P(all units), given each unit's probability and a rho range."""
    if not units:
        return ONE, ONE
    lower = max(Fraction(0), sum(units, Fraction(0)) - (len(units) - 1))
    upper = min(units)
    indep = ONE
    for q in units:
        indep *= q

    def at(r: Fraction) -> Fraction:
        return indep + r * (upper - indep) if r >= 0 else indep + r * (indep - lower)

    return at(rho[0]), at(rho[1])


def joint_bounds_micros(
    units: Sequence[int], rho: tuple[Fraction, Fraction] = (Fraction(-1), ONE)
) -> tuple[tuple[int, int], tuple[int, int]]:
    """:func:`joint_bounds` on probabilities over D, as ``(numerator, denominator)`` pairs of
    micro-dollars (``low_micros = num / den``): exact, in integers."""
    n = len(units)
    if not n:
        return (D, 1), (D, 1)
    scale = D ** (n - 1)  # a product of n units is over D**n; micro-dollars are over D**(n-1)
    indep = 1
    for q in units:
        indep *= q
    lower = max(0, sum(units) - (n - 1) * D) * scale
    upper = min(units) * scale

    def at(r: Fraction) -> tuple[int, int]:
        a, b = r.numerator, r.denominator
        span = upper - indep if a >= 0 else indep - lower
        return indep * b + a * span, b * scale

    return at(rho[0]), at(rho[1])


def _frechet(qs: Sequence[int]) -> tuple[int, int]:
    """Fréchet bounds ``(max(0, sum q - (m - 1)), min q)`` over D."""
    return max(0, sum(qs) - (len(qs) - 1) * D), min(qs)


def _clamped(value: int, qs: Sequence[int]) -> int:
    """Keep a structural result inside the Fréchet bounds of its legs (books may disagree)."""
    low, high = _frechet(qs)
    return min(max(value, low), high)


def _exclusive(legs: Sequence[tuple[ComboLeg, int]]) -> int:
    """P(all) for legs on one mutually exclusive event; ``p`` is each market's YES prob."""
    yes = {leg.market_ticker for leg, _ in legs if leg.side is Side.YES}
    no = {leg.market_ticker for leg, _ in legs if leg.side is Side.NO}
    p = {leg.market_ticker: pr for leg, pr in legs}
    if len(yes) > 1 or yes & no:
        return 0
    if yes:
        return p[next(iter(yes))]
    return max(0, D - sum(p[t] for t in no))


def _nested(
    legs: Sequence[tuple[ComboLeg, Fraction, int]], greater: bool
) -> int:
    """P(all) for nested strikes of one variable V; items are (leg, strike, p_yes).

    greater: YES <=> V above the strike; less: YES <=> V below it. The selected sides pin V
    into one interval whose probability is a difference of two markets' YES probabilities.
    """
    yes = [(s, p) for leg, s, p in legs if leg.side is Side.YES]
    no = [(s, p) for leg, s, p in legs if leg.side is Side.NO]
    if greater:
        # V > max(YES strikes) and V <= min(NO strikes).
        lo = max(yes, key=lambda x: x[0]) if yes else None
        hi = min(no, key=lambda x: x[0]) if no else None
    else:
        # V < min(YES strikes) and V >= max(NO strikes).
        lo = min(yes, key=lambda x: x[0]) if yes else None
        hi = max(no, key=lambda x: x[0]) if no else None
    if lo is None:
        assert hi is not None
        return D - hi[1]
    if hi is None:
        return lo[1]
    if (lo[0] >= hi[0]) if greater else (lo[0] <= hi[0]):
        return 0
    return max(0, lo[1] - hi[1])


class Combo:
    """Quote combos outside the joint probability's proven bounds."""

    name: ClassVar[str] = "combo"

    def __init__(self, params: ComboParams) -> None:
        self.params = params
        self._rho_memo: dict[frozenset[str], tuple[Fraction, Fraction]] = {}

    def _leg_p_yes(
        self, leg: ComboLeg, inp: PricingInput
    ) -> tuple[int, MarketInfo | None] | Decline:
        """The leg market's YES probability (over D): its settlement value, or its book."""
        m = inp.leg_markets.get(leg.market_ticker)
        value = leg.yes_settlement_value_micros
        if value is None and m is not None:
            value = m.settlement_value_micros
        if value is not None:
            return min(max(value, 0), MAX_PRICE_MICROS), m
        if m is None:
            return Decline("unknown_leg", leg.market_ticker)
        if m.status is not MarketStatus.ACTIVE:
            reason = {
                MarketStatus.INACTIVE: "leg_paused",
                MarketStatus.INITIALIZED: "leg_not_open",
            }.get(m.status, "leg_closed")
            return Decline(reason, f"{leg.market_ticker} status={m.status.value}")
        book = inp.books.get(leg.market_ticker)
        why = sane_two_sided(book)
        if why is not None or book is None:
            return Decline((why or "no_book").replace("_book", "_leg_book"), leg.market_ticker)
        bid, ask = book.best_yes_bid(), book.best_yes_ask()
        assert bid is not None  # checked by sane_two_sided
        assert ask is not None
        if ask[0] - bid[0] > self.params.max_leg_spread_micros:
            return Decline("wide_leg_book", leg.market_ticker)
        p = book.mid_micros() if self.params.leg_fair == "mid" else book.microprice_micros()
        assert p is not None  # two-sided
        return p, m

    def _units(
        self, legs: Sequence[ComboLeg], inp: PricingInput
    ) -> tuple[list[_Unit], int] | Decline:
        """The joint's independent-looking factors, and the number of unproven same-event legs."""
        by_event: dict[str, list[tuple[ComboLeg, int, MarketInfo | None]]] = {}
        units: list[_Unit] = []
        for leg in legs:
            got = self._leg_p_yes(leg, inp)
            if isinstance(got, Decline):
                return got
            p, m = got
            series = m.series_ticker if m is not None else leg.event_ticker.split("-", 1)[0]
            if leg.yes_settlement_value_micros is not None or (
                m is not None and m.settlement_value_micros is not None
            ):
                # A determined leg is a constant: independent of everything.
                units.append(_Unit(p if leg.side is Side.YES else D - p, series))
                continue
            by_event.setdefault(leg.event_ticker, []).append((leg, p, m))
        unproven = 0
        for group in by_event.values():
            series = next((m.series_ticker for _, _, m in group if m is not None), "")
            qs = [p if leg.side is Side.YES else D - p for leg, p, _ in group]
            exact = self._structure(group)
            if exact is not None:
                units.append(_Unit(_clamped(exact, qs), series))
                continue
            units.extend(_Unit(q, series) for q in qs)
            unproven += len(group) - 1
        return units, unproven

    @staticmethod
    def _structure(
        group: Sequence[tuple[ComboLeg, int, MarketInfo | None]],
    ) -> int | None:
        """The group's exact joint if the event's metadata proves it, else None."""
        if len(group) < 2:
            return None
        metas = [m for _, _, m in group]
        if any(m is None for m in metas):
            return None
        ms = [m for m in metas if m is not None]
        if any(m.mutually_exclusive for m in ms):
            return _exclusive([(leg, p) for leg, p, _ in group])
        kinds = {m.strike_type for m in ms}
        if kinds <= set(_GREATER) and all(m.floor_strike is not None for m in ms):
            return _nested([(leg, m.floor_strike, p) for (leg, p, _), m in zip(group, ms,
                            strict=True) if m.floor_strike is not None], greater=True)
        if kinds <= set(_LESS) and all(m.cap_strike is not None for m in ms):
            return _nested([(leg, m.cap_strike, p) for (leg, p, _), m in zip(group, ms,
                            strict=True) if m.cap_strike is not None], greater=False)
        return None

    def _rho_range(self, units: Sequence[_Unit]) -> tuple[Fraction, Fraction]:
        """The widest configured range among the units' series; [-1, 1] if any has none."""
        # A function of the set of series alone (the params are frozen): remembered, because
        # its Fraction comparisons were a fifth of a combo's pricing (B6).
        key = frozenset(u.series for u in units)
        got = self._rho_memo.get(key)
        if got is None:
            if len(self._rho_memo) >= _RHO_MEMO_MAX:
                self._rho_memo.clear()
            got = self._rho_memo[key] = self._rho_range_of(units)
        return got

    def _rho_range_of(self, units: Sequence[_Unit]) -> tuple[Fraction, Fraction]:
        models: Mapping[str, Dependence] = self.params.dependence
        lo, hi = ONE, Fraction(-1)
        for u in units:
            d = models.get(u.series) or models.get("*")
            if d is None:
                return Fraction(-1), ONE
            lo, hi = min(lo, d.min_rho), max(hi, d.max_rho)
        return (lo, hi) if lo <= hi else (Fraction(0), Fraction(0))

    def price(self, inp: PricingInput) -> Pricing | Decline:
        """Price a combo RFQ outside the bounds of its joint probability."""
        legs = inp.rfq.legs or inp.market.legs
        if not legs:
            return Decline("not_a_combo", inp.rfq.market_ticker)
        got = self._units(legs, inp)
        if isinstance(got, Decline):
            return got
        units, unproven = got
        (ln, ld), (hn, hd) = joint_bounds_micros([u.q for u in units], self._rho_range(units))
        edge = self.params.edge_micros + unproven * self.params.same_event_edge_micros
        # low - edge and (1 - high) - edge, rounded down (bids_from_fair, on num/den).
        top = MAX_PRICE_MICROS - 1
        yes = min(max((ln - edge * ld) // ld, 0), top)
        no = min(max(((MAX_PRICE_MICROS - edge) * hd - hn) // hd, 0), top)
        fair = clamp_fair((ln * hd + hn * ld) // (2 * ld * hd))
        return Pricing(
            fair_yes_micros=fair, yes_bid_micros=yes, no_bid_micros=no,
            fair_low_micros=ln // ld,
            fair_high_micros=-((-hn) // hd),
        )


def _build(params: Params) -> Combo:
    if not isinstance(params, ComboParams):
        raise TypeError(f"combo needs ComboParams, got {type(params).__name__}")
    return Combo(params)


SPEC = ModuleSpec(name="combo", kind="pricer", params_model=ComboParams, factory=_build)
