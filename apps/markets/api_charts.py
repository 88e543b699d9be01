"""Chart read APIs: Haunt's chart (`/api/crypto/{id}/chart`), Binance-format klines
(`/api/market/klines`) and a TradingView UDF datafeed (`/api/udf/...`). All public.

The chart body is assembled and cached by the service as plain JSON; the OutputSerializer
documents its shape without re-serializing hundreds of points on every (cached) request.
"""

from __future__ import annotations

import time
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.markets import candles as ohlc
from apps.markets.models import AGGREGATE_SOURCE
from apps.markets.services.charts import RANGES
from apps.markets.services.datafeeds import (
    KLINES_LIMIT_DEFAULT,
    UDF_HISTORY_MAX,
    UDF_SEARCH_MAX,
    klines_get,
    udf_config,
    udf_history,
    udf_search,
    udf_symbol_info,
)
from apps.markets.services.seeding import chart_get_or_seed
from haunt.shared_cache import PublicCacheMixin

# Open times in ms stay below this (year ~2255); larger values would overflow BIGINT columns.
MAX_TIME_MS = 2**53
MAX_TIME_S = MAX_TIME_MS // 1000


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _decimal_string(help_text: str) -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text=help_text)


# --- Chart -----------------------------------------------------------------------------------


class ChartPointSerializer(serializers.Serializer):
    time = serializers.IntegerField(help_text="Bucket open time, ms since the epoch (UTC).")
    open = _decimal_string("Decimal string; null when missing.")
    high = _decimal_string("Decimal string; null when missing.")
    low = _decimal_string("Decimal string; null when missing.")
    close = _decimal_string("Decimal string; null when missing.")
    volume = _decimal_string("Decimal string (0 when interpolated); null when missing.")
    status = serializers.ChoiceField(
        choices=["real", "interpolated", "missing", "forming"],
        help_text="real: stored or live data; interpolated: a gap of 1-2 buckets, linear between its "
        "neighbours; missing: a longer gap (null values); forming: the current, open bucket.",
    )


class ChartSeedingSerializer(serializers.Serializer):
    jobId = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["pending", "in_progress", "completed", "failed"])
    progress = serializers.IntegerField(min_value=0, max_value=100)
    message = serializers.CharField(allow_blank=True)
    createdAt = serializers.DateTimeField(allow_null=True)
    finishedAt = serializers.DateTimeField(allow_null=True)


class ChartApi(PublicCacheMixin, APIView):
    """OHLC buckets of a Haunt symbol (`btc`): 1h = 60 x 1 min, 4h = 48 x 5 min, 1d = 288 x 5 min,
    1w = 168 x 1 h, 1m = 720 x 1 h. The last point is the forming bucket."""

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        range = serializers.ChoiceField(choices=list(RANGES), default="1d")

    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        symbol = serializers.CharField()
        range = serializers.ChoiceField(choices=list(RANGES))
        interval = serializers.ChoiceField(choices=list(ohlc.INTERVALS))
        bucketMs = serializers.IntegerField()
        # `from` is a Python keyword: declared below through the fields mapping.
        to = serializers.IntegerField(help_text="End of the forming bucket (exclusive), ms.")
        candles = ChartPointSerializer(many=True)
        dataCompleteness = serializers.FloatField(
            help_text="Percent of the closed buckets with real data (the forming one is not counted)."
        )
        realBuckets = serializers.IntegerField()
        interpolatedBuckets = serializers.IntegerField()
        missingBuckets = serializers.IntegerField()
        expectedBuckets = serializers.IntegerField(help_text="Closed buckets in the range (points - 1).")
        needsSeeding = serializers.BooleanField(
            help_text="Under 90 % complete and no seeding job pending or running."
        )
        seeding = ChartSeedingSerializer(allow_null=True, help_text="The symbol's latest seeding job.")
        historyBuiltAt = serializers.IntegerField(help_text="When the closed buckets were assembled, ms.")
        generatedAt = serializers.IntegerField(help_text="ms since the epoch.")

        def get_fields(self) -> dict[str, serializers.Field]:
            fields = super().get_fields()
            fields["from"] = serializers.IntegerField(help_text="Open time of the first bucket, ms.")
            return fields

    @extend_schema(parameters=[InputSerializer], responses={200: OutputSerializer})
    def get(self, request: Request, id: str) -> Response:
        params = _query(self.InputSerializer, request)
        return Response(chart_get_or_seed(symbol=id, range_name=params["range"]))


# --- Binance klines --------------------------------------------------------------------------

KLINE_ROW_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "array",
        "description": "[openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, "
        "takerBuyBase, takerBuyQuote, ignore]: times in ms, decimals as strings.",
        "items": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    },
}


