"""Sync state changes outside the apply path: manual conflict resolution, tombstone purge and the
periodic cleanup of the conflict log and dead letters."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from apps.sync.apply import ApplyResult, batch_apply, dead_letters_retry, repair_apply
from apps.sync.capture import config_for_entity
from apps.sync.feed import backlog_progress, cursor_get, feed_page, lanes, page_rebase, page_verify
from apps.sync.hlc import clock
from apps.sync.models import SyncConflict, SyncDeadLetter, SyncFeed, SyncTombstone
from apps.sync.reconcile import bucket_checksums, bucket_rows, rows_export
from apps.sync.resolve import NOT_CONTENT, STAMP_KEYS, vv_join
from apps.trading.exceptions import ChecksumMismatch, ClockDrift, ConflictNotOpen, InvalidResolution

DEFAULT_CONFLICT_RETENTION_DAYS = 30
CONFLICT_RETENTION_ENTITY = "sync_history"

__all__ = [
    "ApplyResult",
    "ChecksumMismatch",
    "ClockDrift",
    "backlog_progress",
    "batch_apply",
    "bucket_checksums",
    "bucket_rows",
    "conflict_resolve",
    "cursor_get",
    "dead_letters_retry",
    "feed_page",
    "lanes",
    "page_rebase",
    "page_verify",
    "queue_cleanup",
    "repair_apply",
    "rows_export",
    "tombstones_purge",
]


def _actor_name(actor: Any) -> str:
    if actor is None:
        return "system"
    username = getattr(actor, "get_username", None)
    return f"user:{username()}" if callable(username) else str(actor)[:150]


@transaction.atomic
def conflict_resolve(
    *, conflict: SyncConflict, choice: str, merged: dict[str, Any] | None = None, actor: Any = None
) -> SyncConflict:
    """Settle a conflict by hand with a new write of the row: "local" keeps the row as this node
    has it now, "remote" takes the other version of the conflict (the one not in force here),
    "merged" applies `merged` (column: value) over the current row.

    The write is an ordinary local write whose HLC is above both versions and whose version vector
    covers both, so it replicates and wins everywhere; the conflict row is marked resolved (a
    replicated write too).
    """
    if choice not in ("local", "remote", "merged"):
        raise InvalidResolution("choice must be local, remote or merged.", choice=choice)
    if choice == "merged" and not merged:
        raise InvalidResolution("A merged resolution needs the merged values.")
    conflict = SyncConflict.objects.select_for_update().get(pk=conflict.pk)
    if conflict.status == SyncConflict.Status.RESOLVED:
        raise ConflictNotOpen("This conflict is already resolved.", conflict=str(conflict.pk))
    config = config_for_entity(conflict.entity)
    if config is None:
        raise InvalidResolution(f"{conflict.entity!r} is not a replicated entity here.")
    model = config.model
    row = model._default_manager.select_for_update().filter(pk=conflict.row_id).first()
    in_force = conflict.result_data
    other_deleted = conflict.a_deleted if in_force == conflict.b_data else conflict.b_deleted
    other = conflict.a_data if in_force == conflict.b_data else conflict.b_data
    if choice == "remote" and other_deleted:
        if row is not None:
            row.delete()
    else:
        values: dict[str, Any] = {}
        if choice == "remote":
            values = {k: v for k, v in other.items() if k not in NOT_CONTENT}
        elif choice == "merged":
            values = dict(merged or {})
        row = _row_write(model=model, row=row, row_id=conflict.row_id, values=values, conflict=conflict)
    clock().after(max(conflict.a_hlc, conflict.b_hlc))
    conflict.status = SyncConflict.Status.RESOLVED
    conflict.resolution = choice
    conflict.resolved_by = _actor_name(actor)
    conflict.resolved_at = timezone.now()
    conflict.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
    return conflict


def _row_write(
    *,
    model: type[models.Model],
    row: models.Model | None,
    row_id: Any,
    values: dict[str, Any],
    conflict: SyncConflict,
) -> models.Model:
    editable = {
        f.attname: f
        for f in model._meta.concrete_fields
        if not f.primary_key and f.attname not in STAMP_KEYS and f.attname != "last_modified_at"
    }
    unknown = set(values) - set(editable)
    if unknown:
        raise InvalidResolution("Unknown columns in the resolution.", columns=sorted(unknown))
    if row is None:  # deleted here: the chosen version brings it back
        row = model(pk=row_id)
    for name, value in values.items():
        setattr(row, name, editable[name].to_python(value))
    # Cover both versions, and stamp above both: save() adds this node's write on top.
    row.version_vector = vv_join(vv_join(row.version_vector or {}, conflict.a_vv), conflict.b_vv)  # type: ignore[attr-defined]
    row.hlc = max(int(row.hlc or 0), conflict.a_hlc, conflict.b_hlc)  # type: ignore[attr-defined]
    row.full_clean(validate_unique=False, validate_constraints=False)
    row.save()
    return row


def tombstones_purge(*, acked: dict[str, dict[int, int]], using: str = "default") -> int:
    """Delete tombstones (and their delete entries) that every peer has acknowledged: the entry's
    seq is at or below each peer's acknowledged seq for its lane. A peer missing a lane holds that
    lane's tombstones. With no peers at all, every tombstone goes (nobody can still need it; a
    node that joins later gets the state without the deleted rows). Returns how many were purged."""
    purged = 0
    feed = SyncFeed.objects.using(using).filter(op=SyncFeed.Op.DELETE)
    lanes_with_deletes = set(feed.values_list("lane", flat=True).distinct())
    for lane in lanes_with_deletes:
        limits = [int({int(k): v for k, v in per_lane.items()}.get(lane, 0)) for per_lane in acked.values()]
        bound = min(limits) if limits else None
        entries = feed.filter(lane=lane, sequenced=True)
        entries = entries if bound is None else entries.filter(seq__lte=bound)
        with transaction.atomic(using=using):
            victims = list(entries.select_for_update().values_list("seq", "entity", "entity_id"))
            if not victims:
                continue
            condition = Q()
            for _, entity, entity_id in victims:
                condition |= Q(entity=entity, entity_id=entity_id)
            SyncTombstone.objects.using(using).filter(condition).delete()
            purged += SyncFeed.objects.using(using).filter(seq__in=[seq for seq, _, _ in victims]).delete()[0]
    return purged


def conflict_retention_days(using: str = "default") -> int:
    """From the storage app's RetentionPolicy "sync_history" when installed and enabled, else 30."""
    try:
        policy_model = apps.get_model("storage", "RetentionPolicy")
    except LookupError:
        return DEFAULT_CONFLICT_RETENTION_DAYS
    policy = (
        policy_model._default_manager.using(using)
        .filter(entity=CONFLICT_RETENTION_ENTITY, enabled=True)
        .first()
    )
    return int(policy.retention_days) if policy is not None else DEFAULT_CONFLICT_RETENTION_DAYS


