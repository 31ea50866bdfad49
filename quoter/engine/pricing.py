"""Run a pricer and its overlays safely, then turn the answer into a quotable two-sided quote.

``run_pricing`` never raises: an exception in a module becomes ``Decline("pricer_error")`` and
a blown time budget ``Decline("pricer_timeout")`` (we cannot interrupt a module, so the budget
is measured with the injected ``perf_ns`` and an over-budget answer is discarded: a slow module
gets no quotes out). ``finalize`` snaps bids down to the market's grid, lowers them until
``yes_bid + no_bid <= $1 - min_spread`` (the exchange rejects a sum above $1, kalshi-api.md
§3.1), keeps one-sided quotes (a 0 bid means "no bid on that side") and declines when both
sides end up at 0 (Kalshi rejects a quote of two zeros).

``pricing_completed`` / ``result_of`` carry a pricing result across a process boundary as the
flat ``PricingCompleted`` event (strategies with ``quoting.isolation: process``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from quoter.domain.events import PricingCompleted
from quoter.domain.grid import PriceGrid
from quoter.domain.money import MAX_PRICE_MICROS, MoneyError
from strategies.base import Decline, Overlay, Pricer, Pricing, PricingInput

__all__ = [
    "PRICER_BUSY",
    "PRICER_ERROR",
    "PRICER_TIMEOUT",
    "SHELL_REASONS",
    "finalize",
    "pricing_completed",
    "result_of",
    "run_pricing",
]

PRICER_ERROR = "pricer_error"
PRICER_TIMEOUT = "pricer_timeout"
#: The pricing pool's queue is full: the request was never run.
PRICER_BUSY = "pricer_busy"
#: Decline reasons decided around a module, not by it (kept as the final reason code).
SHELL_REASONS = (PRICER_ERROR, PRICER_TIMEOUT, PRICER_BUSY)


def _sane(p: Pricing) -> Pricing:
    """Raise ``MoneyError`` unless a module's answer is made of plausible integer prices."""
    fair, yes, no = p.fair_yes_micros, p.yes_bid_micros, p.no_bid_micros
    low, high = p.fair_low_micros, p.fair_high_micros
    if (type(fair) is int and type(yes) is int and type(no) is int
            and 0 < fair < MAX_PRICE_MICROS and yes < MAX_PRICE_MICROS
            and no < MAX_PRICE_MICROS
            and (low is None or type(low) is int) and (high is None or type(high) is int)
            and 0 <= (0 if low is None else low) <= (MAX_PRICE_MICROS if high is None else high)
            <= MAX_PRICE_MICROS):
        return p  # the common answer, checked without the general walk below (B6)
    for name in ("fair_yes_micros", "yes_bid_micros", "no_bid_micros"):
        value = getattr(p, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise MoneyError(f"{name} must be integer micro-dollars, got {value!r}")
    if not 0 < p.fair_yes_micros < MAX_PRICE_MICROS:
        raise MoneyError(f"fair value {p.fair_yes_micros} is outside (0, 1) dollars")
    for bid in (p.yes_bid_micros, p.no_bid_micros):
        if bid >= MAX_PRICE_MICROS:
            raise MoneyError(f"bid {bid} is not below $1")
    low = 0 if p.fair_low_micros is None else p.fair_low_micros
    high = MAX_PRICE_MICROS if p.fair_high_micros is None else p.fair_high_micros
    for value in (p.fair_low_micros, p.fair_high_micros):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise MoneyError(f"fair bounds must be integer micro-dollars, got {value!r}")
    if not 0 <= low <= high <= MAX_PRICE_MICROS:
        raise MoneyError(f"fair bounds [{low}, {high}] are not an interval within $0..$1")
    return p


def run_pricing(
    pricer: Pricer,
    overlays: Sequence[Overlay],
    inp: PricingInput,
    *,
    budget_ns: int,
    perf_ns: Callable[[], int] | None,
) -> Pricing | Decline:
    """Run ``pricer`` then each overlay; errors and over-budget answers become declines."""
    start = perf_ns() if perf_ns is not None else 0
    try:
        result = pricer.price(inp)
        if isinstance(result, Pricing):
            result = _sane(result)
        for overlay in overlays:
            if not isinstance(result, Pricing):
                break
            adjusted = overlay.adjust(inp, result)
            result = _sane(adjusted) if isinstance(adjusted, Pricing) else adjusted
    except Exception as exc:  # a module must never take the engine down (errors.StrategyError)
        return Decline(PRICER_ERROR, f"{type(exc).__name__}: {exc}")
    if perf_ns is not None:
        elapsed = perf_ns() - start
        if elapsed > budget_ns:
            return Decline(PRICER_TIMEOUT, f"{elapsed // 1000} us > {budget_ns // 1000} us")
    return _checked(result)


def _checked(result: object) -> Pricing | Decline:
    """A third-party module may return anything at run time; anything else is an error."""
    if isinstance(result, Pricing | Decline):
        return result
    return Decline(PRICER_ERROR, f"module returned {type(result).__name__}")


def _snap(grid: PriceGrid, bid: int) -> int:
    """Snap a bid down to the grid; anything below the lowest price means no bid (0)."""
    if bid <= 0:
        return 0
    try:
        return grid.snap_down(bid)
    except MoneyError:
        return 0


def finalize(pricing: Pricing, grid: PriceGrid, min_spread_micros: int) -> Pricing | Decline:
    """Make ``pricing`` quotable on ``grid``: on-grid bids, sum <= $1 - min_spread, not both 0."""
    cap = MAX_PRICE_MICROS - max(0, min_spread_micros)
    yes = _snap(grid, pricing.yes_bid_micros)
    no = _snap(grid, pricing.no_bid_micros)
    # Lower both sides by half the excess each (YES takes the odd micro), then re-snap; snapping
    # only lowers, so each round shrinks the sum. Several rounds only when a side hits 0.
    for _ in range(4):
        excess = yes + no - cap
        if excess <= 0:
            break
        if yes and no:
            yes = _snap(grid, yes - (excess + 1) // 2)
            no = _snap(grid, no - excess // 2)
        elif yes:
            yes = _snap(grid, yes - excess)
        else:
            no = _snap(grid, no - excess)
    if yes + no > cap:
        return Decline("spread_unsatisfiable")
    if yes == 0 and no == 0:
        return Decline("empty_quote")
    if type(pricing) is Pricing:  # direct construction: a third of replace()'s cost
        return Pricing(pricing.fair_yes_micros, yes, no, pricing.fair_low_micros,
                       pricing.fair_high_micros)
    return replace(pricing, yes_bid_micros=yes, no_bid_micros=no)


def pricing_completed(
    rfq_id: str, request_id: int, result: Pricing | Decline, ts_recv_ns: int
) -> PricingCompleted:
    """Wrap a pricing result as the event answering ``PriceInPool`` ``request_id``."""
    if isinstance(result, Pricing):
        return PricingCompleted(rfq_id, request_id, ts_recv_ns, result.fair_yes_micros,
                                result.yes_bid_micros, result.no_bid_micros,
                                fair_low_micros=result.fair_low_micros,
                                fair_high_micros=result.fair_high_micros)
    # An empty reason would read as a pricing: keep a decline a decline.
    return PricingCompleted(rfq_id, request_id, ts_recv_ns, decline_reason=result.reason or
                            PRICER_ERROR, decline_detail=result.detail)


def result_of(ev: PricingCompleted) -> Pricing | Decline:
    """Unwrap a ``PricingCompleted`` (a pricing is sanity-checked like any module answer)."""
    if ev.decline_reason:
        return Decline(ev.decline_reason, ev.decline_detail)
    try:
        return _sane(Pricing(ev.fair_yes_micros, ev.yes_bid_micros, ev.no_bid_micros,
                             ev.fair_low_micros, ev.fair_high_micros))
    except MoneyError as exc:
        return Decline(PRICER_ERROR, str(exc))
