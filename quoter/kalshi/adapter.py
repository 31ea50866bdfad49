"""The Kalshi ports: :class:`KalshiExecution` and :class:`KalshiMarketData` over ``KalshiRest``.

The runtime executes engine commands through these (``quoter.ports``). Errors keep the
taxonomy of ``quoter.errors``: transient failures were already retried by the REST client and
surface as ``TransientError``; an ``ExchangeRejectedError`` (4xx) surfaces unchanged so the
runtime turns it into ``QuoteRejected`` / ``ConfirmFailed`` / ``QuoteCancelFailed``. Local
refusals are mapped into the taxonomy too, because the runtime's workers catch only
``QuoterError``: a price the client will not send (``MoneyError``) is a pricing bug ->
``StrategyError``; an id that cannot be a path segment -> ``ExchangeRejectedError`` with
status 0 and code ``invalid_request`` (nothing was sent).
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from quoter.domain.events import BookSnapshotReceived
from quoter.domain.fees import FeeSchedule
from quoter.domain.money import MoneyError
from quoter.domain.types import MarketInfo
from quoter.errors import DecodeError, ExchangeRejectedError, StrategyError, TransientError
from quoter.kalshi.rest import KalshiRest
from quoter.kalshi.rest_models import Market, Orderbook

__all__ = ["KalshiExecution", "KalshiMarketData", "book_snapshot", "market_info"]

log = structlog.get_logger(__name__)

_QUOTE_PATH = "/communications/rfqs/{rfq_id}/quotes/{quote_id}"


def _bad_id(method: str, path: str, exc: ValueError) -> ExchangeRejectedError:
    return ExchangeRejectedError(method, path, 0, "invalid_request", str(exc))


class KalshiExecution:
    """Send quotes, confirms and cancels to Kalshi (or the simulator) over REST."""

    def __init__(self, rest: KalshiRest, *, confirm_attempt_timeout_s: float | None = 1.0) -> None:
        """``confirm_attempt_timeout_s`` bounds each confirm attempt (HVM windows are 3 s)."""
        self._rest = rest
        self._confirm_timeout_s = confirm_attempt_timeout_s

    async def submit_quote(
        self, rfq_id: str, yes_bid_micros: int, no_bid_micros: int, *,
        rest_remainder: bool, post_only: bool, subaccount: int | None,
    ) -> str:
        """Create (or replace) our quote on an RFQ; returns the quote id."""
        try:
            return await self._rest.create_quote(
                rfq_id, yes_bid_micros, no_bid_micros,
                rest_remainder=rest_remainder, post_only=post_only, subaccount=subaccount,
            )
        except MoneyError as exc:
            # Checked before sending: the engine produced a price Kalshi would refuse.
            raise StrategyError(f"quote on {rfq_id} not sent: {exc}") from exc

    async def confirm_quote(
        self, rfq_id: str, quote_id: str, *, deadline_ns: int | None = None
    ) -> None:
        """Confirm an accepted quote (last look: yes), retrying until ``deadline_ns``.

        A retried confirm can be refused (4xx) although an earlier attempt, whose response was
        lost, succeeded: a refusal is therefore checked by reading the quote back, and counts
        as confirmed if the exchange says it is confirmed or executed.
        """
        try:
            await self._rest.confirm_quote(rfq_id, quote_id, timeout_s=self._confirm_timeout_s,
                                           deadline_ns=deadline_ns)
        except ValueError as exc:
            raise _bad_id("PUT", _QUOTE_PATH + "/confirm", exc) from exc
        except ExchangeRejectedError:
            if not await self._confirmed_anyway(rfq_id, quote_id):
                raise

    async def _confirmed_anyway(self, rfq_id: str, quote_id: str) -> bool:
        try:
            quote = await self._rest.get_quote(rfq_id, quote_id)
        except (ExchangeRejectedError, DecodeError, TransientError):
            return False  # cannot tell: the refusal stands (startup resolution reads it again)
        if quote.status in ("confirmed", "executed"):
            log.warning("confirm_refused_but_confirmed", quote_id=quote_id, status=quote.status)
            return True
        return False

    async def cancel_quote(self, rfq_id: str, quote_id: str) -> None:
        """Withdraw a quote; a 404 (gone, or accepted: kalshi-api.md §0a) raises."""
        try:
            await self._rest.delete_quote(rfq_id, quote_id)
        except ValueError as exc:
            raise _bad_id("DELETE", _QUOTE_PATH, exc) from exc


def market_info(
    market: Market, *, series_ticker: str | None = None, fees: FeeSchedule | None = None
) -> MarketInfo:
    """Convert a REST market to the engine's ``MarketInfo`` (raises ``DecodeError``)."""
    return market.to_market_info(series_ticker=series_ticker, fees=fees)


