"""The Kalshi REST client: signed, rate limited, retried only where safe (kalshi-api.md §3-4).

Error mapping (``quoter.errors``): 429 -> ``RateLimitedError``; 5xx -> ``ServerError``;
401/403 -> ``AuthError``; other 4xx -> ``ExchangeRejectedError`` with Kalshi's
``{"code", "message", "details"?}`` (non-JSON bodies tolerated); no HTTP answer ->
``TransportError``; a 2xx body that does not decode (bad gzip, not JSON, nested beyond
``quoter.kalshi.bounds``, wrong shape) -> ``DecodeError``. Nothing else escapes: every
``httpx`` failure is mapped, so a worker that catches ``QuoterError`` sees them all.

Retries (jittered exponential backoff with injected ``sleep`` and ``rng``) depend on whether
repeating the request is safe, see :class:`Retry`. Logs carry method, path and status — never
headers, so never the signature or key id.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import quote as _urlquote

import httpx
import msgspec
import structlog

from quoter.clock import Clock, LiveClock
from quoter.domain.money import (
    MAX_PRICE_MICROS,
    MoneyError,
    check_bid,
    check_qty,
    format_dollars,
    format_fp,
)
from quoter.domain.types import Side
from quoter.errors import (
    AuthError,
    DecodeError,
    ExchangeRejectedError,
    PagingLimitError,
    RateLimitedError,
    ServerError,
    TransientError,
    TransportError,
)
from quoter.kalshi.auth import KalshiAuth, Signer
from quoter.kalshi.bounds import MAX_BODY_BYTES, check_json_bounds
from quoter.kalshi.ratelimit import Priority, RateLimiter, kind_for_method
from quoter.kalshi.rest_models import (
    AccountLimits,
    Balance,
    CommunicationsId,
    CreatedId,
    EndpointCosts,
    Event,
    EventResponse,
    ExchangeStatus,
    Fill,
    FillsPage,
    Market,
    MarketResponse,
    MarketsPage,
    Orderbook,
    PositionsPage,
    Quote,
    QuoteResponse,
    QuotesPage,
    Rfq,
    RfqResponse,
    RfqsPage,
    Series,
    SeriesResponse,
    Settlement,
    SettlementsPage,
    decode_orderbook,
    decode_response,
)

__all__ = ["DEFAULT_MAX_PAGES", "KalshiRest", "RestExchange", "Retry", "RetryPolicy"]

log = structlog.get_logger("quoter.kalshi.rest")

T = TypeVar("T")
P = TypeVar("P")

DEFAULT_MAX_PAGES: Final = 50
_ERROR_TEXT_LIMIT: Final = 200
Filter = str | int | bool | None


class Retry(Enum):
    """When a request may be repeated after a failure."""

    #: Idempotent (GET, DELETE, PUT confirm): retry on 429, 5xx and transport failures.
    SAFE = "safe"
    #: Not idempotent (POST create quote / RFQ, PUT accept): retry only when the exchange
    #: certainly did not process the request — a 429 (§4.2: rejected before processing) or a
    #: failure to connect. A 5xx or a timeout may come after the quote was created; posting
    #: again would replace it with a second quote the engine does not track, so surface it.
    UNPROCESSED_ONLY = "unprocessed_only"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff: attempt ``n`` (from 0) waits ``uniform(0, min(max, base * 2**n))`` seconds."""

    max_attempts: int = 4
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter delay before retry number ``attempt + 1``."""
        return rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


@dataclass(frozen=True, slots=True)
class RestExchange:
    """One request/response pair for the recorder: no headers, so no key id or signature.

    ``status`` is None when no HTTP answer arrived; times are on the injected clock.
    """

    method: str
    path: str
    query: str
    request_body: bytes
    status: int | None
    response_body: bytes
    sent_ns: int
    recv_ns: int


def _segment(value: str) -> str:
    """Percent-encode one path segment; refuse ids that could change the path."""
    if not value or value in {".", ".."}:
        raise ValueError(f"invalid path id {value!r}")
    return _urlquote(value, safe="")


def _params(filters: Mapping[str, Filter]) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for key, value in filters.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def _error_fields(response: httpx.Response) -> tuple[str, str, str | None]:
    """Extract ``(code, message, details)`` from a Kalshi error body, tolerating anything."""
    fallback = f"http_{response.status_code}"
    try:
        check_json_bounds(response.content, max_bytes=MAX_BODY_BYTES, what="error body")
        body: Any = msgspec.json.decode(response.content)
    except (DecodeError, msgspec.DecodeError, RecursionError):
        text = response.content[:_ERROR_TEXT_LIMIT].decode("utf-8", "replace").strip()
        return fallback, text or response.reason_phrase, None
    if isinstance(body, dict):
        # Seen shapes: {"code","message","details"}, {"error": {"code","message",...}},
        # and the 429 body {"error": "too many requests"} (§4.2).
        inner = body.get("error")
        if isinstance(inner, dict):
            body = inner
        elif isinstance(inner, str) and "message" not in body:
            return str(body.get("code") or fallback), inner, None
        code, message, details = body.get("code"), body.get("message"), body.get("details")
        return (
            str(code) if code else fallback,
            str(message) if message else response.reason_phrase,
            str(details) if details is not None else None,
        )
    return fallback, str(body)[:_ERROR_TEXT_LIMIT], None


class KalshiRest:
    """Async Kalshi REST client (use as ``async with KalshiRest(...) as rest``)."""

    def __init__(
        self,
        base_url: str,
        signer: Signer,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        timeout_s: float = 10.0,
        tap: Callable[[RestExchange], None] | None = None,
    ) -> None:
        self._clock: Clock = clock or LiveClock()
        clk = self._clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # jitter only, not crypto
        self._retry = retry or RetryPolicy()
        self._tap = tap
        self.limiter = limiter or RateLimiter(now_ns=clk.now_ns, sleep=sleep)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            auth=KalshiAuth(signer, lambda: clk.wall_ns() // 1_000_000),
            timeout=timeout_s,
            headers={"Accept": "application/json"},
        )

    async def __aenter__(self) -> KalshiRest:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    # --- core ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        template: str,
        ids: Mapping[str, str] | None = None,
        *,
        params: Mapping[str, Filter] | None = None,
        json: Any = None,
        retry: Retry = Retry.SAFE,
        priority: Priority = Priority.NORMAL,
        timeout_s: float | None = None,
        deadline_ns: int | None = None,
    ) -> httpx.Response:
        """Send with retries; with ``deadline_ns`` (on the injected clock) retries go on until
        the next attempt could not start before it, instead of ``max_attempts``."""
        path = template.format(**{k: _segment(v) for k, v in (ids or {}).items()})
        kind = kind_for_method(method)
        cost = self.limiter.cost_for(method, template)
        query = _params(params or {})
        attempt = 0
        last_error: TransientError | None = None
        while True:
            if deadline_ns is None:
                await self.limiter.acquire(kind, cost, priority)
            elif not self.limiter.try_acquire(kind, cost, priority):
                # Never wait for tokens past the deadline: the last failure stands.
                wait_ns = self.limiter.wait_ns(kind, cost, priority)
                if self._clock.now_ns() + wait_ns >= deadline_ns:
                    raise last_error or TransportError(
                        f"{method} {path}: no tokens before the deadline")
                await self.limiter.acquire(kind, cost, priority)
            timeout: float | None = timeout_s
            if deadline_ns is not None:
                left_s = (deadline_ns - self._clock.now_ns()) / 1e9
                if left_s <= 0:
                    raise last_error or TransportError(
                        f"{method} {path}: deadline passed before sending")
                timeout = min(timeout, left_s) if timeout is not None else left_s
            request = self._client.build_request(
                method,
                path,
                params=query or None,
                json=json,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            started_ns = self._clock.now_ns()
            error: TransientError
            response: httpx.Response | None = None
            try:
                response = await self._client.send(request)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached the exchange: safe to repeat any request.
                error, unprocessed = TransportError(f"{method} {path}: {type(exc).__name__}"), True
            except httpx.TransportError as exc:
                error, unprocessed = TransportError(f"{method} {path}: {type(exc).__name__}"), False
            except httpx.DecodingError as exc:
                # The body arrived but its content-encoding is corrupt (bad gzip): the
                # request was processed, its answer is unreadable. Never retried: for a POST
                # that would create a second quote; the caller treats it as unknown outcome.
                log.warning("rest_response_undecodable", method=method, path=path,
                            error=type(exc).__name__)
                raise DecodeError(f"{method} {path}: response body undecodable: {exc}",
                                  reason="bad_encoding") from None
            except httpx.HTTPError as exc:  # anything else httpx raises: a transport failure
                error, unprocessed = TransportError(f"{method} {path}: {type(exc).__name__}"), False
            finally:
                if self._tap is not None:
                    self._record(request, response, started_ns)
            if response is not None:
                elapsed_ms = (self._clock.now_ns() - started_ns) // 1_000_000
                status = response.status_code
                if status < 400:
                    log.debug(
                        "rest_request_completed",
                        method=method,
                        path=path,
                        status=status,
                        elapsed_ms=elapsed_ms,
                    )
                    return response
                code, message, details = _error_fields(response)
                log.warning(
                    "rest_request_failed",
                    method=method,
                    path=path,
                    status=status,
                    code=code,
                    error_message=message,
                    attempt=attempt,
                    elapsed_ms=elapsed_ms,
                )
                if status == 429:
                    self.limiter.drain(kind)
                    error, unprocessed = RateLimitedError(method, path, message), True
                elif status >= 500:
                    error, unprocessed = ServerError(method, path, status, message), False
                elif status in (401, 403):
                    raise AuthError(f"{method} {path}: {status} {code}: {message}")
                else:
                    raise ExchangeRejectedError(method, path, status, code, message, details)
            if isinstance(error, TransportError):
                log.warning(
                    "rest_request_failed",
                    method=method,
                    path=path,
                    status=None,
                    code="transport",
                    error_message=str(error),
                    attempt=attempt,
                )
            attempt += 1
            may_retry = retry is Retry.SAFE or unprocessed
            delay_s = self._retry.delay_s(attempt - 1, self._rng)
            if deadline_ns is None:
                exhausted = attempt >= self._retry.max_attempts
            else:
                exhausted = self._clock.now_ns() + int(delay_s * 1e9) >= deadline_ns
            if not may_retry or exhausted:
                raise error
            last_error = error
            log.info(
                "rest_request_retrying",
                method=method,
                path=path,
                attempt=attempt,
                delay_ms=int(delay_s * 1000),
            )
            await self._sleep(delay_s)

    def _record(
        self, request: httpx.Request, response: httpx.Response | None, sent_ns: int
    ) -> None:
        assert self._tap is not None
        self._tap(
            RestExchange(
                method=request.method,
                path=request.url.path,
                query=request.url.query.decode("ascii"),
                request_body=request.content,
                status=None if response is None else response.status_code,
                response_body=b"" if response is None else response.content,
                sent_ns=sent_ns,
                recv_ns=self._clock.now_ns(),
            )
        )

    async def _get(
        self,
        template: str,
        model: type[T],
        ids: Mapping[str, str] | None = None,
        params: Mapping[str, Filter] | None = None,
    ) -> T:
        response = await self._request("GET", template, ids, params=params)
        return decode_response(response.content, model)

    async def _pages(
        self,
        template: str,
        model: type[P],
        filters: Mapping[str, Filter],
        cursor_of: Callable[[P], str | None],
    ) -> AsyncIterator[P]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = dict(filters)
            if cursor:
                params["cursor"] = cursor
            page = await self._get(template, model, params=params)
            yield page
            cursor = cursor_of(page)
            if not cursor:
                return
            if cursor in seen:
                raise DecodeError(f"GET {template}: server repeated cursor {cursor!r}")
            seen.add(cursor)

    @staticmethod
    async def _collect(pages: AsyncIterator[P], max_pages: int, what: str) -> list[P]:
        out: list[P] = []
        try:
            async for page in pages:
                out.append(page)
                if len(out) >= max_pages and getattr(page, "cursor", None):
                    # Never return a silently partial listing: reconciliation relies on it.
                    raise PagingLimitError(f"{what}: more than {max_pages} pages")
        finally:
            aclose = getattr(pages, "aclose", None)
            if aclose is not None:
                await aclose()
        return out

    # --- communications: maker -----------------------------------------------------------

    async def get_communications_id(self) -> str:
        """Return our pseudonymous communications id (``GET /communications/id``)."""
        return (await self._get("/communications/id", CommunicationsId)).communications_id

    async def create_quote(
        self,
        rfq_id: str,
        yes_bid_micros: int,
        no_bid_micros: int,
        *,
        rest_remainder: bool = False,
        post_only: bool = False,
        subaccount: int | None = None,
    ) -> str:
        """Post (or replace) our two-sided quote on an RFQ; returns the quote id (§3.1).

        Prices go out as 4-decimal dollar strings in ``yes_bid``/``no_bid``; 0 declines a
        side. Raises ``MoneyError`` before sending if both are 0, the sum exceeds $1, or a
        price is not a multiple of $0.0001.
        """
        check_bid(yes_bid_micros)
        check_bid(no_bid_micros)
        if yes_bid_micros == 0 and no_bid_micros == 0:
            raise MoneyError("a quote needs at least one non-zero side")
        if yes_bid_micros + no_bid_micros > MAX_PRICE_MICROS:
            raise MoneyError(
                f"yes_bid {yes_bid_micros} + no_bid {no_bid_micros} micro-dollars exceeds $1"
            )
        body: dict[str, Any] = {
            "rfq_id": rfq_id,
            "yes_bid": format_dollars(yes_bid_micros, 4),
            "no_bid": format_dollars(no_bid_micros, 4),
            "rest_remainder": rest_remainder,
            "post_only": post_only,
        }
        if subaccount is not None:
            body["subaccount"] = subaccount
        response = await self._request(
            "POST", "/communications/quotes", json=body, retry=Retry.UNPROCESSED_ONLY
        )
        return decode_response(response.content, CreatedId).id

    async def confirm_quote(
        self, rfq_id: str, quote_id: str, *, timeout_s: float | None = None,
        deadline_ns: int | None = None,
    ) -> None:
        """Confirm an accepted quote (last look "yes"); draws on the write reserve.

        Retried on 429/5xx/timeouts: confirming twice cannot trade twice (a confirmed quote
        stays confirmed; a repeat answers 4xx at worst). ``timeout_s`` bounds each attempt.
        With ``deadline_ns`` (the confirm window's end less the safety margin, on the
        injected clock) attempts go on until that deadline rather than ``max_attempts``:
        four quick attempts inside a 30 s window lost accepted trades to a 429 burst.
        """
        await self._request(
            "PUT",
            "/communications/rfqs/{rfq_id}/quotes/{quote_id}/confirm",
            {"rfq_id": rfq_id, "quote_id": quote_id},
            json={},
            priority=Priority.CONFIRM,
            timeout_s=timeout_s,
            deadline_ns=deadline_ns,
        )

    async def delete_quote(self, rfq_id: str, quote_id: str) -> None:
        """Withdraw a quote. A 404 means gone *or* already accepted (§0a): it raises."""
        await self._request(
            "DELETE",
            "/communications/rfqs/{rfq_id}/quotes/{quote_id}",
            {"rfq_id": rfq_id, "quote_id": quote_id},
        )

    async def get_quote(self, rfq_id: str, quote_id: str) -> Quote:
        """Read one quote by its RFQ-scoped path."""
        ids = {"rfq_id": rfq_id, "quote_id": quote_id}
        template = "/communications/rfqs/{rfq_id}/quotes/{quote_id}"
        return (await self._get(template, QuoteResponse, ids)).quote

    def iter_quote_pages(self, **filters: Filter) -> AsyncIterator[QuotesPage]:
        """Iterate pages of ``GET /communications/quotes`` (filters: status, user_filter, ...)."""
        return self._pages("/communications/quotes", QuotesPage, filters, lambda p: p.cursor)

    async def iter_quotes(self, **filters: Filter) -> AsyncIterator[Quote]:
        """Iterate quotes across all pages."""
        async for page in self.iter_quote_pages(**filters):
            for item in page.quotes:
                yield item

    async def list_quotes(
        self, *, max_pages: int = DEFAULT_MAX_PAGES, **filters: Filter
    ) -> list[Quote]:
        """Collect all quotes; raises ``PagingLimitError`` beyond ``max_pages`` pages."""
        pages = await self._collect(self.iter_quote_pages(**filters), max_pages, "quotes")
        return [q for page in pages for q in page.quotes]

    def iter_rfq_pages(self, **filters: Filter) -> AsyncIterator[RfqsPage]:
        """Iterate pages of ``GET /communications/rfqs`` (filters: status, market_ticker, ...)."""
        return self._pages("/communications/rfqs", RfqsPage, filters, lambda p: p.cursor)

    async def iter_rfqs(self, **filters: Filter) -> AsyncIterator[Rfq]:
        """Iterate RFQs across all pages."""
        async for page in self.iter_rfq_pages(**filters):
            for item in page.rfqs:
                yield item

    async def list_rfqs(
        self, *, max_pages: int = DEFAULT_MAX_PAGES, **filters: Filter
    ) -> list[Rfq]:
        """Collect all RFQs; raises ``PagingLimitError`` beyond ``max_pages`` pages."""
        pages = await self._collect(self.iter_rfq_pages(**filters), max_pages, "rfqs")
        return [r for page in pages for r in page.rfqs]

    async def get_rfq(self, rfq_id: str) -> Rfq:
        """Read one RFQ."""
        return (
            await self._get("/communications/rfqs/{rfq_id}", RfqResponse, {"rfq_id": rfq_id})
        ).rfq

    # --- communications: requester (demo testing) ----------------------------------------

    async def create_rfq(
        self,
        market_ticker: str,
        contracts_centi: int | None = None,
        target_cost_micros: int | None = None,
        *,
        rest_remainder: bool = False,
        target_cost_excludes_fees: bool | None = None,
        obscure_creator_id: bool = False,
        replace_existing: bool = False,
        subaccount: int | None = None,
    ) -> str:
        """Create an RFQ sized by contracts *or* target cost; returns the RFQ id (§3.2)."""
        if (contracts_centi is None) == (target_cost_micros is None):
            raise ValueError("give exactly one of contracts_centi and target_cost_micros")
        body: dict[str, Any] = {
            "market_ticker": market_ticker,
            "rest_remainder": rest_remainder,
            "obscure_creator_id": obscure_creator_id,
            "replace_existing": replace_existing,
        }
        if contracts_centi is not None:
            body["contracts_fp"] = format_fp(check_qty(contracts_centi))
        else:
            assert target_cost_micros is not None
            body["target_cost_dollars"] = format_dollars(check_qty(target_cost_micros), 6)
        if target_cost_excludes_fees is not None:
            body["target_cost_excludes_fees"] = target_cost_excludes_fees
        if subaccount is not None:
            body["subaccount"] = subaccount
        response = await self._request(
            "POST", "/communications/rfqs", json=body, retry=Retry.UNPROCESSED_ONLY
        )
        return decode_response(response.content, CreatedId).id

    async def delete_rfq(self, rfq_id: str) -> None:
        """Delete one of our RFQs."""
        await self._request("DELETE", "/communications/rfqs/{rfq_id}", {"rfq_id": rfq_id})

    async def accept_quote(self, rfq_id: str, quote_id: str, accepted_side: Side) -> None:
        """Accept one side of a quote on our RFQ (requester side, for demo tests)."""
        await self._request(
            "PUT",
            "/communications/rfqs/{rfq_id}/quotes/{quote_id}/accept",
            {"rfq_id": rfq_id, "quote_id": quote_id},
            json={"accepted_side": Side(accepted_side).value},
            retry=Retry.UNPROCESSED_ONLY,
        )

    # --- markets -------------------------------------------------------------------------

    async def get_market(self, ticker: str) -> Market:
        """Read one market (``.to_market_info()`` gives the engine's view)."""
        return (await self._get("/markets/{ticker}", MarketResponse, {"ticker": ticker})).market

    async def get_series(self, ticker: str) -> Series:
        """Read a series: its fee type and multiplier (``.fees()``)."""
        return (await self._get("/series/{ticker}", SeriesResponse, {"ticker": ticker})).series

    async def get_event(self, ticker: str) -> Event:
        """Read one event (its ``mutually_exclusive`` flag prices combos, docs/strategies.md)."""
        return (await self._get("/events/{ticker}", EventResponse, {"ticker": ticker})).event

    def iter_market_pages(self, **filters: Filter) -> AsyncIterator[MarketsPage]:
        """Iterate pages of ``GET /markets`` (filters: status, event_ticker, mve_filter, ...)."""
        return self._pages("/markets", MarketsPage, filters, lambda p: p.cursor)

    async def list_markets(
        self, *, max_pages: int = DEFAULT_MAX_PAGES, **filters: Filter
    ) -> list[Market]:
        """Collect markets; raises ``PagingLimitError`` beyond ``max_pages`` pages."""
        pages = await self._collect(self.iter_market_pages(**filters), max_pages, "markets")
        return [m for page in pages for m in page.markets]

    async def get_orderbook(self, ticker: str, depth: int = 0) -> Orderbook:
        """Read a market's order book (``depth`` 0 = all levels, up to 100)."""
        if not 0 <= depth <= 100:
            raise ValueError(f"orderbook depth must be 0..100, got {depth}")
        response = await self._request(
            "GET", "/markets/{ticker}/orderbook", {"ticker": ticker}, params={"depth": depth}
        )
        return decode_orderbook(response.content)

    # --- portfolio -----------------------------------------------------------------------

    def iter_position_pages(self, **filters: Filter) -> AsyncIterator[PositionsPage]:
        """Iterate pages of ``GET /portfolio/positions``."""
        return self._pages("/portfolio/positions", PositionsPage, filters, lambda p: p.cursor)

    async def get_positions(
        self, *, max_pages: int = DEFAULT_MAX_PAGES, **filters: Filter
    ) -> PositionsPage:
        """Collect every page of positions into one ``PositionsPage`` (cursor None)."""
        pages = await self._collect(self.iter_position_pages(**filters), max_pages, "positions")
        return PositionsPage(
            market_positions=tuple(m for p in pages for m in p.market_positions),
            event_positions=tuple(e for p in pages for e in p.event_positions),
        )

    async def get_balance(
        self, *, subaccount: int | None = None, exchange_index: int | None = None
    ) -> Balance:
        """Read our balance (use ``.cash_micros``)."""
        params = {"subaccount": subaccount, "exchange_index": exchange_index}
        return await self._get("/portfolio/balance", Balance, params=params)

    def iter_fill_pages(self, **filters: Filter) -> AsyncIterator[FillsPage]:
        """Iterate pages of ``GET /portfolio/fills`` (filters: ticker, order_id, min_ts, ...)."""
        return self._pages("/portfolio/fills", FillsPage, filters, lambda p: p.cursor)

    async def get_fills(
        self, *, max_pages: int = DEFAULT_MAX_PAGES, **filters: Filter
    ) -> list[Fill]:
        """Collect fills; raises ``PagingLimitError`` beyond ``max_pages`` pages."""
        pages = await self._collect(self.iter_fill_pages(**filters), max_pages, "fills")
        return [f for page in pages for f in page.fills]

    def iter_settlement_pages(self, **filters: Filter) -> AsyncIterator[SettlementsPage]:
        """Iterate pages of ``GET /portfolio/settlements``."""
        return self._pages("/portfolio/settlements", SettlementsPage, filters, lambda p: p.cursor)

    async def get_settlements(
        self, *, max_pages: int = DEFAULT_MAX_PAGES, **filters: Filter
    ) -> list[Settlement]:
        """Collect settlements; raises ``PagingLimitError`` beyond ``max_pages`` pages."""
        pages = await self._collect(self.iter_settlement_pages(**filters), max_pages, "settlements")
        return [s for page in pages for s in page.settlements]

    # --- exchange / account --------------------------------------------------------------

    async def get_exchange_status(self) -> ExchangeStatus:
        """Read whether the exchange and trading are active."""
        return await self._get("/exchange/status", ExchangeStatus)

    async def get_account_limits(self) -> AccountLimits:
        """Read our read/write bucket sizes (``GET /account/limits``)."""
        return await self._get("/account/limits", AccountLimits)

    async def get_endpoint_costs(self) -> EndpointCosts:
        """Read the endpoint cost table (``GET /account/endpoint_costs``)."""
        return await self._get("/account/endpoint_costs", EndpointCosts)

    async def configure_limiter(self) -> None:
        """Seed the rate limiter from the account's real limits and costs (at startup)."""
        limits = await self.get_account_limits()
        costs = await self.get_endpoint_costs()
        self.limiter.configure_from(limits, costs)
        log.info("rate_limits_configured", usage_tier=limits.usage_tier, **self.limiter.levels())
