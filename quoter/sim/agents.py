"""The world's agents: a liquidity provider, requesters (some informed), competing makers, bursts.

Agents act only through the exchange's public calls and learn only from its outbound messages
(the same ``OutMessage`` stream a WebSocket client sees), plus the latent truth where the agent
is meant to know it (informed requesters, makers with noise). Every action is a scheduled
callback on the world's virtual timeline, so a run is a pure function of seed and clock steps.

Side semantics follow kalshi-api.md §0a/§5.3: accepting a quote's ``"no"`` side hits the maker's
NO bid, so the requester buys YES at ``1 - no_bid``; accepting ``"yes"`` buys NO at ``1 - yes_bid``.
"""

from __future__ import annotations

import contextlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from quoter.domain.grid import PriceGrid
from quoter.domain.money import MAX_PRICE_MICROS, MoneyError, parse_dollars
from quoter.domain.types import ComboLeg, Side
from quoter.sim.config import (
    BurstConfig,
    LiquidityConfig,
    MakersConfig,
    MsRange,
    RequestersConfig,
)
from quoter.sim.exchange import OutMessage, SimError, SimExchange
from quoter.sim.truth import TruthModel

__all__ = [
    "Burst",
    "LiquidityProvider",
    "Makers",
    "Requesters",
    "Scheduler",
    "WorldMarket",
]

log = structlog.get_logger(__name__)

_NS_PER_MS = 1_000_000


class Scheduler:
    """A deterministic timeline of callbacks: ties run in the order they were scheduled."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[int], None]]] = []
        self._seq = 0
        self.now_ns = 0

    def at(self, due_ns: int, fn: Callable[[int], None]) -> None:
        """Run ``fn(due_ns)`` once the timeline reaches ``due_ns``."""
        self._seq += 1
        heapq.heappush(self._heap, (max(due_ns, self.now_ns), self._seq, fn))

    def after_ms(self, delay_ms: float, fn: Callable[[int], None]) -> None:
        """Run ``fn`` ``delay_ms`` after the current timeline time."""
        self.at(self.now_ns + round(delay_ms * _NS_PER_MS), fn)

    def next_due_ns(self) -> int | None:
        """When the next callback is due."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ns: int) -> Callable[[int], None] | None:
        """Pop the next callback due at or before ``now_ns`` and move the timeline to it."""
        if not self._heap or self._heap[0][0] > now_ns:
            return None
        due, _, fn = heapq.heappop(self._heap)
        self.now_ns = max(self.now_ns, due)
        return fn

    def __len__(self) -> int:
        return len(self._heap)


@dataclass(slots=True)
class WorldMarket:
    """What the world knows about one of its markets."""

    ticker: str
    event_ticker: str
    series_ticker: str
    grid: PriceGrid
    close_ns: int
    legs: tuple[ComboLeg, ...] = ()
    active: bool = True
    #: Its book never changes after the first levels (``liquidity.quiet_fraction``).
    quiet: bool = False
    #: Deactivated for a while (``markets.pause_rate_per_s``): no RFQs, no book.
    paused: bool = False

    @property
    def is_combo(self) -> bool:
        """Combos (HVM) have legs."""
        return bool(self.legs)


def uniform_ms(rng: random.Random, r: MsRange) -> float:
    """A delay in ms drawn uniformly from a range."""
    return r.min_ms if r.min_ms == r.max_ms else rng.uniform(r.min_ms, r.max_ms)


def fair_micros(truth: TruthModel, m: WorldMarket) -> int:
    """The market's true YES value in micro-dollars."""
    p = truth.combo_p_yes(m.legs) if m.legs else truth.p_yes(m.ticker)
    return truth.micros(p)


def bid_on_grid(grid: PriceGrid, micros: int) -> int:
    """Snap a bid down onto the grid; 0 (no bid) if nothing valid is at or below it."""
    if micros < grid.min_price_micros:
        return 0
    try:
        return grid.snap_down(min(micros, MAX_PRICE_MICROS - 1))
    except MoneyError:
        return 0


