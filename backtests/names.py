"""The names the backtest command line offers, importable without loading the backtester.

``quoter`` builds its ``backtest`` / ``sweep`` parsers from these on every start (through its
``quoter.commands`` entry points), so this module imports nothing heavy.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

__all__ = ["AUCTIONS", "AUCTION_ENTRY_POINTS", "CALIBRATIONS", "FALLBACKS", "OBJECTIVE_NAMES",
           "auction_names", "user_auction_models"]

#: The built-in auction models; others come from :data:`AUCTION_ENTRY_POINTS`.
AUCTIONS = ("recorded", "book", "calibrated", "synthetic")
FALLBACKS = ("none", "book")
#: How ``calibrated`` fits P(taken): by our edge in bins, or a logistic regression on the
#: edge and the RFQ's features (``backtests.logistic``).
CALIBRATIONS = ("binned", "logistic")
#: The entry-point group of user auction models: ``name = "pkg.module:factory"``, where
#: ``factory(seed=int)`` returns an object with a ``name`` and ``decide(ctx)``
#: (:class:`backtests.models.AuctionModel`).
AUCTION_ENTRY_POINTS = "quoter.auction_models"
#: What a sweep can rank by (``backtests.sweep.OBJECTIVES`` reads each).
OBJECTIVE_NAMES = ("pnl_marked", "pnl_realized", "markout_60s_net", "pnl_per_worst_case")


def user_auction_models() -> dict[str, EntryPoint]:
    """The installed user models by name (a name of a built-in is never taken)."""
    return {ep.name: ep for ep in entry_points(group=AUCTION_ENTRY_POINTS)
            if ep.name not in AUCTIONS}


def auction_names() -> tuple[str, ...]:
    """Every auction model ``--auction`` takes: the built-ins, then installed user models."""
    return AUCTIONS + tuple(sorted(user_auction_models()))
