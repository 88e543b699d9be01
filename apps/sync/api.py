"""Sync API under /api/sync/.

Peer endpoints (HMAC-signed, zstd JSON both ways, signed answers): feed, ack, buckets, rows.
Monitoring endpoints (staff token or session): health, metrics, queue, conflicts (+ resolve),
mesh-status, stats, and POST force.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.sync import services as data_plane
from apps.sync.auth import NONCE_HEADER, IsPeer, PeerHmacAuthentication, request_peer, response_sign
from apps.sync.clients import ELAPSED_HEADER, TIME_HEADER
from apps.sync.models import SyncConflict
from apps.sync.selectors import (
    conflicts_query,
    link_states,
    mesh_status,
    metrics_history,
    metrics_latest,
    queue_summary,
    row_dict,
    sync_health,
    sync_stats,
)
from apps.sync.tasks import sync_reconcile_task
from apps.sync.transport import (
    MAX_WAIT_S,
    ZSTD,
    PayloadInvalid,
    body_decode,
    body_encode,
    feed_page_wait,
    peer_ack_record,
    sync_force_request,
)
from apps.trading.exceptions import NotFound
from haunt.errors import DomainError
from haunt.pagination import StandardPagination
from haunt.serializers import StrictSerializer

MAX_PAGE_ROWS = 5000
MAX_EXPORT_IDS = 5000


class SyncRequestInvalid(DomainError):
    code = "invalid"
    http_status = 400

    def __init__(self, message: str, *, code: str = "invalid", **detail: Any) -> None:
        super().__init__(message, **detail)
        self.code = code


class UnknownEntity(DomainError):
    code = "unknown_entity"
    http_status = 400


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- Peer endpoints --------------------------------------------------------------------------


class PeerApi(APIView):
    """Base of the endpoints other nodes call: HMAC auth, raw zstd bodies, signed answers."""

    authentication_classes = [PeerHmacAuthentication]
    permission_classes = [IsPeer]
    throttle_classes: list[type] = []  # peers pull many pages a second; the signature gates access
    parser_classes: list[type] = []  # bodies are zstd JSON, decoded by payload()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self._started = time.perf_counter()
        super().initial(request, *args, **kwargs)

    def payload(self, request: Request) -> Any:
        try:
            return body_decode(request.body, content_encoding=request.headers.get("Content-Encoding"))
        except PayloadInvalid as exc:
            raise SyncRequestInvalid(exc.message, code=exc.code) from None

    def signed(self, request: Request, payload: Any, *, status_code: int = 200) -> HttpResponse:
        body = body_encode(payload)
        response = HttpResponse(body, status=status_code, content_type="application/json")
        response["Content-Encoding"] = ZSTD
        response[TIME_HEADER] = str(int(time.time() * 1000))
        response[ELAPSED_HEADER] = f"{(time.perf_counter() - self._started) * 1000:.3f}"
        headers = response_sign(
            secret=request_peer(request).secret,
            status=status_code,
            request_nonce=request.headers.get(NONCE_HEADER, ""),
            body=body,
        )
        for name, value in headers.items():
            response[name] = value
        return response


def _entity_call(name: str, **kwargs: Any) -> Any:
    try:
        return getattr(data_plane, name)(**kwargs)
    except (KeyError, LookupError, ValueError) as exc:
        raise UnknownEntity(
            f"Unknown or unsupported entity {kwargs.get('entity')!r}.", reason=str(exc)
        ) from None


class SyncFeedApi(PeerApi):
    """A page of this node's change feed on one lane after `since`, long-polled up to `wait` s.

    Rows the caller wrote itself are left out (exclude_origin), but the cursor still moves past them.
    """

    class InputSerializer(StrictSerializer):
        lane = serializers.IntegerField(min_value=0, max_value=32767)
        since = serializers.IntegerField(min_value=0)
        limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_ROWS, default=1000)
        wait = serializers.FloatField(min_value=0, max_value=60, default=0)

    @extend_schema(parameters=[InputSerializer], responses={200: None})
    def get(self, request: Request) -> HttpResponse:
        params = _valid(self.InputSerializer, request.query_params)
        page = feed_page_wait(
            lane=params["lane"],
            since=params["since"],
            limit=params["limit"],
            wait=min(params["wait"], MAX_WAIT_S),
            exclude_origin=request_peer(request).name,
        )
        return self.signed(request, page)


class SyncAckApi(PeerApi):
    """The caller has applied this node's feed up to `seq` on each lane (drives tombstone GC)."""

    class AckSerializer(StrictSerializer):
        lane = serializers.IntegerField(min_value=0, max_value=32767)
        seq = serializers.IntegerField(min_value=0)

    class InputSerializer(StrictSerializer):
        acks = serializers.ListField(child=serializers.DictField(), min_length=1, max_length=256)

    @extend_schema(request=InputSerializer, responses={200: None})
    def post(self, request: Request) -> HttpResponse:
        data = _valid(self.InputSerializer, self.payload(request))
        acks = [_valid(self.AckSerializer, ack) for ack in data["acks"]]
        moved = peer_ack_record(peer=request_peer(request), acks=acks)
        return self.signed(request, {"moved": moved})


