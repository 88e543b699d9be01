"""Trading REST API: orders and trades (fills). camelCase keys, Decimal amounts as strings.

Orders go to the caller's active portfolio unless `portfolio` names another of theirs; lists
read the same portfolio. Another user's order or portfolio is a 404.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.urls import URLPattern, path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.trading.api_common import OrderOutputSerializer, money_field, paginated, portfolio_for, query_params
from apps.trading.exceptions import NotFound
from apps.trading.models import Fill, MarginMode, Order, Side
from apps.trading.services.orders import order_cancel, order_place
from haunt.authentication import request_user
from haunt.serializers import StrictSerializer


def _number(**kwargs: Any) -> serializers.DecimalField:
    # Generous on purpose: sign, step size and decimals are the engine's checks, with their own codes.
    return serializers.DecimalField(max_digits=40, decimal_places=20, **kwargs)


def _order_of(request: Request, order_id: UUID) -> Order:
    order = Order.objects.filter(pk=order_id, portfolio__user=request_user(request)).first()
    if order is None:
        raise NotFound("No such order.", order=str(order_id))
    return order


class TradeOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    portfolioId = serializers.UUIDField(source="portfolio_id")
    orderId = serializers.UUIDField(source="order_id", allow_null=True)
    positionId = serializers.UUIDField(source="position_id", allow_null=True)
    kind = serializers.CharField(help_text="order or liquidation.")
    symbol = serializers.CharField()
    side = serializers.CharField()
    quantity = money_field()
    price = money_field()
    fee = money_field()
    feeRate = serializers.DecimalField(
        source="fee_rate", max_digits=8, decimal_places=6, normalize_output=True
    )
    isMaker = serializers.BooleanField(source="is_maker")
    realizedPnl = money_field(source="realized_pnl")
    executedAt = serializers.DateTimeField(source="executed_at")


class OrderListCreateApi(APIView):
    """Place an order (POST) or list your orders, newest first (GET)."""

    class InputSerializer(StrictSerializer):
        portfolio = serializers.UUIDField(required=False, help_text="Default: your active portfolio.")
        symbol = serializers.CharField(max_length=32)
        side = serializers.ChoiceField(choices=Side.choices)
        type = serializers.ChoiceField(choices=Order.Type.choices)
        quantity = _number()
        price = _number(required=False, allow_null=True, help_text="Limit price (limit types).")
        stopPrice = _number(
            required=False, allow_null=True, help_text="Trigger (stop and take-profit types)."
        )
        timeInForce = serializers.ChoiceField(
            choices=Order.TimeInForce.choices, default=Order.TimeInForce.GTC
        )
        reduceOnly = serializers.BooleanField(default=False)
        leverage = serializers.IntegerField(
            required=False, allow_null=True, help_text="For a new position; an open one keeps its own."
        )
        marginMode = serializers.ChoiceField(choices=MarginMode.choices, required=False, allow_null=True)
        clientOrderId = serializers.CharField(
            max_length=64, required=False, help_text="Idempotency key: a retry returns the same order."
        )

    class FilterSerializer(serializers.Serializer):
        portfolio = serializers.UUIDField(required=False)
        status = serializers.CharField(required=False, help_text="One status or several, comma-separated.")
        symbol = serializers.CharField(max_length=32, required=False)

        def validate_status(self, value: str) -> list[str]:
            statuses = [item.strip() for item in value.split(",") if item.strip()]
            unknown = sorted(set(statuses) - set(Order.Status.values))
            if unknown:
                raise serializers.ValidationError(f"Unknown status: {', '.join(unknown)}.")
            return statuses

    @extend_schema(parameters=[FilterSerializer], responses={200: OrderOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        params = query_params(self.FilterSerializer, request)
        orders: QuerySet[Order] = Order.objects.filter(
            portfolio=portfolio_for(request, params.get("portfolio"))
        ).order_by("-created_at", "-id")
        if params.get("status"):
            orders = orders.filter(status__in=params["status"])
        if params.get("symbol"):
            orders = orders.filter(symbol=params["symbol"].lower())
        return paginated(request, self, orders, OrderOutputSerializer)

    @extend_schema(request=InputSerializer, responses={201: OrderOutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        order = order_place(
            portfolio=portfolio_for(request, data.get("portfolio")),
            symbol=data["symbol"],
            side=data["side"],
            type=data["type"],
            quantity=data["quantity"],
            price=data.get("price"),
            stop_price=data.get("stopPrice"),
            time_in_force=data["timeInForce"],
            reduce_only=data["reduceOnly"],
            leverage=data.get("leverage"),
            margin_mode=data.get("marginMode"),
            client_order_id=data.get("clientOrderId"),
            placed_by="user",
        )
        return Response(OrderOutputSerializer(order).data, status=status.HTTP_201_CREATED)


class OrderDetailApi(APIView):
    """One of your orders."""

    @extend_schema(responses={200: OrderOutputSerializer})
    def get(self, request: Request, order_id: UUID) -> Response:
        return Response(OrderOutputSerializer(_order_of(request, order_id)).data)


class OrderCancelApi(APIView):
    """Cancel one of your resting (open or pending) orders; its reserved margin is released."""

    @extend_schema(request=None, responses={200: OrderOutputSerializer})
    def post(self, request: Request, order_id: UUID) -> Response:
        order = order_cancel(order=_order_of(request, order_id), actor=f"user:{request_user(request).pk}")
        return Response(OrderOutputSerializer(order).data)


class TradeListApi(APIView):
    """Your trades (fills of your orders and liquidations), newest first."""

    class FilterSerializer(serializers.Serializer):
        portfolio = serializers.UUIDField(required=False)
        symbol = serializers.CharField(max_length=32, required=False)
        order = serializers.UUIDField(required=False)

    @extend_schema(parameters=[FilterSerializer], responses={200: TradeOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        params = query_params(self.FilterSerializer, request)
        trades: QuerySet[Fill] = Fill.objects.filter(
            portfolio=portfolio_for(request, params.get("portfolio"))
        ).order_by("-executed_at", "-id")
        if params.get("symbol"):
            trades = trades.filter(symbol=params["symbol"].lower())
        if params.get("order"):
            trades = trades.filter(order_id=params["order"])
        return paginated(request, self, trades, TradeOutputSerializer)


urlpatterns: list[URLPattern] = [
    path("orders", OrderListCreateApi.as_view(), name="orders"),
    path("orders/<uuid:order_id>", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/cancel", OrderCancelApi.as_view(), name="order-cancel"),
    path("trades", TradeListApi.as_view(), name="trades"),
]
