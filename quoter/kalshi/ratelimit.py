"""Client-side token buckets mirroring Kalshi's rate limits (kalshi-api.md §4.2, §0a).

Kalshi meters REST calls with two token buckets, **read** and **write**, each with a capacity
and a refill rate in tokens/s; every endpoint has a cost (default 10; create quote, and quote
get/delete in both path forms, cost 2 — §0a). A 429 carries no ``Retry-After``, so we spend
tokens locally first and only send what the exchange will take.

The write bucket keeps a **reserve**: ordinary writes (quotes, deletes) may not take it below
``write_reserve`` tokens, while confirms (:attr:`Priority.CONFIRM`) may. A confirm on an HVM
market must land inside 3 s (§3.3) and therefore never waits behind a quote burst.

The core (:class:`TokenBucket`, :meth:`RateLimiter.try_acquire`) is pure integer arithmetic on
an injected ``now_ns``; :meth:`RateLimiter.acquire` waits with an injected ``sleep``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

from quoter.kalshi.rest_models import AccountLimits, EndpointCosts

__all__ = [
    "DEFAULT_COST",
    "DEFAULT_ENDPOINT_COSTS",
    "BucketConfig",
    "BucketKind",
    "Priority",
    "RateLimiter",
    "TokenBucket",
    "endpoint_key",
    "kind_for_method",
]

_NS_PER_S: Final = 1_000_000_000
DEFAULT_COST: Final = 10
_PREFIX: Final = "/trade-api/v2"
_PARAM: Final = re.compile(r"\{[^/}]*\}|:[A-Za-z_][A-Za-z0-9_]*")


class BucketKind(StrEnum):
    """Which of Kalshi's two budgets a call draws on."""

    READ = "read"
    WRITE = "write"


class Priority(IntEnum):
    """Who may dip into the write reserve."""

    NORMAL = 0
    CONFIRM = 1


def kind_for_method(method: str) -> BucketKind:
    """GETs read; everything else (POST/PUT/DELETE, incl. the quote flow) writes (§4.2)."""
    return BucketKind.READ if method.upper() == "GET" else BucketKind.WRITE


def endpoint_key(method: str, path: str) -> tuple[str, str]:
    """Normalise ``(method, path template)`` for cost lookup.

    Drops the ``/trade-api/v2`` prefix and any query, and turns every ``{param}`` or
    ``:param`` segment into ``{}`` so our templates match the exchange's cost table.
    """
    p = path.split("?", 1)[0]
    if p.startswith(_PREFIX):
        p = p[len(_PREFIX) :]
    p = _PARAM.sub("{}", p).rstrip("/") or "/"
    return method.upper(), p


#: Non-default costs observed on the demo exchange (§0a), used until ``configure_from``.
DEFAULT_ENDPOINT_COSTS: Final[Mapping[tuple[str, str], int]] = {
    endpoint_key("POST", "/communications/quotes"): 2,
    endpoint_key("GET", "/communications/quotes/{quote_id}"): 2,
    endpoint_key("DELETE", "/communications/quotes/{quote_id}"): 2,
    endpoint_key("GET", "/communications/rfqs/{rfq_id}/quotes/{quote_id}"): 2,
    endpoint_key("DELETE", "/communications/rfqs/{rfq_id}/quotes/{quote_id}"): 2,
}


@dataclass(frozen=True, slots=True)
class BucketConfig:
    """A bucket's ``capacity`` (tokens) and ``refill_per_s`` (tokens per second)."""

    capacity: int
    refill_per_s: int

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.refill_per_s <= 0:
            raise ValueError(f"bucket capacity and refill rate must be positive: {self}")


