from django.contrib import admin

from apps.trading.models import LeverageBracket, Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = [
        "username",
        "user",
        "theme",
        "default_timeframe",
        "version",
        "last_modified_by",
        "last_modified_at",
    ]
    search_fields = ["username", "user__username"]
    readonly_fields = ["id", "version", "last_modified_at", "last_modified_by"]
    raw_id_fields = ["user"]


@admin.register(LeverageBracket)
class LeverageBracketAdmin(admin.ModelAdmin):
    list_display = [
        "exchange",
        "symbol",
        "effective_from",
        "bracket",
        "initial_leverage",
        "notional_floor",
        "notional_cap",
        "maint_margin_ratio",
        "cum",
    ]
    list_filter = ["exchange", "symbol"]
    ordering = ["exchange", "symbol", "-effective_from", "bracket"]
