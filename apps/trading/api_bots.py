"""Trading REST API: strategies and bots (read), options (quote, open, list, close).

Haunt's own shapes: camelCase keys, Decimal amounts as strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.urls import URLPattern, path
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.trading.api_accounts import AccountSummaryOutputSerializer
from apps.trading.api_common import money_field, paginated, portfolio_for, query_params
from apps.trading.exceptions import NotFound
from apps.trading.models import OptionPosition, PositionSide, PredictionHistory, Strategy
from apps.trading.selectors import engine_settings, mark_prices
from apps.trading.services.accounts import account_summaries
from apps.trading.services.options import option_close, option_open, option_quote, option_value
from haunt.authentication import request_user
from haunt.serializers import StrictSerializer

RECENT_PREDICTIONS = 10


# --- Strategies and bots -----------------------------------------------------------------------


class PredictionOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    symbol = serializers.CharField()
    predictedAt = serializers.DateTimeField(source="predicted_at")
    horizonSeconds = serializers.IntegerField(source="horizon_seconds")
    direction = serializers.CharField()
    confidence = serializers.DecimalField(max_digits=5, decimal_places=4)
    priceAtPrediction = money_field(source="price_at_prediction")
    targetPrice = money_field(source="target_price", allow_null=True)
    resolvedAt = serializers.DateTimeField(source="resolved_at", allow_null=True)
    actualPrice = money_field(source="actual_price", allow_null=True)
    correct = serializers.BooleanField(allow_null=True)


class StrategyOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    persona = serializers.CharField()
    personaLabel = serializers.CharField(source="get_persona_display")
    parameters = serializers.JSONField()
    symbols = serializers.ListField(child=serializers.CharField())
    intervalSeconds = serializers.IntegerField(source="interval_seconds")
    enabled = serializers.BooleanField()
    lastRunAt = serializers.DateTimeField(source="last_run_at", allow_null=True)
    nextRunAt = serializers.SerializerMethodField()
    lastError = serializers.CharField(source="last_error")
    portfolioId = serializers.UUIDField(source="portfolio_id")

    def get_nextRunAt(self, strategy: Strategy) -> str | None:  # noqa: N802 (DRF names it after the field)
        if not strategy.enabled:
            return None
        if strategy.last_run_at is None:
            return timezone.now().isoformat()
        return (strategy.last_run_at + timedelta(seconds=strategy.interval_seconds)).isoformat()


def _strategies() -> QuerySet[Strategy]:
    recent = PredictionHistory.objects.order_by("-predicted_at")
    return (
        Strategy.objects.select_related("portfolio__user__profile")
        .prefetch_related(Prefetch("predictions", queryset=recent))
        .order_by("name")
    )


def _bot_rows(strategies: list[Strategy]) -> list[dict[str, Any]]:
    summaries = account_summaries(portfolios=[s.portfolio for s in strategies])
    rows = []
    for strategy in strategies:
        user = strategy.portfolio.user
        profile = getattr(user, "profile", None)
        predictions = (
            list(strategy.predictions.all())[:RECENT_PREDICTIONS]
            if strategy.persona == Strategy.Persona.QUANT
            else []
        )
        rows.append(
            {
                "strategy": strategy,
                "username": profile.username if profile is not None and profile.username else user.username,
                "summary": summaries[strategy.portfolio_id],
                "predictions": predictions,
                "accuracy": _accuracy(strategy) if strategy.persona == Strategy.Persona.QUANT else None,
            }
        )
    return rows


def _accuracy(strategy: Strategy) -> Decimal | None:
    outcomes = [p.correct for p in strategy.predictions.all() if p.correct is not None]
    if not outcomes:
        return None
    return (Decimal(sum(outcomes)) / len(outcomes)).quantize(Decimal("0.0001"))


class StrategyListApi(APIView):
    """Every strategy: persona, parameters, schedule, portfolio, last run and last error."""

    @extend_schema(responses={200: StrategyOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(StrategyOutputSerializer(_strategies(), many=True).data)


class BotListApi(APIView):
    """The bots as traders: public name, persona, schedule, account summary at live marks, last
    run and error, and for quants their recent predictions and hit rate."""

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        strategy = StrategyOutputSerializer()
        summary = AccountSummaryOutputSerializer()
        predictions = PredictionOutputSerializer(many=True)
        accuracy = serializers.DecimalField(
            max_digits=5,
            decimal_places=4,
            allow_null=True,
            help_text="Share of resolved predictions that were right (quants only).",
        )

    @extend_schema(responses={200: OutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(_bot_rows(list(_strategies())), many=True).data)


# --- Options ---------------------------------------------------------------------------------


class OptionOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    portfolioId = serializers.UUIDField(source="portfolio_id")
    underlying = serializers.CharField()
    type = serializers.CharField(source="option_type")
    side = serializers.CharField()
    strike = money_field()
    expiry = serializers.DateTimeField()
    quantity = money_field()
    premium = money_field(help_text="Per unit, paid (long) or received (short) at opening.")
    volatility = serializers.DecimalField(max_digits=8, decimal_places=6)
    collateral = money_field()
    status = serializers.CharField()
    settlementPrice = money_field(source="settlement_price", allow_null=True)
    settlementAmount = money_field(
        source="settlement_amount", allow_null=True, help_text="Paid to (+) or by (-) the holder at the end."
    )
    openedAt = serializers.DateTimeField(source="opened_at")
    settledAt = serializers.DateTimeField(source="settled_at", allow_null=True)
    value = serializers.SerializerMethodField(
        method_name="model_value", help_text="Signed model value now; null without a fresh price."
    )

    def model_value(self, option: OptionPosition) -> str | None:
        if option.status != OptionPosition.Status.OPEN:
            return None
        spot = self.context.get("spots", {}).get(option.underlying)
        if spot is None:
            return None
        value = option_value(
            option=option, spot=spot, now=self.context["now"], settings=self.context["settings"]
        )
        return str(value.normalize())


class GreeksOutputSerializer(serializers.Serializer):
    delta = serializers.DecimalField(max_digits=30, decimal_places=12, normalize_output=True)
    gamma = serializers.DecimalField(max_digits=30, decimal_places=12, normalize_output=True)
    vega = serializers.DecimalField(max_digits=30, decimal_places=12, normalize_output=True)
    theta = serializers.DecimalField(max_digits=30, decimal_places=12, normalize_output=True)
    rho = serializers.DecimalField(max_digits=30, decimal_places=12, normalize_output=True)


class OptionContractSerializer(serializers.Serializer):
    underlying = serializers.CharField(max_length=32)
    type = serializers.ChoiceField(choices=OptionPosition.OptionType.choices)
    strike = serializers.DecimalField(max_digits=32, decimal_places=12)
    expiry = serializers.DateTimeField()


def _spots_context(options: Sequence[OptionPosition]) -> dict[str, Any]:
    """What valuing the options needs, read once for the page: the live spots of the open
    options' underlyings, the engine settings (volatility, rate) and the valuation time."""
    open_ = {o.underlying for o in options if o.status == OptionPosition.Status.OPEN}
    return {"spots": mark_prices(sorted(open_)), "settings": engine_settings(), "now": timezone.now()}


