from __future__ import annotations

from django.urls import path

from apps.sync import api

app_name = "sync"

urlpatterns = [
    # Peer endpoints (HMAC)
    path("feed", api.SyncFeedApi.as_view(), name="feed"),
    path("ack", api.SyncAckApi.as_view(), name="ack"),
    path("buckets", api.SyncBucketsApi.as_view(), name="buckets"),
    path("rows", api.SyncRowsApi.as_view(), name="rows"),
    # Monitoring (staff)
    path("health", api.SyncHealthApi.as_view(), name="health"),
    path("metrics", api.SyncMetricsApi.as_view(), name="metrics"),
    path("queue", api.SyncQueueApi.as_view(), name="queue"),
    path("conflicts", api.SyncConflictListApi.as_view(), name="conflicts"),
    path("conflicts/<str:id>/resolve", api.SyncConflictResolveApi.as_view(), name="conflict-resolve"),
    path("mesh-status", api.SyncMeshStatusApi.as_view(), name="mesh-status"),
    path("stats", api.SyncStatsApi.as_view(), name="stats"),
    path("force", api.SyncForceApi.as_view(), name="force"),
]
