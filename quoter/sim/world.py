"""The simulator's synthetic world: markets with moving truths, liquidity, requesters, makers.

``World(exchange, clock, config, seed)`` lists series/events/binary markets (a mix of price
grids and fee schedules) and combo markets in one ``KXMVE…`` collection (HVM, legs drawn from
the world's singles), registers the agent accounts and the demo bot account, and drives them:

* truths move (log-odds diffusion + jumps, ``quoter.sim.truth``); at its close time a market
  closes and settles with a result drawn from its truth, and a replacement is listed;
  a combo closes with its first leg and settles once its outcome is known;
* some events are structured (``markets.nested_fraction`` / ``exclusive_fraction``): their
  markets share one latent outcome, close together, settle consistently, and are served with
  ``strike_type``/``floor_strike`` or the event's ``mutually_exclusive``; combos may take two
  legs from one of them (``combo_same_event_fraction``), so their truth is the exact joint;
* markets pause: deactivated for a while, then activated (``markets.pause_rate_per_s``);
* a liquidity provider keeps resting levels around each single market's truth;
* requesters post RFQs (Poisson), accept the best quote only when it beats the book (informed
  requesters: only when it is wrong in their favour), delete RFQs after a lifetime;
* competing makers quote with noise and an edge and confirm most accepts;
* bursts of short-lived RFQs flood ``rfq_created``.

Time is only the injected clock and the ``now_ns`` passed to :meth:`World.step`; randomness is one
``random.Random`` per component derived from ``seed``. Given the same seed and the same sequence
of steps, every outbound exchange message is identical.
"""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from quoter.clock import Clock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import ComboLeg, MarketStatus, Side
from quoter.sim.accounts_api import RegisteredAccount, check_user_id, open_account
from quoter.sim.agents import (
    Burst,
    LiquidityProvider,
    Makers,
    Requesters,
    Scheduler,
    WorldMarket,
    fair_micros,
    uniform_ms,
)
from quoter.sim.config import WorldConfig, parse_multiplier
from quoter.sim.exchange import OutMessage, SimError, SimExchange, SimMarket, SimSeries
from quoter.sim.truth import TruthModel

__all__ = ["COMBO_STRUCTURE", "LP_USER_ID", "World", "write_demo_key"]

log = structlog.get_logger(__name__)

_NS_PER_MS = 1_000_000
LP_USER_ID = "sim-liquidity"
_REPORT_EVERY_NS = 30_000_000_000
#: Every combo market uses this grid (kalshi-api.md §5.2 / §6).
COMBO_STRUCTURE = "center_deci_edge_centi_cent"


