"""Contracts at risk across the outcomes of an event whose markets are mutually exclusive."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["exclusive_event_centi"]


def exclusive_event_centi(points: Iterable[tuple[int, int]]) -> int:
    """Contracts at risk in a mutually exclusive event, measured per outcome.

    ``points`` holds one ``(high, low)`` per market: its committed signed size after the hits
    that push it up (YES sides) and down (NO sides). With at most one market resolving YES, a
    signed size ``c_i`` per market pays ``c_o + sum(max(0, -c_i))`` in the outcome where market
    ``o`` wins and ``sum(max(0, -c_i))`` when none does, so the payout moves across outcomes by
    ``max(c) - min(c)`` with the "none" outcome as a market at 0: YES on two outcomes of three
    is one NO (100 at risk, not 200), YES on one with NO on another is 200. Every live quote is
    hit the way that widens the spread most; one quote is hit once, so the high and the low
    outcome must differ (a market's own YES and NO sides never both count).
    """
    cands = [(0, 0), *points]  # the "no market resolves YES" outcome
    hi = sorted(range(len(cands)), key=lambda i: -cands[i][0])[:2]
    lo = sorted(range(len(cands)), key=lambda i: cands[i][1])[:2]
    best = max(cands[a][0] - cands[b][1] for a in hi for b in lo if a != b)
    return max(0, best)
