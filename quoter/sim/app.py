"""The simulator's ASGI app: Kalshi's REST API under ``/trade-api/v2`` and its WebSocket at
``/trade-api/ws/v2``, on one port, in front of a :class:`~quoter.sim.exchange.SimExchange`.

* Auth (kalshi-api.md §1.2/§1.3): every REST call and the WS handshake carry
  ``KALSHI-ACCESS-KEY/-TIMESTAMP/-SIGNATURE``, verified against the keys registered on the
  exchange; a bad signature or a timestamp outside ``skew_ms`` of the exchange clock's wall
  time is 401 (the WS upgrade is refused with an HTTP 401). ``GET /markets*`` and
  ``/exchange/status`` also work unsigned (the spec marks them public).
* Rate limits (§4.2, §0a): per-user read and write token buckets (Basic: read 200/s cap 400,
  write 100/s cap 100) with Kalshi's endpoint costs (default 10; create quote and quote
  get/delete 2) -> 429 ``{"error": "too many requests"}``. Bucket time is the exchange clock.
* WebSocket (§2): subscribe / unsubscribe / update_subscription / list_subscriptions with
  Kalshi's ack and error shapes and codes, a ``sid`` per channel per subscribe (a repeat
  subscription is a new one: retired code 6 is never sent), a per-subscription ``seq``
  on every data message, communications sharding (``crc32(market_ticker) % shard_factor``),
  orderbook snapshot-then-deltas honouring ``use_yes_price``. Heartbeat pings are sent by
  the server (uvicorn ``ws_ping_interval``; ASGI cannot choose the ``heartbeat`` payload).
* Errors (kalshi-api.md §3): 4xx bodies are nested as the real exchange sends them,
  ``{"error": {"code", "message", "service"}}``; unknown paths and methods answer JSON 404 /
  405 in the same shape; 429 is ``{"error": "too many requests"}``.
* Faults: every outbound frame goes through ``faults.on_frame`` and every REST request
  through ``faults.on_request`` (``quoter.sim.faults_api``).
* ``GET /sim/ledger``: the exchange's ground truth for every account; unauthenticated,
  answered only to loopback clients.
* Timers: the app's lifespan runs a task calling ``exchange.advance()`` whenever a confirm
  window or execution timer falls due (under ``httpx.ASGITransport`` there is no lifespan:
  tests call ``advance`` themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from quoter.clock import Clock
from quoter.domain.money import MICROS_PER_CENT, MoneyError, parse_dollars, parse_fp
from quoter.domain.types import MarketStatus, Side
from quoter.kalshi.auth import verify_signature
from quoter.kalshi.ratelimit import (
    DEFAULT_COST,
    DEFAULT_ENDPOINT_COSTS,
    BucketConfig,
    TokenBucket,
    endpoint_key,
    kind_for_method,
)
from quoter.sim import wire
from quoter.sim.accounts_api import open_account, parse_account_request
from quoter.sim.exchange import OutMessage, SimError, SimExchange
from quoter.sim.faults_api import FaultHooks, NoFaults

__all__ = ["API_PREFIX", "WS_PATH", "RateLimits", "SimServer", "create_app", "error_body"]

API_PREFIX = "/trade-api/v2"
WS_PATH = "/trade-api/ws/v2"
log = structlog.get_logger("quoter.sim.app")

_MARKET_CHANNELS = frozenset({"orderbook_delta", "ticker", "trade", "fill", "market_positions"})
_CHANNELS = _MARKET_CHANNELS | {"communications", "market_lifecycle_v2",
                                "multivariate_market_lifecycle"}
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Token-bucket budgets per user (Basic tier by default, §0a)."""

    read_capacity: int = 400
    read_refill_per_s: int = 200
    write_capacity: int = 100
    write_refill_per_s: int = 100
    enabled: bool = True
    usage_tier: str = "basic"


@dataclass(slots=True)
class _Sub:
    sid: int
    channel: str
    tickers: set[str] | None = None
    seq: int = 0
    use_yes_price: bool = False
    shard_factor: int | None = None
    shard_key: int = 0
    self_only: bool = False
    skip_ticker_ack: bool = False


@dataclass(slots=True)
class _Conn:
    conn_id: str
    user_id: str
    ws: WebSocket
    queue: asyncio.Queue[str]
    subs: dict[int, _Sub] = field(default_factory=dict)
    dropped: int = 0
    #: Subscriptions killed because the client read too slowly (error 25 still to send).
    overflowed: list[int] = field(default_factory=list)


class _ConnClosed(Exception):
    """The connection ended (client gone or cut by a fault)."""


def _service_of(path: str) -> str:
    """The ``service`` of an error body: the API area the path belongs to."""
    rest = path.removeprefix(API_PREFIX).strip("/")
    return rest.split("/", 1)[0] or "api"


def error_body(code: str, message: str, service: str) -> dict[str, Any]:
    """Kalshi's 4xx body as the real exchange sends it (kalshi-api.md §3): nested under
    ``"error"`` with ``code``, ``message`` and ``service`` (the docs' flat schema is not what
    production and demo answer)."""
    return {"error": {"code": code, "message": message, "service": service}}


def _err(status: int, code: str, message: str, path: str = "") -> JSONResponse:
    return JSONResponse(error_body(code, message, _service_of(path)), status_code=status)


class _WsError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


