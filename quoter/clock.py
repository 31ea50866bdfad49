"""Clocks. The engine never reads time; the runtime passes ``now_ns`` from one of these.

``now_ns`` is the engine's time base (monotonic in live runs, recorded time in replays);
``wall_ns`` is Unix time, for comparing with exchange timestamps and for recordings.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "LiveClock", "ReplayClock"]


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
