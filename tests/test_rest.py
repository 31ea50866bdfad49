"""KalshiRest against httpx.MockTransport: a real transport, our whole client stack above it."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs

from quoter.clock import ReplayClock
from quoter.domain.money import MoneyError
from quoter.domain.types import BookSide, MarketStatus, Side
from quoter.errors import (
    AuthError,
    DecodeError,
    ExchangeRejectedError,
    PagingLimitError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from quoter.kalshi.auth import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    Signer,
    verify_signature,
)
from quoter.kalshi.rest import KalshiRest, RestExchange, RetryPolicy

BASE = "https://demo.test/trade-api/v2"
KEY_ID = "0d7c4a9e-1111-2222-3333-444455556666"
WALL_MS = 1_783_000_000_000
RFQ = "a2d9c1f0-0000-4000-8000-000000000001"
QID = "6f1c2b3a-0000-4000-8000-000000000002"

Handler = Callable[[httpx.Request], httpx.Response]
Answer = httpx.Response | Exception | Handler


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Exchange:
    """A scripted exchange: checks every request's signature, records it, answers it."""

    def __init__(self, key: rsa.RSAPrivateKey, clock: ReplayClock) -> None:
        self.key = key
        self.clock = clock
        self.requests: list[httpx.Request] = []
        self.scripts: dict[tuple[str, str], list[Answer]] = {}

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.scripts.setdefault((method, BASE_PATH + path), []).extend(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        h = request.headers
        assert h[HEADER_KEY] == KEY_ID
        # Signed with the injected clock at send time (sleeps advance it).
        assert h[HEADER_TIMESTAMP] == str(self.clock.wall_ns() // 1_000_000)
        # The signature covers the path as sent on the wire (percent-encoded), no query.
        wire_path = request.url.raw_path.decode().split("?")[0]
        message = f"{h[HEADER_TIMESTAMP]}{request.method}{wire_path}"
        assert wire_path.startswith("/trade-api/v2/")
        assert verify_signature(self.key.public_key(), message, h[HEADER_SIGNATURE])
        answers = self.scripts.get((request.method, wire_path))
        assert answers, f"unexpected {request.method} {request.url}"
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)

    def body(self, i: int = -1) -> Any:
        return json.loads(self.requests[i].content)


BASE_PATH = "/trade-api/v2"


class Sleeper:
    def __init__(self, clock: ReplayClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)
        self.clock.advance(int(delay_s * 1e9) + 1)


@pytest.fixture
def ex(key: rsa.RSAPrivateKey, clock: ReplayClock) -> Exchange:
    return Exchange(key, clock)


@pytest.fixture
def clock() -> ReplayClock:
    return ReplayClock(start_ns=0, wall_offset_ns=WALL_MS * 1_000_000)


@pytest.fixture
def sleeper(clock: ReplayClock) -> Sleeper:
    return Sleeper(clock)


@pytest.fixture
async def rest(ex: Exchange, key: rsa.RSAPrivateKey, clock: ReplayClock, sleeper: Sleeper):  # type: ignore[no-untyped-def]
    client = KalshiRest(
        BASE,
        Signer(KEY_ID, key),
        transport=httpx.MockTransport(ex),
        clock=clock,
        retry=RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05),
        sleep=sleeper,
        rng=random.Random(7),
    )
    async with client:
        yield client


def j(status: int, body: Any = None) -> httpx.Response:
    return httpx.Response(status, json=body) if body is not None else httpx.Response(status)


