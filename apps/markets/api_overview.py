"""Market overview API: listings (CoinMarketCap's shape), asset detail, global metrics, Fear & Greed
(alternative.me's shape) and top movers.

Third-party shapes keep their providers' conventions (snake_case, JSON numbers), including the
`haunt` block Haunt adds to them; Haunt's own shapes are camelCase with Decimal strings. Every
provider-backed response carries `X-Haunt-Stale: true` when the provider just failed and an
older cached answer is served instead.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.markets.api import PriceOutputSerializer
from apps.markets.services.overview import (
    LISTING_DEPTH,
    Cached,
    market_asset,
    market_fear_greed,
    market_global_metrics,
    market_listings,
    market_movers,
)

STALE_HEADER = "X-Haunt-Stale"
STALE_DESCRIPTION = (
    "Cached up to 5 minutes. When the provider fails, the last answer is served with "
    f"`{STALE_HEADER}: true` (and a 503 `unavailable` envelope when there is none)."
)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _response(data: Any, cached: Cached) -> Response:
    return Response(data, headers={STALE_HEADER: "true" if cached.stale else "false"})


def _source_block(cached: Cached) -> dict[str, Any]:
    return {"provider": cached.provider, "cached_at": _iso(cached.fetched_at_dt), "stale": cached.stale}


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)  # 400 `invalid` envelope
    return dict(serializer.validated_data)


# --- Documentation of the third-party shapes (responses are passed through, not serialized) --


class HauntSourceSerializer(serializers.Serializer):
    provider = serializers.CharField(help_text="coinmarketcap, coingecko or alternative.me")
    cached_at = serializers.CharField(help_text="When the provider answered (ISO 8601, UTC).")
    stale = serializers.BooleanField(help_text="True when the provider failed and this is an older answer.")


class CmcUsdQuoteSerializer(serializers.Serializer):
    price = serializers.FloatField(help_text="Haunt's live price when `haunt.live`, else the provider's.")
    volume_24h = serializers.FloatField(allow_null=True)
    percent_change_1h = serializers.FloatField(allow_null=True)
    percent_change_24h = serializers.FloatField(allow_null=True)
    percent_change_7d = serializers.FloatField(allow_null=True)
    market_cap = serializers.FloatField(allow_null=True)
    fully_diluted_market_cap = serializers.FloatField(allow_null=True, required=False)
    last_updated = serializers.CharField(allow_null=True)


class CmcQuoteSerializer(serializers.Serializer):
    USD = CmcUsdQuoteSerializer()


class CmcHauntRowSerializer(serializers.Serializer):
    symbol = serializers.CharField(allow_null=True, help_text="Haunt's symbol for the coin (btc).")
    live = serializers.BooleanField(help_text="True when the USD price is Haunt's fresh live price.")
    sources = serializers.ListField(child=serializers.CharField())
    price_timestamp = serializers.IntegerField(allow_null=True, help_text="Live price time, ms.")


class CmcListingSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="CoinMarketCap id (null if unknown).")
    name = serializers.CharField()
    symbol = serializers.CharField()
    slug = serializers.CharField()
    cmc_rank = serializers.IntegerField(allow_null=True)
    circulating_supply = serializers.FloatField(allow_null=True)
    total_supply = serializers.FloatField(allow_null=True)
    max_supply = serializers.FloatField(allow_null=True)
    last_updated = serializers.CharField(allow_null=True)
    quote = CmcQuoteSerializer()
    haunt = CmcHauntRowSerializer()


class CmcStatusSerializer(serializers.Serializer):
    timestamp = serializers.CharField()
    error_code = serializers.IntegerField()
    error_message = serializers.CharField(allow_null=True)
    elapsed = serializers.IntegerField()
    credit_count = serializers.IntegerField()
    notice = serializers.CharField(allow_null=True)
    total_count = serializers.IntegerField()


# --- Views ------------------------------------------------------------------------------------


class MarketListingsApi(APIView):
    """Top coins by market cap in CoinMarketCap's `/v1/cryptocurrency/listings/latest` shape.

    From CoinMarketCap when HAUNT_COINMARKETCAP_API_KEY is set, else from CoinGecko; each row's
    USD price and 24 h change are Haunt's live ones when fresh (see the row's `haunt` block).
    """

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        start = serializers.IntegerField(min_value=1, max_value=LISTING_DEPTH, default=1)
        limit = serializers.IntegerField(min_value=1, max_value=LISTING_DEPTH, default=100)

    class OutputSerializer(serializers.Serializer):
        status = CmcStatusSerializer()
        # The metaclass pops declared fields off the class, so this does not shadow Serializer.data.
        data = CmcListingSerializer(many=True)  # type: ignore[assignment]
        haunt = HauntSourceSerializer()

    @extend_schema(
        parameters=[InputSerializer],
        responses={200: OpenApiResponse(OutputSerializer, description=STALE_DESCRIPTION)},
    )
    def get(self, request: Request) -> Response:
        began = time.monotonic()
        params = _query(self.InputSerializer, request)
        listings = market_listings(**params)
        cached = listings.source
        notice = None
        if cached.stale:
            notice = f"Provider unavailable; data as of {_iso(cached.fetched_at_dt)}."
        status = {
            "timestamp": _iso(datetime.now(UTC)),
            "error_code": 0,
            "error_message": None,
            "elapsed": int((time.monotonic() - began) * 1000),
            "credit_count": 0,
            "notice": notice,
            "total_count": listings.total,
        }
        return _response({"status": status, "data": listings.rows, "haunt": _source_block(cached)}, cached)


class MarketAssetDetailApi(APIView):
    """One listed coin by Haunt symbol, ticker or slug (`btc`, `BTC`, `bitcoin`) with its live price."""

    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        symbol = serializers.CharField(allow_null=True, help_text="Haunt's symbol (null if unmapped).")
        listing = CmcListingSerializer(help_text="The listing row, as in /api/market/listings.")
        livePrice = PriceOutputSerializer(allow_null=True, help_text="Haunt's live price, stale or not.")
        sources = serializers.ListField(child=serializers.CharField(), help_text="Live price sources.")
        provider = serializers.CharField()
        fetchedAt = serializers.DateTimeField()
        stale = serializers.BooleanField(help_text="The provider failed; the listing is an older answer.")

    @extend_schema(responses={200: OpenApiResponse(OutputSerializer, description=STALE_DESCRIPTION)})
    def get(self, request: Request, symbol: str) -> Response:
        asset = market_asset(symbol=symbol)  # UnknownSymbol -> 404 envelope
        price = asset.live_price
        data = {
            "symbol": asset.symbol,
            "listing": asset.listing,  # passed through: a CoinMarketCap row keeps all its fields
            "livePrice": PriceOutputSerializer(price).data if price is not None else None,
            "sources": list(price.sources) if price is not None else [],
            "provider": asset.source.provider,
            "fetchedAt": _iso(asset.source.fetched_at_dt),
            "stale": asset.source.stale,
        }
        return _response(data, asset.source)


def _decimal_field(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=40, decimal_places=18, normalize_output=True, allow_null=True, **kwargs
    )


class MarketGlobalApi(APIView):
    """Global market metrics (CoinGecko `/global`): market cap, volume, dominance, coin count."""

    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        totalMarketCapUsd = _decimal_field()
        totalVolume24hUsd = _decimal_field()
        marketCapChangePercent24hUsd = _decimal_field()
        btcDominance = _decimal_field(help_text="Bitcoin's share of the total market cap, percent.")
        ethDominance = _decimal_field(help_text="Ether's share of the total market cap, percent.")
        activeCryptocurrencies = serializers.IntegerField(allow_null=True)
        markets = serializers.IntegerField(allow_null=True)
        updatedAt = serializers.DateTimeField(allow_null=True, help_text="The provider's update time.")
        provider = serializers.CharField()
        fetchedAt = serializers.DateTimeField()
        stale = serializers.BooleanField()

    @extend_schema(responses={200: OpenApiResponse(OutputSerializer, description=STALE_DESCRIPTION)})
    def get(self, request: Request) -> Response:
        metrics, cached = market_global_metrics()
        return _response(self.OutputSerializer(metrics).data, cached)


class FearGreedValueSerializer(serializers.Serializer):
    value = serializers.CharField(help_text="0 (extreme fear) to 100 (extreme greed), as a string.")
    value_classification = serializers.CharField()
    timestamp = serializers.CharField(help_text="Unix seconds, as a string.")
    time_until_update = serializers.CharField(required=False, help_text="Seconds; newest value only.")


class FearGreedMetadataSerializer(serializers.Serializer):
    error = serializers.CharField(allow_null=True)


class MarketFearGreedApi(APIView):
    """The Crypto Fear & Greed index in alternative.me's `/fng/` shape, newest first."""

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=1, help_text="Days.")

    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        data = FearGreedValueSerializer(many=True)  # type: ignore[assignment]  # as above
        metadata = FearGreedMetadataSerializer()
        haunt = HauntSourceSerializer()

    @extend_schema(
        parameters=[InputSerializer],
        responses={200: OpenApiResponse(OutputSerializer, description=STALE_DESCRIPTION)},
    )
    def get(self, request: Request) -> Response:
        params = _query(self.InputSerializer, request)
        body, cached = market_fear_greed(**params)
        return _response({**body, "haunt": _source_block(cached)}, cached)


class MarketMoversApi(APIView):
    """Top gainers and losers over 24 h among Haunt's fresh live prices (stale ones left out)."""

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=100, default=10)

    class OutputSerializer(serializers.Serializer):
        gainers = PriceOutputSerializer(many=True, help_text="Largest 24 h rise first.")
        losers = PriceOutputSerializer(many=True, help_text="Largest 24 h fall first.")

    @extend_schema(parameters=[InputSerializer], responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        params = _query(self.InputSerializer, request)
        return Response(self.OutputSerializer(market_movers(**params)).data)