class LiquidityProvider:
    """Keeps a few resting levels on both sides of each single market around its truth."""

    def __init__(
        self, exchange: SimExchange, truth: TruthModel, config: LiquidityConfig, user_id: str
    ) -> None:
        self._ex = exchange
        self._truth = truth
        self._cfg = config
        self.user_id = user_id
        self._orders: dict[str, list[str]] = {}
        self._anchor: dict[str, int] = {}

    def refresh(self, m: WorldMarket, *, force: bool = False) -> None:
        """Re-place the market's levels if its truth moved past the tolerance."""
        if m.legs or not m.active or self._cfg.levels == 0:
            return
        fair = fair_micros(self._truth, m)
        anchor = self._anchor.get(m.ticker)
        tolerance = self._cfg.refresh_tolerance_micros
        if not force and anchor is not None and abs(fair - anchor) < tolerance:
            return
        self.withdraw(m.ticker)
        self._anchor[m.ticker] = fair
        ids: list[str] = []
        for side, value in ((Side.YES, fair), (Side.NO, MAX_PRICE_MICROS - fair)):
            seen: set[int] = set()
            for k in range(self._cfg.levels):
                target = value - self._cfg.half_spread_micros - k * self._cfg.level_step_micros
                price = bid_on_grid(m.grid, target)
                if price == 0 or price in seen:
                    continue
                seen.add(price)
                try:
                    ids.append(self._ex.place_order(
                        self.user_id, m.ticker, side, price, self._cfg.size_centi
                    ))
                except SimError as exc:
                    log.debug("sim_lp_order_rejected", market_ticker=m.ticker, code=exc.code)
        self._orders[m.ticker] = ids

    def withdraw(self, ticker: str) -> None:
        """Cancel the provider's orders on a market (filled ones are simply gone)."""
        for order_id in self._orders.pop(ticker, []):
            with contextlib.suppress(SimError):
                self._ex.cancel_order(self.user_id, order_id)
        self._anchor.pop(ticker, None)


@dataclass(slots=True)
class _OpenRfq:
    rfq_id: str
    user_id: str
    market: WorldMarket
    informed: bool
    want_side: Side
    value_noise_micros: int
    #: Latest quote per quote creator: ``(quote_id, yes_bid_micros, no_bid_micros)``.
    quotes: dict[str, tuple[str, int, int]] = field(default_factory=dict)


