"""Trading back office.

Replicated rows (portfolios, orders, positions, trades...) are read-only here: they change only
through the engine's services, which keep balances, margins and the sync stamps consistent.
Operators edit configuration: instruments, engine settings, funding rates, bracket tables (also
imported whole from Binance's JSON) and a bot's parameters, schedule and on/off switch.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from apps.markets.models import Exchange
from apps.trading.models import (
    EngineSettings,
    Fill,
    FundingPayment,
    FundingRate,
    Instrument,
    InsuranceFundEntry,
    LeverageBracket,
    LeverageChange,
    Liquidation,
    MarginHistory,
    OptionPosition,
    Order,
    Portfolio,
    PortfolioSnapshot,
    Position,
    PredictionHistory,
    Profile,
    Strategy,
)
from apps.trading.services.brackets import leverage_brackets_import
from haunt.errors import DomainError


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


class BracketImportForm(forms.Form):
    exchange = forms.ModelChoiceField(queryset=Exchange.objects.order_by("slug"), to_field_name="slug")
    effective_from = forms.DateField(initial=timezone.localdate, help_text="YYYY-MM-DD")
    table = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 20, "cols": 100}),
        required=False,
        help_text="The JSON answer of GET /fapi/v1/leverageBracket (one symbol's object or a list).",
    )
    file = forms.FileField(required=False, help_text="…or the same JSON as a file.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("table") and not data.get("file"):
            raise forms.ValidationError("Paste the table or choose a file.")
        return data

    def text(self) -> str:
        upload = self.cleaned_data.get("file")
        return upload.read().decode("utf-8") if upload else self.cleaned_data["table"]


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
    search_fields = ["symbol"]
    change_list_template = "admin/trading/leveragebracket/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="trading_leveragebracket_import",
            )
        ]
        return extra + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:trading_leveragebracket_changelist"))
        form = BracketImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = leverage_brackets_import(
                    exchange=form.cleaned_data["exchange"],
                    effective_from=form.cleaned_data["effective_from"],
                    text=form.text(),
                )
            except UnicodeDecodeError:
                self.message_user(request, "The file is not UTF-8 text.", messages.ERROR)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                for error in exc.detail.get("errors", []):
                    self.message_user(request, error, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Imported {result.created} bracket(s) for {', '.join(result.symbols)}"
                    f" ({result.replaced} replaced).",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:trading_leveragebracket_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Import a leverage bracket table",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/trading/leveragebracket/import.html", context)


@admin.register(EngineSettings)
class EngineSettingsAdmin(admin.ModelAdmin):
    list_display = [
        "key",
        "starting_cash",
        "maker_fee_rate",
        "taker_fee_rate",
        "leverage_policy",
        "funding_rate_source",
        "default_funding_rate",
        "funding_interval_hours",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not EngineSettings.objects.exists()  # one row, "default"

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = [
        "symbol",
        "bracket_exchange",
        "bracket_symbol",
        "max_leverage",
        "price_decimals",
        "quantity_decimals",
        "min_quantity",
        "options_enabled",
        "enabled",
    ]
    list_filter = ["enabled", "options_enabled", "bracket_exchange"]
    search_fields = ["symbol", "bracket_symbol"]


@admin.register(FundingRate)
class FundingRateAdmin(admin.ModelAdmin):
    list_display = ["symbol", "funding_time", "rate", "source"]
    list_filter = ["source", "symbol"]
    search_fields = ["symbol"]
    date_hierarchy = "funding_time"
    ordering = ["-funding_time", "symbol"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Portfolio)
class PortfolioAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "user",
        "cash",
        "initial_cash",
        "realized_pnl",
        "fees_paid",
        "funding_paid",
        "margin_mode",
        "is_active",
        "is_public",
        "home_node",
        "created_at",
    ]
    list_filter = ["margin_mode", "is_active", "is_public", "home_node"]
    search_fields = ["name", "user__username", "id"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "portfolio",
        "symbol",
        "side",
        "type",
        "quantity",
        "price",
        "stop_price",
        "status",
        "filled_quantity",
        "placed_by",
    ]
    list_filter = ["status", "type", "side", "time_in_force", "reduce_only", "margin_mode"]
    search_fields = ["symbol", "client_order_id", "portfolio__name", "portfolio__user__username", "placed_by"]
    list_select_related = ["portfolio"]
    date_hierarchy = "created_at"


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = [
        "opened_at",
        "portfolio",
        "symbol",
        "side",
        "quantity",
        "entry_price",
        "leverage",
        "margin_mode",
        "isolated_margin",
        "liquidation_price",
        "status",
    ]
    list_filter = ["status", "side", "margin_mode", "symbol"]
    search_fields = ["symbol", "portfolio__name", "portfolio__user__username", "id"]
    list_select_related = ["portfolio"]
    date_hierarchy = "opened_at"


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = [
        "executed_at",
        "portfolio",
        "kind",
        "symbol",
        "side",
        "quantity",
        "price",
        "fee",
        "is_maker",
    ]
    list_filter = ["kind", "side", "is_maker", "symbol"]
    search_fields = ["symbol", "portfolio__name", "portfolio__user__username", "order__client_order_id"]
    list_select_related = ["portfolio"]
    date_hierarchy = "executed_at"


@admin.register(OptionPosition)
class OptionPositionAdmin(ReadOnlyAdmin):
    list_display = [
        "opened_at",
        "portfolio",
        "underlying",
        "option_type",
        "side",
        "strike",
        "expiry",
        "quantity",
        "premium",
        "status",
        "settlement_amount",
    ]
    list_filter = ["status", "option_type", "side", "underlying"]
    search_fields = ["underlying", "portfolio__name", "portfolio__user__username"]
    list_select_related = ["portfolio"]
    date_hierarchy = "expiry"


@admin.register(Strategy)
class StrategyAdmin(admin.ModelAdmin):
    """Operators tune a bot (parameters, interval) or switch it off; the rest is the engine's."""

    editable_fields = ("parameters", "interval_seconds", "enabled")
    list_display = [
        "name",
        "persona",
        "portfolio",
        "enabled",
        "interval_seconds",
        "last_run_at",
        "last_error",
    ]
    list_filter = ["persona", "enabled"]
    list_editable = ["enabled"]
    search_fields = ["name"]
    list_select_related = ["portfolio"]

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        model_fields = [field.name for field in Strategy._meta.fields]
        return [name for name in model_fields if name not in self.editable_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Strategy, form: forms.ModelForm, change: bool) -> None:
        # Write only what the operator may edit, on a locked fresh row: the bot runner updates
        # last_run_at/last_error meanwhile, and a stale form must not put them back.
        fields = [name for name in self.editable_fields if name in form.changed_data]
        if not fields:
            return
        with transaction.atomic():
            strategy = Strategy.objects.select_for_update().get(pk=obj.pk)
            for name in fields:
                setattr(strategy, name, getattr(obj, name))
            strategy.save(update_fields=fields)


