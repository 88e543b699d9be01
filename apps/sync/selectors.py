"""Sync reads: the links' live state, mesh status, health, queue, conflicts and per-entity stats."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from apps.sync import services as data_plane
from apps.sync.capture import entity_configs
from apps.sync.models import (
    NodeMetric,
    Peer,
    PeerAck,
    SyncConflict,
    SyncDeadLetter,
    SyncFeed,
    current_node_id,
)
from apps.sync.transport import worker_state_key


def stale_after_s() -> float:
    return float(getattr(settings, "HAUNT_SYNC_STALE_AFTER_S", 10))


def json_safe(value: Any) -> Any:
    """Decimals, datetimes and UUIDs as the strings the API shows."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def lanes_known() -> list[int]:
    return list(data_plane.lanes())


def worker_state() -> dict[str, Any] | None:
    """What this node's sync worker last published (None when no worker runs or it went silent)."""
    state = cache.get(worker_state_key())
    return state if isinstance(state, dict) else None


def link_states(*, peers: list[Peer] | None = None) -> list[dict[str, Any]]:
    """Per (peer, lane): the worker's live numbers, the committed cursor and the stale flag."""
    state = worker_state() or {"links": {}}
    peers = peers if peers is not None else list(Peer.objects.filter(enabled=True))
    threshold = stale_after_s()
    rows = []
    for peer in peers:
        for lane in lanes_known():
            live = state["links"].get(f"{peer.name}/{lane}") or {}
            cursor = data_plane.cursor_get(peer=peer.name, lane=lane)
            lag = float(live.get("lagSeconds") or 0.0)
            rows.append(
                {
                    "peer": peer.name,
                    "lane": lane,
                    "cursor": int(cursor),
                    "head": live.get("head"),
                    "lagSeconds": lag,
                    "rowsPerSecond": live.get("rowsPerSecond", 0.0),
                    "batchP99Ms": live.get("batchP99Ms"),
                    "applyLagMs": live.get("applyLagMs"),
                    "latencyMs": live.get("latencyMs"),
                    "clockOffsetMs": live.get("clockOffsetMs"),
                    "breaker": live.get("breaker", "unknown"),
                    "quarantined": bool(live.get("quarantined")),
                    "quarantineReason": live.get("quarantineReason", ""),
                    "lastError": live.get("lastError", ""),
                    "running": bool(live.get("alive")),
                    "stale": lag > threshold or not live,
                }
            )
    return rows


def _edge(peer: Peer, lanes: list[dict[str, Any]], acks: dict[int, int]) -> dict[str, Any]:
    def first(key: str) -> Any:
        return next((lane[key] for lane in lanes if lane[key] is not None), None)

    breakers = {lane["breaker"] for lane in lanes}
    reasons = _link_reasons(lanes)
    return {
        "from": peer.name,
        "to": current_node_id(),
        "url": peer.url,
        "region": peer.region,
        "isPrimary": peer.is_primary,
        "breaker": "open" if "open" in breakers else next(iter(breakers), "unknown"),
        "latencyMs": first("latencyMs"),
        "clockOffsetMs": first("clockOffsetMs"),
        "rowsPerSecond": round(sum(lane["rowsPerSecond"] or 0 for lane in lanes), 1),
        "lagSeconds": max((lane["lagSeconds"] for lane in lanes), default=0.0),
        "stale": any(lane["stale"] for lane in lanes),
        "healthy": not reasons,
        "reasons": reasons,
        "backlog": json_safe(data_plane.backlog_progress(peer=peer.name)),
        "lanes": lanes,
        "peerAcked": {str(lane): seq for lane, seq in sorted(acks.items())},
    }


def _link_reasons(lanes: list[dict[str, Any]]) -> list[str]:
    reasons: list[str] = []
    for lane in lanes:
        where = f"{lane['peer']}/{lane['lane']}"
        if lane["breaker"] in ("open", "half_open"):
            reasons.append(f"breaker_{lane['breaker']}:{where}")
        if lane["quarantined"]:
            reasons.append(f"clock_drift_quarantine:{where}")
        if not lane["running"]:
            reasons.append(f"not_pulling:{where}")
        elif lane["lagSeconds"] > stale_after_s():
            reasons.append(f"stale:{where}")
    return reasons


def mesh_status() -> dict[str, Any]:
    """Nodes, and per peer an edge peer -> this node with lag, throughput, breaker and clock offset."""
    peers = list(Peer.objects.filter(enabled=True))
    states = link_states(peers=peers)
    acks: dict[int, dict[int, int]] = {}
    for ack in PeerAck.objects.filter(peer__in=peers):
        acks.setdefault(ack.peer_id, {})[ack.lane] = ack.seq
    edges = [
        _edge(peer, [s for s in states if s["peer"] == peer.name], acks.get(peer.pk, {})) for peer in peers
    ]
    state = worker_state()
    me = {
        "id": current_node_id(),
        "region": getattr(settings, "HAUNT_NODE_REGION", ""),
        "self": True,
        "isPrimary": False,
        "healthy": True,
    }
    nodes = [me] + [
        {
            "id": e["from"],
            "region": e["region"],
            "self": False,
            "isPrimary": e["isPrimary"],
            "healthy": e["healthy"],
        }
        for e in edges
    ]
    return {
        "node": current_node_id(),
        "generatedAt": timezone.now().isoformat(),
        "staleAfterSeconds": stale_after_s(),
        "stale": any(edge["stale"] for edge in edges),
        "worker": {
            "running": state is not None,
            "pid": state.get("pid") if state else None,
            "updatedAt": state.get("updatedAt") if state else None,
        },
        "nodes": nodes,
        "edges": edges,
        "deadLetters": dead_letter_count(),
        "openConflicts": open_conflict_count(),
    }


