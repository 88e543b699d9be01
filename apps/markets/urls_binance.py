"""The Binance-compatible facade, with Binance's own paths (included at the root)."""

from django.urls import URLPattern, URLResolver, path

from apps.markets import api_binance

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v3/ping", api_binance.PingApi.as_view(), name="binance-ping"),
    path("api/v3/time", api_binance.TimeApi.as_view(), name="binance-time"),
    path("api/v3/exchangeInfo", api_binance.ExchangeInfoApi.as_view(), name="binance-exchange-info"),
    path("api/v3/ticker/24hr", api_binance.Ticker24hrApi.as_view(), name="binance-ticker-24hr"),
    path("api/v3/klines", api_binance.KlinesApi.as_view(), name="binance-klines"),
    path("api/v3/aggTrades", api_binance.AggTradesApi.as_view(), name="binance-agg-trades"),
    path(
        "fapi/v1/exchangeInfo",
        api_binance.FuturesExchangeInfoApi.as_view(),
        name="binance-fapi-exchange-info",
    ),
    path(
        "dapi/v1/exchangeInfo",
        api_binance.FuturesExchangeInfoApi.as_view(),
        name="binance-dapi-exchange-info",
    ),
]
