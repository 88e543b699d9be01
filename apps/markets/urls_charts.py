"""Chart, klines and UDF routes, with their full paths (included at the root by haunt/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from apps.markets import api_charts

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/crypto/<str:id>/chart", api_charts.ChartApi.as_view(), name="crypto-chart"),
    path("api/market/klines", api_charts.KlinesApi.as_view(), name="market-klines"),
    path("api/udf/config", api_charts.UdfConfigApi.as_view(), name="udf-config"),
    path("api/udf/symbols", api_charts.UdfSymbolsApi.as_view(), name="udf-symbols"),
    path("api/udf/search", api_charts.UdfSearchApi.as_view(), name="udf-search"),
    path("api/udf/history", api_charts.UdfHistoryApi.as_view(), name="udf-history"),
    path("api/udf/time", api_charts.UdfTimeApi.as_view(), name="udf-time"),
]