class SyncBucketsApi(PeerApi):
    """Bucket checksums of one entity (anti-entropy)."""

    class InputSerializer(StrictSerializer):
        entity = serializers.CharField(max_length=64)
        buckets = serializers.IntegerField(min_value=1, max_value=65536, default=256)

    @extend_schema(parameters=[InputSerializer], responses={200: None})
    def get(self, request: Request) -> HttpResponse:
        params = _valid(self.InputSerializer, request.query_params)
        checksums = _entity_call("bucket_checksums", entity=params["entity"], buckets=params["buckets"])
        return self.signed(request, {"entity": params["entity"], "buckets": list(checksums)})


class SyncRowsApi(PeerApi):
    """GET: [id, version, hlc] of one bucket's rows. POST {entity, ids}: those rows as a page."""

    class ListSerializer(StrictSerializer):
        entity = serializers.CharField(max_length=64)
        bucket = serializers.IntegerField(min_value=0)
        buckets = serializers.IntegerField(min_value=1, max_value=65536, default=256)

    class ExportSerializer(StrictSerializer):
        entity = serializers.CharField(max_length=64)
        ids = serializers.ListField(
            child=serializers.CharField(max_length=64), min_length=1, max_length=MAX_EXPORT_IDS
        )

    @extend_schema(parameters=[ListSerializer], responses={200: None})
    def get(self, request: Request) -> HttpResponse:
        params = _valid(self.ListSerializer, request.query_params)
        rows = _entity_call(
            "bucket_rows", entity=params["entity"], bucket=params["bucket"], buckets=params["buckets"]
        )
        return self.signed(
            request, {"entity": params["entity"], "bucket": params["bucket"], "rows": list(rows)}
        )

    @extend_schema(request=ExportSerializer, responses={200: None})
    def post(self, request: Request) -> HttpResponse:
        params = _valid(self.ExportSerializer, self.payload(request))
        page = _entity_call("rows_export", entity=params["entity"], ids=params["ids"])
        return self.signed(request, page)


# --- Monitoring (staff) ----------------------------------------------------------------------


class StaffApi(APIView):
    permission_classes = [IsAdminUser]


class SyncHealthApi(StaffApi):
    """ok, or degraded with reasons (worker down, breaker open, clock-drift quarantine, stale lane)."""

    class OutputSerializer(serializers.Serializer):
        # A CharField, not a ChoiceField: the same ok/degraded enum on /api/health would collide
        # in the OpenAPI schema.
        status = serializers.CharField(help_text="ok or degraded")
        node = serializers.CharField()
        peers = serializers.IntegerField()
        reasons = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(sync_health()).data)


class NodeMetricOutputSerializer(serializers.Serializer):
    sampledAt = serializers.DateTimeField(source="sampled_at")
    peer = serializers.CharField(source="peer.name")
    lane = serializers.IntegerField()
    cursor = serializers.IntegerField()
    head = serializers.IntegerField(allow_null=True)
    lagSeconds = serializers.FloatField(source="lag_seconds")
    rowsPerSecond = serializers.FloatField(source="rows_per_second")
    batchP99Ms = serializers.FloatField(source="batch_p99_ms", allow_null=True)
    latencyMs = serializers.FloatField(source="latency_ms", allow_null=True)
    breaker = serializers.CharField(source="breaker_state")
    clockOffsetMs = serializers.FloatField(source="clock_offset_ms", allow_null=True)
    queueDepth = serializers.IntegerField(source="queue_depth")
    backlogPercent = serializers.FloatField(source="backlog_percent", allow_null=True)
    healthy = serializers.BooleanField()
    reason = serializers.CharField()


