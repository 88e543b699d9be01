"""Market data API: latest aggregated prices and source health."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.markets.exceptions import PriceUnavailable, UnknownSymbol
from apps.markets.selectors import price_latest, prices_all, sources_status
from haunt.shared_cache import PublicCacheMixin


class PriceOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="symbol")
    symbol = serializers.CharField()
    price = serializers.DecimalField(max_digits=40, decimal_places=18, normalize_output=True)
    previousPrice = serializers.DecimalField(
        source="previous_price", max_digits=40, decimal_places=18, normalize_output=True, allow_null=True
    )
    tradeDirection = serializers.CharField(source="direction")
    # The metaclass pops declared fields off the class, so this does not shadow Field.source.
    source = serializers.CharField()  # type: ignore[assignment]
    sources = serializers.ListField(child=serializers.CharField())
    timestamp = serializers.IntegerField(help_text="Newest contributing source time, ms since the epoch.")
    volume24h = serializers.DecimalField(
        source="volume_24h", max_digits=40, decimal_places=18, normalize_output=True, allow_null=True
    )
    change24h = serializers.DecimalField(
        source="change_24h", max_digits=40, decimal_places=18, normalize_output=True, allow_null=True
    )
    changePercent24h = serializers.DecimalField(
        source="change_percent_24h", max_digits=12, decimal_places=2, allow_null=True
    )
    stale = serializers.BooleanField(help_text="True when no source has reported for 30 s.")


class PriceListApi(PublicCacheMixin, APIView):
    """Latest aggregated price of every symbol."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: PriceOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        prices = sorted(prices_all(), key=lambda p: p.symbol)
        return Response(PriceOutputSerializer(prices, many=True).data)


class PriceDetailApi(PublicCacheMixin, APIView):
    """Latest aggregated price of one symbol (e.g. `btc`)."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: PriceOutputSerializer})
    def get(self, request: Request, symbol: str) -> Response:
        try:
            price = price_latest(symbol=symbol.lower())
        except PriceUnavailable:
            raise UnknownSymbol(f"No price for {symbol!r}.", symbol=symbol) from None
        return Response(PriceOutputSerializer(price).data)


class SourceListApi(APIView):
    """Every price source, its weight and its health (healthy, degraded, down, disabled)."""

    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        slug = serializers.CharField()
        name = serializers.CharField()
        kind = serializers.CharField()
        enabled = serializers.BooleanField()
        weight = serializers.DecimalField(max_digits=4, decimal_places=2)
        state = serializers.ChoiceField(choices=["healthy", "degraded", "down", "disabled"])
        detail = serializers.DictField(help_text="Last report: errors, counters, timestamps.")

    @extend_schema(responses={200: OutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(sources_status(), many=True).data)