def sync_health() -> dict[str, Any]:
    """ok, or degraded with the reasons (worker down, breakers open, quarantines, stale lanes...)."""
    peers = list(Peer.objects.filter(enabled=True))
    reasons: list[str] = []
    if peers and worker_state() is None:
        reasons.append("worker_not_running")
    else:
        reasons.extend(_link_reasons(link_states(peers=peers)))
    dead = dead_letter_count()
    if dead:
        reasons.append(f"dead_letters:{dead}")
    return {
        "status": "degraded" if reasons else "ok",
        "node": current_node_id(),
        "peers": len(peers),
        "reasons": reasons,
    }


def dead_letter_count() -> int:
    return SyncDeadLetter.objects.exclude(status=SyncDeadLetter.Status.RESOLVED).count()


def open_conflict_count() -> int:
    return SyncConflict.objects.filter(status=SyncConflict.Status.OPEN).count()


def row_dict(obj: models.Model) -> dict[str, Any]:
    """Every concrete field of a row, JSON-safe (foreign keys by id)."""
    return json_safe({f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields})


def queue_summary(*, lane: int | None = None, limit: int = 50) -> dict[str, Any]:
    """This node's change feed per lane: rows not yet acknowledged by every peer and their age.

    Peers pull, so "queued" means above the lowest ack of the enabled peers on that lane.
    """
    peers = list(Peer.objects.filter(enabled=True).values_list("pk", flat=True))
    acks: dict[int, list[int]] = {}
    for ack in PeerAck.objects.filter(peer_id__in=peers):
        acks.setdefault(ack.lane, []).append(ack.seq)
    lanes = []
    items: list[dict[str, Any]] = []
    now = timezone.now()
    lane_values = [lane] if lane is not None else lanes_known()
    for lane_value in lane_values:
        lane_acks = acks.get(lane_value, [])
        floor = min(lane_acks) if peers and len(lane_acks) == len(peers) else 0
        # Entries still waiting for their seq (PostgreSQL) are queued whatever their number.
        pending = SyncFeed.objects.filter(Q(seq__gt=floor) | Q(sequenced=False), lane=lane_value)
        aggregates = pending.aggregate(depth=Count("seq"), head=Max("seq"), oldest=Min("changed_at"))
        oldest: datetime | None = aggregates.get("oldest")
        lanes.append(
            {
                "lane": lane_value,
                "depth": aggregates["depth"],
                "head": aggregates["head"],
                "ackedByAll": floor,
                "oldestAgeSeconds": round((now - oldest).total_seconds(), 3) if oldest else None,
            }
        )
        if len(items) < limit:
            items.extend(row_dict(obj) for obj in pending.order_by("seq")[: limit - len(items)])
    return {"depth": sum(lane["depth"] for lane in lanes), "lanes": lanes, "items": items}


def conflicts_query(
    *,
    status: str | None = None,
    entity: str | None = None,
    strategy: str | None = None,
    since: datetime | None = None,
) -> QuerySet[Any]:
    """Conflicts, newest first, filtered."""
    queryset = SyncConflict.objects.all()
    for name, value in (("status", status), ("entity", entity), ("strategy", strategy)):
        if value:
            queryset = queryset.filter(**{name: value})
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    return queryset.order_by("-created_at")


def replicated_models() -> dict[str, type[models.Model]]:
    """Entity name -> model of every replicated entity (from the data plane's entity settings)."""
    return {entity: config.model for entity, config in entity_configs().items() if config.enabled}


def sync_stats() -> dict[str, Any]:
    """Per entity type: rows here, feed rows, conflicts; and conflicts per strategy and outcome."""
    feed_counts = dict(
        SyncFeed.objects.values_list("entity").annotate(n=Count("pk")).values_list("entity", "n")
    )
    conflict_counts = dict(
        SyncConflict.objects.values_list("entity").annotate(n=Count("pk")).values_list("entity", "n")
    )
    by_strategy: dict[str, dict[str, int]] = {}
    for strategy, status_value, n in (
        SyncConflict.objects.values_list("strategy", "status")
        .annotate(n=Count("pk"))
        .values_list("strategy", "status", "n")
    ):
        by_strategy.setdefault(str(strategy), {})[str(status_value)] = n
    entities = []
    for entity, model in sorted(replicated_models().items()):
        entities.append(
            {
                "entity": entity,
                "rows": model._default_manager.count(),
                "feedRows": feed_counts.get(entity, 0),
                "conflicts": conflict_counts.get(entity, 0),
            }
        )
    return {
        "node": current_node_id(),
        "entities": entities,
        "conflictsByStrategy": by_strategy,
        "deadLetters": dead_letter_count(),
    }


def metrics_latest() -> list[NodeMetric]:
    """The newest sample of every (peer, lane)."""
    latest = NodeMetric.objects.values("peer_id", "lane").annotate(last=Max("sampled_at"))
    wanted = {(row["peer_id"], row["lane"], row["last"]) for row in latest}
    if not wanted:
        return []
    since = min(row[2] for row in wanted)
    return [
        m
        for m in NodeMetric.objects.filter(sampled_at__gte=since)
        .select_related("peer")
        .order_by("peer__name", "lane")
        if (m.peer_id, m.lane, m.sampled_at) in wanted
    ]


def metrics_history(*, peer: str | None, lane: int | None, minutes: int) -> QuerySet[NodeMetric]:
    queryset = NodeMetric.objects.filter(sampled_at__gte=timezone.now() - timedelta(minutes=minutes))
    if peer:
        queryset = queryset.filter(peer__name=peer)
    if lane is not None:
        queryset = queryset.filter(lane=lane)
    return queryset.select_related("peer").order_by("-sampled_at")
