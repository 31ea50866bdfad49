"""Clocks and the timer queue. The engine never reads time; a shell passes ``now_ns`` from these.

``now_ns`` is the engine's time base (monotonic in live runs, recorded time in replays);
``wall_ns`` is Unix time, for comparing with exchange timestamps and for recordings.

Timers are data: the runtime kernel returns ``ScheduleTimer`` / ``CancelTimer`` and the shell
keeps them in a :class:`TimerQueue`. The async driver serves the queue from the event loop
(one loop timer for the earliest deadline); a virtual clock serves it by advancing to each
deadline in order and firing what is due before it moves on (:meth:`VirtualClock.run_until`),
as NautilusTrader's backtest loop does before each datum. Both fire in the same order:
deadline first, then the order the timers were armed in.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator
from typing import Protocol

__all__ = ["Clock", "LiveClock", "ReplayClock", "TimerQueue", "VirtualClock"]


class Clock(Protocol):
    """A source of time."""

    def now_ns(self) -> int:
        """Engine time in nanoseconds (monotonic)."""
        ...

    def wall_ns(self) -> int:
        """Unix time in nanoseconds."""
        ...


class LiveClock:
    """The real clock."""

    def now_ns(self) -> int:
        """Monotonic nanoseconds."""
        return time.monotonic_ns()

    def wall_ns(self) -> int:
        """Unix nanoseconds."""
        return time.time_ns()


class ReplayClock:
    """A clock that only moves when told to: tests and replays drive it."""

    def __init__(self, start_ns: int = 0, wall_offset_ns: int = 0) -> None:
        self._now_ns = start_ns
        self._wall_offset_ns = wall_offset_ns

    def now_ns(self) -> int:
        """Current replay time."""
        return self._now_ns

    def wall_ns(self) -> int:
        """Replay time shifted to the recording's wall clock."""
        return self._now_ns + self._wall_offset_ns

    def advance_to(self, ts_ns: int) -> None:
        """Move forward to ``ts_ns``; time never goes backwards."""
        if ts_ns < self._now_ns:
            raise ValueError(f"replay clock cannot go back from {self._now_ns} to {ts_ns}")
        self._now_ns = ts_ns

    def advance(self, delta_ns: int) -> None:
        """Move forward by ``delta_ns``."""
        self.advance_to(self._now_ns + delta_ns)


class TimerQueue:
    """Keyed one-shot timers in deadline order; arming a key again replaces its deadline.

    A heap with lazy deletion: ``arm`` and ``cancel`` are O(log n) / O(1), and entries made
    stale by a re-arm or a cancel are skipped when they reach the top.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []
        # key -> the arm sequence number of its live entry (older entries are stale).
        self._live: dict[str, int] = {}
        self._seq = 0

    def __len__(self) -> int:
        """Timers armed and not yet fired or cancelled."""
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        """True while ``key`` is armed."""
        return key in self._live

    def arm(self, key: str, at_ns: int) -> None:
        """Fire ``key`` at ``at_ns`` (replacing any deadline it had)."""
        self._seq += 1
        self._live[key] = self._seq
        heapq.heappush(self._heap, (at_ns, self._seq, key))

    def cancel(self, key: str) -> bool:
        """Disarm ``key``; False if it was not armed."""
        return self._live.pop(key, None) is not None

    def next_at(self) -> int | None:
        """The earliest deadline armed, or None."""
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now_ns: int) -> list[tuple[int, str]]:
        """Remove and return ``(deadline, key)`` of every timer due at ``now_ns``, in order."""
        due: list[tuple[int, str]] = []
        while (at := self.next_at()) is not None and at <= now_ns:
            _, _, key = heapq.heappop(self._heap)
            del self._live[key]
            due.append((at, key))
        return due

    def pop_next(self, until_ns: int) -> tuple[int, str] | None:
        """Remove and return the earliest timer due at or before ``until_ns``, or None."""
        at = self.next_at()
        if at is None or at > until_ns:
            return None
        _, _, key = heapq.heappop(self._heap)
        del self._live[key]
        return at, key


class VirtualClock(ReplayClock):
    """A clock that moves only when told to, and fires its timers on the way.

    ``run_until(ts)`` advances to each due deadline in turn and yields its key with the clock
    standing at that deadline; a timer armed while the caller handles one (even for an
    earlier instant than ``ts``) is fired in its turn too. Then the clock stands at ``ts``.
    """

    def __init__(self, start_ns: int = 0, wall_offset_ns: int = 0) -> None:
        super().__init__(start_ns, wall_offset_ns)
        self.timers = TimerQueue()

    def run_until(self, ts_ns: int) -> Iterator[str]:
        """Fire every timer due by ``ts_ns`` in order (the clock at its deadline), then stop."""
        if ts_ns < self.now_ns():
            raise ValueError(f"virtual clock cannot go back from {self.now_ns()} to {ts_ns}")
        while (item := self.timers.pop_next(ts_ns)) is not None:
            at, key = item
            # A timer armed in the past (before now) fires now: time never goes backwards.
            self.advance_to(max(at, self.now_ns()))
            yield key
        self.advance_to(ts_ns)
