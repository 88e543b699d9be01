"""Pieces the trading API modules share: field helpers, query parsing, the caller's portfolio,
pagination, and the order output shape (REST and bootstrap alike)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.trading.models import Portfolio
from apps.trading.selectors_accounts import portfolio_of_user
from apps.trading.services.portfolios import portfolio_default
from haunt.authentication import request_user
from haunt.pagination import StandardPagination


def money_field(**kwargs: Any) -> serializers.DecimalField:
    """A stored amount (12 decimals) written as a normalized string."""
    return serializers.DecimalField(max_digits=44, decimal_places=12, normalize_output=True, **kwargs)


def query_params(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The validated query string (400 `invalid` envelope otherwise)."""
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def portfolio_for(request: Request, portfolio_id: UUID | str | None) -> Portfolio:
    """The caller's portfolio `portfolio_id` (another user's is NotFound), or their active one
    (created on first use) when not given."""
    user = request_user(request)
    if portfolio_id is None:
        return portfolio_default(user=user)
    return portfolio_of_user(user=user, portfolio_id=portfolio_id)


def paginated(
    request: Request,
    view: APIView,
    rows: QuerySet[Any],
    output: type[serializers.Serializer],
    *,
    context_for: Callable[[Sequence[Any]], dict[str, Any]] | None = None,
) -> Response:
    """One page of `rows` serialized by `output`; `context_for(page)` gives the serializer context
    (e.g. the live marks of the page's symbols, fetched once)."""
    paginator = StandardPagination()
    page = paginator.paginate_queryset(rows, request, view=view) or []
    context = context_for(page) if context_for is not None else {}
    return paginator.get_paginated_response(output(page, many=True, context=context).data)


class OrderOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    portfolioId = serializers.UUIDField(source="portfolio_id")
    clientOrderId = serializers.CharField(source="client_order_id")
    symbol = serializers.CharField()
    side = serializers.CharField()
    type = serializers.CharField()
    timeInForce = serializers.CharField(source="time_in_force")
    quantity = money_field()
    price = money_field(allow_null=True)
    stopPrice = money_field(source="stop_price", allow_null=True)
    reduceOnly = serializers.BooleanField(source="reduce_only")
    leverage = serializers.IntegerField()
    marginMode = serializers.CharField(source="margin_mode")
    status = serializers.CharField(
        help_text="pending (waiting for its trigger), open (resting), filled, cancelled, rejected, expired."
    )
    filledQuantity = money_field(source="filled_quantity")
    averagePrice = money_field(source="average_price", allow_null=True)
    fee = money_field()
    reservedMargin = money_field(
        source="reserved_margin", help_text="Held from available funds while resting."
    )
    rejectReason = serializers.CharField(source="reject_reason")
    placedBy = serializers.CharField(source="placed_by")
    createdAt = serializers.DateTimeField(source="created_at")
    triggeredAt = serializers.DateTimeField(source="triggered_at", allow_null=True)
    closedAt = serializers.DateTimeField(source="closed_at", allow_null=True)
