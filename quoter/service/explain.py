"""``quoter explain``: which strategy would take an RFQ, what each module did, and the bids.

The input is one JSON file, in the exchange's own shapes, so it can be cut from a recording or
from the REST API::

    {"rfq": <an rfq_created frame, or its "msg">,
     "market": <the "market" object of GET /markets/{ticker}>,            (optional)
     "leg_markets": [<market objects of a combo's legs>],                  (optional)
     "orderbooks": {"TICKER": <the body of GET /markets/{ticker}/orderbook>}}  (optional)

Routing is the engine's (:func:`quoter.engine.routing.route`, the first enabled strategy whose
filters pass); pricing runs the strategy's pricer, then each overlay in order, recording every
intermediate answer, then snaps the bids to the market's grid exactly as the engine does
(:func:`quoter.engine.pricing.finalize`). Risk limits, inventory and requester history are
those of a fresh service (flat, no history): this explains the pricing, not the risk state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from quoter.config import QuoterConfig
from quoter.domain import events as ev
from quoter.domain.book import OrderBook
from quoter.domain.grid import grid_for_structure
from quoter.domain.money import MAX_PRICE_MICROS, MoneyError
from quoter.domain.types import MarketInfo, MarketStatus
from quoter.engine.pricing import finalize
from quoter.engine.routing import route
from quoter.engine.strategy_set import build_strategies, registry_build
from quoter.errors import DecodeError
from quoter.kalshi.rest_models import MarketResponse, decode_orderbook, decode_response
from quoter.kalshi.schemas import decode_frame
from quoter.kalshi.translate import to_events
from quoter.service.status import dollars
from strategies.base import Decline, Pricing, PricingInput

__all__ = ["Explanation", "Step", "explain", "load_explain_input"]

#: Without a market object, a plain open binary market on Kalshi's one-cent grid.
_DEFAULT_STRUCTURE: Final = "linear_cent"


@dataclass(frozen=True, slots=True)
class Step:
    """One module's answer: ``pricing`` or ``decline`` (with its reason and detail)."""

    module: str
    kind: str  # "pricer", "overlay" or "grid"
    pricing: Pricing | None = None
    decline: Decline | None = None

    def describe(self) -> str:
        """``fair 0.5000 yes 0.4800 no 0.4800`` or ``declined: reason (detail)``."""
        if self.pricing is not None:
            p = self.pricing
            return (f"fair {dollars(p.fair_yes_micros)}  yes {dollars(p.yes_bid_micros)}  "
                    f"no {dollars(p.no_bid_micros)}")
        assert self.decline is not None
        detail = f" ({self.decline.detail})" if self.decline.detail else ""
        return f"declined: {self.decline.reason}{detail}"


