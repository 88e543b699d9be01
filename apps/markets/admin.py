from django.contrib import admin

from apps.markets.models import Exchange


@admin.register(Exchange)
class ExchangeAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "enabled", "weight"]
    list_editable = ["enabled", "weight"]
    list_filter = ["kind", "enabled"]
    search_fields = ["slug", "name"]
