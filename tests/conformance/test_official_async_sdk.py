"""The official async SDK (``kalshi-python-async`` 3.34) against the simulator on 127.0.0.1:
the RFQ lifecycle and the read endpoints a client uses, each answer deserialized by the SDK
into its own models (a missing or mistyped field fails here), and errors as Kalshi documents.

Like the sync SDK it declares Requires-Python >=3.13 but imports on 3.11; the Makefile
installs it ``--no-deps --ignore-requires-python`` (its deps: aiohttp, aiohttp-retry)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import COLLECTION, COMBO, T1, LiveSim

sdk = pytest.importorskip("kalshi_python_async", reason="installed by make install")


def _client(sim: LiveSim, user: str) -> Any:
    config = sdk.Configuration(host=sim.url)
    config.api_key_id = sim.key_id(user)
    config.private_key_pem = sim.pem(user)
    return sdk.KalshiClient(config)


async def test_async_sdk_rfq_lifecycle_and_reads(live_sim: LiveSim) -> None:
    maker_c, req_c = _client(live_sim, "maker"), _client(live_sim, "req")
    try:
        maker, req = sdk.CommunicationsApi(maker_c), sdk.CommunicationsApi(req_c)
        rfq_id = (await req.create_rfq(market_ticker=T1, contracts_fp="1.00",
                                       rest_remainder=False)).id
        assert rfq_id in [r.id for r in (await maker.get_rfqs(status="open")).rfqs]
        quote_id = (await maker.create_quote(rfq_id=rfq_id, yes_bid="0.4800",
                                             no_bid="0.4800", rest_remainder=False)).id
        await req.accept_rfq_quote(rfq_id, quote_id, accepted_side="no")
        await maker.confirm_rfq_quote(rfq_id, quote_id)
        quote = (await maker.get_rfq_quote(rfq_id, quote_id)).quote
        for _ in range(100):  # the execution timer is 100 ms of the live clock
            if quote.status == "executed":
                break
            await asyncio.sleep(0.05)
            quote = (await maker.get_rfq_quote(rfq_id, quote_id)).quote
        assert (quote.status, quote.accepted_side) == ("executed", "no")

        portfolio = sdk.PortfolioApi(maker_c)
        [fill] = (await portfolio.get_fills()).fills
        assert fill.order_id == quote.creator_order_id
        [pos] = (await portfolio.get_positions()).market_positions
        assert (pos.ticker, pos.position_fp) == (T1, "-1.00")
        assert (await portfolio.get_balance()).balance_dollars == "999.520000"
        orders = (await sdk.OrdersApi(maker_c).get_orders()).orders
        assert [o.order_id for o in orders] == [quote.creator_order_id]

        markets = sdk.MarketApi(maker_c)
        assert T1 in [m.ticker for m in (await markets.get_markets()).markets]
        assert (await markets.get_market(COMBO)).market.mve_collection_ticker == COLLECTION
        assert (await markets.get_market_orderbook(T1)).orderbook_fp is not None
        [trade] = (await markets.get_trades(ticker=T1)).trades
        assert (trade.count_fp, trade.yes_price_dollars) == ("1.00", "0.5200")
        now_s = live_sim.exchange.clock.wall_ns() // 10**9
        candles = await markets.get_market_candlesticks(
            "KXCONF", T1, start_ts=now_s - 3600, end_ts=now_s + 60, period_interval=1)
        assert candles.candlesticks[-1].volume_fp == "1.00"
        assert (await markets.get_series("KXCONF")).series.fee_type == "quadratic"
        events = sdk.EventsApi(maker_c)
        assert (await events.get_event("KXCONF-26JAN01")).event.series_ticker == "KXCONF"
        mve = sdk.MultivariateApi(maker_c)
        [col] = (await mve.get_multivariate_event_collections()).multivariate_contracts
        assert col.collection_ticker == COLLECTION
        one = await mve.get_multivariate_event_collection(COLLECTION)
        assert one.multivariate_contract.associated_event_tickers == [
            "KXCONF-26JAN01", "KXCONF-26JAN02"]
        exchange = sdk.ExchangeApi(maker_c)
        assert (await exchange.get_exchange_status()).trading_active
        await exchange.get_exchange_schedule()
        await exchange.get_user_data_timestamp()

        # Errors are HTTP errors the SDK raises with Kalshi's nested body.
        with pytest.raises(sdk.exceptions.NotFoundException) as err:
            await maker.get_rfq("no-such-rfq")
        assert '"code": "not_found"' in str(err.value.body).replace('":"', '": "')
        unsigned = sdk.KalshiClient(sdk.Configuration(host=live_sim.url))
        try:
            with pytest.raises(sdk.exceptions.UnauthorizedException):
                await sdk.PortfolioApi(unsigned).get_balance()
        finally:
            await unsigned.close()
    finally:
        await maker_c.close()
        await req_c.close()