@admin.register(FundingPayment)
class FundingPaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "funding_time",
        "portfolio",
        "symbol",
        "rate",
        "rate_source",
        "mark_price",
        "quantity",
        "amount",
    ]
    list_filter = ["rate_source", "symbol"]
    search_fields = ["symbol", "portfolio__name", "portfolio__user__username"]
    list_select_related = ["portfolio"]
    date_hierarchy = "funding_time"


@admin.register(Liquidation)
class LiquidationAdmin(ReadOnlyAdmin):
    list_display = [
        "liquidated_at",
        "portfolio",
        "symbol",
        "side",
        "margin_mode",
        "quantity",
        "entry_price",
        "mark_price",
        "bankruptcy_price",
        "margin_lost",
        "insurance_fund_delta",
    ]
    list_filter = ["side", "margin_mode", "symbol"]
    search_fields = ["symbol", "portfolio__name", "portfolio__user__username"]
    list_select_related = ["portfolio"]
    date_hierarchy = "liquidated_at"


@admin.register(MarginHistory)
class MarginHistoryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "portfolio", "position", "delta_type", "amount", "margin_after", "leverage"]
    list_filter = ["delta_type"]
    search_fields = ["portfolio__name", "portfolio__user__username", "position__symbol"]
    list_select_related = ["portfolio", "position"]
    date_hierarchy = "created_at"


@admin.register(PortfolioSnapshot)
class PortfolioSnapshotAdmin(ReadOnlyAdmin):
    list_display = [
        "taken_at",
        "portfolio",
        "equity",
        "cash",
        "unrealized_pnl",
        "realized_pnl",
        "used_margin",
    ]
    search_fields = ["portfolio__name", "portfolio__user__username"]
    list_select_related = ["portfolio"]
    date_hierarchy = "taken_at"


@admin.register(InsuranceFundEntry)
class InsuranceFundEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "reason", "symbol", "amount", "liquidation"]
    list_filter = ["reason", "symbol"]
    date_hierarchy = "created_at"


@admin.register(PredictionHistory)
class PredictionHistoryAdmin(ReadOnlyAdmin):
    list_display = [
        "predicted_at",
        "strategy",
        "symbol",
        "direction",
        "confidence",
        "price_at_prediction",
        "resolved_at",
        "actual_price",
        "correct",
    ]
    list_filter = ["direction", "correct", "symbol", "strategy"]
    list_select_related = ["strategy"]
    date_hierarchy = "predicted_at"


@admin.register(LeverageChange)
class LeverageChangeAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "portfolio",
        "position",
        "actor",
        "old_leverage",
        "requested_leverage",
        "new_leverage",
        "margin_mode",
        "margin_delta",
        "outcome",
        "error_code",
    ]
    list_filter = ["outcome", "error_code", "margin_mode", "policy"]
    search_fields = ["actor", "portfolio__name", "position__symbol", "idempotency_key"]
    list_select_related = ["portfolio", "position"]
    date_hierarchy = "created_at"
