from django.urls import URLPattern, URLResolver, path

from apps.markets import api_latency

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "api/market/exchange-latency",
        api_latency.ExchangeLatencyApi.as_view(),
        name="market-exchange-latency",
    ),
    path(
        "api/market/exchange-dominance",
        api_latency.ExchangeDominanceApi.as_view(),
        name="market-exchange-dominance",
    ),
]