QUOTE = {
    "id": QID,
    "rfq_id": RFQ,
    "creator_id": "c1",
    "rfq_creator_id": "c2",
    "market_ticker": "KXMLBGAME-26JUL081840NYYTB-NYY",
    "contracts_fp": "1.00",
    "yes_bid_dollars": "0.4800",
    "no_bid_dollars": "0.4800",
    "created_ts": "2026-07-08T18:40:00Z",
    "updated_ts": "2026-07-08T18:40:16.5Z",
    "status": "executed",
    "accepted_side": "yes",
    "creator_order_id": "ord-1",
    "yes_contracts_fp": "1.00",
    "some_future_field": {"x": 1},
}
RFQ_OBJ = {
    "id": RFQ,
    "creator_id": "",
    "market_ticker": "KXMVE-ABC",
    "contracts_fp": "100.00",
    "status": "open",
    "created_ts": "2026-07-08T18:40:00Z",
    "mve_collection_ticker": "KXMVECROSSCATEGORY-SHARD1-R",
    "mve_selected_legs": [
        {"event_ticker": "E1", "market_ticker": "E1-A", "side": "yes"},
        {"event_ticker": "E2", "market_ticker": "E2-B", "side": "no"},
    ],
}


# --- every endpoint: method, path, body, signature ------------------------------------------


async def test_create_quote_sends_4dp_dollar_strings(rest: KalshiRest, ex: Exchange) -> None:
    ex.on("POST", "/communications/quotes", j(201, {"id": QID}))
    quote_id = await rest.create_quote(RFQ, 480_000, 475_000, post_only=True, subaccount=3)
    assert quote_id == QID
    assert ex.body() == {
        "rfq_id": RFQ,
        "yes_bid": "0.4800",
        "no_bid": "0.4750",
        "rest_remainder": False,
        "post_only": True,
        "subaccount": 3,
    }
    assert ex.requests[-1].headers["content-type"] == "application/json"


async def test_create_quote_refuses_bad_prices_before_sending(
    rest: KalshiRest, ex: Exchange
) -> None:
    with pytest.raises(MoneyError, match="exceeds"):
        await rest.create_quote(RFQ, 600_000, 500_000)
    with pytest.raises(MoneyError, match="non-zero"):
        await rest.create_quote(RFQ, 0, 0)
    with pytest.raises(MoneyError):
        await rest.create_quote(RFQ, 1_000_000, 0)
    with pytest.raises(MoneyError, match="4 decimals"):
        await rest.create_quote(RFQ, 480_050, 0)
    assert ex.requests == []


async def test_quote_lifecycle_calls(rest: KalshiRest, ex: Exchange) -> None:
    scoped = f"/communications/rfqs/{RFQ}/quotes/{QID}"
    ex.on("PUT", scoped + "/confirm", j(204))
    ex.on("DELETE", scoped, j(204))
    ex.on("GET", scoped, j(200, {"quote": QUOTE}))
    ex.on("GET", "/communications/id", j(200, {"communications_id": "abc123"}))
    ex.on("PUT", scoped + "/accept", j(204))

    await rest.confirm_quote(RFQ, QID)
    assert ex.requests[-1].method == "PUT"
    assert ex.body() == {}
    await rest.delete_quote(RFQ, QID)
    quote = await rest.get_quote(RFQ, QID)
    assert quote.yes_bid_micros == 480_000
    assert quote.contracts_centi == 100
    assert quote.accepted_side is Side.YES
    assert quote.created_ts_ms == 1_783_536_000_000
    assert quote.updated_ts_ms == 1_783_536_016_500
    assert quote.creator_order_id == "ord-1"
    assert await rest.get_communications_id() == "abc123"
    await rest.accept_quote(RFQ, QID, Side.NO)
    assert ex.body() == {"accepted_side": "no"}
    assert [(r.method, r.url.path) for r in ex.requests] == [
        ("PUT", BASE_PATH + scoped + "/confirm"),
        ("DELETE", BASE_PATH + scoped),
        ("GET", BASE_PATH + scoped),
        ("GET", BASE_PATH + "/communications/id"),
        ("PUT", BASE_PATH + scoped + "/accept"),
    ]


