"""The simulated Kalshi exchange core: a synchronous state machine driven by an injected clock.

It owns accounts, markets, resting books, RFQs, quotes, timers, execution, fills, fees,
positions, balances, settlement and a ground-truth ledger. It does no IO: every outbound
WebSocket message is handed to listeners as an :class:`OutMessage` (the ASGI app in
``quoter.sim.app`` routes them to subscriptions), errors are :class:`SimError` (HTTP status
+ Kalshi's ``code``), and time comes from the clock (``now_ns`` for deadlines, ``wall_ns``
for timestamps). Callers drive timers with :meth:`SimExchange.advance`.

Behaviour follows kalshi-api.md; §0a (demo ground truth) wins where sources differ:

* ``accepted_side`` names the maker's side that was hit: the maker buys that side at that
  side's bid; the requester buys the other side at $1 - bid (§0a).
* confirm window 30 s (HVM/combos 3 s), then execution timer 15 s (HVM 1 s) (§3.3).
  A confirm after the window gets 400 ``expired`` and the quote's status *stays*
  ``accepted`` (§0a); the RFQ may then be accepted again on another quote.
* DELETE of an accepted quote -> 404 ``not_found``, the quote stays accepted (§0a).
* Execution goes through the book (§3.3): the maker's order enters first. It may trade
  with better third-party liquidity (``post_only`` instead cancels the whole execution if
  it would cross). What is left rests; the requester's order then crosses it at the quote
  price (maker ``is_taker`` false, requester true, as §0a observed). Unfilled remainders
  rest only if that party asked for ``rest_remainder``, otherwise they are cancelled.
* Cash is charged at fill time (resting orders reserve nothing; ``place_order`` only
  checks the balance covers the order). Buying the side opposite to a held position nets
  the pair and pays $1 per pair at once, as Kalshi does.
* Target-cost RFQs (formula undocumented, §5.3 [UNCERTAIN]): for each side S the offered
  count is the largest n (in 0.01 contracts) whose requester cost n x ($1 - bid_S) plus the
  taker fee stays within the target (without the fee when ``target_cost_excludes_fees``).

Layout: :mod:`quoter.sim.models` holds the value types (re-exported here), and
:class:`SimExchange` is composed of one mixin per job over the shared state in
:mod:`quoter.sim.base`: ``accounts`` (cash, positions, fills, settlement booking),
``markets`` (listing, status, settlement), ``orders`` (resting books, matching, trades),
``rfqs``, ``quotes`` (lifecycle up to confirm), ``execution`` (timers, execution) and
``series`` (fee terms per series, scheduled fee changes).
"""

from __future__ import annotations

from typing import Any

from quoter.sim.accounts import AccountsMixin
from quoter.sim.execution import ExecutionMixin
from quoter.sim.markets import MarketsMixin
from quoter.sim.models import (
    OBSCURED_CREATOR_ID,
    Account,
    ExchangeConfig,
    Fill,
    MarketStats,
    OutMessage,
    Position,
    QuoteStatus,
    RfqStatus,
    Settlement,
    SimError,
    SimMarket,
    SimQuote,
    SimRfq,
    SimSeries,
    communications_id,
)
from quoter.sim.orders import OrdersMixin
from quoter.sim.quotes import QuotesMixin
from quoter.sim.rfqs import RfqsMixin
from quoter.sim.series import SeriesMixin

__all__ = [
    "OBSCURED_CREATOR_ID",
    "Account",
    "ExchangeConfig",
    "Fill",
    "MarketStats",
    "OutMessage",
    "Position",
    "QuoteStatus",
    "RfqStatus",
    "Settlement",
    "SimError",
    "SimExchange",
    "SimMarket",
    "SimQuote",
    "SimRfq",
    "SimSeries",
    "communications_id",
]


class SimExchange(
    ExecutionMixin, QuotesMixin, RfqsMixin, OrdersMixin, SeriesMixin, MarketsMixin,
    AccountsMixin,
):
    """The exchange state machine. Not thread-safe: drive it from one thread/event loop.

    State and plumbing live in :mod:`quoter.sim.base`; each mixin is one part of the exchange.
    """

    def ledger_snapshot(self) -> dict[str, Any]:
        """Ground truth for every account (integers in micros / centi), JSON-ready."""
        accounts: dict[str, Any] = {}
        for uid, a in self._accounts.items():
            accounts[uid] = {
                "balance_micros": a.balance_micros,
                "communications_id": a.comm_id,
                "positions": {
                    t: {
                        "position_centi": p.position_centi,
                        "cost_micros": p.cost_micros,
                        "realized_pnl_micros": p.realized_pnl_micros,
                        "fees_paid_micros": p.fees_paid_micros,
                        "total_traded_micros": p.total_traded_micros,
                        "volume_centi": p.volume_centi,
                    }
                    for t, p in a.positions.items()
                },
                "fills": len(a.fills),
                "fees_paid_micros": sum(f.fee_micros for f in a.fills),
                "settlements": len(a.settlements),
            }
        return {
            "accounts": accounts,
            "fees_collected_micros": self.fees_collected_micros,
            "open_rfqs": sum(r.status == RfqStatus.OPEN for r in self._rfqs.values()),
            "quotes_by_status": {
                s.value: sum(q.status == s for q in self._quotes.values()) for s in QuoteStatus
            },
            "markets": {
                t: {"status": m.status.value, "result": m.result.value if m.result else None,
                    "open_interest_centi": self._stats[t].open_interest_centi}
                for t, m in self._markets.items()
            },
        }