class SimServer:
    """Routes REST calls into the exchange and exchange messages out to WS subscriptions."""

    def __init__(
        self, exchange: SimExchange, *, faults: FaultHooks | None = None,
        clock: Clock | None = None, skew_ms: int = 30_000,
        rate_limits: RateLimits | None = None, queue_max: int = 100_000,
        max_advance_wait_s: float = 0.05,
    ) -> None:
        self.exchange = exchange
        self.faults: Any = faults if faults is not None else NoFaults()
        self.clock = clock or exchange.clock
        self.skew_ms = skew_ms
        self.limits = rate_limits or RateLimits()
        self.queue_max = queue_max
        self.max_advance_wait_s = max_advance_wait_s
        self._conns: dict[str, _Conn] = {}
        self._conn_ids = itertools.count(1)
        self._sids = itertools.count(1)
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._wake = asyncio.Event()
        # Create-quote responses held until their quote is accepted (a fault), by quote id.
        self._held_responses: dict[str, asyncio.Event] = {}
        exchange.add_listener(self.on_out)

    # --- auth and limits ------------------------------------------------------------------

    def authenticate(self, headers: Any, method: str, path: str) -> str | None:
        """The user id whose key signed this request, or None."""
        key_id = headers.get("kalshi-access-key")
        ts_text = headers.get("kalshi-access-timestamp")
        sig = headers.get("kalshi-access-signature")
        if not key_id or not ts_text or not sig:
            return None
        entry = self.exchange.key(key_id)
        if entry is None or not ts_text.isdigit():
            return None
        if abs(int(ts_text) - self.clock.wall_ns() // 1_000_000) > self.skew_ms:
            return None
        user_id, public_key = entry
        if not verify_signature(public_key, f"{ts_text}{method.upper()}{path}", sig):
            return None
        return user_id

    def _take_tokens(self, user_id: str, method: str, template: str) -> bool:
        if not self.limits.enabled:
            return True
        kind = kind_for_method(method)
        now = self.clock.now_ns()
        bucket = self._buckets.get((user_id, kind))
        if bucket is None:
            cfg = (BucketConfig(self.limits.read_capacity, self.limits.read_refill_per_s)
                   if kind == "read"
                   else BucketConfig(self.limits.write_capacity, self.limits.write_refill_per_s))
            bucket = self._buckets[(user_id, kind)] = TokenBucket(cfg, now)
        cost = DEFAULT_ENDPOINT_COSTS.get(endpoint_key(method, template), DEFAULT_COST)
        return bucket.try_take(cost, now)

    # --- REST plumbing --------------------------------------------------------------------

    def _route(self, method: str, path: str,
               handler: Callable[[Request, str], Awaitable[Response]], *,
               public: bool = False) -> Route:
        template = API_PREFIX + path

        async def endpoint(request: Request) -> Response:
            injected = await self.faults.on_request(method, request.url.path)
            if injected is not None:
                return injected  # type: ignore[no-any-return]
            user = self.authenticate(request.headers, method, request.url.path)
            if user is None:
                if not public or "kalshi-access-key" in request.headers:
                    return _err(401, "unauthorized", "missing or invalid authentication",
                                template)
                user = ""
            if user and not self._take_tokens(user, method, template):
                return JSONResponse({"error": "too many requests"}, status_code=429)
            try:
                response = await handler(request, user)
            except ClientDisconnect:
                # The client went away mid-request (a killed process): nobody reads an answer.
                log.debug("sim_rest_client_gone", method=method, path=template)
                return Response(status_code=499)
            except SimError as exc:
                return _err(exc.status, exc.code, exc.message, template)
            except (MoneyError, ValueError, KeyError, TypeError) as exc:
                # Malformed input (bad number, side, missing field): Kalshi answers 400.
                log.debug("sim_rest_bad_request", method=method, path=template,
                          error=type(exc).__name__)
                return _err(400, "invalid_parameters", f"bad request: {exc}", template)
            # A fault may spoil the body of an answer the exchange already acted on.
            corrupt = getattr(self.faults, "corrupt_response", None)
            if corrupt is not None:
                response = corrupt(method, request.url.path, response)
            return response

        return Route(template, endpoint, methods=[method])

    def routes(self) -> list[BaseRoute]:
        """Every REST and WebSocket route."""
        r = self._route
        return [
            r("GET", "/communications/id", self._comm_id),
            r("POST", "/communications/quotes", self._create_quote),
            r("GET", "/communications/quotes", self._list_quotes),
            r("GET", "/communications/quotes/{quote_id}", self._get_quote),
            r("DELETE", "/communications/quotes/{quote_id}", self._delete_quote),
            r("PUT", "/communications/quotes/{quote_id}/confirm", self._confirm),
            r("PUT", "/communications/quotes/{quote_id}/accept", self._accept),
            r("POST", "/communications/rfqs", self._create_rfq),
            r("GET", "/communications/rfqs", self._list_rfqs),
            r("GET", "/communications/rfqs/{rfq_id}", self._get_rfq),
            r("DELETE", "/communications/rfqs/{rfq_id}", self._delete_rfq),
            r("GET", "/communications/rfqs/{rfq_id}/quotes/{quote_id}", self._get_quote),
            r("DELETE", "/communications/rfqs/{rfq_id}/quotes/{quote_id}", self._delete_quote),
            r("PUT", "/communications/rfqs/{rfq_id}/quotes/{quote_id}/confirm", self._confirm),
            r("PUT", "/communications/rfqs/{rfq_id}/quotes/{quote_id}/accept", self._accept),
            r("GET", "/markets", self._list_markets, public=True),
            r("GET", "/markets/orderbooks", self._orderbooks, public=True),
            r("GET", "/markets/trades", self._trades, public=True),
            r("GET", "/markets/{ticker}", self._get_market, public=True),
            r("GET", "/markets/{ticker}/orderbook", self._orderbook, public=True),
            r("GET", "/events", self._list_events, public=True),
            r("GET", "/events/{ticker}", self._get_event, public=True),
            r("GET", "/exchange/schedule", self._exchange_schedule, public=True),
            r("GET", "/exchange/user_data_timestamp", self._user_data_timestamp),
            r("GET", "/portfolio/deposits", self._deposits),
            r("GET", "/portfolio/withdrawals", self._withdrawals),
            r("GET", "/series", self._list_series, public=True),
            r("GET", "/series/fee_changes", self._fee_changes, public=True),
            r("GET", "/series/{ticker}", self._get_series, public=True),
            r("GET", "/series/{series}/markets/{ticker}/candlesticks", self._candlesticks,
              public=True),
            r("GET", "/multivariate_event_collections", self._collections, public=True),
            r("GET", "/multivariate_event_collections/{ticker}", self._collection, public=True),
            r("GET", "/portfolio/orders", self._orders),
            r("GET", "/portfolio/orders/{order_id}", self._order),
            r("GET", "/portfolio/positions", self._positions),
            r("GET", "/portfolio/balance", self._balance),
            r("GET", "/portfolio/fills", self._fills),
            r("GET", "/portfolio/settlements", self._settlements),
            r("GET", "/exchange/status", self._exchange_status, public=True),
            r("GET", "/account/limits", self._account_limits),
            r("GET", "/account/endpoint_costs", self._endpoint_costs),
            Route("/sim/ledger", self._ledger, methods=["GET"]),
            Route("/sim/accounts", self._open_account, methods=["POST"]),
            WebSocketRoute(WS_PATH, self._ws_endpoint),
        ]

    # --- communications -----------------------------------------------------------------

    async def _comm_id(self, request: Request, user: str) -> Response:
        return JSONResponse({"communications_id": self.exchange.comm_id(user)})

    async def _create_quote(self, request: Request, user: str) -> Response:
        body = await _json_body(request)
        if not isinstance(body.get("rest_remainder"), bool):
            raise SimError(400, "invalid_parameters", "rest_remainder (bool) is required")
        qid = self.exchange.create_quote(
            user, _str(body, "rfq_id"), parse_dollars(_str(body, "yes_bid")),
            parse_dollars(_str(body, "no_bid")), rest_remainder=body["rest_remainder"],
            post_only=bool(body.get("post_only", False)),
        )
        hold = getattr(self.faults, "quote_response_hold_s", None)
        hold_s = hold() if hold is not None else 0.0
        if hold_s > 0:
            accepted = self._held_responses[qid] = asyncio.Event()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(accepted.wait(), hold_s)
            finally:
                del self._held_responses[qid]
        return JSONResponse({"id": qid}, status_code=201)

    def _quote_view(self, q: Any, user: str) -> dict[str, Any]:
        ex = self.exchange
        rfq = ex.get_rfq(q.rfq_id)
        return wire.quote_json(q, ex.comm_id(q.user_id), ex.rfq_creator_id_for(rfq, user), user)

    async def _list_quotes(self, request: Request, user: str) -> Response:
        p = request.query_params
        min_ts, max_ts = p.get("min_ts"), p.get("max_ts")
        quotes = self.exchange.list_quotes(
            status=p.get("status"), rfq_id=p.get("rfq_id"),
            creator_user_id=user if p.get("user_filter") == "self" else p.get(
                "quote_creator_user_id"),
            rfq_creator_user_id=user if p.get("rfq_user_filter") == "self" else p.get(
                "rfq_creator_user_id"),
            min_updated_wall_ns=None if min_ts is None else int(min_ts) * 10**9,
            max_updated_wall_ns=None if max_ts is None else (int(max_ts) + 1) * 10**9 - 1,
        )
        # Quotes are private between the maker and the requester (§2.6).
        visible = [q for q in quotes if user in (q.user_id, q.rfq_user_id)]
        page, cursor = _page(visible, p, default=500, maximum=500)
        return JSONResponse({"quotes": [self._quote_view(q, user) for q in page],
                             "cursor": cursor})

    async def _get_quote(self, request: Request, user: str) -> Response:
        q = self.exchange.get_quote(request.path_params["quote_id"],
                                    request.path_params.get("rfq_id"))
        if user not in (q.user_id, q.rfq_user_id):
            raise SimError(404, "not_found", "quote not found")
        return JSONResponse({"quote": self._quote_view(q, user)})

    async def _delete_quote(self, request: Request, user: str) -> Response:
        self.exchange.delete_quote(user, request.path_params["quote_id"],
                                   request.path_params.get("rfq_id"))
        return Response(status_code=204)

    async def _confirm(self, request: Request, user: str) -> Response:
        self.exchange.confirm_quote(user, request.path_params["quote_id"],
                                    request.path_params.get("rfq_id"))
        self._wake.set()
        # A fault may lose the response of a confirm that was applied (it still executes).
        lose = getattr(self.faults, "lose_confirm_response", None)
        if lose is not None:
            injected = await lose()
            if injected is not None:
                return injected  # type: ignore[no-any-return]
        return Response(status_code=204)

    async def _accept(self, request: Request, user: str) -> Response:
        body = await _json_body(request)
        side = Side(_str(body, "accepted_side"))
        # contracts_fp on accept is a simulator extension (FIX allows partial accepts, §3.2).
        qty = None if body.get("contracts_fp") is None else parse_fp(_str(body, "contracts_fp"))
        self.exchange.accept_quote(user, request.path_params.get("rfq_id"),
                                   request.path_params["quote_id"], side, qty)
        self._wake.set()
        return Response(status_code=204)

    async def _create_rfq(self, request: Request, user: str) -> Response:
        body = await _json_body(request)
        if not isinstance(body.get("rest_remainder"), bool):
            raise SimError(400, "invalid_parameters", "rest_remainder (bool) is required")
        contracts: int | None = None
        if body.get("contracts_fp") is not None:
            contracts = parse_fp(_str(body, "contracts_fp"))
        if body.get("contracts") is not None:
            whole = body["contracts"]
            if not isinstance(whole, int) or isinstance(whole, bool):
                raise SimError(400, "invalid_parameters", "contracts must be an integer")
            if contracts is not None and contracts != whole * 100:
                raise SimError(400, "invalid_parameters", "contracts and contracts_fp differ")
            contracts = whole * 100
        target: int | None = None
        if body.get("target_cost_dollars") is not None:
            target = parse_dollars(_str(body, "target_cost_dollars"))
        elif body.get("target_cost_centi_cents") is not None:
            target = int(body["target_cost_centi_cents"]) * 100
        rid = self.exchange.create_rfq(
            user, _str(body, "market_ticker"), contracts_centi=contracts,
            target_cost_micros=target, rest_remainder=body["rest_remainder"],
            target_cost_excludes_fees=bool(body.get("target_cost_excludes_fees", False)),
            replace_existing=bool(body.get("replace_existing", False)),
            obscure_creator_id=bool(body.get("obscure_creator_id", False)),
        )
        return JSONResponse({"id": rid}, status_code=201)

    async def _list_rfqs(self, request: Request, user: str) -> Response:
        p = request.query_params
        rfqs = self.exchange.list_rfqs(
            status=p.get("status"), market_ticker=p.get("market_ticker"),
            event_ticker=p.get("event_ticker"),
            user_id=user if p.get("user_filter") == "self" else p.get("creator_user_id"),
        )
        page, cursor = _page(rfqs, p, default=100, maximum=100)
        ex = self.exchange
        return JSONResponse({"rfqs": [wire.rfq_json(r, ex.rfq_creator_id_for(r, user), user)
                                      for r in page], "cursor": cursor})

    async def _get_rfq(self, request: Request, user: str) -> Response:
        r = self.exchange.get_rfq(request.path_params["rfq_id"])
        return JSONResponse({"rfq": wire.rfq_json(r, self.exchange.rfq_creator_id_for(r, user),
                                                  user)})

    async def _delete_rfq(self, request: Request, user: str) -> Response:
        self.exchange.delete_rfq(user, request.path_params["rfq_id"])
        return Response(status_code=204)

    # --- markets -------------------------------------------------------------------------

    def _market_view(self, ticker: str) -> dict[str, Any]:
        ex = self.exchange
        m = ex.get_market(ticker)
        return wire.market_json(m, ex.book(ticker), ex.stats(ticker),
                                ex.market_created_wall_ns(ticker))

    async def _list_markets(self, request: Request, user: str) -> Response:
        p = request.query_params
        tickers = set(p["tickers"].split(",")) if p.get("tickers") else None
        mve = p.get("mve_filter")
        markets = [
            m for m in self.exchange.list_markets()
            if (tickers is None or m.ticker in tickers)
            and (p.get("event_ticker") is None or m.event_ticker == p.get("event_ticker"))
            and (p.get("series_ticker") is None or m.series_ticker == p.get("series_ticker"))
            and (p.get("status") is None or _status_matches(m.status, p["status"]))
            and (mve != "only" or m.is_combo) and (mve != "exclude" or not m.is_combo)
        ]
        page, cursor = _page(markets, p, default=100, maximum=1000)
        return JSONResponse({"markets": [self._market_view(m.ticker) for m in page],
                             "cursor": cursor})

    async def _get_market(self, request: Request, user: str) -> Response:
        return JSONResponse({"market": self._market_view(request.path_params["ticker"])})

    async def _orderbook(self, request: Request, user: str) -> Response:
        depth = int(request.query_params.get("depth", "0"))
        if not 0 <= depth <= 100:
            raise SimError(400, "invalid_parameters", "depth must be 0..100")
        return JSONResponse(wire.orderbook_json(self.exchange.book(request.path_params["ticker"]),
                                                depth))

    async def _orderbooks(self, request: Request, user: str) -> Response:
        # ``tickers`` comes repeated (the SDK's "multi" format) or comma-separated.
        tickers = [t for v in request.query_params.getlist("tickers") for t in v.split(",") if t]
        if not tickers:
            raise SimError(400, "invalid_parameters", "tickers is required")
        ex = self.exchange
        books = []
        for t in tickers:
            ex.get_market(t)
            books.append({"ticker": t, **wire.orderbook_json(ex.book(t))})
        return JSONResponse({"orderbooks": books})

    async def _trades(self, request: Request, user: str) -> Response:
        p = request.query_params
        lo, hi = _ts_range(p)
        rows = [t for t in reversed(self.exchange.history.trades)
                if (p.get("ticker") is None or t.ticker == p.get("ticker"))
                and lo <= t.wall_ns < hi]
        page, cursor = _page(rows, p, default=100, maximum=1000)
        return JSONResponse({"trades": [wire.trade_json(t) for t in page], "cursor": cursor})

    async def _candlesticks(self, request: Request, user: str) -> Response:
        p = request.query_params
        ticker = request.path_params["ticker"]
        m = self.exchange.get_market(ticker)
        if m.series_ticker != request.path_params["series"]:
            raise SimError(404, "not_found", f"market {ticker} is not in that series")
        try:
            start_s, end_s, period = (int(p["start_ts"]), int(p["end_ts"]),
                                      int(p["period_interval"]))
        except KeyError as exc:
            raise SimError(400, "invalid_parameters", f"{exc.args[0]} is required") from None
        if period not in (1, 60, 1440):
            raise SimError(400, "invalid_parameters", "period_interval must be 1, 60 or 1440")
        if start_s > end_s:
            raise SimError(400, "invalid_parameters", "start_ts is after end_ts")
        candles = self.exchange.history.candles(ticker, start_s * 10**9, end_s * 10**9, period)
        return JSONResponse({"ticker": ticker,
                             "candlesticks": [wire.candle_json(c) for c in candles]})

    def _collection_view(self, ticker: str) -> dict[str, Any] | None:
        ex = self.exchange
        combos = [m for m in ex.list_markets() if m.mve_collection_ticker == ticker]
        if not combos:
            return None
        opened = min(ex.market_created_wall_ns(m.ticker) for m in combos)
        closes = [m.close_ts_ms * 10**6 for m in combos if m.close_ts_ms is not None]
        return wire.collection_json(ticker, combos, opened, max(closes, default=opened))

    async def _collections(self, request: Request, user: str) -> Response:
        p = request.query_params
        tickers = dict.fromkeys(m.mve_collection_ticker for m in self.exchange.list_markets()
                                if m.mve_collection_ticker)
        views = [v for t in tickers if t and (v := self._collection_view(t)) is not None]
        views = [v for v in views
                 if (p.get("series_ticker") is None or v["series_ticker"] == p["series_ticker"])
                 and (p.get("associated_event_ticker") is None
                      or p["associated_event_ticker"] in v["associated_event_tickers"])]
        page, cursor = _page(views, p, default=100, maximum=200)
        return JSONResponse({"multivariate_contracts": page, "cursor": cursor})

    async def _collection(self, request: Request, user: str) -> Response:
        ticker = request.path_params["ticker"]
        view = self._collection_view(ticker)
        if view is None:
            raise SimError(404, "not_found", f"collection {ticker} not found")
        return JSONResponse({"multivariate_contract": view})

    # --- events ---------------------------------------------------------------------------

    def _event_view(self, event_ticker: str, nested: bool) -> dict[str, Any]:
        markets = [m for m in self.exchange.list_markets() if m.event_ticker == event_ticker]
        if not markets:
            raise SimError(404, "not_found", f"event {event_ticker} not found")
        return wire.event_json(
            event_ticker, markets[0].series_ticker, markets[0].exchange_index,
            max(self.exchange.market_created_wall_ns(m.ticker) for m in markets),
            [self._market_view(m.ticker) for m in markets] if nested else None,
            mutually_exclusive=self.exchange.event_mutually_exclusive(event_ticker))

    async def _list_events(self, request: Request, user: str) -> Response:
        p = request.query_params
        events: dict[str, None] = {}
        for m in self.exchange.list_markets():
            if (p.get("series_ticker") is None or m.series_ticker == p.get("series_ticker")) and (
                    p.get("status") is None or _status_matches(m.status, p["status"])):
                events.setdefault(m.event_ticker, None)
        page, cursor = _page(list(events), p, default=200, maximum=200)
        nested = _flag(p, "with_nested_markets")
        return JSONResponse({"events": [self._event_view(e, nested) for e in page],
                             "milestones": [], "cursor": cursor})

    async def _get_event(self, request: Request, user: str) -> Response:
        ticker = request.path_params["ticker"]
        nested = _flag(request.query_params, "with_nested_markets")
        event = self._event_view(ticker, nested)
        markets = [self._market_view(m.ticker) for m in self.exchange.list_markets()
                   if m.event_ticker == ticker]
        return JSONResponse({"event": event, "markets": [] if nested else markets})

    # --- exchange and account extras ------------------------------------------------------

    async def _exchange_schedule(self, request: Request, user: str) -> Response:
        # The simulator trades around the clock and has no maintenance windows.
        day = [{"open_time": "00:00", "close_time": "23:59"}]
        now = self.clock.wall_ns()
        week = dict.fromkeys(("monday", "tuesday", "wednesday", "thursday", "friday",
                              "saturday", "sunday"), day)
        return JSONResponse({"schedule": {
            "standard_hours": [{"start_time": wire.rfc3339(now - 86_400 * 10**9),
                                "end_time": wire.rfc3339(now + 365 * 86_400 * 10**9),
                                **week}],
            "maintenance_windows": []}})

    async def _user_data_timestamp(self, request: Request, user: str) -> Response:
        # Data is consistent at once here: "as of" is now.
        return JSONResponse({"as_of_time": wire.rfc3339(self.clock.wall_ns())})

    async def _deposits(self, request: Request, user: str) -> Response:
        return JSONResponse({"deposits": [], "cursor": ""})

    async def _withdrawals(self, request: Request, user: str) -> Response:
        return JSONResponse({"withdrawals": [], "cursor": ""})

    # --- series --------------------------------------------------------------------------

    def _series_view(self, ticker: str, params: Any) -> dict[str, Any]:
        ex = self.exchange
        s = ex.get_series(ticker)
        volume = None
        if _flag(params, "include_volume"):
            volume = sum(ex.stats(m.ticker).volume_centi for m in ex.list_markets()
                         if m.series_ticker == ticker)
        return wire.series_json(s, ex.series_updated_wall_ns(ticker), volume_centi=volume,
                                product_metadata=_flag(params, "include_product_metadata"))

    async def _list_series(self, request: Request, user: str) -> Response:
        p = request.query_params
        min_updated = p.get("min_updated_ts")
        rows = [
            s for s in self.exchange.list_series()
            if (p.get("category") is None or s.category == p.get("category"))
            and (p.get("tags") is None or set(p["tags"].split(",")) & set(s.tags))
            and (min_updated is None
                 or self.exchange.series_updated_wall_ns(s.ticker) >= int(min_updated) * 10**9)
        ]
        return JSONResponse({"series": [self._series_view(s.ticker, p) for s in rows]})

    async def _get_series(self, request: Request, user: str) -> Response:
        return JSONResponse({"series": self._series_view(request.path_params["ticker"],
                                                         request.query_params)})

    async def _fee_changes(self, request: Request, user: str) -> Response:
        p = request.query_params
        changes = self.exchange.fee_changes(p.get("series_ticker"),
                                            historical=_flag(p, "show_historical"))
        return JSONResponse({"series_fee_change_arr": [wire.fee_change_json(c)
                                                       for c in changes]})

    # --- portfolio -----------------------------------------------------------------------

    async def _positions(self, request: Request, user: str) -> Response:
        p = request.query_params
        ex = self.exchange
        rows = [
            pos for t, pos in sorted(ex.positions(user).items())
            if (p.get("ticker") is None or t == p.get("ticker"))
            and (p.get("event_ticker") is None
                 or ex.get_market(t).event_ticker == p.get("event_ticker"))
        ]
        if p.get("count_filter"):
            wanted = set(p["count_filter"].split(","))
            rows = [r for r in rows if ("position" in wanted and r.position_centi)
                    or ("total_traded" in wanted and r.total_traded_micros)]
        page, cursor = _page(rows, p, default=100, maximum=1000)
        resting: dict[str, int] = {}
        for r in page:
            resting[r.market_ticker] = sum(
                o.user_id == user for o in ex.book(r.market_ticker).orders())
        by_event: dict[str, list[Any]] = {}
        for r in page:
            by_event.setdefault(ex.get_market(r.market_ticker).event_ticker, []).append(r)
        return JSONResponse({
            "market_positions": [wire.position_json(r, resting[r.market_ticker]) for r in page],
            "event_positions": [wire.event_position_json(e, rows)
                                for e, rows in sorted(by_event.items())],
            "cursor": cursor})

    async def _balance(self, request: Request, user: str) -> Response:
        ex = self.exchange
        bal = ex.balance_micros(user)
        # portfolio_value is the value of open positions only, not cash plus positions
        # (recorded: balance 99952, portfolio_value 48 after buying one contract at $0.48);
        # valued here at cost (market exposure).
        value = sum(pos.cost_micros for pos in ex.positions(user).values())
        return JSONResponse({
            "balance": bal // MICROS_PER_CENT,
            "balance_dollars": wire.cash(bal),
            "portfolio_value": value // MICROS_PER_CENT,
            "updated_ts": ex.account_updated_wall_ns(user) // 10**9,
            "balance_breakdown": [{"exchange_index": 0, "balance": wire.cash(bal)}],
        })

    async def _fills(self, request: Request, user: str) -> Response:
        p = request.query_params
        lo = int(p["min_ts"]) * 10**9 if p.get("min_ts") else None
        hi = (int(p["max_ts"]) + 1) * 10**9 if p.get("max_ts") else None
        fills = [
            f for f in reversed(self.exchange.fills(user))
            if (p.get("ticker") is None or f.market_ticker == p.get("ticker"))
            and (p.get("order_id") is None or f.order_id == p.get("order_id"))
            and (lo is None or f.wall_ns >= lo) and (hi is None or f.wall_ns < hi)
        ]
        page, cursor = _page(fills, p, default=100, maximum=1000)
        return JSONResponse({"fills": [wire.fill_json(f) for f in page], "cursor": cursor})

    def _order_view(self, o: Any) -> dict[str, Any]:
        resting = self.exchange.book(o.ticker).get(o.order_id)
        return wire.order_json(o, None if resting is None else resting.remaining_centi)

    async def _orders(self, request: Request, user: str) -> Response:
        p = request.query_params
        lo, hi = _ts_range(p)
        ex = self.exchange
        views = [self._order_view(o) for o in reversed(ex.history.orders.values())
                 if o.user_id == user
                 and (p.get("ticker") is None or o.ticker == p.get("ticker"))
                 and (p.get("event_ticker") is None
                      or ex.get_market(o.ticker).event_ticker == p.get("event_ticker"))
                 and lo <= o.created_wall_ns < hi]
        if p.get("status"):
            if p["status"] not in ("resting", "canceled", "executed"):
                raise SimError(400, "invalid_parameters",
                               "status must be resting, canceled or executed")
            views = [v for v in views if v["status"] == p["status"]]
        page, cursor = _page(views, p, default=100, maximum=1000)
        return JSONResponse({"orders": page, "cursor": cursor})

    async def _order(self, request: Request, user: str) -> Response:
        o = self.exchange.history.orders.get(request.path_params["order_id"])
        if o is None or o.user_id != user:
            raise SimError(404, "not_found", "order not found")
        return JSONResponse({"order": self._order_view(o)})

    async def _settlements(self, request: Request, user: str) -> Response:
        rows = list(reversed(self.exchange.settlements(user)))
        page, cursor = _page(rows, request.query_params, default=100, maximum=1000)
        return JSONResponse({"settlements": [wire.settlement_json(s) for s in page],
                             "cursor": cursor})

    async def _exchange_status(self, request: Request, user: str) -> Response:
        shards = sorted({m.exchange_index for m in self.exchange.list_markets()} | {0})
        return JSONResponse({
            "exchange_active": True, "trading_active": True,
            "intra_exchange_transfers_active": True,
            "exchange_index_statuses": [
                {"exchange_index": i, "description": f"shard {i}", "exchange_active": True,
                 "trading_active": True, "intra_exchange_transfers_active": True}
                for i in shards
            ],
        })

    async def _account_limits(self, request: Request, user: str) -> Response:
        lim = self.limits
        return JSONResponse({
            "usage_tier": lim.usage_tier,
            "read": {"refill_rate": lim.read_refill_per_s, "bucket_capacity": lim.read_capacity},
            "write": {"refill_rate": lim.write_refill_per_s,
                      "bucket_capacity": lim.write_capacity},
            "grants": [],
        })

    async def _endpoint_costs(self, request: Request, user: str) -> Response:
        paths = [
            ("POST", "/communications/quotes"),
            ("GET", "/communications/quotes/{quote_id}"),
            ("DELETE", "/communications/quotes/{quote_id}"),
            ("GET", "/communications/rfqs/{rfq_id}/quotes/{quote_id}"),
            ("DELETE", "/communications/rfqs/{rfq_id}/quotes/{quote_id}"),
        ]
        # The real exchange writes path parameters as ``:quote_id``, not ``{quote_id}``.
        return JSONResponse({"default_cost": DEFAULT_COST, "endpoint_costs": [
            {"method": m, "path": API_PREFIX + _colon_params(p),
             "cost": DEFAULT_ENDPOINT_COSTS[endpoint_key(m, p)]} for m, p in paths]})

    async def _ledger(self, request: Request) -> Response:
        host = request.client.host if request.client else ""
        if host not in _LOOPBACK:
            return _err(403, "forbidden", "the ledger is served to loopback clients only")
        return JSONResponse(self.exchange.ledger_snapshot())

    async def _open_account(self, request: Request) -> Response:
        # Not a Kalshi endpoint: accounts and keys are made on Kalshi's website (see
        # quoter.sim.accounts_api). Loopback only, like the ledger.
        host = request.client.host if request.client else ""
        if host not in _LOOPBACK:
            return _err(403, "forbidden", "accounts are opened by loopback clients only", "sim")
        try:
            req = parse_account_request(await _json_body(request))
            acct = open_account(self.exchange, req.user_id, req.public_key,
                                balance_micros=req.balance_micros)
        except SimError as exc:
            return _err(exc.status, exc.code, exc.message, "sim")
        log.info("sim_account_opened", user_id=acct.user_id, key_id=acct.api_key_id)
        return JSONResponse(acct.to_json(), status_code=201)

    # --- WebSocket -------------------------------------------------------------------------

    async def _ws_endpoint(self, ws: WebSocket) -> None:
        user = self.authenticate(ws.headers, "GET", WS_PATH)
        if user is None:
            if "websocket.http.response" in ws.scope.get("extensions", {}):
                await ws.send_denial_response(_err(401, "unauthorized", "invalid auth", WS_PATH))
            else:
                await ws.close(code=1008)
            return
        await ws.accept()
        conn = _Conn(f"c{next(self._conn_ids)}", user, ws, asyncio.Queue(self.queue_max))
        self._conns[conn.conn_id] = conn
        _call_opt(self.faults, "on_connect", conn.conn_id)
        log.info("sim_ws_connected", conn_id=conn.conn_id, user_id=user)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sender(conn), name=f"sim-ws-send-{conn.conn_id}")
                tg.create_task(self._receiver(conn), name=f"sim-ws-recv-{conn.conn_id}")
        except* (_ConnClosed, WebSocketDisconnect):
            pass
        finally:
            self._conns.pop(conn.conn_id, None)
            _call_opt(self.faults, "on_disconnect", conn.conn_id)
            log.info("sim_ws_disconnected", conn_id=conn.conn_id, dropped=conn.dropped)

    async def _receiver(self, conn: _Conn) -> None:
        while True:
            message = await conn.ws.receive()
            if message["type"] == "websocket.disconnect":
                raise _ConnClosed
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            self._handle_command(conn, text or "")

    async def _sender(self, conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        delayed: list[tuple[float, int, str]] = []
        order = itertools.count()
        should_close = getattr(self.faults, "should_close", None)
        while True:
            text: str | None = None
            if not conn.queue.empty():
                text = conn.queue.get_nowait()  # hot path: no wait_for task per frame
            else:
                wait = 0.25 if not delayed else max(0.0, min(0.25, delayed[0][0] - loop.time()))
                with contextlib.suppress(TimeoutError):
                    text = await asyncio.wait_for(conn.queue.get(), wait)
            if text is not None:
                for delay_s, out in self.faults.on_frame(conn.conn_id, text):
                    if delay_s <= 0:
                        await conn.ws.send_text(out)
                    else:
                        heapq.heappush(delayed, (loop.time() + delay_s, next(order), out))
            while delayed and delayed[0][0] <= loop.time():
                await conn.ws.send_text(heapq.heappop(delayed)[2])
            while conn.overflowed and conn.queue.empty():
                error = {"type": "error", "sid": conn.overflowed.pop(0),
                         "msg": {"code": 25, "msg": "Subscription buffer overflow"}}
                for _, out in self.faults.on_frame(conn.conn_id, _encoder.encode(error).decode()):
                    await conn.ws.send_text(out)
            if should_close is not None and should_close(conn.conn_id):
                await conn.ws.close(code=1001)
                raise _ConnClosed

    def _send(self, conn: _Conn, frame: dict[str, Any], sub: _Sub | None = None) -> None:
        try:
            conn.queue.put_nowait(_encoder.encode(frame).decode())
        except asyncio.QueueFull:
            conn.dropped += 1
            # Like Kalshi, a subscriber that reads too slowly loses the subscription and gets
            # error 25 (kalshi-api.md §2.3).
            if sub is not None and conn.subs.pop(sub.sid, None) is not None:
                conn.overflowed.append(sub.sid)

    def _handle_command(self, conn: _Conn, text: str) -> None:
        cmd_id: Any = None
        try:
            try:
                frame = json.loads(text)
            except ValueError:
                raise _WsError(1, "Unable to process message") from None
            if not isinstance(frame, dict):
                raise _WsError(1, "Unable to process message")
            cmd_id = frame.get("id")
            if cmd_id is not None and (not isinstance(cmd_id, int) or isinstance(cmd_id, bool)):
                raise _WsError(1, "Unable to process message")
            cmd = frame.get("cmd")
            params = frame.get("params")
            if params is not None and not isinstance(params, dict):
                raise _WsError(1, "Unable to process message")
            if cmd == "subscribe":
                self._subscribe(conn, cmd_id, params)
            elif cmd == "unsubscribe":
                self._unsubscribe(conn, cmd_id, params)
            elif cmd == "update_subscription":
                self._update(conn, cmd_id, params)
            elif cmd == "list_subscriptions":
                self._send(conn, {"id": cmd_id, "type": "ok", "msg": [
                    {"channel": s.channel, "sid": s.sid} for s in conn.subs.values()]})
            else:
                raise _WsError(5, "Unknown command")
        except _WsError as exc:
            self._send(conn, {"id": cmd_id, "type": "error",
                              "msg": {"code": exc.code, "msg": exc.msg}})

    def _subscribe(self, conn: _Conn, cmd_id: Any, params: dict[str, Any] | None) -> None:
        if params is None:
            raise _WsError(2, "Params required")
        channels = params.get("channels")
        if not channels or not isinstance(channels, list):
            raise _WsError(3, "Channels required")
        for ch in channels:
            if ch not in _CHANNELS:
                raise _WsError(8, "Unknown channel name")
        tickers = _tickers(params)
        factor, key = params.get("shard_factor"), params.get("shard_key")
        if factor is not None:
            if not isinstance(factor, int) or factor <= 0:
                raise _WsError(19, "shard_factor must be > 0")
            if factor > 100:
                raise _WsError(22, "shard_factor must be <= 100")
        if key is not None:
            if factor is None:
                raise _WsError(20, "shard_factor required when shard_key set")
            if not isinstance(key, int) or not 0 <= key < factor:
                raise _WsError(21, "shard_key must be >= 0 and < shard_factor")
        # A repeat subscription of a channel is a new subscription with its own sid and seq,
        # on every channel: code 6 ("already subscribed") is retired and never emitted
        # (docs.kalshi.com asyncapi.yaml error table), and public makers rely on one
        # orderbook_delta subscription per market or per batch of legs.
        if "orderbook_delta" in channels and not tickers:
            raise _WsError(14, "Market ticker required")
        # An unknown market refuses the whole subscribe with code 16. (Third-party lists
        # mark 16 retired as well, but the current docs' table is only confirmed for 6, and
        # our client relies on 16 to find and drop a bad ticker.)
        for t in tickers or ():
            if "orderbook_delta" in channels:
                try:
                    self.exchange.get_market(t)
                except SimError:
                    raise _WsError(16, "Market not found") from None
        for ch in channels:
            sub = _Sub(
                sid=next(self._sids), channel=ch,
                tickers=set(tickers) if tickers and ch in _MARKET_CHANNELS else None,
                use_yes_price=bool(params.get("use_yes_price", False)),
                shard_factor=factor if ch == "communications" else None,
                shard_key=key or 0,
                self_only=ch == "communications" and params.get("user_filter") == "self",
                skip_ticker_ack=bool(params.get("skip_ticker_ack", False)),
            )
            conn.subs[sub.sid] = sub
            self._send(conn, {"id": cmd_id, "type": "subscribed",
                              "msg": {"channel": ch, "sid": sub.sid}})
            if ch == "orderbook_delta":
                self._snapshots(conn, sub, sorted(sub.tickers or ()))
            if ch == "ticker" and params.get("send_initial_snapshot") and sub.tickers:
                for t in sorted(sub.tickers):
                    self._ticker_snapshot(conn, sub, t)

    def _snapshots(self, conn: _Conn, sub: _Sub, tickers: Iterable[str]) -> None:
        for t in tickers:
            try:
                m = self.exchange.get_market(t)
            except SimError:
                continue
            sub.seq += 1
            self._send(conn, {"type": "orderbook_snapshot", "sid": sub.sid, "seq": sub.seq,
                              "msg": wire.orderbook_snapshot_msg(
                                  m, self.exchange.book(t), use_yes_price=sub.use_yes_price)})

    def _ticker_snapshot(self, conn: _Conn, sub: _Sub, ticker: str) -> None:
        ex = self.exchange
        with contextlib.suppress(SimError):
            m = ex.get_market(ticker)
            sub.seq += 1
            self._send(conn, {"type": "ticker", "sid": sub.sid, "seq": sub.seq,
                              "msg": wire.ticker_msg(m, ex.book(ticker),
                                                     ex.stats(ticker),
                                                     self.clock.wall_ns())})

    def _unsubscribe(self, conn: _Conn, cmd_id: Any, params: dict[str, Any] | None) -> None:
        if params is None:
            raise _WsError(2, "Params required")
        sids = params.get("sids")
        if not sids or not isinstance(sids, list):
            raise _WsError(4, "Subscription IDs required")
        for sid in sids:
            sub = conn.subs.pop(sid, None) if isinstance(sid, int) else None
            if sub is None:
                self._send(conn, {"id": cmd_id, "type": "error",
                                  "msg": {"code": 7, "msg": "Unknown subscription ID"}})
                continue
            sub.seq += 1
            self._send(conn, {"id": cmd_id, "sid": sid, "seq": sub.seq, "type": "unsubscribed"})

    def _update(self, conn: _Conn, cmd_id: Any, params: dict[str, Any] | None) -> None:
        if params is None:
            raise _WsError(2, "Params required")
        sids = params.get("sids")
        sid = params.get("sid")
        if sid is None and isinstance(sids, list) and len(sids) == 1:
            sid = sids[0]
        if sid is None or (sids is not None and (not isinstance(sids, list) or len(sids) != 1)):
            raise _WsError(12, "Exactly one subscription ID required")
        sub = conn.subs.get(sid) if isinstance(sid, int) else None
        if sub is None:
            raise _WsError(7, "Unknown subscription ID")
        action = params.get("action")
        if not action:
            raise _WsError(15, "Action required")
        if action not in ("add_markets", "delete_markets", "get_snapshot"):
            raise _WsError(13, "Unsupported action")
        tickers = _tickers(params)
        if not tickers:
            raise _WsError(14, "Market ticker required")
        if sub.channel not in _MARKET_CHANNELS:
            raise _WsError(13, "Unsupported action")
        if action == "get_snapshot":
            if sub.channel != "orderbook_delta":
                raise _WsError(13, "Unsupported action")
            self._snapshots(conn, sub, tickers)
            return
        current = sub.tickers if sub.tickers is not None else set()
        if action == "add_markets":
            new = [t for t in tickers if t not in current]
            current |= set(tickers)
            sub.tickers = current
        else:
            new = []
            current -= set(tickers)
            sub.tickers = current
        sub.seq += 1
        ack: dict[str, Any] = {"id": cmd_id, "sid": sub.sid, "seq": sub.seq, "type": "ok"}
        if not sub.skip_ticker_ack:
            ack["msg"] = {"market_tickers": sorted(current)}
        self._send(conn, ack)
        if sub.channel == "orderbook_delta" and new:
            self._snapshots(conn, sub, new)

    def on_out(self, out: OutMessage) -> None:
        """Route one exchange message to every matching subscription (sync: never awaits)."""
        shard_hash: int | None = None
        for conn in self._conns.values():
            if out.recipients is not None and conn.user_id not in out.recipients:
                continue
            for sub in list(conn.subs.values()):
                if sub.channel != out.channel:
                    continue
                if sub.tickers is not None and out.market_ticker not in sub.tickers:
                    continue
                if out.channel == "orderbook_delta" and sub.tickers is None:
                    continue
                msg = out.msg
                if sub.shard_factor is not None:
                    if shard_hash is None:
                        shard_hash = shard_of(out.market_ticker)
                    if shard_hash % sub.shard_factor != sub.shard_key:
                        continue
                if sub.self_only and out.type in ("rfq_created", "rfq_deleted") and (
                        msg.get("creator_id") != self.exchange.comm_id(conn.user_id)):
                    continue
                if out.type == "orderbook_delta" and sub.use_yes_price and msg["side"] == "no":
                    msg = {**msg, "price_dollars": wire.dollars(
                        1_000_000 - parse_dollars(msg["price_dollars"]))}
                sub.seq += 1
                self._send(conn, {"type": out.type, "sid": sub.sid, "seq": sub.seq, "msg": msg},
                           sub)
        if self._held_responses and out.type == "quote_accepted":
            # The notice is queued above, before the held create response resumes.
            held = self._held_responses.get(str(out.msg.get("quote_id")))
            if held is not None:
                held.set()

    # --- timers --------------------------------------------------------------------------

    async def run_timers(self) -> None:
        """Call ``exchange.advance()`` whenever a confirm window or execution timer is due."""
        while True:
            self.exchange.advance()
            due = self.exchange.next_deadline_ns()
            wait = self.max_advance_wait_s
            if due is not None:
                wait = min(wait, max(0.0, (due - self.clock.now_ns()) / 1e9))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def connection_count(self) -> int:
        """Open WebSocket connections."""
        return len(self._conns)


def shard_of(market_ticker: str) -> int:
    """Stable hash of a market ticker used for communications sharding (crc32)."""
    return zlib.crc32(market_ticker.encode())


def create_app(
    exchange: SimExchange, *, faults: FaultHooks | None = None, clock: Clock | None = None,
    skew_ms: int = 30_000, rate_limits: RateLimits | None = None,
    extra_routes: Sequence[BaseRoute] = (), run_timers: bool = True,
    queue_max: int = 100_000,
) -> Starlette:
    """Build the simulator's ASGI app; ``app.state.sim`` is its :class:`SimServer`."""
    server = SimServer(exchange, faults=faults, clock=clock, skew_ms=skew_ms,
                       rate_limits=rate_limits, queue_max=queue_max)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not run_timers:
            try:
                yield
            finally:
                exchange.remove_listener(server.on_out)
            return
        task = asyncio.get_running_loop().create_task(server.run_timers(), name="sim-timers")
        try:
            yield
        finally:
            exchange.remove_listener(server.on_out)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def not_found(request: Request, exc: Exception) -> Response:
        # Unknown paths and methods answer JSON in the nested shape, never plain text.
        status = getattr(exc, "status_code", 404)
        code = "not_found" if status == 404 else "method_not_allowed"
        return _err(status, code, f"{request.method} {request.url.path}: {code}",
                    request.url.path)

    app = Starlette(routes=[*server.routes(), *extra_routes], lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_found})
    app.state.sim = server
    return app