async def test_rfq_calls(rest: KalshiRest, ex: Exchange) -> None:
    ex.on("POST", "/communications/rfqs", j(201, {"id": RFQ}))
    ex.on("GET", f"/communications/rfqs/{RFQ}", j(200, {"rfq": RFQ_OBJ}))
    ex.on("DELETE", f"/communications/rfqs/{RFQ}", j(204))
    assert await rest.create_rfq("KXMVE-ABC", contracts_centi=150) == RFQ
    assert ex.body() == {
        "market_ticker": "KXMVE-ABC",
        "rest_remainder": False,
        "obscure_creator_id": False,
        "replace_existing": False,
        "contracts_fp": "1.50",
    }
    await rest.create_rfq(
        "KXMVE-ABC", target_cost_micros=25_500_000, target_cost_excludes_fees=True
    )
    assert ex.body()["target_cost_dollars"] == "25.500000"
    assert ex.body()["target_cost_excludes_fees"] is True
    assert "contracts_fp" not in ex.body()
    with pytest.raises(ValueError, match="exactly one"):
        await rest.create_rfq("KXMVE-ABC", contracts_centi=1, target_cost_micros=1)
    rfq = await rest.get_rfq(RFQ)
    assert rfq.contracts_centi == 10_000
    assert rfq.mve_selected_legs is not None
    assert [leg.side for leg in rfq.mve_selected_legs] == [Side.YES, Side.NO]
    await rest.delete_rfq(RFQ)
    assert ex.requests[-1].method == "DELETE"


async def test_market_and_orderbook(rest: KalshiRest, ex: Exchange) -> None:
    market = {
        "ticker": "KXMVE-ABC",
        "event_ticker": "KXMVEX-26",
        "status": "active",
        "close_time": "2026-07-09T00:00:00Z",
        "price_level_structure": "center_deci_edge_centi_cent",
        "price_ranges": [
            {"start": "0.0000", "end": "0.0100", "step": "0.0001"},
            {"start": "0.0100", "end": "0.9900", "step": "0.0010"},
            {"start": "0.9900", "end": "1.0000", "step": "0.0001"},
        ],
        "mve_collection_ticker": "KXMVECROSSCATEGORY-SHARD1-R",
        "mve_selected_legs": RFQ_OBJ["mve_selected_legs"],
        "exchange_index": 1,
        "yes_bid_dollars": "0.1230",
        "volume_fp": "12.34",
    }
    ex.on("GET", "/markets/KXMVE-ABC", j(200, {"market": market}))
    ex.on(
        "GET",
        "/markets/KXMVE-ABC/orderbook",
        j(200, {"orderbook_fp": {"yes_dollars": [["0.1200", "5.00"], ["0.1230", "1.50"]]}}),
    )
    m = await rest.get_market("KXMVE-ABC")
    assert m.yes_bid_micros == 123_000
    assert m.volume_centi == 1234
    info = m.to_market_info()
    assert info.status is MarketStatus.ACTIVE
    assert info.series_ticker == "KXMVEX"
    assert info.is_hvm
    assert info.is_combo
    assert info.exchange_index == 1
    assert info.close_ts_ms == 1_783_555_200_000
    assert info.grid.is_valid(5_100)
    assert not info.grid.is_valid(123_400)
    book = await rest.get_orderbook("KXMVE-ABC", depth=10)
    assert book.yes_levels == ((120_000, 500), (123_000, 150))
    assert book.no_levels == ()
    assert ex.requests[-1].url.params["depth"] == "10"


