"""Trading REST API: positions (list, detail with risk, close, margin, leverage), leverage
history, liquidations and margin history.

Haunt's own shapes: camelCase keys, Decimal amounts as strings. Another user's position is a 404
and nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.urls import URLPattern, path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.trading.api_common import OrderOutputSerializer, money_field, paginated, query_params
from apps.trading.engine import margin
from apps.trading.exceptions import NotFound
from apps.trading.models import LeverageChange, Liquidation, MarginHistory, Position
from apps.trading.selectors import mark_prices
from apps.trading.services.orders import position_close
from apps.trading.services.positions import position_leverage_change, position_margin_adjust
from apps.trading.services.risk import position_risk
from haunt.authentication import request_user
from haunt.serializers import StrictSerializer


def _ratio(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=40, decimal_places=12, normalize_output=True, **kwargs)


def _actor(user: User) -> str:
    return f"user:{user.pk}"


def _position_of(user: User, position_id: Any) -> Position:
    """The caller's position, else NotFound (another user's position does not exist for them)."""
    position = Position.objects.filter(pk=position_id, portfolio__user=user).first()
    if position is None:
        raise NotFound("No such position.", position_id=str(position_id))
    return position


class PositionOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    portfolioId = serializers.UUIDField(source="portfolio_id")
    symbol = serializers.CharField()
    side = serializers.CharField()
    quantity = money_field()
    entryPrice = money_field(source="entry_price")
    leverage = serializers.IntegerField()
    marginMode = serializers.CharField(source="margin_mode")
    isolatedMargin = money_field(source="isolated_margin", help_text="The isolated wallet (0 in cross mode).")
    liquidationPrice = money_field(
        source="liquidation_price", allow_null=True, help_text="Null: cannot liquidate."
    )
    realizedPnl = money_field(source="realized_pnl")
    feesPaid = money_field(source="fees_paid")
    fundingPaid = money_field(source="funding_paid")
    status = serializers.CharField()
    openedAt = serializers.DateTimeField(source="opened_at")
    closedAt = serializers.DateTimeField(source="closed_at", allow_null=True)
    leverageChangedAt = serializers.DateTimeField(source="leverage_changed_at", allow_null=True)
    markPrice = serializers.SerializerMethodField(help_text="Live mark (null without a fresh price).")
    unrealizedPnl = serializers.SerializerMethodField()

    def _mark(self, position: Position) -> Decimal | None:
        if position.status != Position.Status.OPEN:
            return None
        return self.context.get("marks", {}).get(position.symbol)

    def get_markPrice(self, position: Position) -> str | None:  # noqa: N802 (named after the field)
        mark = self._mark(position)
        return None if mark is None else f"{mark.normalize():f}"

    def get_unrealizedPnl(self, position: Position) -> str | None:  # noqa: N802
        mark = self._mark(position)
        if mark is None:
            return None
        pnl = margin.unrealized_pnl(position.side, position.quantity, position.entry_price, mark)
        return f"{pnl.normalize():f}"


class RiskOutputSerializer(serializers.Serializer):
    markPrice = money_field(source="mark")
    notional = money_field()
    initialMargin = money_field(source="initial_margin")
    maintenanceMargin = money_field(source="maintenance_margin")
    unrealizedPnl = money_field(source="unrealized_pnl")
    marginBalance = money_field(
        source="margin_balance", help_text="Isolated: wallet + UPnL; cross: cash + Σ UPnL."
    )
    marginRatio = _ratio(
        source="margin_ratio", allow_null=True, help_text="MM / margin balance; 1 liquidates."
    )
    liquidationPrice = money_field(source="liquidation_price", allow_null=True)
    bankruptcyPrice = money_field(source="bankruptcy_price", allow_null=True)
    maxRemovable = money_field(source="max_removable", help_text="Isolated margin that can be removed now.")
    maxNotional = money_field(
        source="max_notional", help_text="Largest notional the current leverage allows."
    )


def _position_body(position: Position) -> dict[str, Any]:
    """The position with its risk figures at the live mark (risk is null without a fresh mark)."""
    marks = mark_prices([position.symbol]) if position.status == Position.Status.OPEN else {}
    body = dict(PositionOutputSerializer(position, context={"marks": marks}).data)
    mark = marks.get(position.symbol)
    body["risk"] = None if mark is None else RiskOutputSerializer(position_risk(position, mark=mark)).data
    return body


def _marks_context(page: Sequence[Position]) -> dict[str, Any]:
    """The live marks of the open positions of a page, fetched in one read."""
    return {"marks": mark_prices(sorted({p.symbol for p in page if p.status == Position.Status.OPEN}))}


class PositionListApi(APIView):
    """Your positions, newest first (filter by status, symbol, portfolio)."""

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Position.Status.choices, required=False)
        symbol = serializers.CharField(max_length=32, required=False)
        portfolio = serializers.UUIDField(required=False)

    @extend_schema(parameters=[FilterSerializer], responses={200: PositionOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        filters = query_params(self.FilterSerializer, request)
        rows = Position.objects.filter(portfolio__user=request_user(request)).order_by("-opened_at", "-id")
        if "status" in filters:
            rows = rows.filter(status=filters["status"])
        if "symbol" in filters:
            rows = rows.filter(symbol=filters["symbol"].lower())
        if "portfolio" in filters:
            rows = rows.filter(portfolio_id=filters["portfolio"])
        return paginated(request, self, rows, PositionOutputSerializer, context_for=_marks_context)


class PositionDetailApi(APIView):
    """One of your positions with margins, margin ratio, liquidation and bankruptcy prices at the
    live mark (`risk` is null when the position is not open or no fresh price exists)."""

    @extend_schema(responses={200: PositionOutputSerializer})
    def get(self, request: Request, position_id: str) -> Response:
        position = _position_of(request_user(request), position_id)
        return Response(_position_body(position))


class PositionCloseApi(APIView):
    """Close the whole position with a reduce-only market order."""

    @extend_schema(request=None, responses={201: OrderOutputSerializer})
    def post(self, request: Request, position_id: str) -> Response:
        position = _position_of(request_user(request), position_id)
        order = position_close(position=position, placed_by="user")
        return Response(OrderOutputSerializer(order).data, status=status.HTTP_201_CREATED)


class PositionMarginApi(APIView):
    """Add or remove isolated margin: {"amount": "100"} / {"amount": "-100"}, or
    {"type": "add" | "remove", "amount": "100"}."""

    class InputSerializer(StrictSerializer):
        type = serializers.ChoiceField(choices=["add", "remove"], required=False)
        amount = serializers.DecimalField(max_digits=32, decimal_places=12)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            kind = attrs.get("type")
            if kind is not None:
                if attrs["amount"] <= 0:
                    raise serializers.ValidationError({"amount": ["Must be positive when a type is given."]})
                if kind == "remove":
                    attrs["amount"] = -attrs["amount"]
            return attrs

    @extend_schema(request=InputSerializer, responses={200: PositionOutputSerializer})
    def post(self, request: Request, position_id: str) -> Response:
        user = request_user(request)
        position = _position_of(user, position_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        position = position_margin_adjust(
            position=position, amount=serializer.validated_data["amount"], actor=_actor(user)
        )
        return Response(_position_body(position))


class LeverageChangeOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    positionId = serializers.UUIDField(source="position_id")
    actor = serializers.CharField()
    oldLeverage = serializers.IntegerField(source="old_leverage")
    requestedLeverage = serializers.IntegerField(source="requested_leverage")
    newLeverage = serializers.IntegerField(source="new_leverage")
    marginMode = serializers.CharField(source="margin_mode")
    policy = serializers.CharField()
    markPrice = money_field(source="mark_price", allow_null=True)
    marginDelta = money_field(source="margin_delta")
    initialMarginBefore = money_field(source="initial_margin_before", allow_null=True)
    initialMarginAfter = money_field(source="initial_margin_after", allow_null=True)
    maintenanceMarginBefore = money_field(source="maintenance_margin_before", allow_null=True)
    maintenanceMarginAfter = money_field(source="maintenance_margin_after", allow_null=True)
    liquidationPriceBefore = money_field(source="liquidation_price_before", allow_null=True)
    liquidationPriceAfter = money_field(source="liquidation_price_after", allow_null=True)
    outcome = serializers.CharField()
    errorCode = serializers.CharField(source="error_code")
    idempotencyKey = serializers.CharField(source="idempotency_key")
    createdAt = serializers.DateTimeField(source="created_at")


class PositionLeverageApi(APIView):
    """Change an open position's leverage (Binance POST /fapi/v1/leverage semantics; see research
    §1.11). Refusals carry a stable code (invalid_leverage, leverage_cooldown [429 with
    Retry-After], volatility_guard, max_leverage_ratio, isolated_leverage_reduction,
    insufficient_margin, would_liquidate) and are audited like successes."""

    class InputSerializer(StrictSerializer):
        # Any JSON value: the service validates it, so a malformed leverage is audited too.
        leverage = serializers.JSONField()
        idempotencyKey = serializers.CharField(max_length=64, required=False, allow_blank=True)

    class OutputSerializer(serializers.Serializer):
        symbol = serializers.CharField(source="position.symbol")
        leverage = serializers.IntegerField(source="position.leverage")
        changed = serializers.BooleanField()
        maxNotional = money_field(source="max_notional", help_text="maxNotionalValue at this leverage.")
        auditId = serializers.UUIDField(source="audit.id")

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def put(self, request: Request, position_id: str) -> Response:
        user = request_user(request)
        position = _position_of(user, position_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = serializer.validated_data.get("idempotencyKey") or request.headers.get("Idempotency-Key", "")
        result = position_leverage_change(
            position=position,
            leverage=serializer.validated_data["leverage"],
            actor=_actor(user),
            idempotency_key=key[:64],
        )
        body = dict(self.OutputSerializer(result).data)
        body["position"] = _position_body(result.position)
        return Response(body)


class PositionLeverageHistoryApi(APIView):
    """Every modify-leverage request on one of your positions, accepted or refused, newest first."""

    @extend_schema(responses={200: LeverageChangeOutputSerializer(many=True)})
    def get(self, request: Request, position_id: str) -> Response:
        position = _position_of(request_user(request), position_id)
        rows = LeverageChange.objects.filter(position=position).order_by("-created_at", "-id")
        return paginated(request, self, rows, LeverageChangeOutputSerializer)


class LiquidationOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    positionId = serializers.UUIDField(source="position_id")
    portfolioId = serializers.UUIDField(source="portfolio_id")
    symbol = serializers.CharField()
    side = serializers.CharField()
    marginMode = serializers.CharField(source="margin_mode")
    quantity = money_field()
    entryPrice = money_field(source="entry_price")
    markPrice = money_field(source="mark_price")
    liquidationPrice = money_field(source="liquidation_price", allow_null=True)
    bankruptcyPrice = money_field(source="bankruptcy_price")
    marginLost = money_field(source="margin_lost")
    fee = money_field(help_text="Clearance fee booked to the insurance fund.")
    insuranceFundDelta = money_field(
        source="insurance_fund_delta", help_text="+ the fund gained, - it covered."
    )
    liquidatedAt = serializers.DateTimeField(source="liquidated_at")


class LiquidationListApi(APIView):
    """Your liquidations, newest first (filter by symbol, portfolio)."""

    class FilterSerializer(serializers.Serializer):
        symbol = serializers.CharField(max_length=32, required=False)
        portfolio = serializers.UUIDField(required=False)

    @extend_schema(parameters=[FilterSerializer], responses={200: LiquidationOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        filters = query_params(self.FilterSerializer, request)
        rows = Liquidation.objects.filter(portfolio__user=request_user(request)).order_by(
            "-liquidated_at", "-id"
        )
        if "symbol" in filters:
            rows = rows.filter(symbol=filters["symbol"].lower())
        if "portfolio" in filters:
            rows = rows.filter(portfolio_id=filters["portfolio"])
        return paginated(request, self, rows, LiquidationOutputSerializer)


class MarginHistoryOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    positionId = serializers.UUIDField(source="position_id")
    portfolioId = serializers.UUIDField(source="portfolio_id")
    symbol = serializers.CharField(source="position.symbol")
    deltaType = serializers.CharField(source="delta_type")
    amount = money_field(help_text="Signed change of the position's margin.")
    marginAfter = money_field(source="margin_after")
    leverage = serializers.IntegerField()
    createdAt = serializers.DateTimeField(source="created_at")


class MarginHistoryListApi(APIView):
    """Every change to your positions' margin, newest first (filter by symbol, position,
    portfolio, type)."""

    class FilterSerializer(serializers.Serializer):
        symbol = serializers.CharField(max_length=32, required=False)
        position = serializers.UUIDField(required=False)
        portfolio = serializers.UUIDField(required=False)
        type = serializers.ChoiceField(choices=MarginHistory.DeltaType.choices, required=False)

    @extend_schema(parameters=[FilterSerializer], responses={200: MarginHistoryOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        filters = query_params(self.FilterSerializer, request)
        rows = (
            MarginHistory.objects.filter(portfolio__user=request_user(request))
            .select_related("position")
            .order_by("-created_at", "-id")
        )
        if "symbol" in filters:
            rows = rows.filter(position__symbol=filters["symbol"].lower())
        if "position" in filters:
            rows = rows.filter(position_id=filters["position"])
        if "portfolio" in filters:
            rows = rows.filter(portfolio_id=filters["portfolio"])
        if "type" in filters:
            rows = rows.filter(delta_type=filters["type"])
        return paginated(request, self, rows, MarginHistoryOutputSerializer)


urlpatterns: list[URLPattern] = [
    path("positions", PositionListApi.as_view(), name="positions"),
    path("positions/<uuid:position_id>", PositionDetailApi.as_view(), name="position-detail"),
    path("positions/<uuid:position_id>/close", PositionCloseApi.as_view(), name="position-close"),
    path("positions/<uuid:position_id>/margin", PositionMarginApi.as_view(), name="position-margin"),
    path("positions/<uuid:position_id>/leverage", PositionLeverageApi.as_view(), name="position-leverage"),
    path(
        "positions/<uuid:position_id>/leverage-history",
        PositionLeverageHistoryApi.as_view(),
        name="position-leverage-history",
    ),
    path("liquidations", LiquidationListApi.as_view(), name="liquidations"),
    path("margin-history", MarginHistoryListApi.as_view(), name="margin-history"),
]