# --- helpers ----------------------------------------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise SimError(400, "invalid_parameters", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SimError(400, "invalid_parameters", "body must be a JSON object")
    return body


def _str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise SimError(400, "invalid_parameters", f"{name} (string) is required")
    return value


def _page(rows: list[Any], params: Any, *, default: int, maximum: int) -> tuple[list[Any], str]:
    """Offset paging with an opaque cursor; ``""`` marks the last page."""
    limit = int(params.get("limit", default))
    if not 1 <= limit <= maximum:
        raise SimError(400, "invalid_parameters", f"limit must be 1..{maximum}")
    cursor = params.get("cursor") or "0"
    if not cursor.isdigit():
        raise SimError(400, "invalid_parameters", "bad cursor")
    start = int(cursor)
    page = rows[start:start + limit]
    return page, str(start + limit) if start + limit < len(rows) else ""


def _ts_range(params: Any) -> tuple[int, int]:
    """``min_ts`` / ``max_ts`` (Unix seconds, inclusive) as a wall-ns half-open range."""
    lo = int(params["min_ts"]) * 10**9 if params.get("min_ts") else 0
    hi = (int(params["max_ts"]) + 1) * 10**9 if params.get("max_ts") else 2**63
    return lo, hi


def _colon_params(path: str) -> str:
    """``/a/{x}/b`` -> ``/a/:x/b`` (how Kalshi's endpoint cost table writes parameters)."""
    return re.sub(r"\{([^/}]+)\}", r":\1", path)