async def test_portfolio_exchange_and_account(rest: KalshiRest, ex: Exchange) -> None:
    ex.on(
        "GET",
        "/portfolio/positions",
        j(
            200,
            {
                "market_positions": [
                    {"ticker": "M", "position_fp": "-1.00", "fees_paid_dollars": "0.0175"}
                ],
                "event_positions": [{"event_ticker": "E"}],
                "cursor": "",
            },
        ),
    )
    ex.on("GET", "/portfolio/balance", j(200, {"balance": 9952, "balance_dollars": "99.523400"}))
    fill = {
        "fill_id": "f1",
        "trade_id": "t1",
        "order_id": "ord-1",
        "ticker": "M",
        "outcome_side": "no",
        "book_side": "ask",
        "count_fp": "1.00",
        "yes_price_dollars": "0.5200",
        "no_price_dollars": "0.4800",
        "is_taker": False,
        "fee_cost": "0.000000",
        "created_time": "2026-07-08T18:40:16Z",
    }
    ex.on("GET", "/portfolio/fills", j(200, {"fills": [fill], "cursor": None}))
    ex.on(
        "GET",
        "/portfolio/settlements",
        j(
            200,
            {
                "settlements": [
                    {
                        "ticker": "M",
                        "market_result": "yes",
                        "revenue": 100,
                        "yes_count_fp": "1.00",
                        "fee_cost": "0.0100",
                        "settled_time": "2026-07-10T00:00:00Z",
                    }
                ]
            },
        ),
    )
    ex.on("GET", "/exchange/status", j(200, {"exchange_active": True, "trading_active": False}))
    ex.on(
        "GET",
        "/account/limits",
        j(
            200,
            {
                "usage_tier": "basic",
                "read": {"bucket_capacity": 400, "refill_rate": 200},
                "write": {"bucket_capacity": 100, "refill_rate": 100},
                "grants": [],
            },
        ),
    )
    ex.on(
        "GET",
        "/account/endpoint_costs",
        j(
            200,
            {
                "default_cost": 10,
                "endpoint_costs": [
                    {"method": "POST", "path": "/trade-api/v2/communications/quotes", "cost": 2}
                ],
            },
        ),
    )

    positions = await rest.get_positions(ticker="M", subaccount=None)
    assert positions.market_positions[0].position_centi == -100
    assert positions.market_positions[0].fees_paid_micros == 17_500
    assert positions.event_positions[0].event_ticker == "E"
    assert dict(ex.requests[-1].url.params) == {"ticker": "M"}
    balance = await rest.get_balance(exchange_index=1)
    assert balance.cash_micros == 99_523_400
    assert ex.requests[-1].url.params["exchange_index"] == "1"
    (f,) = await rest.get_fills(ticker="M")
    assert (f.outcome_side, f.book_side, f.count_centi) == (Side.NO, BookSide.ASK, 100)
    assert (f.yes_price_micros, f.no_price_micros, f.fee_cost_micros) == (520_000, 480_000, 0)
    assert f.market == "M"
    (s,) = await rest.get_settlements()
    assert (s.yes_count_centi, s.fee_cost_micros, s.revenue) == (100, 10_000, 100)
    status = await rest.get_exchange_status()
    assert status.exchange_active
    assert not status.trading_active
    await rest.configure_limiter()
    assert rest.limiter.cost_for("POST", "/communications/quotes") == 2
    assert rest.limiter.cost_for("DELETE", "/communications/rfqs/{rfq_id}/quotes/{quote_id}") == 10
    assert rest.limiter.levels()["write_capacity"] == 100


# --- paging ---------------------------------------------------------------------------------


def _paged(items_key: str, pages: list[tuple[list[Any], str]]) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor", "")
        index = 0 if not cursor else int(cursor.removeprefix("c"))
        items, next_cursor = pages[index]
        return j(200, {items_key: items, "cursor": next_cursor})

    return answer


async def test_paging_across_three_pages(rest: KalshiRest, ex: Exchange) -> None:
    pages = [
        ([dict(QUOTE, id="q1")], "c1"),
        ([dict(QUOTE, id="q2"), dict(QUOTE, id="q3")], "c2"),
        ([dict(QUOTE, id="q4")], ""),
    ]
    ex.on("GET", "/communications/quotes", _paged("quotes", pages))
    quotes = await rest.list_quotes(user_filter="self", status="open", limit=2)
    assert [q.id for q in quotes] == ["q1", "q2", "q3", "q4"]
    assert [r.url.params.get("cursor") for r in ex.requests] == [None, "c1", "c2"]
    assert all(r.url.params["user_filter"] == "self" for r in ex.requests)
    assert all(r.url.params["limit"] == "2" for r in ex.requests)

    seen = [q.id async for q in rest.iter_quotes(status="open")]
    assert seen == ["q1", "q2", "q3", "q4"]

    with pytest.raises(PagingLimitError, match="more than 2 pages"):
        await rest.list_quotes(max_pages=2)


