"""What an auction model may know about an RFQ besides our prices: its size, its requester,
its market's series and the time left to the market's close.

:class:`FeatureBook` follows the events the kernel sees (``rfq_created`` frames, market
metadata) and answers per RFQ id; the loop owns one, the metrics read it when our quote is
placed (the calibration's samples) and the modelled venue when the requester decides (the
model's inputs), so both see the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

from quoter.domain import events as ev

__all__ = ["FeatureBook", "RfqFeatures"]

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RfqFeatures:
    """One RFQ as the requester's side of the auction: size, who, which series, how late."""

    contracts_centi: int | None
    requester: str
    series: str
    #: Seconds from now to the market's close (None: its close time is not known).
    close_in_s: int | None


class FeatureBook:
    """RFQs and market metadata seen so far (one small entry each)."""

    def __init__(self) -> None:
        self._rfqs: dict[str, tuple[int | None, str, str]] = {}
        self._markets: dict[str, tuple[str, int | None]] = {}

    def observe(self, event: ev.Event) -> None:
        """Remember what an RFQ or a market's metadata says (other events are ignored)."""
        if isinstance(event, ev.RfqReceived):
            self._rfqs[event.rfq_id] = (event.contracts_centi, event.creator_id,
                                        event.market_ticker)
        elif isinstance(event, ev.MarketLoaded):
            m = event.market
            self._markets[m.ticker] = (m.series_ticker, m.close_ts_ms)

    def of(self, rfq_id: str, wall_ns: int) -> RfqFeatures | None:
        """The features of ``rfq_id`` at wall time ``wall_ns`` (None: an RFQ never seen)."""
        rfq = self._rfqs.get(rfq_id)
        if rfq is None:
            return None
        contracts, requester, ticker = rfq
        series, close_ms = self._markets.get(ticker, (ticker.split("-", 1)[0], None))
        close_in = None if close_ms is None else max(0, close_ms // 1000 - wall_ns // _NS_PER_S)
        return RfqFeatures(contracts, requester, series, close_in)
