"""Trading routes outside /api/trading/: bootstrap and avatars."""

from __future__ import annotations

from django.urls import URLPattern, path

from apps.trading import api_accounts

urlpatterns: list[URLPattern] = [
    path("api/bootstrap", api_accounts.BootstrapApi.as_view(), name="bootstrap"),
    path("api/avatars/<str:avatar_id>.svg", api_accounts.avatar_svg, name="avatar"),
]
