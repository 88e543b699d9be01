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

from apps.trading.exceptions import NotFound
from apps.trading.models import Fill, MarginMode, Order, Portfolio, Side
from apps.trading.selectors_accounts import portfolio_of_user
from apps.trading.services.orders import order_cancel, order_place
from apps.trading.services.portfolios import portfolio_default
from haunt.authentication import request_user
from haunt.pagination import StandardPagination
from haunt.serializers import StrictSerializer


def _money(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=44, decimal_places=12, normalize_output=True, **kwargs)


def _number(**kwargs: Any) -> serializers.DecimalField:
    # Generous on purpose: sign, step size and decimals are the engine's checks, with their own codes.
    return serializers.DecimalField(max_digits=40, decimal_places=20, **kwargs)


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _portfolio_for(request: Request, portfolio_id: UUID | None) -> Portfolio:
    """The caller's portfolio `portfolio_id`, or their active one when not given."""
    user = request_user(request)
    if portfolio_id is None:
        return portfolio_default(user=user)
    return portfolio_of_user(user=user, portfolio_id=portfolio_id)


def _order_of(request: Request, order_id: UUID) -> Order:
    order = Order.objects.filter(pk=order_id, portfolio__user=request_user(request)).first()
    if order is None:
        raise NotFound("No such order.", order=str(order_id))
    return order


class OrderOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    portfolioId = serializers.UUIDField(source="portfolio_id")
    clientOrderId = serializers.CharField(source="client_order_id")
    symbol = serializers.CharField()
    side = serializers.CharField()
    type = serializers.CharField()
    timeInForce = serializers.CharField(source="time_in_force")
    quantity = _money()
    price = _money(allow_null=True)
    stopPrice = _money(source="stop_price", allow_null=True)
    reduceOnly = serializers.BooleanField(source="reduce_only")
    leverage = serializers.IntegerField()
    marginMode = serializers.CharField(source="margin_mode")
    status = serializers.CharField(
        help_text="pending (waiting for its trigger), open (resting), filled, cancelled, rejected, expired."
    )
    filledQuantity = _money(source="filled_quantity")
    averagePrice = _money(source="average_price", allow_null=True)
    fee = _money()
    reservedMargin = _money(source="reserved_margin", help_text="Held from available funds while resting.")
    rejectReason = serializers.CharField(source="reject_reason")
    placedBy = serializers.CharField(source="placed_by")
    createdAt = serializers.DateTimeField(source="created_at")
    triggeredAt = serializers.DateTimeField(source="triggered_at", allow_null=True)
    closedAt = serializers.DateTimeField(source="closed_at", allow_null=True)


class TradeOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    portfolioId = serializers.UUIDField(source="portfolio_id")
    orderId = serializers.UUIDField(source="order_id", allow_null=True)
    positionId = serializers.UUIDField(source="position_id", allow_null=True)
    kind = serializers.CharField(help_text="order or liquidation.")
    symbol = serializers.CharField()
    side = serializers.CharField()
    quantity = _money()
    price = _money()
    fee = _money()
    feeRate = serializers.DecimalField(
        source="fee_rate", max_digits=8, decimal_places=6, normalize_output=True
    )
    isMaker = serializers.BooleanField(source="is_maker")
    realizedPnl = _money(source="realized_pnl")
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
        params = _query(self.FilterSerializer, request)
        orders: QuerySet[Order] = Order.objects.filter(
            portfolio=_portfolio_for(request, params.get("portfolio"))
        ).order_by("-created_at", "-id")
        if params.get("status"):
            orders = orders.filter(status__in=params["status"])
        if params.get("symbol"):
            orders = orders.filter(symbol=params["symbol"].lower())
        paginator = StandardPagination()
        page = paginator.paginate_queryset(orders, request, view=self)
        return paginator.get_paginated_response(OrderOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: OrderOutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        order = order_place(
            portfolio=_portfolio_for(request, data.get("portfolio")),
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
        params = _query(self.FilterSerializer, request)
        trades: QuerySet[Fill] = Fill.objects.filter(
            portfolio=_portfolio_for(request, params.get("portfolio"))
        ).order_by("-executed_at", "-id")
        if params.get("symbol"):
            trades = trades.filter(symbol=params["symbol"].lower())
        if params.get("order"):
            trades = trades.filter(order_id=params["order"])
        paginator = StandardPagination()
        page = paginator.paginate_queryset(trades, request, view=self)
        return paginator.get_paginated_response(TradeOutputSerializer(page, many=True).data)


urlpatterns: list[URLPattern] = [
    path("orders", OrderListCreateApi.as_view(), name="orders"),
    path("orders/<uuid:order_id>", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/cancel", OrderCancelApi.as_view(), name="order-cancel"),
    path("trades", TradeListApi.as_view(), name="trades"),
]
