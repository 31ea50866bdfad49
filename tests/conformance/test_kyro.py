"""Third-party client ``kyro`` (aiohttp REST, its own RSA-PSS signer) against the simulator on
127.0.0.1. It returns plain JSON, so every body is validated here against the official SDK's
response model; an endpoint Kalshi does not document fails as an HTTP 404 with the nested
error body."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import COLLECTION, T1, LiveSim, sdk_models

from quoter.domain.types import Side

kyro = pytest.importorskip("kyro", reason="kyro is installed by make install")


def _client(sim: LiveSim, user: str) -> Any:
    from kyro._auth import _create_signer

    signer = _create_signer(sim.key_id(user), sim.keys[user])
    return kyro.RestClient(kyro.KyroConfig(base_url=sim.url, auth_signer=signer))


async def test_kyro_reads_and_trades_validate_against_the_official_models(
        live_sim: LiveSim) -> None:
    from kyro.rest.api import events, exchange, markets, orders, portfolio

    m = sdk_models()
    live_sim.exchange.place_order("req", T1, Side.NO, 610_000, 300)  # takes 3 of the LP's
    async with _client(live_sim, "req") as req, _client(live_sim, "lp") as lp:
        body = await markets.get_markets(req, limit=5)
        assert T1 in [x.ticker for x in m.GetMarketsResponse.model_validate(body).markets]
        m.GetMarketResponse.model_validate(await markets.get_market(req, T1))
        m.GetMarketOrderbookResponse.model_validate(await markets.get_market_orderbook(req, T1))
        trades = m.GetTradesResponse.model_validate(await markets.get_trades(req, ticker=T1))
        assert [(t.count_fp, t.yes_price_dollars) for t in trades.trades] == [("3.00", "0.4000")]
        m.GetSeriesResponse.model_validate(await markets.get_series(req, "KXCONF"))
        m.GetSeriesListResponse.model_validate(await markets.get_series_list(req))
        m.GetEventsResponse.model_validate(await events.get_events(req))
        m.GetEventResponse.model_validate(await events.get_event(req, "KXCONF-26JAN01"))
        m.ExchangeStatus.model_validate(await exchange.get_exchange_status(req))
        m.GetExchangeScheduleResponse.model_validate(await exchange.get_exchange_schedule(req))
        # kyro asks /exchange/user-data-timestamp; Kalshi's path (and the official SDKs')
        # is /exchange/user_data_timestamp, so it is a 404 here as there.
        with pytest.raises(kyro.KyroHTTPError) as wrong_path:
            await exchange.get_user_data_timestamp(req)
        assert wrong_path.value.status == 404
        m.GetUserDataTimestampResponse.model_validate(
            await req.get("/exchange/user_data_timestamp"))
        m.GetSeriesFeeChangesResponse.model_validate(await exchange.get_series_fee_changes(req))
        balance = m.GetBalanceResponse.model_validate(await portfolio.get_balance(req))
        assert balance.portfolio_value == 180  # 3 NO at 0.60 (the resting price), at cost
        positions = m.GetPositionsResponse.model_validate(await portfolio.get_positions(req))
        assert [p.position_fp for p in positions.market_positions] == ["-3.00"]
        fills = m.GetFillsResponse.model_validate(await portfolio.get_fills(req))
        assert [f.is_taker for f in fills.fills] == [True]
        lp_orders = m.GetOrdersResponse.model_validate(await orders.get_orders(lp, ticker=T1))
        assert sorted(o.status for o in lp_orders.orders) == ["resting", "resting"]
        m.GetOrderResponse.model_validate(await orders.get_order(lp, lp_orders.orders[0].order_id))
        col = await req.get(f"/multivariate_event_collections/{COLLECTION}")
        m.GetMultivariateEventCollectionResponse.model_validate(col)

        # Not a Kalshi endpoint (kyro's own docstring says it may not exist): a JSON 404.
        with pytest.raises(kyro.KyroHTTPError) as err:
            await portfolio.get_portfolio(req)
        assert err.value.status == 404
        assert err.value.response_body["error"]["code"] == "not_found"
