"""Seeding API: ask for a symbol's chart history to be backfilled."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.markets.models import SeedingJob
from apps.markets.services.seeding import seeding_job_request


class SeedingJobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    symbol = serializers.CharField()
    status = serializers.ChoiceField(choices=SeedingJob.Status.choices)
    progress = serializers.IntegerField(help_text="Percent, 0-100.")
    message = serializers.CharField()
    failedSources = serializers.ListField(
        source="failed_sources",
        child=serializers.CharField(),
        help_text="coingecko, cryptocompare_hourly, cryptocompare_daily",
    )
    createdAt = serializers.DateTimeField(source="created_at")


class SeedingJobCreateApi(APIView):
    """Backfill a symbol's chart history (e.g. `btc`) from CoinGecko and CryptoCompare.

    Returns the symbol's pending or running job if there is one, else a new one. Progress is
    pushed as `seeding_progress` frames to /ws/prices clients subscribed to the symbol.
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={202: SeedingJobOutputSerializer})
    def post(self, request: Request, id: str) -> Response:
        job = seeding_job_request(symbol=id, requested_by="api")  # UnknownSymbol -> 404
        return Response(SeedingJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)
