"""Third-party client ``kalshi-sdk`` (package ``kalshi``, typed REST + WebSocket) against the
simulator on 127.0.0.1: the RFQ lifecycle over REST while its WebSocket client receives the
communications, orderbook, fill and position streams, each parsed by its own models."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import COLLECTION, T1, LiveSim

kalshi = pytest.importorskip("kalshi", reason="kalshi-sdk is installed by make install")


def _client(sim: LiveSim, user: str) -> Any:
    cfg = kalshi.KalshiConfig(base_url=sim.url, ws_base_url=sim.ws_url, max_retries=0)
    return kalshi.AsyncKalshiClient(key_id=sim.key_id(user), private_key=sim.pem(user),
                                    config=cfg)


async def _next_of(stream: Any, wanted: str) -> Any:
    async def scan() -> Any:
        async for msg in stream:
            if msg.type == wanted:
                return msg
        raise AssertionError(f"stream ended before {wanted}")
    return await asyncio.wait_for(scan(), 10)


async def test_kalshi_sdk_rfq_lifecycle_over_rest_and_websocket(live_sim: LiveSim) -> None:
    from kalshi.ws.models import communications as comm_models

    sent: list[tuple[str, dict[str, Any]]] = []
    live_sim.exchange.add_listener(
        lambda out: sent.append((out.type, out.msg)) if out.channel == "communications" else None)
    maker, req = _client(live_sim, "maker"), _client(live_sim, "req")
    async with maker, req, maker.ws.connect() as ws:
        fills = await ws.subscribe_fill()
        positions = await ws.subscribe_market_positions()
        # Last: this client drops frames that arrive while it awaits a later subscribe's ack
        # (a snapshot sent right after its own ack would be lost, here as on Kalshi).
        book = await ws.subscribe_orderbook_delta(tickers=[T1])
        snapshot = await _next_of(book, "orderbook_snapshot")
        assert snapshot.msg.market_ticker == T1

        rfq = await req.communications.rfqs.create(market_ticker=T1, rest_remainder=False,
                                                   contracts=2)
        quote = await maker.communications.quotes.create(
            rfq_id=rfq.id, yes_bid="0.45", no_bid="0.45", rest_remainder=False)
        await req.communications.quotes.accept(quote.id, accepted_side="yes")
        await maker.communications.quotes.confirm(quote.id)
        fill = await _next_of(fills, "fill")
        assert (fill.msg.market_ticker, fill.msg.order_id) == (
            T1, (await maker.communications.quotes.get(quote.id)).quote.creator_order_id)
        position = await _next_of(positions, "market_position")
        assert position.msg.market_ticker == T1
        delta = await _next_of(book, "orderbook_delta")
        assert delta.msg.market_ticker == T1

        got = (await maker.communications.quotes.get(quote.id)).quote
        assert got.status == "executed"
        held = await maker.portfolio.positions()
        assert [p.ticker for p in held.market_positions] == [T1]
        markets = await maker.markets.list()
        assert T1 in [m.ticker for m in markets]
        trades = await maker.markets.list_trades(ticker=T1)
        assert [t.ticker for t in trades] == [T1]
        now_s = live_sim.exchange.clock.wall_ns() // 10**9
        candles = await maker.markets.candlesticks("KXCONF", T1, start_ts=now_s - 3600,
                                                   end_ts=now_s + 60, period_interval=1)
        assert candles
        collections = await maker.multivariate_collections.list()
        assert [c.collection_ticker for c in collections] == [COLLECTION]

    # Its communications stream expects frames typed "communications"; Kalshi (and the
    # simulator) type them rfq_created, quote_accepted, ... so that stream of this client
    # stays silent on the real exchange too. Its payload models still parse every frame.
    payloads = {"rfq_created": comm_models.RfqCreatedPayload,
                "quote_created": comm_models.QuoteCreatedPayload,
                "quote_accepted": comm_models.QuoteAcceptedPayload,
                "quote_executed": comm_models.QuoteExecutedPayload,
                "rfq_deleted": comm_models.RfqDeletedPayload}
    assert {t for t, _ in sent} >= {"rfq_created", "quote_created", "quote_accepted",
                                    "quote_executed", "rfq_deleted"}
    for kind, msg in sent:
        payloads[kind].model_validate(msg)