def _flag(params: Any, name: str) -> bool:
    """A boolean query parameter (``true``/``false``; anything else is a 400)."""
    value = params.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise SimError(400, "invalid_parameters", f"{name} must be true or false")
    return bool(value == "true")


def _tickers(params: dict[str, Any]) -> list[str]:
    one, many = params.get("market_ticker"), params.get("market_tickers")
    if one is not None and many is not None:
        raise _WsError(11, "market_ticker and market_tickers are mutually exclusive")
    if one is not None:
        if not isinstance(one, str):
            raise _WsError(11, "Invalid parameter")
        return [one]
    if many is None:
        return []
    if not isinstance(many, list) or not all(isinstance(t, str) for t in many):
        raise _WsError(11, "Invalid parameter")
    return list(many)


def _status_matches(status: MarketStatus, wanted: str) -> bool:
    # The list filter uses "open" for tradable markets (Kalshi's GET /markets status filter).
    names = {"open": MarketStatus.ACTIVE, "unopened": MarketStatus.INITIALIZED,
             "settled": MarketStatus.FINALIZED}
    return any(status == names.get(w, w) for w in wanted.split(","))


def _call_opt(obj: Any, name: str, *args: Any) -> None:
    fn = getattr(obj, name, None)
    if fn is not None:
        fn(*args)