def write_demo_key(path: Path) -> rsa.RSAPublicKey:
    """Generate an RSA key, write its private PEM to ``path`` (mode 0600); return the public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing file
        os.write(fd, pem)
    finally:
        os.close(fd)
    return key.public_key()


class World:
    """A seeded, deterministic market world driving a :class:`SimExchange`."""

    def __init__(
        self, exchange: SimExchange, clock: Clock, config: WorldConfig, seed: int
    ) -> None:
        self.exchange = exchange
        self.config = config
        self.seed = seed
        self._clock = clock
        self.sched = Scheduler()
        self.sched.now_ns = clock.now_ns()
        self._rng_markets = random.Random(f"{seed}:markets")
        self._rng_settle = random.Random(f"{seed}:settle")
        self._rng_pauses = random.Random(f"{seed}:pauses")
        self.truth = TruthModel(
            random.Random(f"{seed}:truth"),
            volatility_per_sqrt_s=config.truth.volatility_per_sqrt_s,
            jump_rate_per_s=config.truth.jump_rate_per_s,
            jump_std=config.truth.jump_std,
        )
        self.markets: dict[str, WorldMarket] = {}
        self._singles: list[WorldMarket] = []
        self._combos: list[WorldMarket] = []
        self._event_counters: Counter[str] = Counter()
        self._combo_counter = 0
        self._settled_combos: set[str] = set()
        #: Structured events ("nested" / "exclusive") by event ticker, and event numbers.
        self._structured: dict[str, str] = {}
        self._event_numbers: Counter[str] = Counter()
        self._paused: dict[str, WorldMarket] = {}
        self.pauses = 0
        self.frames_by_type: Counter[str] = Counter()
        self.settled = 0

        self.lp = LiquidityProvider(exchange, self.truth, config.liquidity, LP_USER_ID)
        self.requesters = Requesters(
            exchange, self.sched, self.truth, config.requesters,
            random.Random(f"{seed}:requesters"), self._active_markets,
        )
        self.burst = Burst(
            exchange, self.sched, config.burst, random.Random(f"{seed}:burst"),
            self._active_markets,
        )
        self.makers = Makers(
            exchange, self.sched, self.truth, config.makers, random.Random(f"{seed}:makers"),
            self.markets.get, lambda msg: self.burst.creating,
        )
        balance = config.agent_balance_micros
        for user in [LP_USER_ID, *self.requesters.user_ids, *self.makers.user_ids,
                     *self.burst.user_ids]:
            exchange.register_account(user, balance_micros=balance)
        exchange.register_account(config.demo_user_id, balance_micros=config.demo_balance_micros)
        exchange.add_listener(self._on_message)

        self._list_initial_markets()
        self.sched.after_ms(config.truth.tick_ms, self._tick)
        self.requesters.start()
        self.burst.start()
        if config.markets.pause_rate_per_s > 0:
            self._schedule_pause()

    # --- keys -------------------------------------------------------------------------------

    def register_demo_key(self, key_path: Path) -> str:
        """Create the demo bot's API key (private PEM at ``key_path``, 0600); return its key id."""
        public_key = write_demo_key(key_path)
        key_id = str(uuid.uuid4())
        self.exchange.register_key(self.config.demo_user_id, key_id, public_key)
        log.info("sim_demo_key_registered", user_id=self.config.demo_user_id, key_id=key_id,
                 key_path=str(key_path))
        return key_id

    def open_keyed_account(self, user_id: str, key_path: Path) -> RegisteredAccount:
        """Open another account (a requester, a second bot) with the demo bot's balance and a
        fresh key written to ``key_path`` (0600); the world's agents never trade as it."""
        if self.exchange.has_account(check_user_id(user_id)):
            raise SimError(409, "conflict", f"account {user_id} already exists")
        acct = open_account(self.exchange, user_id, write_demo_key(key_path),
                            balance_micros=self.config.demo_balance_micros)
        log.info("sim_account_opened", user_id=user_id, key_id=acct.api_key_id,
                 key_path=str(key_path))
        return acct

    # --- reads -------------------------------------------------------------------------------

    def _active_markets(self) -> tuple[list[WorldMarket], list[WorldMarket]]:
        return self._singles, self._combos

    def truth_micros(self, ticker: str) -> int:
        """The latent true YES value of a market, in micro-dollars."""
        return fair_micros(self.truth, self.markets[ticker])

    def stats(self) -> dict[str, Any]:
        """Counters of what the world did (for logs, benchmarks and tests)."""
        return {
            "markets_active": len(self._singles) + len(self._combos),
            "markets_settled": self.settled,
            "markets_paused": len(self._paused),
            "pauses": self.pauses,
            "rfqs_created": self.requesters.created,
            "rfqs_capped": self.requesters.capped,
            "rfqs_accepted": self.requesters.accepted,
            "quotes_confirmed": self.makers.confirmed,
            "burst_rfqs_created": self.burst.created,
            "burst_rfqs_skipped": self.burst.skipped,
            "frames_by_type": dict(sorted(self.frames_by_type.items())),
        }

    # --- the timeline --------------------------------------------------------------------

    def step(self, now_ns: int) -> None:
        """Run everything due up to ``now_ns`` (world actions and exchange timers), in order."""
        while (fn := self.sched.pop_due(now_ns)) is not None:
            self.exchange.advance(self.sched.now_ns)
            try:
                fn(self.sched.now_ns)
            except SimError as exc:
                # An agent's call was refused (a race with a client, a closed market): the world
                # carries on, as a real participant would.
                log.warning("sim_world_action_failed", status=exc.status, code=exc.code,
                            error_message=exc.message)
        self.sched.now_ns = max(self.sched.now_ns, now_ns)
        self.exchange.advance(now_ns)

    def next_due_ns(self) -> int | None:
        """When the world or the exchange next has something to do."""
        due = [t for t in (self.sched.next_due_ns(), self.exchange.next_deadline_ns()) if t]
        return min(due) if due else None

    async def run(
        self, sleep: Callable[[float], Awaitable[None]], *, max_sleep_s: float = 0.01
    ) -> None:
        """Live mode: step on the clock until cancelled, sleeping via the injected ``sleep``."""
        log.info("sim_world_started", seed=self.seed, markets=len(self.markets))
        next_report_ns = self._clock.now_ns() + _REPORT_EVERY_NS
        while True:
            self.step(self._clock.now_ns())
            if self._clock.now_ns() >= next_report_ns:
                next_report_ns += _REPORT_EVERY_NS
                log.info("sim_world_stats", **self.stats())
            due = self.next_due_ns()
            wait = max_sleep_s
            if due is not None:
                wait = min(max_sleep_s, max(0.0, (due - self._clock.now_ns()) / 1e9))
            await sleep(wait)

    def _on_message(self, out: OutMessage) -> None:
        self.frames_by_type[out.type] += 1
        self.requesters.on_message(out)
        self.makers.on_message(out)

    def _tick(self, now_ns: int) -> None:
        self.sched.after_ms(self.config.truth.tick_ms, self._tick)
        self.truth.step(self.config.truth.tick_ms / 1000)
        for m in self._singles:
            if not m.quiet:
                self.lp.refresh(m)

    # --- markets -------------------------------------------------------------------------

    def _list_initial_markets(self) -> None:
        cfg = self.config.markets
        for s in range(cfg.series):
            series = f"KXSIM{chr(ord('A') + s)}" if s < 26 else f"KXSIM{s}"
            structure = cfg.structures[self._rng_markets.randrange(len(cfg.structures))]
            fee_type = FeeType(cfg.fee_types[self._rng_markets.randrange(len(cfg.fee_types))])
            # Drawn only when there is a choice, so one-multiplier worlds keep their draws.
            pick = (self._rng_markets.randrange(len(cfg.fee_multipliers))
                    if len(cfg.fee_multipliers) > 1 else 0)
            multiplier = parse_multiplier(cfg.fee_multipliers[pick])
            self.exchange.add_series(SimSeries(
                series, title=f"Simulated series {series}",
                fees=FeeSchedule(fee_type, multiplier)))
            for e in range(cfg.events_per_series):
                event = f"{series}-26NOV{e + 1:02d}"
                kind = self._draw_event_kind()
                if kind is not None:
                    self._list_structured(series, event, kind, structure, fee_type)
                    continue
                for _ in range(cfg.markets_per_event):
                    self._list_single(series, event, structure, fee_type)
            self._event_numbers[series] = cfg.events_per_series
        if cfg.combos:
            self.exchange.add_series(SimSeries(
                cfg.collection_ticker.removesuffix("-R"), title="Simulated combos",
                fees=FeeSchedule(FeeType(cfg.combo_fee_type),
                                 parse_multiplier(cfg.combo_fee_multiplier)),
                exchange_index=1))
        for _ in range(cfg.combos):
            self._list_combo()

    def _list_single(self, series: str, event: str, structure: str, fee_type: FeeType) -> None:
        rng = self._rng_markets
        self._event_counters[event] += 1
        ticker = f"{event}-M{self._event_counters[event]}"
        close_ms = rng.randint(self.config.markets.close_after_ms.min_ms,
                               self.config.markets.close_after_ms.max_ms)
        m = self._add_single(series, event, ticker, structure, fee_type, close_ms,
                             f"Simulated market {ticker}")
        tcfg = self.config.truth
        self.truth.add(ticker, rng.uniform(tcfg.initial_min, tcfg.initial_max))
        self.lp.refresh(m, force=True)
        self.sched.at(m.close_ns, lambda now_ns: self._close_single(m, structure, fee_type))

    def _add_single(self, series: str, event: str, ticker: str, structure: str,
                    fee_type: FeeType, close_ms: int, title: str, *,
                    floor_strike: int | None = None) -> WorldMarket:
        """List one binary market on the exchange and in the world (no truth yet)."""
        grid = grid_for_structure(structure)
        self.exchange.add_market(SimMarket(
            ticker=ticker, event_ticker=event, series_ticker=series,
            title=title, grid=grid, status=MarketStatus.ACTIVE,
            close_ts_ms=self._clock.wall_ns() // _NS_PER_MS + close_ms,
            fees=FeeSchedule(fee_type), price_level_structure=structure,
            strike_type="custom" if floor_strike is None else "greater",
            floor_strike=floor_strike,
        ))
        m = WorldMarket(ticker, event, series, grid, self.sched.now_ns + close_ms * _NS_PER_MS)
        quiet = self.config.liquidity.quiet_fraction
        # Drawn only when asked for, so worlds without quiet books keep their random sequence.
        m.quiet = quiet > 0 and self._rng_markets.random() < quiet
        self.markets[ticker] = m
        self._singles.append(m)
        return m

    def _draw_event_kind(self) -> str | None:
        """"nested", "exclusive" or None (independent markets) for a new event."""
        cfg = self.config.markets
        if cfg.markets_per_event < 2 or cfg.nested_fraction + cfg.exclusive_fraction <= 0:
            return None  # no draw: worlds without structured events keep their sequence
        r = self._rng_markets.random()
        if r < cfg.nested_fraction:
            return "nested"
        return "exclusive" if r < cfg.nested_fraction + cfg.exclusive_fraction else None

    def _list_structured(self, series: str, event: str, kind: str, structure: str,
                         fee_type: FeeType) -> None:
        """List an event whose markets share one latent outcome; they close together."""
        rng = self._rng_markets
        cfg = self.config.markets
        close_ms = rng.randint(cfg.close_after_ms.min_ms, cfg.close_after_ms.max_ms)
        n = cfg.markets_per_event
        members: list[WorldMarket] = []
        tcfg = self.config.truth
        if kind == "nested":
            # "wins", "wins by more than 7", ...: strike 7*i, YES iff the margin is above it.
            for i in range(n):
                members.append(self._add_single(
                    series, event, f"{event}-T{7 * i}", structure, fee_type, close_ms,
                    f"Margin above {7 * i} in {event}", floor_strike=7 * i))
            offsets = [0.0]
            for _ in range(n - 1):
                offsets.append(offsets[-1] + rng.uniform(0.4, 1.6))
            self.truth.add_nested([m.ticker for m in members],
                                  rng.uniform(tcfg.initial_min, tcfg.initial_max), offsets)
        else:
            for _ in range(n):
                self._event_counters[event] += 1
                ticker = f"{event}-M{self._event_counters[event]}"
                members.append(self._add_single(series, event, ticker, structure, fee_type,
                                                close_ms, f"Outcome {ticker}"))
            self.exchange.set_event_mutually_exclusive(event)
            weights = [rng.uniform(0.2, 1.0) for _ in range(n + 1)]  # the last: none of them
            total = sum(weights)
            self.truth.add_exclusive({m.ticker: w / total
                                      for m, w in zip(members, weights, strict=False)})
        self._structured[event] = kind
        for m in members:
            self.lp.refresh(m, force=True)
        self.sched.at(members[0].close_ns,
                      lambda now_ns: self._close_event(members, kind, structure, fee_type))

    def _close_event(self, members: list[WorldMarket], kind: str, structure: str,
                     fee_type: FeeType) -> None:
        """Close a structured event's markets, settle them from one draw, list a new event."""
        for m in members:
            self._retire(m)
        for m in members:
            result = self.truth.settle(m.ticker)
            self._settle(m.ticker, result)
            self.settled += 1
            log.info("sim_market_settled", market_ticker=m.ticker, result=str(result))
        for m in members:
            for combo in [c for c in self.markets.values() if c.legs and c.ticker not in
                          self._settled_combos]:
                self._check_combo(combo, m.ticker)
        series = members[0].series_ticker
        self._event_numbers[series] += 1
        event = f"{series}-26NOV{self._event_numbers[series]:02d}"
        self._list_structured(series, event, kind, structure, fee_type)

    def _retire(self, m: WorldMarket) -> None:
        """Take a single market out of trading for good (it is closing)."""
        self.lp.withdraw(m.ticker)
        m.active = False
        if self._paused.pop(m.ticker, None) is None:
            self._singles.remove(m)
        m.paused = False
        self.exchange.set_market_status(m.ticker, MarketStatus.CLOSED)

    # --- pauses ------------------------------------------------------------------------

    def _schedule_pause(self) -> None:
        gap_ms = self._rng_pauses.expovariate(self.config.markets.pause_rate_per_s) * 1000
        self.sched.after_ms(gap_ms, self._pause)

    def _pause(self, now_ns: int) -> None:
        """Deactivate a random single market (its RFQs close, its book empties) for a while."""
        self._schedule_pause()
        if not self._singles:
            return
        m = self._singles.pop(self._rng_pauses.randrange(len(self._singles)))
        m.paused = True
        self._paused[m.ticker] = m
        self.pauses += 1
        self.lp.withdraw(m.ticker)
        self.exchange.set_market_status(m.ticker, MarketStatus.INACTIVE)
        log.info("sim_market_paused", market_ticker=m.ticker)
        self.sched.after_ms(uniform_ms(self._rng_pauses, self.config.markets.pause_ms),
                            lambda now_ns: self._resume(m))

    def _resume(self, m: WorldMarket) -> None:
        if self._paused.pop(m.ticker, None) is None:
            return  # it closed meanwhile
        m.paused = False
        self._singles.append(m)
        self.exchange.set_market_status(m.ticker, MarketStatus.ACTIVE)
        self.lp.refresh(m, force=True)
        log.info("sim_market_resumed", market_ticker=m.ticker)

    def _list_combo(self) -> None:
        rng = self._rng_markets
        cfg = self.config.markets
        by_event: dict[str, list[WorldMarket]] = {}
        for m in self._singles:
            by_event.setdefault(m.event_ticker, []).append(m)
        events = sorted(by_event)
        k = rng.randint(cfg.combo_legs_min, cfg.combo_legs_max)
        if len(events) < k:
            return
        legs = self._dependent_legs(by_event, events, k)
        if legs is None:
            # Legs from distinct events: Kalshi rejects duplicated/conflicting legs (§6).
            picks = [by_event[e][rng.randrange(len(by_event[e]))]
                     for e in rng.sample(events, k)]
            legs = tuple(
                ComboLeg(m.event_ticker, m.ticker, Side.YES if rng.random() < 0.5 else Side.NO)
                for m in picks
            )
        self._combo_counter += 1
        collection = cfg.collection_ticker
        series = collection.removesuffix("-R")
        ticker = f"{series}-S{self.seed % 100_000:05d}{self._combo_counter:05d}"
        event = f"{series}-E{self._combo_counter:05d}"
        close_ns = min(self.markets[leg.market_ticker].close_ns for leg in legs)
        grid = grid_for_structure(COMBO_STRUCTURE)
        self.exchange.add_market(SimMarket(
            ticker=ticker, event_ticker=event, series_ticker=series,
            title=f"Simulated combo of {len(legs)} legs", grid=grid,
            status=MarketStatus.ACTIVE,
            close_ts_ms=self._clock.wall_ns() // _NS_PER_MS
            + (close_ns - self.sched.now_ns) // _NS_PER_MS,
            fees=FeeSchedule(FeeType.QUADRATIC_WITH_COMBO_MAKER_FEES), is_hvm=True,
            mve_collection_ticker=collection, legs=legs, exchange_index=1,
            price_level_structure=COMBO_STRUCTURE,
        ))
        m = WorldMarket(ticker, event, series, grid, close_ns, legs)
        self.markets[ticker] = m
        self._combos.append(m)

    def _dependent_legs(self, by_event: dict[str, list[WorldMarket]], events: list[str],
                        k: int) -> tuple[ComboLeg, ...] | None:
        """Two legs of one nested or exclusive event plus ``k - 2`` from other events, or
        None (drawn only when ``combo_same_event_fraction`` asks for it)."""
        rng = self._rng_markets
        share = self.config.markets.combo_same_event_fraction
        if share <= 0:
            return None
        pool = [e for e in events if e in self._structured and len(by_event[e]) >= 2]
        if not pool or rng.random() >= share:
            return None
        event = pool[rng.randrange(len(pool))]
        # Listing order: for nested strikes the first is the outer (lower) one.
        a, b = sorted(rng.sample(by_event[event], 2), key=by_event[event].index)
        # Only combinations that can pay: never "NO outer, YES inner", never two YES outcomes
        # of one exclusive event (Kalshi rejects conflicting legs, §6).
        choices = ([(Side.YES, Side.YES), (Side.YES, Side.NO), (Side.NO, Side.NO)]
                   if self._structured[event] == "nested"
                   else [(Side.YES, Side.NO), (Side.NO, Side.YES), (Side.NO, Side.NO)])
        side_a, side_b = choices[rng.randrange(len(choices))]
        others = [e for e in events if e != event]
        if len(others) < k - 2:
            return None
        picks = [by_event[e][rng.randrange(len(by_event[e]))] for e in rng.sample(others, k - 2)]
        return (ComboLeg(event, a.ticker, side_a), ComboLeg(event, b.ticker, side_b), *(
            ComboLeg(m.event_ticker, m.ticker, Side.YES if rng.random() < 0.5 else Side.NO)
            for m in picks))

    def _close_single(self, m: WorldMarket, structure: str, fee_type: FeeType) -> None:
        self._retire(m)
        result = self.truth.settle(m.ticker)
        self._settle(m.ticker, result)
        self.settled += 1
        log.info("sim_market_settled", market_ticker=m.ticker, result=str(result))
        for combo in [c for c in self.markets.values() if c.legs and c.ticker not in
                      self._settled_combos]:
            self._check_combo(combo, m.ticker)
        self._list_single(m.series_ticker, m.event_ticker, structure, fee_type)

    def _settle(self, ticker: str, result: Side) -> None:
        """Determine now; pay out now or after ``markets.settle_delay_ms`` (positions stay
        listed meanwhile, as while Kalshi's settlement timer runs)."""
        delay = self.config.markets.settle_delay_ms
        if delay.max_ms <= 0:
            self.exchange.settle_market(ticker, result)
            return
        self.exchange.determine_market(ticker, result)
        self.sched.after_ms(uniform_ms(self._rng_settle, delay),
                            lambda now_ns: self.exchange.finalize_market(ticker))

    def _check_combo(self, combo: WorldMarket, leg_ticker: str) -> None:
        """Close a combo with its first leg; settle it once its outcome is known."""
        if all(leg.market_ticker != leg_ticker for leg in combo.legs):
            return
        if combo.active:
            combo.active = False
            self._combos.remove(combo)
            self.exchange.set_market_status(combo.ticker, MarketStatus.CLOSED)
            self._list_combo()
        results = [self.truth.result(leg.market_ticker) for leg in combo.legs]
        lost = any(r is not None and r is not leg.side for r, leg in zip(results, combo.legs,
                                                                          strict=True))
        if lost or all(r is not None for r in results):
            result = Side.NO if lost else Side.YES
            self._settle(combo.ticker, result)
            self._settled_combos.add(combo.ticker)
            self.settled += 1
            log.info("sim_market_settled", market_ticker=combo.ticker, result=str(result))