class Requesters:
    """Accounts that request quotes and accept the best one if it beats their alternative."""

    def __init__(
        self,
        exchange: SimExchange,
        sched: Scheduler,
        truth: TruthModel,
        config: RequestersConfig,
        rng: random.Random,
        markets: Callable[[], tuple[list[WorldMarket], list[WorldMarket]]],
    ) -> None:
        self._ex = exchange
        self._sched = sched
        self._truth = truth
        self._cfg = config
        self._rng = rng
        self._markets = markets
        self.uninformed = [f"sim-requester-{i}" for i in range(config.uninformed)]
        self.informed = [f"sim-informed-{i}" for i in range(config.informed)]
        self._open: dict[str, _OpenRfq] = {}
        self.accepted = 0
        self.created = 0
        #: Arrivals lost because the requester had no market left to ask on.
        self.capped = 0

    @property
    def user_ids(self) -> list[str]:
        """Every requester account."""
        return self.uninformed + self.informed

    def start(self) -> None:
        """Schedule each requester's first RFQ."""
        if self._cfg.rfq_rate_per_s <= 0:
            return
        for user in self.user_ids:
            self._schedule_next(user)

    def _schedule_next(self, user: str) -> None:
        gap_ms = self._rng.expovariate(self._cfg.rfq_rate_per_s) * 1000
        self._sched.after_ms(gap_ms, lambda now_ns: self._arrive(user))

    def _arrive(self, user: str) -> None:
        self._schedule_next(user)
        singles, combos = self._markets()
        rng = self._rng
        pool = combos if combos and rng.random() < self._cfg.combo_fraction else singles
        if not pool:
            return
        market = pool[rng.randrange(len(pool))]
        busy = self._ex.open_rfq_tickers(user)
        if market.ticker in busy or len(busy) >= self._ex.config.max_open_rfqs:
            # Kalshi allows one open RFQ per market per user (and a cap per user): instead of
            # a refused create, ask on a market of the same kind (single or combo) this
            # requester is free on. When there is none, the arrival is lost and counted: the
            # world's offered rate has reached its ceiling (requesters x min(markets,
            # max_open_rfqs) / mean RFQ lifetime).
            free = ([m for m in pool if m.ticker not in busy]
                    if len(busy) < self._ex.config.max_open_rfqs else [])
            if not free:
                self.capped += 1
                return
            market = free[rng.randrange(len(free))]
        contracts_centi: int | None = None
        target_cost_micros: int | None = None
        if rng.random() < self._cfg.target_cost_fraction:
            lo, hi = self._cfg.target_cost.min_micros, self._cfg.target_cost.max_micros
            target_cost_micros = max(rng.randint(lo // 10_000, hi // 10_000) * 10_000, lo)
        else:
            lo, hi = self._cfg.contracts.min_centi, self._cfg.contracts.max_centi
            contracts_centi = max(rng.randint(lo // 100, hi // 100) * 100, lo)
        want = Side.YES if rng.random() < 0.5 else Side.NO
        noise = round(rng.gauss(0.0, self._cfg.combo_tolerance_micros))
        try:
            rfq_id = self._ex.create_rfq(
                user, market.ticker, contracts_centi=contracts_centi,
                target_cost_micros=target_cost_micros,
            )
        except SimError as exc:
            log.debug("sim_rfq_rejected", user_id=user, market_ticker=market.ticker, code=exc.code)
            return
        self.created += 1
        self._open[rfq_id] = _OpenRfq(
            rfq_id, user, market, user in self.informed, want, noise
        )
        self._sched.after_ms(
            uniform_ms(rng, self._cfg.accept_delay_ms), lambda now_ns: self._decide(rfq_id)
        )
        self._sched.after_ms(
            uniform_ms(rng, self._cfg.rfq_lifetime_ms), lambda now_ns: self._expire(rfq_id)
        )

    def on_message(self, out: OutMessage) -> None:
        """Record quotes made on our RFQs."""
        if out.type != "quote_created":
            return
        msg = out.msg
        rfq = self._open.get(str(msg.get("rfq_id")))
        if rfq is None:
            return
        try:
            yes_bid = parse_dollars(str(msg.get("yes_bid_dollars", "0")))
            no_bid = parse_dollars(str(msg.get("no_bid_dollars", "0")))
        except MoneyError:
            return
        rfq.quotes[str(msg.get("quote_creator_id", ""))] = (str(msg["quote_id"]), yes_bid, no_bid)

    def _alternative_cost(self, rfq: _OpenRfq, side: Side) -> int | None:
        """What buying ``side`` costs elsewhere: the book's best ask, or a combo's private value."""
        m = rfq.market
        if m.legs:
            fair = self._leg_mid_value(m) if not rfq.informed else fair_micros(self._truth, m)
            value = fair if side is Side.YES else MAX_PRICE_MICROS - fair
            return value + self._cfg.combo_tolerance_micros + rfq.value_noise_micros
        best_other = self._ex.book(m.ticker).best(side.other)
        if best_other is None:
            return None
        # A NO bid at q is a YES offer at 1 - q (kalshi-api.md §2.6).
        return MAX_PRICE_MICROS - best_other[0]

    def _leg_mid_value(self, m: WorldMarket) -> int:
        """An uninformed view of a combo: the product of its legs' book mids."""
        p = 1.0
        for leg in m.legs:
            book = self._ex.book(leg.market_ticker)
            yes, no = book.best(Side.YES), book.best(Side.NO)
            if yes is None or no is None:
                mid = 0.5
            else:
                mid = (yes[0] + MAX_PRICE_MICROS - no[0]) / 2 / MAX_PRICE_MICROS
            p *= mid if leg.side is Side.YES else 1.0 - mid
        return round(p * MAX_PRICE_MICROS)

    def _decide(self, rfq_id: str) -> None:
        rfq = self._open.get(rfq_id)
        if rfq is None or not rfq.quotes:
            return
        # Candidates: (edge_micros, quote_id, accepted_side); buying YES hits the NO bid.
        candidates: list[tuple[int, str, Side]] = []
        sides = (Side.YES, Side.NO) if rfq.informed else (rfq.want_side,)
        fair = fair_micros(self._truth, rfq.market)
        for quote_id, yes_bid, no_bid in sorted(rfq.quotes.values()):
            for buy in sides:
                bid = no_bid if buy is Side.YES else yes_bid
                if bid <= 0:
                    continue
                cost = MAX_PRICE_MICROS - bid
                alternative = self._alternative_cost(rfq, buy)
                if alternative is not None and cost >= alternative:
                    continue  # the quote must beat what the book (or private value) offers
                if rfq.informed:
                    value = fair if buy is Side.YES else MAX_PRICE_MICROS - fair
                    edge = value - cost
                    if edge < self._cfg.informed_min_edge_micros:
                        continue
                else:
                    edge = -cost
                    if alternative is None:
                        continue
                candidates.append((edge, quote_id, buy.other))
        if not candidates:
            return
        _, quote_id, accepted_side = max(candidates, key=lambda c: (c[0], c[1]))
        try:
            self._ex.accept_quote(rfq.user_id, rfq_id, quote_id, accepted_side)
        except SimError as exc:
            log.debug("sim_accept_rejected", rfq_id=rfq_id, code=exc.code)
            return
        self.accepted += 1
        self._open.pop(rfq_id, None)

    def _expire(self, rfq_id: str) -> None:
        rfq = self._open.pop(rfq_id, None)
        if rfq is None:
            return
        with contextlib.suppress(SimError):
            self._ex.delete_rfq(rfq.user_id, rfq_id)


class Makers:
    """Competing makers: quote around the (noisy) truth with an edge, confirm most accepts."""

    def __init__(
        self,
        exchange: SimExchange,
        sched: Scheduler,
        truth: TruthModel,
        config: MakersConfig,
        rng: random.Random,
        market_of: Callable[[str], WorldMarket | None],
        ignore_rfq: Callable[[dict[str, Any]], bool],
    ) -> None:
        self._ex = exchange
        self._sched = sched
        self._truth = truth
        self._cfg = config
        self._rng = rng
        self._market_of = market_of
        self._ignore = ignore_rfq
        self.user_ids = [f"sim-maker-{i}" for i in range(config.count)]
        self._quotes: dict[str, tuple[str, str]] = {}  # quote_id -> (maker, rfq_id)
        self._by_rfq: dict[str, list[str]] = {}  # rfq_id -> our quote ids (to forget them)
        self._accepted: set[str] = set()
        self.confirmed = 0

    def on_message(self, out: OutMessage) -> None:
        """React to new RFQs (quote later) and to accepts of our quotes (confirm later)."""
        if out.type == "rfq_created":
            if self._ignore(out.msg):
                return
            market = self._market_of(out.market_ticker)
            if market is None:
                return
            rfq_id = str(out.msg["id"])
            for maker in self.user_ids:
                if self._rng.random() >= self._cfg.quote_probability:
                    continue
                delay = uniform_ms(self._rng, self._cfg.quote_delay_ms)
                self._sched.after_ms(delay, self._quote_later(maker, rfq_id, market))
        elif out.type == "rfq_deleted":
            # The RFQ is gone: its open quotes are dead; accepted ones may still need a confirm.
            for quote_id in self._by_rfq.pop(str(out.msg.get("id")), []):
                owner = self._quotes.get(quote_id)
                if owner is not None and quote_id not in self._accepted:
                    del self._quotes[quote_id]
        elif out.type == "quote_accepted":
            quote_id = str(out.msg.get("quote_id"))
            mine = self._quotes.get(quote_id)
            if mine is None:
                return
            self._accepted.add(quote_id)
            if self._rng.random() >= self._cfg.confirm_probability:
                self._forget(quote_id)
                return
            market = self._market_of(out.market_ticker)
            window = self._cfg.hvm_confirm_delay_ms if market and market.legs else (
                self._cfg.confirm_delay_ms
            )
            maker, rfq_id = mine
            self._sched.after_ms(
                uniform_ms(self._rng, window),
                lambda now_ns: self._confirm(maker, rfq_id, quote_id),
            )

    def _quote_later(
        self, maker: str, rfq_id: str, market: WorldMarket
    ) -> Callable[[int], None]:
        return lambda now_ns: self._quote(maker, rfq_id, market)

    def _quote(self, maker: str, rfq_id: str, market: WorldMarket) -> None:
        if not market.active:
            return
        fair = fair_micros(self._truth, market) + round(
            self._rng.gauss(0.0, self._cfg.noise_micros)
        )
        fair = min(max(fair, 0), MAX_PRICE_MICROS)
        yes_bid = bid_on_grid(market.grid, fair - self._cfg.edge_micros)
        no_bid = bid_on_grid(market.grid, MAX_PRICE_MICROS - fair - self._cfg.edge_micros)
        if yes_bid == 0 and no_bid == 0:
            return
        try:
            quote_id = self._ex.create_quote(maker, rfq_id, yes_bid, no_bid)
        except SimError as exc:
            log.debug("sim_maker_quote_rejected", rfq_id=rfq_id, code=exc.code)
            return
        self._quotes[quote_id] = (maker, rfq_id)
        self._by_rfq.setdefault(rfq_id, []).append(quote_id)

    def _forget(self, quote_id: str) -> None:
        self._quotes.pop(quote_id, None)
        self._accepted.discard(quote_id)

    def _confirm(self, maker: str, rfq_id: str, quote_id: str) -> None:
        self._forget(quote_id)
        try:
            self._ex.confirm_quote(maker, quote_id, rfq_id)
        except SimError as exc:
            log.debug("sim_maker_confirm_rejected", quote_id=quote_id, code=exc.code)
            return
        self.confirmed += 1


class Burst:
    """Floods of short-lived RFQs (create, then delete after a lifetime)."""

    def __init__(
        self,
        exchange: SimExchange,
        sched: Scheduler,
        config: BurstConfig,
        rng: random.Random,
        markets: Callable[[], tuple[list[WorldMarket], list[WorldMarket]]],
    ) -> None:
        self._ex = exchange
        self._sched = sched
        self._cfg = config
        self._rng = rng
        self._markets = markets
        self.user_ids = [f"sim-burst-{i}" for i in range(config.accounts)]
        self._busy: set[tuple[str, str]] = set()
        self._end_ns = 0
        self._next_account = 0
        self.creating = False
        self.created = 0
        self.skipped = 0

    def start(self) -> None:
        """Schedule the first burst."""
        if self._cfg.enabled and self._cfg.rfq_rate_per_s > 0:
            self._sched.after_ms(self._cfg.start_after_ms, self._begin)

    def _begin(self, now_ns: int) -> None:
        self._end_ns = now_ns + self._cfg.duration_ms * _NS_PER_MS
        log.info("sim_burst_started", rfq_rate_per_s=self._cfg.rfq_rate_per_s,
                 duration_ms=self._cfg.duration_ms)
        if self._cfg.every_ms:
            self._sched.after_ms(self._cfg.every_ms, self._begin)
        self._arrive(now_ns)

    def _arrive(self, now_ns: int) -> None:
        if now_ns >= self._end_ns:
            return
        self._sched.after_ms(self._rng.expovariate(self._cfg.rfq_rate_per_s) * 1000, self._arrive)
        singles, combos = self._markets()
        pool = singles + combos
        if not pool:
            return
        market = pool[self._rng.randrange(len(pool))]
        for _ in range(len(self.user_ids)):
            user = self.user_ids[self._next_account]
            self._next_account = (self._next_account + 1) % len(self.user_ids)
            if (user, market.ticker) not in self._busy:
                break
        else:
            self.skipped += 1
            return
        qty_centi = self._rng.randint(1, 10) * 100
        self.creating = True
        try:
            rfq_id = self._ex.create_rfq(user, market.ticker, contracts_centi=qty_centi)
        except SimError:
            self.skipped += 1
            return
        finally:
            self.creating = False
        self.created += 1
        key = (user, market.ticker)
        self._busy.add(key)
        self._sched.after_ms(self._cfg.lifetime_ms, lambda t: self._delete(key, rfq_id))

    def _delete(self, key: tuple[str, str], rfq_id: str) -> None:
        self._busy.discard(key)
        with contextlib.suppress(SimError):
            self._ex.delete_rfq(key[0], rfq_id)