async def test_rfq_paging_and_repeated_cursor(rest: KalshiRest, ex: Exchange) -> None:
    ex.on("GET", "/communications/rfqs", j(200, {"rfqs": [RFQ_OBJ], "cursor": "same"}))
    with pytest.raises(DecodeError, match="repeated cursor"):
        await rest.list_rfqs(status="open")
    assert len(ex.requests) == 2


# --- errors and retries ---------------------------------------------------------------------


async def test_429_then_success_for_create_quote(
    rest: KalshiRest, ex: Exchange, sleeper: Sleeper
) -> None:
    ex.on(
        "POST",
        "/communications/quotes",
        j(429, {"error": "too many requests"}),
        j(201, {"id": QID}),
    )
    with capture_logs() as logs:
        assert await rest.create_quote(RFQ, 400_000, 550_000) == QID
    assert len(ex.requests) == 2
    assert ex.body(0) == ex.body(1)
    assert len(sleeper.delays) >= 1
    events = [e["event"] for e in logs]
    assert "rest_request_failed" in events
    assert "rest_request_retrying" in events
    failed = next(e for e in logs if e["event"] == "rest_request_failed")
    assert failed["status"] == 429
    assert failed["path"] == "/communications/quotes"
    # Never headers: no key id, no signature anywhere in the captured events.
    text = repr(logs)
    assert KEY_ID not in text
    assert ex.requests[0].headers[HEADER_SIGNATURE] not in text


async def test_429_persisting_raises_rate_limited(rest: KalshiRest, ex: Exchange) -> None:
    ex.on("GET", "/exchange/status", j(429, {"error": "too many requests"}))
    with pytest.raises(RateLimitedError) as info:
        await rest.get_exchange_status()
    assert info.value.error_message == "too many requests"
    assert len(ex.requests) == 3  # max_attempts


async def test_5xx_is_retried_for_get(rest: KalshiRest, ex: Exchange, sleeper: Sleeper) -> None:
    ex.on(
        "GET",
        f"/communications/rfqs/{RFQ}",
        j(503, {"code": "service_unavailable", "message": "try later"}),
        httpx.Response(502, text="<html>bad gateway</html>"),
        j(200, {"rfq": RFQ_OBJ}),
    )
    assert (await rest.get_rfq(RFQ)).id == RFQ
    assert len(ex.requests) == 3
    assert len(sleeper.delays) == 2
    assert all(0 <= d <= 0.05 for d in sleeper.delays)


async def test_5xx_is_not_retried_for_create_quote(rest: KalshiRest, ex: Exchange) -> None:
    ex.on(
        "POST",
        "/communications/quotes",
        j(500, {"code": "internal", "message": "boom"}),
        j(201, {"id": "x"}),
    )
    with pytest.raises(ServerError) as info:
        await rest.create_quote(RFQ, 400_000, 0)
    assert info.value.status_code == 500
    assert len(ex.requests) == 1


async def test_timeout_not_retried_for_post_but_connect_error_is(
    rest: KalshiRest, ex: Exchange
) -> None:
    ex.on("POST", "/communications/quotes", httpx.ReadTimeout("slow"), j(201, {"id": QID}))
    with pytest.raises(TransportError):
        await rest.create_quote(RFQ, 400_000, 0)
    assert len(ex.requests) == 1
    ex.scripts.clear()
    ex.on("POST", "/communications/quotes", httpx.ConnectError("refused"), j(201, {"id": QID}))
    assert await rest.create_quote(RFQ, 400_000, 0) == QID
    assert len(ex.requests) == 3


async def test_confirm_and_delete_retried_on_5xx_and_timeouts(
    rest: KalshiRest, ex: Exchange
) -> None:
    scoped = f"/communications/rfqs/{RFQ}/quotes/{QID}"
    ex.on("PUT", scoped + "/confirm", httpx.ReadTimeout("slow"), j(502), j(204))
    await rest.confirm_quote(RFQ, QID)
    assert len(ex.requests) == 3
    ex.on("DELETE", scoped, j(500), j(204))
    await rest.delete_quote(RFQ, QID)
    assert len(ex.requests) == 5


