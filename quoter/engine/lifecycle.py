"""Per-RFQ and per-quote state machines: every state change goes through a checked table.

An RFQ we answer may carry several of our quotes over its life (each ``SubmitQuote`` replaces
the previous one, kalshi-api.md §3.1 "Replacement"); we keep every quote id we ever had on it,
because a replace can race an accept of the old quote and the accept must be handled on the
prices of the quote that was accepted.

Quote states::

    OPEN ──► REPLACED ─┐            (a newer quote of ours superseded it; may still be accepted)
     │  └──► CANCELLING ┤            (we sent CancelQuote; an accept may still win the race)
     │                 ▼
     ├────────────► ACCEPTED ──► CONFIRMING ──► CONFIRMED ──► EXECUTED
     │                 │             └──► EXPIRED (ConfirmFailed, e.g. 400 ``expired``)
     │                 └──► DECLINED (last look said no: we simply do not confirm, §0a)
     ├──► CANCELLED    (withdrawn, or replaced and gone)
     └──► DEAD         (its RFQ was deleted before anything was committed)

RFQ states: ``PENDING`` (parked, waiting for market metadata or a book), ``PRICING`` (a
process-isolated strategy is pricing it in the pool: ``PriceInPool`` sent, no answer yet),
``QUOTING`` (we have a submission in flight or a live quote), ``ACCEPTED`` (one quote was
accepted; last look or a commitment in progress), ``DONE`` (nothing more will happen on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from quoter.domain.events import RfqReceived
from quoter.domain.types import Side
from quoter.errors import QuoterError

__all__ = [
    "LIVE_QUOTE_STATES",
    "InvalidTransitionError",
    "QuoteRecord",
    "QuoteState",
    "RfqRecord",
    "RfqState",
    "Submission",
]


class InvalidTransitionError(QuoterError):
    """A quote or RFQ was asked to move to a state its machine does not allow from here."""


class QuoteState(StrEnum):
    """Where one of our quotes is in its life."""

    OPEN = "open"
    REPLACED = "replaced"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"
    EXPIRED = "expired"
    EXECUTED = "executed"
    DEAD = "dead"


class RfqState(StrEnum):
    """Where an RFQ is, from our side."""

    PENDING = "pending"
    PRICING = "pricing"
    QUOTING = "quoting"
    ACCEPTED = "accepted"
    DONE = "done"


_Q = QuoteState
_QUOTE_MOVES: dict[QuoteState, tuple[QuoteState, ...]] = {
    _Q.OPEN: (_Q.REPLACED, _Q.CANCELLING, _Q.CANCELLED, _Q.ACCEPTED, _Q.DEAD),
    # A replaced or cancelling quote can still be accepted if the accept raced our request.
    _Q.REPLACED: (_Q.CANCELLED, _Q.ACCEPTED, _Q.DEAD),
    _Q.CANCELLING: (_Q.CANCELLED, _Q.ACCEPTED, _Q.DEAD),
    _Q.ACCEPTED: (_Q.CONFIRMING, _Q.DECLINED, _Q.DEAD),
    _Q.CONFIRMING: (_Q.CONFIRMED, _Q.EXPIRED, _Q.EXECUTED),
    _Q.CONFIRMED: (_Q.EXECUTED,),
    _Q.CANCELLED: (),
    _Q.DECLINED: (),
    # A confirm that looked refused can still have landed: its execution is booked.
    _Q.EXPIRED: (_Q.EXECUTED,),
    _Q.EXECUTED: (),
    _Q.DEAD: (),
}

#: States in which a quote may still be accepted by the requester.
LIVE_QUOTE_STATES: tuple[QuoteState, ...] = (_Q.OPEN, _Q.REPLACED, _Q.CANCELLING)

_R = RfqState
_RFQ_MOVES: dict[RfqState, tuple[RfqState, ...]] = {
    _R.PENDING: (_R.PRICING, _R.QUOTING, _R.DONE),
    _R.PRICING: (_R.QUOTING, _R.DONE),
    _R.QUOTING: (_R.ACCEPTED, _R.DONE),
    # After a decline or a failed confirm the RFQ may still be open with a newer quote.
    _R.ACCEPTED: (_R.QUOTING, _R.DONE),
    _R.DONE: (),
}


@dataclass(frozen=True, slots=True)
class Submission:
    """The prices of one ``SubmitQuote`` we sent, until the exchange names its quote id."""

    yes_bid_micros: int
    no_bid_micros: int
    fair_yes_micros: int
    sent_ns: int


@dataclass(slots=True)
class QuoteRecord:
    """One of our quotes, with the prices it was made at (kept for its whole life)."""

    quote_id: str
    rfq_id: str
    market_ticker: str
    yes_bid_micros: int
    no_bid_micros: int
    fair_yes_micros: int
    placed_ns: int
    state: QuoteState = QuoteState.OPEN
    accepted_side: Side | None = None
    size_centi: int = 0
    deadline_ns: int = 0
    order_id: str = ""
    # Signed provisional exposure (+YES / -NO) booked at confirm, until fills replace it.
    provisional_centi: int = 0

    def move(self, new: QuoteState) -> None:
        """Change state, or raise ``InvalidTransitionError``."""
        if new not in _QUOTE_MOVES[self.state]:
            raise InvalidTransitionError(
                f"quote {self.quote_id}: cannot go from {self.state} to {new}"
            )
        self.state = new

    @property
    def is_live(self) -> bool:
        """True while the requester could still accept this quote."""
        return self.state in LIVE_QUOTE_STATES

    def bid_for(self, side: Side) -> int:
        """Our bid on ``side`` (the price we pay if that side is hit, kalshi-api.md §0a)."""
        return self.yes_bid_micros if side is Side.YES else self.no_bid_micros


@dataclass(slots=True)
class RfqRecord:
    """An RFQ we are handling, and every quote id we ever had on it."""

    rfq: RfqReceived
    received_ns: int
    state: RfqState = RfqState.PENDING
    strategy: str = ""
    quote_ids: list[str] = field(default_factory=list)
    # SubmitQuotes sent and not yet answered, oldest first (answers arrive in order).
    in_flight: list[Submission] = field(default_factory=list)
    last_submit_ns: int | None = None
    # Why we want no quote on this RFQ any more (a quote placed later is cancelled at once).
    pull_reason: str = ""

    def move(self, new: RfqState) -> None:
        """Change state, or raise ``InvalidTransitionError``."""
        if new is self.state:
            return
        if new not in _RFQ_MOVES[self.state]:
            raise InvalidTransitionError(
                f"rfq {self.rfq.rfq_id}: cannot go from {self.state} to {new}"
            )
        self.state = new

    @property
    def rfq_id(self) -> str:
        """The RFQ id."""
        return self.rfq.rfq_id

    @property
    def market_ticker(self) -> str:
        """The RFQ's market."""
        return self.rfq.market_ticker

    @property
    def current_quote_id(self) -> str | None:
        """Our newest quote on this RFQ, if any."""
        return self.quote_ids[-1] if self.quote_ids else None
