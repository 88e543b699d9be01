"""The replicated base model: every row the sync app carries between nodes derives from it."""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone
from uuid6 import uuid7

STAMP_FIELDS = ("version", "last_modified_at", "last_modified_by")

M = TypeVar("M", bound="ReplicatedModel")

# Set while bulk_update() runs: Django implements it with QuerySet.update(), and the stamps it
# passes are the ones bulk_update() computed, not a caller's.
_bulk_stamped: ContextVar[bool] = ContextVar("_bulk_stamped", default=False)


def current_node_id() -> str:
    """This node's id in the mesh (HAUNT_NODE_ID)."""
    return str(settings.HAUNT_NODE_ID)


class ReplicationPathForbidden(Exception):
    """A bulk write path that cannot keep the replication stamps correct."""


class ReplicatedQuerySet(models.QuerySet[M]):
    """Keeps version / last_modified_* right on queryset and bulk writes too."""

    def update(self, **kwargs: Any) -> int:
        if _bulk_stamped.get():  # bulk_update() below already set the stamps per object
            return super().update(**kwargs)
        if any(field in kwargs for field in STAMP_FIELDS):
            raise ReplicationPathForbidden("Replication stamps are maintained by Haunt, not set.")
        kwargs.update(
            version=F("version") + 1,
            last_modified_at=timezone.now(),
            last_modified_by=current_node_id(),
        )
        return super().update(**kwargs)

    def bulk_update(self, objs: Iterable[M], fields: Iterable[str], batch_size: int | None = None) -> int:
        objs = list(objs)
        now, node = timezone.now(), current_node_id()
        for obj in objs:
            obj.version += 1
            obj.last_modified_at = now
            obj.last_modified_by = node
        all_fields = list(dict.fromkeys([*fields, *STAMP_FIELDS]))
        reset = _bulk_stamped.set(True)
        try:
            return super().bulk_update(objs, all_fields, batch_size=batch_size)
        finally:
            _bulk_stamped.reset(reset)

    def bulk_create(self, objs: Iterable[M], *args: Any, **kwargs: Any) -> list[M]:
        if kwargs.get("update_conflicts"):
            # An upsert would overwrite rows without bumping their version.
            raise ReplicationPathForbidden("bulk_create(update_conflicts=True) is not allowed.")
        objs = list(objs)
        now, node = timezone.now(), current_node_id()
        for obj in objs:
            obj.version = 1
            obj.last_modified_at = now
            obj.last_modified_by = node
        return super().bulk_create(objs, *args, **kwargs)


class ReplicatedModel(models.Model):
    """Abstract base for trading data replicated between nodes.

    The primary key is a UUIDv7: unique across nodes without coordination and time-ordered, so
    inserts stay at the right edge of the index. `version` starts at 1 and grows by one on every
    write through `save()`, `QuerySet.update()` or `bulk_update()`; callers change rows only
    while holding a row lock (`select_for_update`), so the increment is never lost.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    version = models.PositiveBigIntegerField(default=1, editable=False)
    last_modified_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    last_modified_by = models.CharField(max_length=32, default=current_node_id, editable=False)
    # Hybrid logical clock of the last write ((ms << 16) | counter) and the per-node write counts
    # that tell a concurrent overwrite from a causal one. Maintained by apps.sync.
    hlc = models.BigIntegerField(default=0, editable=False)
    version_vector = models.JSONField(default=dict, editable=False)

    objects: ClassVar[Any] = ReplicatedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            self.version += 1
        self.last_modified_at = timezone.now()
        self.last_modified_by = current_node_id()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = list(dict.fromkeys([*update_fields, *STAMP_FIELDS]))
        super().save(*args, **kwargs)