async def test_confirm_retries_until_its_deadline_not_four_attempts(
    rest: KalshiRest, ex: Exchange, clock: ReplayClock, sleeper: Sleeper
) -> None:
    # A 429 burst longer than four attempts: the confirm keeps trying inside its window.
    scoped = f"/communications/rfqs/{RFQ}/quotes/{QID}/confirm"
    ex.on("PUT", scoped, *([j(429, {"error": "too many requests"})] * 12), j(204))
    deadline_ns = clock.now_ns() + 30 * 10**9
    await rest.confirm_quote(RFQ, QID, deadline_ns=deadline_ns)
    assert len(ex.requests) == 13
    assert clock.now_ns() < deadline_ns


async def test_confirm_gives_up_before_its_deadline(
    rest: KalshiRest, ex: Exchange, clock: ReplayClock, sleeper: Sleeper
) -> None:
    scoped = f"/communications/rfqs/{RFQ}/quotes/{QID}/confirm"
    ex.on("PUT", scoped, j(503))
    deadline_ns = clock.now_ns() + 2 * 10**9
    sent_ns: list[int] = []
    ex.on("PUT", scoped, lambda request: (sent_ns.append(clock.now_ns()), j(503))[1])
    with pytest.raises(ServerError):
        await rest.confirm_quote(RFQ, QID, deadline_ns=deadline_ns)
    # Many more than RetryPolicy.max_attempts, every one sent before the deadline, and the
    # call returns before it: the caller still has its window to decline or record.
    assert len(ex.requests) > 3
    assert max(sent_ns) < deadline_ns
    assert clock.now_ns() < deadline_ns
    # Without a deadline the attempt bound holds as before.
    ex.requests.clear()
    with pytest.raises(ServerError):
        await rest.confirm_quote(RFQ, QID)
    assert len(ex.requests) == 3


async def test_400_expired_is_exchange_rejected_and_not_retried(
    rest: KalshiRest, ex: Exchange
) -> None:
    scoped = f"/communications/rfqs/{RFQ}/quotes/{QID}"
    ex.on(
        "PUT",
        scoped + "/confirm",
        j(
            400,
            {"code": "expired", "message": "quote confirmation window expired", "details": "40s"},
        ),
    )
    with pytest.raises(ExchangeRejectedError) as info:
        await rest.confirm_quote(RFQ, QID)
    assert info.value.status_code == 400
    assert info.value.code == "expired"
    assert info.value.error_message == "quote confirmation window expired"
    assert info.value.details == "40s"
    assert len(ex.requests) == 1


async def test_4xx_bodies_of_other_shapes(rest: KalshiRest, ex: Exchange) -> None:
    scoped = f"/communications/rfqs/{RFQ}/quotes/{QID}"
    ex.on("DELETE", scoped, j(404, {"error": {"code": "not_found", "message": "not found"}}))
    with pytest.raises(ExchangeRejectedError) as info:
        await rest.delete_quote(RFQ, QID)
    assert (info.value.status_code, info.value.code) == (404, "not_found")
    ex.on("GET", f"/communications/rfqs/{RFQ}", httpx.Response(409, text="conflict!"))
    with pytest.raises(ExchangeRejectedError) as info:
        await rest.get_rfq(RFQ)
    assert (info.value.code, info.value.error_message) == ("http_409", "conflict!")


async def test_401_is_auth_error(rest: KalshiRest, ex: Exchange) -> None:
    ex.on(
        "GET", "/portfolio/balance", j(401, {"code": "authentication_error", "message": "bad sig"})
    )
    with pytest.raises(AuthError, match="401 authentication_error"):
        await rest.get_balance()
    assert len(ex.requests) == 1


async def test_undecodable_2xx_is_decode_error(rest: KalshiRest, ex: Exchange) -> None:
    ex.on("GET", "/communications/id", httpx.Response(200, text="<html>"))
    with pytest.raises(DecodeError) as info:
        await rest.get_communications_id()
    assert info.value.raw == b"<html>"
    bad_quote = dict(QUOTE, yes_bid_dollars="0.48x")
    ex.on("GET", f"/communications/rfqs/{RFQ}/quotes/{QID}", j(200, {"quote": bad_quote}))
    with pytest.raises(DecodeError, match="yes_bid_micros"):
        await rest.get_quote(RFQ, QID)


