from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from haunt import api

admin.site.site_header = "Haunt back office"
admin.site.site_title = "Haunt admin"
admin.site.index_title = f"Node {settings.HAUNT_NODE_ID} ({settings.HAUNT_NODE_REGION})"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health", api.HealthApi.as_view(), name="health"),
    path("api/auth/token", api.AuthTokenCreateApi.as_view(), name="auth-token"),
    path("api/auth/me", api.MeApi.as_view(), name="auth-me"),
    path("api/notifications", api.NotificationListApi.as_view(), name="notifications"),
    path("api/notifications/read", api.NotificationReadApi.as_view(), name="notifications-read"),
    path("api/market/", include("apps.markets.urls")),
    path("api/user/", include("apps.moderation.urls")),
    path("api/trading/", include("apps.trading.urls")),
    path("api/sync/", include("apps.sync.urls")),
    path("", include("apps.trading.urls_root")),
    # Chart, seeding, overview, latency/dominance APIs and the Binance-compatible facade carry
    # their full paths (/api/crypto/..., /api/udf/..., /api/v3/...).
    path("", include("apps.markets.urls_charts")),
    path("", include("apps.markets.urls_seeding")),
    path("", include("apps.markets.urls_overview")),
    path("", include("apps.markets.urls_latency")),
    path("", include("apps.markets.urls_binance")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]

handler400 = "haunt.errors.handler400"
handler403 = "haunt.errors.handler403"
handler404 = "haunt.errors.handler404"
handler500 = "haunt.errors.handler500"
