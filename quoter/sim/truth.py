"""Latent true YES probabilities of the world's markets, and how they move.

Each single market's truth is a random walk in log-odds (diffusion) with rare Gaussian jumps;
a combo's truth is the product over its legs of P(leg resolves on its selected side), i.e.
legs are independent in this world. Floats are fine here: the truth is a model quantity that
drives randomness; it becomes money only through :meth:`TruthModel.micros`, which rounds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

from quoter.domain.types import ComboLeg, Side

__all__ = ["MAX_LOGIT", "TruthModel"]

#: Log-odds are clamped to +-6 (p in ~[0.0025, 0.9975]) so no truth reaches 0 or 1 early.
MAX_LOGIT = 6.0


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


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

    def add(self, ticker: str, p_yes: float) -> None:
        """Start tracking a single market at probability ``p_yes``."""
        self._logits[ticker] = max(-MAX_LOGIT, min(MAX_LOGIT, _logit(p_yes)))

    def tickers(self) -> list[str]:
        """Tickers with a live (unsettled) truth, in insertion order."""
        return list(self._logits)

    def p_yes(self, ticker: str) -> float:
        """The current YES probability of a single market (1/0 once settled)."""
        if ticker in self._results:
            return 1.0 if self._results[ticker] is Side.YES else 0.0
        return _sigmoid(self._logits[ticker])

    def combo_p_yes(self, legs: Iterable[ComboLeg]) -> float:
        """P(every leg resolves on its selected side), legs independent."""
        p = 1.0
        for leg in legs:
            q = self.p_yes(leg.market_ticker)
            p *= q if leg.side is Side.YES else 1.0 - q
        return p

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

    def settle(self, ticker: str) -> Side:
        """Draw the market's result from its truth and freeze it."""
        p = _sigmoid(self._logits.pop(ticker))
        result = Side.YES if self._rng.random() < p else Side.NO
        self._results[ticker] = result
        return result

    def result(self, ticker: str) -> Side | None:
        """The drawn result of a settled market, if any."""
        return self._results.get(ticker)