def _gzip_garbage(status: int) -> httpx.Response:
    # A stream, so that the body is decoded where httpx reads it (in send), not here.
    return httpx.Response(status, headers={"content-encoding": "gzip"},
                          stream=httpx.ByteStream(b"\x1f\x8b\x08\x00 not gzip at all"))


async def test_every_rest_decoding_failure_is_a_decode_error(
    rest: KalshiRest, ex: Exchange
) -> None:
    # Bad gzip (httpx.DecodingError inside send), 3,000-deep JSON (RecursionError in msgspec)
    # and a truncated body each end as the taxonomy's DecodeError, never as a bare exception.
    deep = httpx.Response(201, content=b"[" * 3000 + b"]" * 3000)
    deep_in_ignored = httpx.Response(201, content=b'{"id": "q1", "x": ' + b"[" * 3000
                                     + b"]" * 3000 + b"}")
    truncated = httpx.Response(201, content=b'{"id": "q')
    for answer, reason in ((_gzip_garbage(201), "bad_encoding"), (deep, "too_deep"),
                           (deep_in_ignored, "too_deep"), (truncated, "malformed")):
        ex.on("POST", "/communications/quotes", answer)
        with pytest.raises(DecodeError) as info:
            await rest.create_quote(RFQ, 480_000, 480_000)
        assert info.value.reason == reason
        ex.scripts.clear()
    # A corrupt 201 is never retried: posting again would create a second quote.
    assert len(ex.requests) == 4
    ex.on("GET", "/markets/T/orderbook", httpx.Response(200, content=b"{" * 5000))
    with pytest.raises(DecodeError):
        await rest.get_orderbook("T")


async def test_corrupt_error_bodies_still_map_to_the_status(
    rest: KalshiRest, ex: Exchange
) -> None:
    ex.on("DELETE", f"/communications/rfqs/{RFQ}/quotes/{QID}",
          httpx.Response(404, content=b"[" * 3000 + b"]" * 3000))
    with pytest.raises(ExchangeRejectedError) as info:
        await rest.delete_quote(RFQ, QID)
    assert info.value.status_code == 404


async def test_ids_cannot_escape_their_path_segment(rest: KalshiRest, ex: Exchange) -> None:
    ex.on("GET", "/communications/rfqs/a%2F..%2Fb", j(200, {"rfq": RFQ_OBJ}))
    await rest.get_rfq("a/../b")
    assert ex.requests[-1].url.raw_path == b"/trade-api/v2/communications/rfqs/a%2F..%2Fb"
    with pytest.raises(ValueError, match="invalid path id"):
        await rest.get_rfq("..")


async def test_more_listings_page_through(rest: KalshiRest, ex: Exchange) -> None:
    market = {"ticker": "M1", "event_ticker": "E-1", "status": "active"}
    ex.on(
        "GET", "/markets", _paged("markets", [([market], "c1"), ([dict(market, ticker="M2")], "")])
    )
    assert [m.ticker for m in await rest.list_markets(status="open", mve_filter="exclude")] == [
        "M1",
        "M2",
    ]
    assert ex.requests[0].url.params["mve_filter"] == "exclude"
    ex.on("GET", "/communications/rfqs", _paged("rfqs", [([RFQ_OBJ], "c1"), ([RFQ_OBJ], "")]))
    assert len([r async for r in rest.iter_rfqs(status="open")]) == 2
    pos = {"ticker": "M1", "position_fp": "2.00"}
    ex.on(
        "GET",
        "/portfolio/positions",
        _paged("market_positions", [([pos], "c1"), ([dict(pos, ticker="M2")], "c2"), ([], "")]),
    )
    positions = await rest.get_positions(count_filter="position")
    assert [p.ticker for p in positions.market_positions] == ["M1", "M2"]
    assert positions.cursor is None