def queue_cleanup(*, now: datetime | None = None, using: str = "default") -> int:
    """Purge settled history: resolved conflicts and resolved dead letters older than the
    retention period. (The feed itself holds one entry per live row and is never trimmed by age:
    a new node's backlog reads it; delete entries go with tombstones_purge.)"""
    now = now or timezone.now()
    cutoff = now - timedelta(days=conflict_retention_days(using))
    settled = Q(status=SyncConflict.Status.RESOLVED, resolved_at__lt=cutoff) | Q(
        status__in=[SyncConflict.Status.AUTO, SyncConflict.Status.REJECTED], created_at__lt=cutoff
    )
    # Node-local history cleanup: deleting conflict rows must not replicate (each node ages them
    # out itself), so bypass the capturing delete.
    conflicts = SyncConflict._base_manager.using(using).filter(settled)
    removed = conflicts._raw_delete(using)
    letters = SyncDeadLetter.objects.using(using).filter(
        status=SyncDeadLetter.Status.RESOLVED, updated_at__lt=cutoff
    )
    removed += letters.delete()[0]
    purged_ids = set(
        SyncFeed.objects.using(using).filter(entity="sync_conflicts").values_list("entity_id", flat=True)
    )
    gone = purged_ids - set(
        SyncConflict.objects.using(using).filter(pk__in=purged_ids).values_list("pk", flat=True)
    )
    if gone:
        SyncFeed.objects.using(using).filter(entity="sync_conflicts", entity_id__in=gone).delete()
    return int(removed)
