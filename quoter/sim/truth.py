"""Latent true YES probabilities of the world's markets, and how they move.

Each single market's truth is a random walk in log-odds (diffusion) with rare Gaussian jumps.
Markets of a *structured* event share one latent outcome instead:

* **nested** strikes ("wins", "wins by 7+", ...): one latent location ``x`` walks; market
  ``i`` has ``p_i = sigmoid(x - offset_i)`` with offsets increasing, so a higher strike is
  never likelier (``P(nested) <= P(outer)``). At settlement one uniform ``U`` is drawn and
  market ``i`` is YES iff ``U < p_i``: a market YES implies every lower strike YES.
* **exclusive** outcomes of one event: a softmax over the markets plus an implicit "none of
  them" outcome (logit 0); one outcome is drawn, so at most one market resolves YES.

A combo's truth is the exact joint: legs of one structured event by its rule (nested: ``max(0,
min p_YES - max p_NO)``; exclusive: 0 for two YES legs, ``p`` of the YES leg, ``1 - sum p``
for NO legs only), independent across events. Floats are fine here: the truth is a model
quantity that drives randomness; it becomes money only through :meth:`TruthModel.micros`,
which rounds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from quoter.domain.types import ComboLeg, Side

__all__ = ["MAX_LOGIT", "TruthModel"]

#: Log-odds are clamped to +-6 (p in ~[0.0025, 0.9975]) so no truth reaches 0 or 1 early.
MAX_LOGIT = 6.0


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _clamp(x: float) -> float:
    return max(-MAX_LOGIT, min(MAX_LOGIT, x))


@dataclass(slots=True)
class _Group:
    """Markets of one event resolved from one latent outcome."""

    kind: Literal["nested", "exclusive"]
    tickers: list[str]
    #: nested: ``[x]`` (the location); exclusive: one logit per market (vs "none" at 0).
    logits: list[float]
    #: nested: each market's strike offset in log-odds (increasing); exclusive: unused.
    offsets: list[float] = field(default_factory=list)

    def probabilities(self) -> list[float]:
        """Each market's YES probability, in ``tickers`` order."""
        if self.kind == "nested":
            return [_sigmoid(self.logits[0] - o) for o in self.offsets]
        weights = [math.exp(x) for x in self.logits]
        total = 1.0 + sum(weights)
        return [w / total for w in weights]