def book_snapshot(ticker: str, book: Orderbook, ts_recv_ns: int) -> BookSnapshotReceived:
    """Turn a REST order book into a snapshot event.

    REST levels are bids on both sides with NO levels in NO prices (kalshi-api.md §4.1), so
    ``yes_priced`` is False (the WebSocket subscription uses ``use_yes_price: true`` instead).
    """
    return BookSnapshotReceived(
        market_ticker=ticker,
        yes_levels=book.yes_levels,
        no_levels=book.no_levels,
        ts_recv_ns=ts_recv_ns,
        yes_priced=False,
    )


class KalshiMarketData:
    """Load market metadata and full order books from Kalshi over REST."""

    def __init__(
        self, rest: KalshiRest, *, fees: FeeSchedule | None = None, depth: int = 0
    ) -> None:
        """``fees`` is used for a series Kalshi does not know (404); ``depth`` 0 = all."""
        self._rest = rest
        self._fees = fees
        self._depth = depth
        # Fee terms by series ticker: read once per series (``GET /series/{ticker}``).
        self._series_fees: dict[str, FeeSchedule] = {}
        # Event ticker -> its ``mutually_exclusive`` flag (an event's structure does not change).
        self._exclusive: dict[str, bool] = {}

    async def fetch_market(self, ticker: str) -> MarketInfo:
        """Load a market's metadata, with its series' fee terms (they live on the series) and
        its event's ``mutually_exclusive`` flag."""
        try:
            market = await self._rest.get_market(ticker)
        except ValueError as exc:
            raise _bad_id("GET", "/markets/{ticker}", exc) from exc
        info = market_info(market)  # a market we cannot use fails before any series read
        if market.fee_type is None:
            info = replace(info, fees=await self.series_fees(info.series_ticker))
        if info.is_combo or not info.event_ticker:
            return info
        exclusive = await self._event_exclusive(info.event_ticker)
        return replace(info, mutually_exclusive=exclusive) if exclusive else info

    async def series_fees(self, series: str) -> FeeSchedule:
        """A series' fee schedule, cached. A transient failure propagates (the market load
        fails and is retried with the next RFQ); an unknown series (404) gets the default
        schedule, logged once."""
        fees = self._series_fees.get(series)
        if fees is not None:
            return fees
        try:
            fees = (await self._rest.get_series(series)).fees()
        except ValueError as exc:
            raise _bad_id("GET", "/series/{ticker}", exc) from exc
        except ExchangeRejectedError as exc:
            if exc.status_code != 404:
                raise
            fees = self._fees or FeeSchedule()
            log.warning("series_fees_unknown", series_ticker=series, fee_type=fees.fee_type.value)
        self._series_fees[series] = fees
        return fees

    async def _event_exclusive(self, event_ticker: str) -> bool:
        """The event's flag, cached; unknown (not readable) counts as "not proven" (False)."""
        known = self._exclusive.get(event_ticker)
        if known is not None:
            return known
        try:
            event = await self._rest.get_event(event_ticker)
        except (ExchangeRejectedError, DecodeError, TransientError, ValueError) as exc:
            # Without the flag, combos over this event are priced within wider bounds only.
            log.warning("event_unreadable", event_ticker=event_ticker, error=str(exc))
            return False
        self._exclusive[event_ticker] = event.mutually_exclusive
        return event.mutually_exclusive

    async def fetch_book(self, ticker: str, ts_recv_ns: int) -> BookSnapshotReceived:
        """Load a market's full order book."""
        try:
            book = await self._rest.get_orderbook(ticker, self._depth)
        except ValueError as exc:
            raise _bad_id("GET", "/markets/{ticker}/orderbook", exc) from exc
        return book_snapshot(ticker, book, ts_recv_ns)
