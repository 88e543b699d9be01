"""Market overview routes, with their full paths (included at the root by haunt/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from apps.markets import api_overview

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/market/listings", api_overview.MarketListingsApi.as_view(), name="market-listings"),
    path("api/market/assets/<str:symbol>", api_overview.MarketAssetDetailApi.as_view(), name="market-asset"),
    path("api/market/global", api_overview.MarketGlobalApi.as_view(), name="market-global"),
    path("api/market/fear-greed", api_overview.MarketFearGreedApi.as_view(), name="market-fear-greed"),
    path("api/market/movers", api_overview.MarketMoversApi.as_view(), name="market-movers"),
]
