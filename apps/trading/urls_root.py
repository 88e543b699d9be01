"""Trading routes outside /api/trading/: bootstrap and avatars."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
