from django.contrib import admin
from django.http import HttpRequest

from apps.markets.models import Candle, Exchange


@admin.register(Exchange)
class ExchangeAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "enabled", "weight"]
    list_editable = ["enabled", "weight"]
    list_filter = ["kind", "enabled"]
    search_fields = ["slug", "name"]


@admin.register(Candle)
class CandleAdmin(admin.ModelAdmin):
    """Read-only: candles are rebuilt from trades (manage.py import_trades), never edited by hand."""

    list_display = [
        "source",
        "symbol",
        "interval",
        "open_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "is_filled",
    ]
    list_filter = ["source", "interval", "is_filled"]
    search_fields = ["symbol"]
    ordering = ["source", "symbol", "interval", "-open_time"]
    show_full_result_count = False  # a COUNT(*) over years of 1m candles is slow

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Candle | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Candle | None = None) -> bool:
        return False