class TruthModel:
    """The latent truths of single markets; combos are derived from their legs."""

    def __init__(
        self,
        rng: random.Random,
        *,
        volatility_per_sqrt_s: float,
        jump_rate_per_s: float,
        jump_std: float,
    ) -> None:
        self._rng = rng
        self._vol = volatility_per_sqrt_s
        self._jump_rate = jump_rate_per_s
        self._jump_std = jump_std
        self._logits: dict[str, float] = {}
        self._results: dict[str, Side] = {}
        self._groups: list[_Group] = []
        self._group_of: dict[str, _Group] = {}

    def add(self, ticker: str, p_yes: float) -> None:
        """Start tracking a single market at probability ``p_yes``."""
        self._logits[ticker] = max(-MAX_LOGIT, min(MAX_LOGIT, _logit(p_yes)))

    def add_nested(self, tickers: Sequence[str], p_outer: float,
                   offsets: Sequence[float]) -> None:
        """Track markets nested on one latent variable: ``tickers[0]`` is the outer one
        (YES at ``p_outer``); market ``i`` sits ``offsets[i]`` log-odds further in."""
        if len(tickers) != len(offsets) or list(offsets) != sorted(offsets):
            raise ValueError("nested offsets must be one per market, increasing")
        g = _Group("nested", list(tickers), [_clamp(_logit(p_outer) + offsets[0])],
                   list(offsets))
        self._add_group(g)

    def add_exclusive(self, probabilities: dict[str, float]) -> None:
        """Track mutually exclusive markets (at most one YES) at these YES probabilities;
        what they leave of 1 is the "none of them" outcome."""
        none = 1.0 - sum(probabilities.values())
        if none <= 0 or any(p <= 0 for p in probabilities.values()):
            raise ValueError("exclusive probabilities must be positive and sum below 1")
        g = _Group("exclusive", list(probabilities),
                   [_clamp(math.log(p / none)) for p in probabilities.values()])
        self._add_group(g)

    def _add_group(self, g: _Group) -> None:
        self._groups.append(g)
        for t in g.tickers:
            self._group_of[t] = g

    def tickers(self) -> list[str]:
        """Tickers with a live (unsettled) truth, in insertion order."""
        return list(self._logits) + [t for g in self._groups for t in g.tickers]

    def p_yes(self, ticker: str) -> float:
        """The current YES probability of a single market (1/0 once settled)."""
        if ticker in self._results:
            return 1.0 if self._results[ticker] is Side.YES else 0.0
        g = self._group_of.get(ticker)
        if g is not None:
            return g.probabilities()[g.tickers.index(ticker)]
        return _sigmoid(self._logits[ticker])

    def combo_p_yes(self, legs: Iterable[ComboLeg]) -> float:
        """P(every leg resolves on its selected side): exact within a structured event,
        independent across events."""
        p = 1.0
        grouped: dict[int, tuple[_Group, list[ComboLeg]]] = {}
        for leg in legs:
            g = self._group_of.get(leg.market_ticker)
            if g is not None:
                grouped.setdefault(id(g), (g, []))[1].append(leg)
                continue
            q = self.p_yes(leg.market_ticker)
            p *= q if leg.side is Side.YES else 1.0 - q
        for g, group_legs in grouped.values():
            p *= self._joint(g, group_legs)
        return p

    def _joint(self, g: _Group, legs: list[ComboLeg]) -> float:
        """P(all ``legs`` of one group on their sides) under the group's latent outcome."""
        yes = {leg.market_ticker for leg in legs if leg.side is Side.YES}
        no = {leg.market_ticker for leg in legs if leg.side is Side.NO}
        p = {leg.market_ticker: self.p_yes(leg.market_ticker) for leg in legs}
        if g.kind == "nested":
            # YES_i <=> U < p_i: the legs pin U into [max p_NO, min p_YES).
            top = min((p[t] for t in yes), default=1.0)
            bottom = max((p[t] for t in no), default=0.0)
            return max(0.0, top - bottom)
        if len(yes) > 1 or yes & no:
            return 0.0
        if yes:
            return p[next(iter(yes))]
        return max(0.0, 1.0 - sum(p[t] for t in no))

    def micros(self, p: float) -> int:
        """A probability as micro-dollars, rounded to the nearest micro."""
        return round(p * 1_000_000)

    def step(self, dt_s: float) -> None:
        """Move every live truth by ``dt_s`` seconds of diffusion plus Poisson jumps."""
        rng = self._rng
        sd = self._vol * math.sqrt(dt_s)
        jump_p = 1.0 - math.exp(-self._jump_rate * dt_s)
        for ticker, x0 in self._logits.items():
            x = x0 + (rng.gauss(0.0, sd) if sd else 0.0)
            if jump_p and rng.random() < jump_p:
                x += rng.gauss(0.0, self._jump_std)
            self._logits[ticker] = max(-MAX_LOGIT, min(MAX_LOGIT, x))
        for g in self._groups:  # after the singles: worlds without groups draw as before
            for i, x0 in enumerate(g.logits):
                x = x0 + (rng.gauss(0.0, sd) if sd else 0.0)
                if jump_p and rng.random() < jump_p:
                    x += rng.gauss(0.0, self._jump_std)
                g.logits[i] = _clamp(x)

    def settle(self, ticker: str) -> Side:
        """Draw the market's result from its truth and freeze it; a market of a structured
        event settles its whole event from one draw (later calls read that result)."""
        if ticker in self._results:
            return self._results[ticker]
        g = self._group_of.get(ticker)
        if g is not None:
            self._settle_group(g)
            return self._results[ticker]
        p = _sigmoid(self._logits.pop(ticker))
        result = Side.YES if self._rng.random() < p else Side.NO
        self._results[ticker] = result
        return result

    def _settle_group(self, g: _Group) -> None:
        probs = g.probabilities()
        u = self._rng.random()
        if g.kind == "nested":
            won = [u < p for p in probs]
        else:
            edges = [sum(probs[: i + 1]) for i in range(len(probs))]
            pick = next((i for i, edge in enumerate(edges) if u < edge), None)
            won = [i == pick for i in range(len(probs))]
        self._groups.remove(g)
        for t, w in zip(g.tickers, won, strict=True):
            del self._group_of[t]
            self._results[t] = Side.YES if w else Side.NO

    def result(self, ticker: str) -> Side | None:
        """The drawn result of a settled market, if any."""
        return self._results.get(ticker)
