from django.urls import path

from apps.markets import api

app_name = "markets"

urlpatterns = [
    path("prices", api.PriceListApi.as_view(), name="prices"),
    path("prices/<str:symbol>", api.PriceDetailApi.as_view(), name="price-detail"),
    path("sources", api.SourceListApi.as_view(), name="sources"),
]