class SyncMetricsApi(StaffApi):
    """Live link numbers from the worker, the latest 10 s samples, and (with `minutes`) history."""

    class InputSerializer(StrictSerializer):
        peer = serializers.CharField(max_length=32, required=False)
        lane = serializers.IntegerField(min_value=0, required=False)
        minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, required=False)

    @extend_schema(parameters=[InputSerializer], responses={200: None})
    def get(self, request: Request) -> Response:
        params = _valid(self.InputSerializer, request.query_params)
        body: dict[str, Any] = {
            "links": link_states(),
            "latest": NodeMetricOutputSerializer(metrics_latest(), many=True).data,
        }
        if "minutes" in params:
            history = metrics_history(
                peer=params.get("peer"), lane=params.get("lane"), minutes=params["minutes"]
            )
            body["history"] = NodeMetricOutputSerializer(history[:5000], many=True).data
        return Response(body)


class SyncQueueApi(StaffApi):
    """This node's feed per lane: depth not yet acknowledged by every peer, oldest item age, items."""

    class InputSerializer(StrictSerializer):
        lane = serializers.IntegerField(min_value=0, required=False)
        limit = serializers.IntegerField(min_value=0, max_value=500, default=50)

    @extend_schema(parameters=[InputSerializer], responses={200: None})
    def get(self, request: Request) -> Response:
        params = _valid(self.InputSerializer, request.query_params)
        return Response(queue_summary(lane=params.get("lane"), limit=params["limit"]))


class SyncConflictListApi(StaffApi):
    """Conflicts, newest first; filter by status, entity, strategy, since."""

    class InputSerializer(StrictSerializer):
        status = serializers.CharField(max_length=16, required=False)
        entity = serializers.CharField(max_length=64, required=False)
        strategy = serializers.CharField(max_length=32, required=False)
        since = serializers.DateTimeField(required=False)
        page = serializers.IntegerField(min_value=1, required=False)
        page_size = serializers.IntegerField(min_value=1, max_value=500, required=False)

    @extend_schema(parameters=[InputSerializer], responses={200: None})
    def get(self, request: Request) -> Response:
        params = _valid(self.InputSerializer, request.query_params)
        queryset = conflicts_query(
            status=params.get("status"),
            entity=params.get("entity"),
            strategy=params.get("strategy"),
            since=params.get("since"),
        )
        paginator = StandardPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([row_dict(conflict) for conflict in page or []])


class SyncConflictResolveApi(StaffApi):
    """Resolve a conflict by hand: keep the local or the remote version, or a merged one.

    The resolution is a new write with a newer clock, so it replicates to every node.
    """

    class InputSerializer(StrictSerializer):
        choice = serializers.ChoiceField(choices=["local", "remote", "merged"])
        merged = serializers.DictField(required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs["choice"] == "merged" and not attrs.get("merged"):
                raise serializers.ValidationError({"merged": ["Required when choice is merged."]})
            return attrs

    @extend_schema(
        request=InputSerializer,
        responses={200: inline_serializer("SyncConflict", {"id": serializers.CharField()})},
    )
    def post(self, request: Request, id: str) -> Response:
        params = _valid(self.InputSerializer, request.data)
        conflict = SyncConflict.objects.filter(pk=id).first()
        if conflict is None:
            raise NotFound("No such conflict.", id=id)
        resolved = data_plane.conflict_resolve(
            conflict=conflict, choice=params["choice"], merged=params.get("merged"), actor=request.user
        )
        return Response(row_dict(resolved))


class SyncMeshStatusApi(StaffApi):
    """Nodes and edges (peer -> this node) with latency, lag and throughput per lane, breaker state,
    clock offset, backlog progress and a `stale` flag (lag above HAUNT_SYNC_STALE_AFTER_S)."""

    @extend_schema(responses={200: None})
    def get(self, request: Request) -> Response:
        return Response(mesh_status())


class SyncStatsApi(StaffApi):
    """Per entity type: rows on this node, feed rows, conflicts; conflicts per strategy."""

    @extend_schema(responses={200: None})
    def get(self, request: Request) -> Response:
        return Response(sync_stats())


class SyncForceApi(StaffApi):
    """Wake the worker for an immediate pull cycle (breakers reset); optionally queue a reconciliation."""

    class InputSerializer(StrictSerializer):
        reconcile = serializers.BooleanField(default=False)
        peers = serializers.ListField(child=serializers.CharField(max_length=32), required=False)

    class OutputSerializer(serializers.Serializer):
        forced = serializers.IntegerField(help_text="The force counter the worker watches.")
        reconcileQueued = serializers.BooleanField()

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer})
    def post(self, request: Request) -> Response:
        params = _valid(self.InputSerializer, request.data)
        forced = sync_force_request()
        if params["reconcile"]:
            peers = params.get("peers")
            transaction.on_commit(lambda: sync_reconcile_task.delay(peers=peers))
        body = {"forced": forced, "reconcileQueued": params["reconcile"]}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)
