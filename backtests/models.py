"""The latency model and the auction models of a backtest (all seeded, integer money).

**Latency.** Every request we send takes a round trip: the exchange acts on it half-way, and
its answer (the REST result) reaches the kernel at the end. Per request type (``submit``,
``confirm``, ``cancel``, ``market``, ``book``) the round trip is drawn from the recording's own
measured REST round trips (``out`` lines of a service recording) when it has some, else from
the configured constant; frames the modelled exchange sends us arrive after ``feed_delay_ns``.
``LatencyModel.zero()`` is the idealised run.

**Auction** (what the requester does with our quote). A model is asked once per quote we
place, with the RFQ, our prices, the book's mid at that moment and what the recording says
happened to our own quote on that RFQ; it answers with ``(accepted_side, at_ns)`` or None:

* ``recorded``: when our replayed quote has the recorded quote's prices, the recorded outcome
  happens (accepted on the recorded side at the recorded time, or not at all); otherwise the
  ``fallback`` model decides;
* ``book`` (the simulator's uninformed requester): the requester wants one side (seeded coin)
  and accepts if our price for it beats the book's best offer on that side by
  ``min_improvement_micros``, ``accept_delay_ns`` after our quote;
* ``calibrated``: per side of our quote, P(that side is taken | our edge over the mid on it),
  binned by ``bin_micros``, fitted from our own recorded quotes and their outcomes
  (:func:`fit_calibrated` on :func:`side_samples`), and only for a side whose price beats the
  requester's book alternative (the book's best bid on that side: a quote that does not beat
  it is never taken, the issue's rule). The per-side rate folds in the requester wanting that
  side and the competitors' best price (a distribution around the mid we do not see: what is
  left of it is the rate's fall with our edge). Sparse bins borrow from their neighbours until
  ``min_samples`` side-quotes back the rate. Its fit (counts per bin) is reported;
  ``backtests.logistic`` fits the same per-side rate on the RFQ's features as well;
* ``synthetic``: the requesters of ``--synthetic-rfqs`` act on the intents drawn for them
  (:class:`SyntheticAuction`): a wanted side as in ``book``, or, for the informed share, the
  side of our quote that is cheap against the mid they know ahead;
* any other name: a user model from the ``quoter.auction_models`` entry-point group
  (``backtests.runner.make_auction``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from backtests.features import RfqFeatures
from quoter.domain.money import MAX_PRICE_MICROS
from quoter.domain.types import Side

__all__ = [
    "AuctionContext",
    "AuctionModel",
    "BookAuction",
    "CalibratedAuction",
    "FeaturedSample",
    "LatencyModel",
    "RecordedAuction",
    "RecordedQuote",
    "SideSample",
    "SyntheticAuction",
    "fit_calibrated",
    "request_kind",
    "side_samples",
    "side_samples_by_side",
    "sides_of",
]

NS_PER_MS = 1_000_000

REQUEST_KINDS = ("submit", "confirm", "cancel", "market", "book")


def request_kind(method: str, path: str) -> str | None:
    """Which request type a recorded REST round trip was (None: not one we model)."""
    bare = path.split("?", 1)[0]
    if "/communications/rfqs/" in bare or "/communications/quotes" in bare:
        if method == "POST":
            return "submit"
        if method == "PUT" and bare.endswith("/confirm"):
            return "confirm"
        if method == "DELETE":
            return "cancel"
        return None
    if method == "GET" and "/markets/" in bare:
        return "book" if bare.endswith("/orderbook") else "market"
    return None


@dataclass
class LatencyModel:
    """Round trips per request type (sampled from measurements or constant) and feed delay."""

    constant_rtt_ns: Mapping[str, int] = field(
        default_factory=lambda: dict.fromkeys(REQUEST_KINDS, 20 * NS_PER_MS))
    feed_delay_ns: int = 0
    measured: dict[str, list[int]] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @classmethod
    def zero(cls) -> LatencyModel:
        """No latency at all (the idealised run)."""
        return cls(dict.fromkeys(REQUEST_KINDS, 0), 0)

    def add_measurements(self, trips: Iterable[tuple[str, str, int]]) -> None:
        """Learn from ``(method, path, rtt_ns)`` round trips of a recording."""
        for method, path, rtt in trips:
            kind = request_kind(method, path)
            if kind is not None and rtt >= 0:
                self.measured.setdefault(kind, []).append(rtt)
        for values in self.measured.values():
            values.sort()

    def rtt_ns(self, kind: str) -> int:
        """One round trip of ``kind`` (a draw from the measurements when there are some)."""
        values = self.measured.get(kind)
        if values:
            return values[self._rng.randrange(len(values))]
        return int(self.constant_rtt_ns.get(kind, 0))

    def summary(self) -> dict[str, dict[str, int]]:
        """Per type: where the numbers come from, how many, and the median (ns)."""
        out: dict[str, dict[str, int]] = {}
        for kind in REQUEST_KINDS:
            values = self.measured.get(kind, [])
            out[kind] = {"measured": len(values),
                         "median_ns": values[len(values) // 2] if values
                         else int(self.constant_rtt_ns.get(kind, 0))}
        return out


@dataclass(frozen=True, slots=True)
class RecordedQuote:
    """Our quote on an RFQ as the recording saw it, and what became of it."""

    yes_bid_micros: int
    no_bid_micros: int
    created_ns: int
    accepted_side: Side | None = None
    accepted_ns: int | None = None


@dataclass(frozen=True, slots=True)
class AuctionContext:
    """What an auction model may look at for one quote of ours."""

    rfq_id: str
    market_ticker: str
    yes_bid_micros: int
    no_bid_micros: int
    now_ns: int
    mid_micros: int | None
    best_yes_bid_micros: int | None
    best_no_bid_micros: int | None
    recorded: RecordedQuote | None
    #: Our fair value of YES when we quoted (the reference where the market has no book).
    fair_yes_micros: int | None = None
    #: The RFQ's size, requester, series and time to close, when known.
    features: RfqFeatures | None = None


class AuctionModel(Protocol):
    """Decide what the requester does with our quote: ``(accepted_side, at_ns)`` or None."""

    name: str

    def decide(self, ctx: AuctionContext) -> tuple[Side, int] | None:
        """The side of our quote the requester hits and when, or None (no accept)."""
        ...


def requester_edges(ctx: AuctionContext) -> list[tuple[int, Side]]:
    """Per side our quote offers: (the requester's gain against the mid, our side hit)."""
    if ctx.mid_micros is None:
        return []
    out = []
    if ctx.no_bid_micros > 0:  # the requester buys YES at $1 - our NO bid
        out.append((ctx.mid_micros - (MAX_PRICE_MICROS - ctx.no_bid_micros), Side.NO))
    if ctx.yes_bid_micros > 0:  # the requester buys NO at $1 - our YES bid
        out.append((ctx.yes_bid_micros - ctx.mid_micros, Side.YES))
    return out


class _NoAccept:
    name = "none"

    def decide(self, ctx: AuctionContext) -> tuple[Side, int] | None:
        return None


@dataclass
class BookAuction:
    """The requester wants one side (seeded coin) and takes our quote if it beats the book."""

    accept_delay_ns: int = 300 * NS_PER_MS
    min_improvement_micros: int = 1
    seed: int = 0
    name: str = "book"

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def decide(self, ctx: AuctionContext) -> tuple[Side, int] | None:
        """Accept the wanted side if our price beats the book's best offer on it."""
        return self.take(ctx, wants_yes=self._rng.random() < 0.5)

    def take(self, ctx: AuctionContext, *, wants_yes: bool) -> tuple[Side, int] | None:
        """A requester who wants YES (else NO) takes our quote if it beats the book's offer."""
        if wants_yes:
            # The book offers YES at $1 - best NO bid; we offer it at $1 - our NO bid.
            if ctx.no_bid_micros <= 0 or ctx.best_no_bid_micros is None:
                return None
            if ctx.no_bid_micros - ctx.best_no_bid_micros < self.min_improvement_micros:
                return None
            return Side.NO, ctx.now_ns + self.accept_delay_ns
        if ctx.yes_bid_micros <= 0 or ctx.best_yes_bid_micros is None:
            return None
        if ctx.yes_bid_micros - ctx.best_yes_bid_micros < self.min_improvement_micros:
            return None
        return Side.YES, ctx.now_ns + self.accept_delay_ns


class Intended(Protocol):
    """What a synthetic requester intends (``backtests.synthetic.Intent``)."""

    @property
    def wants_yes(self) -> bool:
        """The side it wants when uninformed."""
        ...

    @property
    def informed(self) -> bool:
        """Whether it knows the mid ahead."""
        ...

    @property
    def future_mid_micros(self) -> int | None:
        """The mid it knows (None: the market had no book then)."""
        ...


@dataclass
class SyntheticAuction:
    """Synthetic requesters act on their intents (``backtests.synthetic``).

    An uninformed one wants its side and takes our quote when it beats the book there (as
    :class:`BookAuction`); an informed one knows the mid ahead and takes the side of our quote
    that is cheapest against it, if it gains at least ``min_improvement_micros`` — so it
    trades exactly when we are wrong about where the price goes. RFQs without an intent
    (recorded ones) go to ``fallback``.
    """

    intents: Mapping[str, Intended]
    fallback: AuctionModel = field(default_factory=BookAuction)
    book: BookAuction = field(default_factory=BookAuction)
    name: str = "synthetic"
    informed_accepts: int = 0

    def decide(self, ctx: AuctionContext) -> tuple[Side, int] | None:
        """The requester's move on our quote, from its intent."""
        intent = self.intents.get(ctx.rfq_id)
        if intent is None:
            return self.fallback.decide(ctx)
        future = intent.future_mid_micros
        if not intent.informed or future is None:
            return self.book.take(ctx, wants_yes=intent.wants_yes)
        gains = []
        if ctx.no_bid_micros > 0:  # buys YES from us at $1 - our NO bid, worth `future`
            gains.append((future - (MAX_PRICE_MICROS - ctx.no_bid_micros), Side.NO))
        if ctx.yes_bid_micros > 0:  # buys NO from us at $1 - our YES bid, worth $1 - future
            gains.append((ctx.yes_bid_micros - future, Side.YES))
        best = max(gains, default=None)
        if best is None or best[0] < self.book.min_improvement_micros:
            return None
        self.informed_accepts += 1
        return best[1], ctx.now_ns + self.book.accept_delay_ns


@dataclass
class RecordedAuction:
    """The recorded outcome when our quote is the recorded one; else ``fallback`` decides."""

    fallback: AuctionModel = field(default_factory=_NoAccept)
    name: str = "recorded"
    replayed: int = 0
    fell_back: int = 0

    def decide(self, ctx: AuctionContext) -> tuple[Side, int] | None:
        """Replay the recorded accept of an identical quote."""
        rec = ctx.recorded
        if rec is None or (rec.yes_bid_micros, rec.no_bid_micros) != (ctx.yes_bid_micros,
                                                                      ctx.no_bid_micros):
            self.fell_back += 1
            return self.fallback.decide(ctx)
        self.replayed += 1
        if rec.accepted_side is None or rec.accepted_ns is None:
            return None
        return rec.accepted_side, max(rec.accepted_ns, ctx.now_ns)


#: One side of one of our quotes, for calibration: (our edge on that side, whether its
#: price beat the book's best bid on that side, whether that side was taken, whether the
#: market had a book: the edge is then over the mid, else over our fair).
SideSample = tuple[int, bool, bool, bool]


def side_samples(
    mid_micros: int | None, yes_bid_micros: int, no_bid_micros: int,
    best_yes_bid_micros: int | None, best_no_bid_micros: int | None,
    accepted_side: Side | None, fair_yes_micros: int | None = None,
) -> list[SideSample]:
    """The sides our quote offers (a bid of 0 offers nothing), as the calibration sees them.

    Our YES bid is taken by a requester buying NO at $1 - bid; the book offers that at $1 -
    its best YES bid, so our bid beats the book if it is higher (likewise for NO). Our edge on
    a side is what the bid keeps below the side's value at the mid (YES: mid, NO: $1 - mid).
    A market without a mid (a combo) has no book alternative we can see: the edge is over our
    fair, and it counts as beating the book (its requester's private value is unknown).
    """
    return [sample for sample, _ in side_samples_by_side(
        mid_micros, yes_bid_micros, no_bid_micros, best_yes_bid_micros, best_no_bid_micros,
        accepted_side, fair_yes_micros)]


#: A side sample with the RFQ's features and the side it is on (a logistic calibration's row).
FeaturedSample = tuple[SideSample, RfqFeatures | None, Side]


def side_samples_by_side(
    mid_micros: int | None, yes_bid_micros: int, no_bid_micros: int,
    best_yes_bid_micros: int | None, best_no_bid_micros: int | None,
    accepted_side: Side | None, fair_yes_micros: int | None = None,
) -> list[tuple[SideSample, Side]]:
    """:func:`side_samples` with the side each sample is on."""
    return [((edge, beats, accepted_side is side, booked), side)
            for side, edge, beats, booked in
            _sides(mid_micros, yes_bid_micros, no_bid_micros, best_yes_bid_micros,
                   best_no_bid_micros, fair_yes_micros)]


def sides_of(ctx: AuctionContext) -> list[tuple[Side, int, bool, bool]]:
    """The sides our quote offers in ``ctx``: (side, our edge, beats the book, booked)."""
    return _sides(ctx.mid_micros, ctx.yes_bid_micros, ctx.no_bid_micros,
                  ctx.best_yes_bid_micros, ctx.best_no_bid_micros, ctx.fair_yes_micros)


def _sides(mid: int | None, yes_bid: int, no_bid: int, best_yes: int | None,
           best_no: int | None, fair: int | None) -> list[tuple[Side, int, bool, bool]]:
    booked = mid is not None
    ref = mid if mid is not None else fair
    if ref is None:
        return []
    out = []
    for side, bid, best, value in ((Side.YES, yes_bid, best_yes, ref),
                                   (Side.NO, no_bid, best_no, MAX_PRICE_MICROS - ref)):
        if bid > 0:
            beats = (best is not None and bid > best) if booked else True
            out.append((side, value - bid, beats, booked))
    return out


@dataclass
class CalibratedAuction:
    """Per side: P(taken | our edge over the mid, beats the book), binned and fitted."""

    bin_micros: int
    #: bin index (our edge on a side // bin_micros) -> (side-quotes beating the book, taken)
    bins: Mapping[int, tuple[int, int]]
    accept_delay_ns: int = 300 * NS_PER_MS
    seed: int = 0
    name: str = "calibrated"
    #: A rate is read from the nearest bins holding at least this many side-quotes together.
    min_samples: int = 20
    #: The same for markets without a book (combos), by our edge over our fair.
    unbooked_bins: Mapping[int, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def probability(self, our_edge_micros: int, *, booked: bool = True) -> float:
        """The fitted rate at ``our_edge_micros``: the nearest bins, widened to ``min_samples``."""
        bins = self.bins if booked else self.unbooked_bins
        if not bins:
            return 0.0
        index = our_edge_micros // self.bin_micros
        quotes = accepts = 0
        for b in sorted(bins, key=lambda b: (abs(b - index), b)):
            q, a = bins[b]
            quotes, accepts = quotes + q, accepts + a
            if quotes >= self.min_samples:
                break
        return accepts / quotes if quotes else 0.0

    def decide(self, ctx: AuctionContext) -> tuple[Side, int] | None:
        """One draw: each side that beats the book is taken with its fitted rate."""
        draw = self._rng.random()
        at = 0.0
        for side, edge, beats, booked in sides_of(ctx):
            if not beats:
                continue  # the requester has a better price in the book
            at += self.probability(edge, booked=booked)
            if draw < at:
                return side, ctx.now_ns + self.accept_delay_ns
        return None

    def fit_report(self) -> dict[str, object]:
        """The fit: per bin (lower edge in micros) side-quotes, accepts and the rate."""
        def rows(bins: Mapping[int, tuple[int, int]]) -> list[dict[str, object]]:
            return [{"edge_from_micros": b * self.bin_micros, "quotes": q, "accepts": a,
                     "rate": round(a / q, 6) if q else 0.0} for b, (q, a) in sorted(bins.items())]
        return {"bin_micros": self.bin_micros, "bins": rows(self.bins),
                "unbooked_bins": rows(self.unbooked_bins)}


def fit_calibrated(
    samples: Sequence[SideSample], *, bin_micros: int = 10_000,
    accept_delay_ns: int = 300 * NS_PER_MS, seed: int = 0,
) -> CalibratedAuction:
    """Fit the binned model from :func:`side_samples` of our recorded quotes.

    Only sides that beat the book are counted: the others are never taken (the rule the
    model applies). The default 1-cent bins: quotes sit on a 1-cent grid and mids on half
    cents, so finer bins alternate between full and empty.
    """
    bins: dict[int, tuple[int, int]] = {}
    unbooked: dict[int, tuple[int, int]] = {}
    for edge, beats, accepted, booked in samples:
        if not beats:
            continue
        into = bins if booked else unbooked
        b = edge // bin_micros
        q, a = into.get(b, (0, 0))
        into[b] = (q + 1, a + int(accepted))
    return CalibratedAuction(bin_micros, bins, accept_delay_ns, seed, unbooked_bins=unbooked)