class TokenBucket:
    """A token bucket in exact integers: the level is kept in token-nanoseconds.

    One token = ``10**9`` units, and ``refill_per_s`` tokens/s add ``refill_per_s`` units per
    ns, so refills are exact and the level never goes negative.
    """

    __slots__ = ("_config", "_level", "_updated_ns")

    def __init__(self, config: BucketConfig, now_ns: int, *, full: bool = True) -> None:
        self._config = config
        self._level = config.capacity * _NS_PER_S if full else 0
        self._updated_ns = now_ns

    @property
    def config(self) -> BucketConfig:
        """Capacity and refill rate."""
        return self._config

    def _refill(self, now_ns: int) -> None:
        if now_ns > self._updated_ns:
            cap = self._config.capacity * _NS_PER_S
            gained = (now_ns - self._updated_ns) * self._config.refill_per_s
            self._level = min(cap, self._level + gained)
            self._updated_ns = now_ns

    def level_tokens(self, now_ns: int) -> int:
        """Whole tokens available now."""
        self._refill(now_ns)
        return self._level // _NS_PER_S

    def try_take(self, cost: int, now_ns: int, *, floor: int = 0) -> bool:
        """Take ``cost`` tokens if that leaves at least ``floor`` tokens; True on success."""
        self._refill(now_ns)
        need = (cost + floor) * _NS_PER_S
        if self._level >= need:
            self._level -= cost * _NS_PER_S
            return True
        return False

    def wait_ns(self, cost: int, now_ns: int, *, floor: int = 0) -> int:
        """Nanoseconds until ``try_take(cost, floor=floor)`` can succeed (0 if now)."""
        if cost + floor > self._config.capacity:
            raise ValueError(
                f"cost {cost} + floor {floor} exceeds bucket capacity {self._config.capacity}"
            )
        self._refill(now_ns)
        missing = (cost + floor) * _NS_PER_S - self._level
        if missing <= 0:
            return 0
        return -(-missing // self._config.refill_per_s)

    def reconfigure(self, config: BucketConfig, now_ns: int) -> None:
        """Change capacity/rate, keeping the current level (clipped to the new capacity)."""
        self._refill(now_ns)
        self._config = config
        self._level = min(self._level, config.capacity * _NS_PER_S)

    def drain(self, now_ns: int) -> None:
        """Empty the bucket (after a 429: the exchange's bucket is empty)."""
        self._refill(now_ns)
        self._level = 0


class RateLimiter:
    """Read and write buckets with per-endpoint costs and a write reserve for confirms."""

    def __init__(
        self,
        *,
        now_ns: Callable[[], int],
        read: BucketConfig = BucketConfig(400, 200),
        write: BucketConfig = BucketConfig(100, 100),
        default_cost: int = DEFAULT_COST,
        costs: Mapping[tuple[str, str], int] = DEFAULT_ENDPOINT_COSTS,
        write_reserve: int = 2 * DEFAULT_COST,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._now_ns = now_ns
        self._sleep = sleep
        now = now_ns()
        self._buckets = {
            BucketKind.READ: TokenBucket(read, now),
            BucketKind.WRITE: TokenBucket(write, now),
        }
        self._default_cost = default_cost
        self._costs = {endpoint_key(m, p): c for (m, p), c in costs.items()}
        self._reserve = 0
        self.set_write_reserve(write_reserve)

    # --- configuration -----------------------------------------------------------------

    def set_write_reserve(self, tokens: int) -> None:
        """Set the write tokens only confirms may use (clipped below capacity)."""
        if tokens < 0:
            raise ValueError(f"write reserve {tokens} is negative")
        capacity = self._buckets[BucketKind.WRITE].config.capacity
        self._reserve = min(tokens, capacity - 1)

    @property
    def write_reserve(self) -> int:
        """Tokens of the write bucket kept for confirms."""
        return self._reserve

    def configure_from(self, limits: AccountLimits, costs: EndpointCosts) -> None:
        """Adopt the account's real budgets and the exchange's endpoint cost table."""
        now = self._now_ns()
        self._buckets[BucketKind.READ].reconfigure(
            BucketConfig(limits.read.bucket_capacity, limits.read.refill_rate), now
        )
        self._buckets[BucketKind.WRITE].reconfigure(
            BucketConfig(limits.write.bucket_capacity, limits.write.refill_rate), now
        )
        self._default_cost = costs.default_cost
        self._costs = {endpoint_key(c.method, c.path): c.cost for c in costs.endpoint_costs}
        self.set_write_reserve(self._reserve)

    def cost_for(self, method: str, path_template: str) -> int:
        """The token cost of one call to ``method path_template``."""
        return self._costs.get(endpoint_key(method, path_template), self._default_cost)

    # --- pure core -----------------------------------------------------------------------

    def _floor(self, kind: BucketKind, priority: Priority) -> int:
        if kind is BucketKind.WRITE and priority < Priority.CONFIRM:
            return self._reserve
        return 0

    def try_acquire(
        self, kind: BucketKind, cost: int, priority: Priority = Priority.NORMAL
    ) -> bool:
        """Take ``cost`` tokens now if allowed; never blocks."""
        return self._buckets[kind].try_take(cost, self._now_ns(), floor=self._floor(kind, priority))

    def wait_ns(self, kind: BucketKind, cost: int, priority: Priority = Priority.NORMAL) -> int:
        """Nanoseconds until ``try_acquire`` could succeed."""
        return self._buckets[kind].wait_ns(cost, self._now_ns(), floor=self._floor(kind, priority))

    def drain(self, kind: BucketKind) -> None:
        """Empty a bucket because the exchange answered 429."""
        self._buckets[kind].drain(self._now_ns())

    def levels(self) -> dict[str, int]:
        """Current whole-token levels and settings, for metrics."""
        now = self._now_ns()
        read, write = self._buckets[BucketKind.READ], self._buckets[BucketKind.WRITE]
        return {
            "read_tokens": read.level_tokens(now),
            "read_capacity": read.config.capacity,
            "write_tokens": write.level_tokens(now),
            "write_capacity": write.config.capacity,
            "write_reserve": self._reserve,
        }

    # --- async shell ---------------------------------------------------------------------

    async def acquire(
        self, kind: BucketKind, cost: int, priority: Priority = Priority.NORMAL
    ) -> None:
        """Wait (with the injected sleep) until ``cost`` tokens can be taken, then take them."""
        while not self.try_acquire(kind, cost, priority):
            await self._sleep(self.wait_ns(kind, cost, priority) / _NS_PER_S)
