"""Exchange latency and dominance API (public)."""

from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.markets.services.dominance import HISTORY_SPANS, dominance_get
from apps.markets.services.latency import MAX_WINDOW_S, WINDOW_S, latency_stats_get

_SYMBOL = re.compile(r"^[a-z0-9]{1,32}$")


def _ms(name: str, help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(
        source=name, max_digits=12, decimal_places=1, allow_null=True, help_text=help_text
    )


class ExchangeLatencySerializer(serializers.Serializer):
    exchange = serializers.CharField()
    name = serializers.CharField()
    method = serializers.CharField(allow_null=True, help_text="ws (ping/pong) or rest (time endpoint).")
    samples = serializers.IntegerField()
    failures = serializers.IntegerField()
    minMs = _ms("min_ms", "Fastest successful probe in the window.")
    avgMs = _ms("avg_ms", "Mean of the successful probes in the window.")
    maxMs = _ms("max_ms", "Slowest successful probe in the window.")
    lastMs = _ms("last_ms", "Latest probe; null when it failed.")
    lastAt = serializers.DateTimeField(source="last_at", allow_null=True)
    lastError = serializers.CharField(source="last_error", help_text="Empty when the latest probe succeeded.")


class BestNodeSerializer(serializers.Serializer):
    node = serializers.CharField()
    avgMs = serializers.DecimalField(source="avg_ms", max_digits=12, decimal_places=1)


class ExchangeLatencyApi(APIView):
    """Latency to each exchange over the last window: this node, every node with samples, the best node.

    The best node per exchange is the one with the lowest average among the nodes whose samples
    are in this database (this node's own, plus peers' once they are replicated).
    """

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        window = serializers.IntegerField(
            required=False, default=WINDOW_S, min_value=10, max_value=MAX_WINDOW_S
        )

    class OutputSerializer(serializers.Serializer):
        node = serializers.CharField()
        windowSeconds = serializers.IntegerField(source="window_seconds")
        exchanges = ExchangeLatencySerializer(many=True)
        nodes = serializers.DictField(child=ExchangeLatencySerializer(many=True), help_text="Per node id.")
        best = serializers.DictField(child=BestNodeSerializer(), help_text="Per exchange slug.")

    @extend_schema(
        parameters=[
            OpenApiParameter("window", int, description=f"Seconds, 10 to {MAX_WINDOW_S}; default {WINDOW_S}.")
        ],
        responses={200: OutputSerializer},
    )
    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        view = latency_stats_get(window_s=params.validated_data["window"])
        return Response(self.OutputSerializer(view).data)


class ExchangeShareSerializer(serializers.Serializer):
    exchange = serializers.CharField()
    name = serializers.CharField()
    volume24hUsd = serializers.DecimalField(source="volume_24h_usd", max_digits=32, decimal_places=2)
    sharePercent = serializers.DecimalField(source="share_percent", max_digits=7, decimal_places=4)


class DominancePointSerializer(serializers.Serializer):
    takenAt = serializers.DateTimeField(source="taken_at")
    exchanges = ExchangeShareSerializer(many=True)


class ExchangeDominanceApi(APIView):
    """Each exchange's share of 24 h USD volume, globally or for one symbol, with its history.

    Volume = each exchange's reported 24 h base volume x the aggregated price; only exchanges
    whose tickers report a 24 h volume count, price aggregators never do. Current shares are
    computed live (`basis: live`), else taken from the latest snapshot (`basis: snapshot`).
    """

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        symbol = serializers.CharField(required=False, max_length=32)
        history = serializers.ChoiceField(choices=list(HISTORY_SPANS), required=False)

        def validate_symbol(self, value: str) -> str:
            value = value.lower()
            if not _SYMBOL.match(value):
                raise serializers.ValidationError("Letters and digits only, e.g. btc.")
            return value

    class OutputSerializer(serializers.Serializer):
        symbol = serializers.CharField(allow_null=True, help_text="Null for the global shares.")
        basis = serializers.ChoiceField(choices=["live", "snapshot", "none"])
        at = serializers.DateTimeField(allow_null=True)
        totalVolume24hUsd = serializers.DecimalField(
            source="total_volume_24h_usd", max_digits=34, decimal_places=2
        )
        exchanges = ExchangeShareSerializer(many=True)
        history = DominancePointSerializer(many=True, help_text="Oldest first; empty unless asked.")

    @extend_schema(
        parameters=[
            OpenApiParameter("symbol", str, description="e.g. btc; omit for the global shares."),
            OpenApiParameter("history", str, enum=list(HISTORY_SPANS), description="Span of history."),
        ],
        responses={200: OutputSerializer},
    )
    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        view = dominance_get(
            symbol=params.validated_data.get("symbol"), history=params.validated_data.get("history")
        )
        return Response(self.OutputSerializer(view).data)