class OptionQuoteApi(APIView):
    """Model premium and greeks of one unit at the live spot (vega/rho per 1.00, theta per year)."""

    class OutputSerializer(serializers.Serializer):
        underlying = serializers.CharField()
        type = serializers.CharField(source="option_type")
        strike = money_field()
        expiry = serializers.DateTimeField()
        spot = money_field()
        years = serializers.DecimalField(max_digits=30, decimal_places=12, normalize_output=True)
        volatility = serializers.DecimalField(max_digits=8, decimal_places=6)
        rate = serializers.DecimalField(max_digits=8, decimal_places=6)
        premium = money_field()
        greeks = GreeksOutputSerializer()

    @extend_schema(parameters=[OptionContractSerializer], responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        params = query_params(OptionContractSerializer, request)
        quote = option_quote(
            underlying=params["underlying"],
            option_type=params["type"],
            strike=params["strike"],
            expiry=params["expiry"],
        )
        return Response(self.OutputSerializer(quote).data)


class OptionListApi(APIView):
    """Your option positions (newest first) with their model value; open one at the model premium."""

    class FilterSerializer(serializers.Serializer):
        portfolio = serializers.UUIDField(required=False, help_text="Default: your active portfolio.")
        status = serializers.ChoiceField(choices=OptionPosition.Status.choices, required=False)

    class InputSerializer(StrictSerializer, OptionContractSerializer):
        portfolio = serializers.UUIDField(required=False, help_text="Default: your active portfolio.")
        side = serializers.ChoiceField(choices=PositionSide.choices)
        quantity = serializers.DecimalField(max_digits=32, decimal_places=12)

    @extend_schema(parameters=[FilterSerializer], responses={200: OptionOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        params = query_params(self.FilterSerializer, request)
        portfolio = portfolio_for(request, params.get("portfolio"))
        options = OptionPosition.objects.filter(portfolio=portfolio).order_by("-opened_at", "-id")
        if params.get("status"):
            options = options.filter(status=params["status"])
        return paginated(request, self, options, OptionOutputSerializer, context_for=_spots_context)

    @extend_schema(request=InputSerializer, responses={201: OptionOutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        option = option_open(
            portfolio=portfolio_for(request, data.get("portfolio")),
            underlying=data["underlying"],
            option_type=data["type"],
            side=data["side"],
            strike=data["strike"],
            expiry=data["expiry"],
            quantity=data["quantity"],
        )
        body = OptionOutputSerializer(option, context=_spots_context([option])).data
        return Response(body, status=status.HTTP_201_CREATED)


class OptionCloseApi(APIView):
    """Close one of your open options at its model value now."""

    @extend_schema(request=None, responses={200: OptionOutputSerializer})
    def post(self, request: Request, option_id: Any) -> Response:
        option = OptionPosition.objects.filter(pk=option_id, portfolio__user=request_user(request)).first()
        if option is None:
            raise NotFound("No such option.", option=str(option_id))
        option = option_close(option=option)
        return Response(OptionOutputSerializer(option, context={"spots": {}, "now": timezone.now()}).data)


urlpatterns: list[URLPattern] = [
    path("strategies", StrategyListApi.as_view(), name="strategies"),
    path("bots", BotListApi.as_view(), name="bots"),
    path("options", OptionListApi.as_view(), name="options"),
    path("options/quote", OptionQuoteApi.as_view(), name="option-quote"),
    path("options/<uuid:option_id>/close", OptionCloseApi.as_view(), name="option-close"),
]