@dataclass(frozen=True, slots=True)
class Explanation:
    """What the engine would do with an RFQ, step by step."""

    rfq: ev.RfqReceived
    market: MarketInfo
    strategy: str | None
    route_reason: str | None
    skipped: tuple[tuple[str, str], ...] = ()
    steps: tuple[Step, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def bids(self) -> Pricing | None:
        """The quote the engine would send, if any."""
        last = self.steps[-1] if self.steps else None
        return last.pricing if last is not None and last.kind == "grid" else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: strategy, skipped strategies with reasons, steps, bids (exact strings)."""
        def pricing_json(p: Pricing | None) -> dict[str, Any] | None:
            if p is None:
                return None
            return {k: getattr(p, k) for k in ("fair_yes_micros", "yes_bid_micros",
                                               "no_bid_micros")} | {
                "fair_yes_dollars": dollars(p.fair_yes_micros),
                "yes_bid_dollars": dollars(p.yes_bid_micros),
                "no_bid_dollars": dollars(p.no_bid_micros),
            }
        return {
            "rfq_id": self.rfq.rfq_id,
            "market_ticker": self.rfq.market_ticker,
            "strategy": self.strategy,
            "route_reason": self.route_reason,
            "skipped": [{"strategy": n, "reason": r} for n, r in self.skipped],
            "steps": [{
                "module": s.module, "kind": s.kind, "pricing": pricing_json(s.pricing),
                "decline": None if s.decline is None else {
                    "reason": s.decline.reason, "detail": s.decline.detail},
            } for s in self.steps],
            "bids": pricing_json(self.bids),
            "notes": list(self.notes),
        }

    def render(self) -> str:
        """A few lines for people."""
        r = self.rfq
        size = (f"{r.contracts_centi / 100:.2f} contracts" if r.contracts_centi is not None
                else f"target cost ${dollars(r.target_cost_micros or 0)}")
        kind = f"combo of {len(r.legs)} legs" if r.legs else "single market"
        lines = [f"RFQ {r.rfq_id} on {r.market_ticker}: {size}, {kind}"]
        for name, why in self.skipped:
            lines.append(f"  strategy {name}: skipped ({why})")
        if self.strategy is None:
            lines.append(f"no strategy takes it: {self.route_reason}")
        else:
            lines.append(f"strategy: {self.strategy} (the first whose filters pass)")
            for step in self.steps:
                label = step.module if step.kind == "grid" else f"{step.kind} {step.module}"
                lines.append(f"  {label}: {step.describe()}")
            bids = self.bids
            if bids is None:
                lines.append("would not quote")
            else:
                lines.append(f"would quote: yes {dollars(bids.yes_bid_micros)}  "
                             f"no {dollars(bids.no_bid_micros)}  "
                             f"(fair {dollars(bids.fair_yes_micros)})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _market_from_json(obj: Any, what: str) -> MarketInfo:
    try:
        market = decode_response(json.dumps({"market": obj}), MarketResponse).market
        return market.to_market_info()
    except DecodeError as exc:
        raise DecodeError(f"{what}: {exc}") from None


def _default_market(rfq: ev.RfqReceived) -> MarketInfo:
    event = rfq.event_ticker or rfq.market_ticker.rsplit("-", 1)[0]
    return MarketInfo(
        ticker=rfq.market_ticker, event_ticker=event, series_ticker=event.split("-", 1)[0],
        status=MarketStatus.ACTIVE, grid=grid_for_structure(_DEFAULT_STRUCTURE),
        mve_collection_ticker=rfq.mve_collection_ticker, legs=rfq.legs,
        is_hvm=bool(rfq.legs or rfq.mve_collection_ticker),
    )


@dataclass(frozen=True, slots=True)
class ExplainInput:
    """The decoded input file."""

    rfq: ev.RfqReceived
    market: MarketInfo | None
    leg_markets: Mapping[str, MarketInfo]
    books: Mapping[str, OrderBook]


def load_explain_input(text: str, now_ns: int = 0) -> ExplainInput:
    """Decode the input file (see the module docstring); raise ``DecodeError`` naming the part."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or "rfq" not in data:
        raise DecodeError('expected an object with an "rfq" key')
    raw = data["rfq"]
    if isinstance(raw, dict) and raw.get("type") != "rfq_created":
        raw = {"type": "rfq_created", "sid": 1, "msg": raw}
    try:
        events = to_events(decode_frame(json.dumps(raw), now_ns), now_ns)
    except DecodeError as exc:
        raise DecodeError(f"rfq: {exc}") from None
    rfqs = [e for e in events if isinstance(e, ev.RfqReceived)]
    if len(rfqs) != 1:
        raise DecodeError("rfq: not an rfq_created frame")
    market = None if data.get("market") is None else _market_from_json(data["market"], "market")
    legs = {m.ticker: m for m in (
        _market_from_json(obj, f"leg_markets[{i}]")
        for i, obj in enumerate(data.get("leg_markets") or ())
    )}
    books: dict[str, OrderBook] = {}
    for ticker, body in (data.get("orderbooks") or {}).items():
        try:
            book = decode_orderbook(json.dumps(body))
        except DecodeError as exc:
            raise DecodeError(f"orderbooks.{ticker}: {exc}") from None
        ob = OrderBook(ticker)
        # REST books list NO bids in NO prices (kalshi-api.md §4.1), as OrderBook expects.
        ob.apply_snapshot(list(book.yes_levels), list(book.no_levels), now_ns)
        books[ticker] = ob
    return ExplainInput(rfqs[0], market, legs, books)


def explain(config: QuoterConfig, inp: ExplainInput, *, now_wall_ms: int | None,
            now_ns: int = 0) -> Explanation:
    """Route and price ``inp.rfq`` under ``config``, recording every module's answer."""
    rfq = inp.rfq
    notes: list[str] = []
    market = inp.market
    if market is None:
        market = _default_market(rfq)
        notes.append(f"no market given: assumed an active market on the "
                     f"{_DEFAULT_STRUCTURE} grid with the default fees")
    skipped = []
    for s in config.strategies:
        if not s.enabled:
            skipped.append((s.name, "disabled"))
            continue
        why = s.match.matches(rfq, market, now_wall_ms)
        if why is None:
            break
        skipped.append((s.name, why))
    chosen, reason = route(config, rfq, market, now_wall_ms)
    if chosen is None:
        return Explanation(rfq, market, None, reason, tuple(skipped), notes=tuple(notes))
    st = build_strategies(config, registry_build)[chosen.name]
    needs = tuple(dict.fromkeys(leg.market_ticker for leg in (rfq.legs or market.legs))) or (
        rfq.market_ticker,)
    missing = [t for t in needs if t not in inp.books]
    if missing:
        notes.append(f"no order book given for {', '.join(missing)}")
    size = rfq.contracts_centi if rfq.contracts_centi is not None else -(
        -(rfq.target_cost_micros or 0) * 100 // (MAX_PRICE_MICROS // 2))
    pin = PricingInput(
        rfq=rfq, market=market, books=inp.books, now_ns=now_ns, size_centi=size,
        leg_markets={t: m for t, m in inp.leg_markets.items() if t != market.ticker},
    )
    steps: list[Step] = []
    result = _run(lambda: st.pricer.price(pin))
    steps.append(_step(chosen.pricer.name, "pricer", result))
    for ref, overlay in zip(chosen.overlays, st.overlays, strict=True):
        if not isinstance(result, Pricing):
            break
        previous = result
        result = _run(lambda o=overlay, p=previous: o.adjust(pin, p))
        steps.append(_step(ref.name, "overlay", result))
    if isinstance(result, Pricing):
        final = finalize(result, market.grid, chosen.quoting.min_spread_micros)
        steps.append(_step("on the grid, minimum spread", "grid", final))
    return Explanation(rfq, market, chosen.name, None, tuple(skipped), tuple(steps),
                       tuple(notes))


def _run(call: Any) -> Pricing | Decline:
    try:
        out = call()
    except (MoneyError, ArithmeticError, ValueError, KeyError, TypeError) as exc:
        return Decline("pricer_error", f"{type(exc).__name__}: {exc}")
    if isinstance(out, Pricing | Decline):
        return out
    return Decline("pricer_error", f"module returned {type(out).__name__}")


def _step(module: str, kind: str, result: Pricing | Decline) -> Step:
    if isinstance(result, Pricing):
        return Step(module, kind, pricing=result)
    return Step(module, kind, decline=result)
