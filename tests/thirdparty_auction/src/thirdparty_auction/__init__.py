"""A tiny out-of-tree auction model, loaded through the ``quoter.auction_models`` entry point.

Test-only (never installed): ``tests/conftest.py`` puts this directory on ``sys.path``, where
``importlib.metadata`` finds its ``.dist-info`` as it finds an installed distribution's.
"""

from __future__ import annotations

from backtests.models import AuctionContext
from quoter.domain.types import Side

DELAY_NS = 50_000_000


class TakeEveryYes:
    """A requester who sells YES to every YES bid we show, 50 ms after our quote."""

    name = "take_every_yes"

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def decide(self, ctx: AuctionContext) -> tuple[Side, int] | None:
        if ctx.yes_bid_micros <= 0:
            return None
        return Side.YES, ctx.now_ns + DELAY_NS


def broken(seed: int) -> TakeEveryYes:
    raise RuntimeError("no model today")