class KlinesApi(PublicCacheMixin, APIView):
    """Candles in Binance's `/api/v3/klines` array format.

    `source` picks the candles: `haunt` (default; Haunt symbols such as `btc`, live bucket
    included) or an exchange slug whose imported candles are served under the exchange's own
    symbol (`source=binance&symbol=XRPETH`).
    """

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        symbol = serializers.CharField(max_length=32)
        interval = serializers.ChoiceField(choices=list(ohlc.INTERVALS))
        startTime = serializers.IntegerField(min_value=0, max_value=MAX_TIME_MS, required=False)
        endTime = serializers.IntegerField(min_value=0, max_value=MAX_TIME_MS, required=False)
        limit = serializers.IntegerField(
            min_value=1, default=KLINES_LIMIT_DEFAULT, help_text="Default 500; above 1000 counts as 1000."
        )
        # The metaclass pops declared fields off the class, so this does not shadow Field.source.
        source = serializers.RegexField(  # type: ignore[assignment]
            r"^[a-z0-9][a-z0-9_-]{0,31}$", max_length=32, default=AGGREGATE_SOURCE
        )

    @extend_schema(parameters=[InputSerializer], responses={200: OpenApiResponse(KLINE_ROW_SCHEMA)})
    def get(self, request: Request) -> Response:
        params = _query(self.InputSerializer, request)
        rows = klines_get(
            symbol=params["symbol"],
            interval=params["interval"],
            source=params["source"],
            start_ms=params.get("startTime"),
            end_ms=params.get("endTime"),
            limit=params["limit"],
        )
        return Response(rows)


# --- TradingView UDF -------------------------------------------------------------------------


class UdfApi(APIView):
    """Base of the UDF views: errors carry UDF's `{"s": "error", "errmsg"}` beside Haunt's envelope."""

    permission_classes = [AllowAny]

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        data = response.data
        if response.status_code >= 400 and isinstance(data, dict) and isinstance(data.get("error"), dict):
            response.data = {**data, "s": "error", "errmsg": data["error"].get("message", "")}
        return response


OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": True}


class UdfConfigApi(UdfApi):
    """UDF `/config`: resolutions 1, 5, 15, 60, 240, 1D; search supported, no group requests."""

    @extend_schema(responses={200: OpenApiResponse(OBJECT_SCHEMA)})
    def get(self, request: Request) -> Response:
        return Response(udf_config())


class UdfSymbolsApi(UdfApi):
    """UDF `/symbols?symbol=`: a LibrarySymbolInfo (`BTC`, `HAUNT:BTC`, `BINANCE:XRPETH`)."""

    class InputSerializer(serializers.Serializer):
        symbol = serializers.CharField(max_length=80)

    @extend_schema(parameters=[InputSerializer], responses={200: OpenApiResponse(OBJECT_SCHEMA)})
    def get(self, request: Request) -> Response:
        params = _query(self.InputSerializer, request)
        return Response(udf_symbol_info(name=params["symbol"]))


class UdfSearchApi(UdfApi):
    """UDF `/search?query=&type=&exchange=&limit=`."""

    class InputSerializer(serializers.Serializer):
        query = serializers.CharField(max_length=80, required=False, default="", allow_blank=True)
        type = serializers.CharField(max_length=32, required=False, default="", allow_blank=True)
        exchange = serializers.CharField(max_length=32, required=False, default="", allow_blank=True)
        limit = serializers.IntegerField(min_value=1, max_value=UDF_SEARCH_MAX, default=30)

    @extend_schema(
        parameters=[InputSerializer],
        responses={200: OpenApiResponse({"type": "array", "items": OBJECT_SCHEMA})},
    )
    def get(self, request: Request) -> Response:
        params = _query(self.InputSerializer, request)
        return Response(
            udf_search(
                query=params["query"],
                type_=params["type"],
                exchange=params["exchange"],
                limit=params["limit"],
            )
        )


class UdfHistoryApi(PublicCacheMixin, UdfApi):
    """UDF `/history`: bars with from <= t < to in unix seconds, or the `countback` bars before
    `to` (countback wins). `{"s": "ok", "t", "o", "h", "l", "c", "v"}` or
    `{"s": "no_data", "nextTime"}`."""

    class InputSerializer(serializers.Serializer):
        symbol = serializers.CharField(max_length=80)
        resolution = serializers.CharField(max_length=8)
        to = serializers.IntegerField(min_value=0, max_value=MAX_TIME_S)
        countback = serializers.IntegerField(
            min_value=1, required=False, help_text=f"At most {UDF_HISTORY_MAX}."
        )

        def get_fields(self) -> dict[str, serializers.Field]:
            fields = super().get_fields()
            fields["from"] = serializers.IntegerField(min_value=0, max_value=MAX_TIME_S, required=False)
            return fields

    @extend_schema(parameters=[InputSerializer], responses={200: OpenApiResponse(OBJECT_SCHEMA)})
    def get(self, request: Request) -> Response:
        params = _query(self.InputSerializer, request)
        return Response(
            udf_history(
                symbol=params["symbol"],
                resolution=params["resolution"],
                to_s=params["to"],
                from_s=params.get("from"),
                countback=params.get("countback"),
            )
        )


class UdfTimeApi(UdfApi):
    """UDF `/time`: the server time as a bare number of unix seconds."""

    @extend_schema(responses={200: OpenApiResponse({"type": "integer"})})
    def get(self, request: Request) -> Response:
        return Response(int(time.time()))