async def test_write_reserve_keeps_confirm_unblocked_by_a_quote_burst(
    rest: KalshiRest, ex: Exchange, sleeper: Sleeper
) -> None:
    ex.on("POST", "/communications/quotes", j(201, {"id": QID}))
    ex.on("PUT", f"/communications/rfqs/{RFQ}/quotes/{QID}/confirm", j(204))
    for _ in range(40):  # Basic write bucket 100, quotes cost 2: 80 tokens, reserve 20 left
        await rest.create_quote(RFQ, 400_000, 500_000)
    assert sleeper.delays == []
    await rest.confirm_quote(RFQ, QID)  # costs 10, drawn from the reserve: no wait
    assert sleeper.delays == []
    await rest.create_quote(RFQ, 400_000, 500_000)  # must wait for a refill above the reserve
    assert sleeper.delays
    assert rest.limiter.levels()["write_tokens"] == rest.limiter.write_reserve


async def test_tap_records_bodies_and_times_but_never_headers(
    ex: Exchange, key: rsa.RSAPrivateKey, clock: ReplayClock, sleeper: Sleeper
) -> None:
    records: list[RestExchange] = []
    ex.on("POST", "/communications/quotes", httpx.ConnectError("down"), j(201, {"id": QID}))
    ex.on("PUT", f"/communications/rfqs/{RFQ}/quotes/{QID}/confirm", j(204))
    async with KalshiRest(
        BASE,
        Signer(KEY_ID, key),
        transport=httpx.MockTransport(ex),
        clock=clock,
        sleep=sleeper,
        rng=random.Random(1),
        tap=records.append,
    ) as rest:
        await rest.create_quote(RFQ, 400_000, 0)
        await rest.confirm_quote(RFQ, QID, timeout_s=2.5)
    assert [(r.method, r.status) for r in records] == [("POST", None), ("POST", 201), ("PUT", 204)]
    assert records[0].path == "/trade-api/v2/communications/quotes"
    assert json.loads(records[1].request_body)["yes_bid"] == "0.4000"
    assert json.loads(records[1].response_body) == {"id": QID}
    assert records[1].recv_ns >= records[1].sent_ns > records[0].sent_ns
    text = repr(records)
    assert KEY_ID not in text
    assert all(r.headers[HEADER_SIGNATURE] not in text for r in ex.requests)
    assert ex.requests[-1].extensions["timeout"]["read"] == 2.5


# --- models ---------------------------------------------------------------------------------


def test_parse_ts_ms_handles_offsets_and_long_fractions() -> None:
    from quoter.kalshi.rest_models import parse_ts_ms

    assert parse_ts_ms("2026-07-08T18:40:00Z") == 1_783_536_000_000
    assert parse_ts_ms("2026-07-08T20:40:00.987654321+02:00") == 1_783_536_000_987
    assert parse_ts_ms("2026-07-08T16:40:00.5-02:00") == 1_783_536_000_500
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_ts_ms("2026-07-08 18:40")


def test_market_info_fees_and_bad_status() -> None:
    from fractions import Fraction

    from quoter.domain.fees import FeeType
    from quoter.kalshi.rest_models import MarketResponse, decode_response

    body = {
        "market": {
            "ticker": "KXA-26-X",
            "event_ticker": "KXA-26",
            "status": "active",
            "price_level_structure": "tapered_deci_cent",
            "fee_type": "quadratic_with_combo_maker_fees",
            "fee_multiplier": 0.5,
        }
    }
    info = decode_response(json.dumps(body), MarketResponse).market.to_market_info()
    assert info.fees.fee_type is FeeType.QUADRATIC_WITH_COMBO_MAKER_FEES
    assert info.fees.multiplier == Fraction(1, 2)
    assert info.grid.is_valid(1_000)  # $0.001 on the tapered edge
    assert not info.grid.is_valid(501_000)
    body["market"]["status"] = "bogus"
    with pytest.raises(DecodeError, match="bogus"):
        decode_response(json.dumps(body), MarketResponse).market.to_market_info()
