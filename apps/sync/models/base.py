"""The replicated base model: every row the sync app carries between nodes derives from it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar

from django.conf import settings
from django.db import models, router, transaction
from django.db.models import F
from django.db.models.expressions import Expression
from django.db.models.signals import class_prepared, post_delete
from django.utils import timezone
from uuid6 import uuid7

STAMP_FIELDS = ("version", "last_modified_at", "last_modified_by")
# Maintained by apps.sync on every write; never set by callers either.
SYNC_STAMP_FIELDS = (*STAMP_FIELDS, "hlc", "version_vector")
# Rows per UPDATE ... WHERE pk IN (...) when a queryset update is re-issued by primary key.
_UPDATE_CHUNK = 2000

M = TypeVar("M", bound="ReplicatedModel")

# Set while bulk_update() runs: Django implements it with QuerySet.update(), and the stamps it
# passes are the ones bulk_update() computed, not a caller's.
_bulk_stamped: ContextVar[bool] = ContextVar("_bulk_stamped", default=False)


_capture_enabled: ContextVar[bool] = ContextVar("_capture_enabled", default=True)


def current_node_id() -> str:
    """This node's id in the mesh (HAUNT_NODE_ID)."""
    return str(settings.HAUNT_NODE_ID)


@contextmanager
def capture_disabled() -> Iterator[None]:
    """Write without feeding the change feed (benchmarks and fixtures that build a node's
    starting state by hand only: such writes never replicate)."""
    reset = _capture_enabled.set(False)
    try:
        yield
    finally:
        _capture_enabled.reset(reset)


def _hlc_after(using: str, stamp: int) -> int:
    from apps.sync.hlc import clock

    return clock(using).after(stamp)


def _capture(using: str, model: type[ReplicatedModel], rows: list[tuple[Any, int]], op: str) -> None:
    if rows and _capture_enabled.get():
        from apps.sync.capture import capture_rows

        capture_rows(using=using, model=model, rows=rows, op=op)


def vector_bump(vector: dict[str, int] | None, node: str) -> dict[str, int]:
    """The version vector after one more local write on `node`."""
    bumped = dict(vector or {})
    bumped[node] = int(bumped.get(node, 0)) + 1
    return bumped


class VectorBump(Expression):
    """SQL for `version_vector[node] += 1` on every row of an UPDATE (PostgreSQL jsonb, SQLite
    JSON1): each row keeps its own counts for the other nodes."""

    output_field = models.JSONField()

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node
        self.column: Any = F("version_vector")

    def resolve_expression(self, *args: Any, **kwargs: Any) -> VectorBump:
        resolved = self.copy()
        resolved.column = self.column.resolve_expression(*args, **kwargs)
        return resolved

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        raise NotImplementedError(f"Version vectors are not supported on {connection.vendor}.")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        col, params = compiler.compile(self.column)
        sql = (
            f"jsonb_set(COALESCE({col}, '{{}}'::jsonb), ARRAY[%s]::text[], "
            f"to_jsonb(COALESCE(({col} ->> %s)::bigint, 0) + 1))"
        )
        return sql, [*params, self.node, *params, self.node]

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        col, params = compiler.compile(self.column)
        path = '$."' + self.node.replace('"', "") + '"'
        sql = f"json_set(COALESCE({col}, '{{}}'), %s, COALESCE(json_extract({col}, %s), 0) + 1)"
        return sql, [*params, path, *params, path]


class ReplicationPathForbidden(Exception):
    """A bulk write path that cannot keep the replication stamps correct."""


class ReplicatedQuerySet(models.QuerySet[M]):
    """Keeps version / last_modified_* right on queryset and bulk writes too."""

    def update(self, **kwargs: Any) -> int:
        """Update the matching rows, stamping each (version + 1, HLC, version vector) and feeding
        each to the change feed in the same transaction.

        The matching rows are locked and read first, so the feed gets exactly the rows changed
        (a row inserted meanwhile by another transaction is not touched).
        """
        if _bulk_stamped.get():  # bulk_update() below already set the stamps per object
            return super().update(**kwargs)
        if any(field in kwargs for field in SYNC_STAMP_FIELDS):
            raise ReplicationPathForbidden("Replication stamps are maintained by Haunt, not set.")
        if self.query.is_sliced:
            raise TypeError("Cannot update a query once a slice has been taken.")
        using = self.db
        with transaction.atomic(using=using, savepoint=False):
            locked = self._locked_for_update()
            rows = list(locked.values_list("pk", "hlc"))
            if not rows:
                return 0
            node = current_node_id()
            stamp = _hlc_after(using, max(hlc for _, hlc in rows))
            kwargs.update(
                version=F("version") + 1,
                last_modified_at=timezone.now(),
                last_modified_by=node,
                hlc=stamp,
                version_vector=VectorBump(node),
            )
            base = self.model._base_manager.using(using)
            changed = 0
            pks = [pk for pk, _ in rows]
            for start in range(0, len(pks), _UPDATE_CHUNK):
                chunk = base.filter(pk__in=pks[start : start + _UPDATE_CHUNK])
                changed += models.QuerySet.update(chunk, **kwargs)
            _capture(using, self.model, [(pk, stamp) for pk in pks], "update")
            return changed

    def _locked_for_update(self) -> ReplicatedQuerySet[M]:
        if self.query.distinct or self.query.combinator:
            return self
        return self.select_for_update(of=("self",))

    def bulk_update(self, objs: Iterable[M], fields: Iterable[str], batch_size: int | None = None) -> int:
        objs = list(objs)
        if not objs:
            return 0
        using = self.db
        now, node = timezone.now(), current_node_id()
        with transaction.atomic(using=using, savepoint=False):
            for obj in objs:
                obj.version += 1
                obj.last_modified_at = now
                obj.last_modified_by = node
                obj.hlc = _hlc_after(using, obj.hlc)
                obj.version_vector = vector_bump(obj.version_vector, node)
            all_fields = list(dict.fromkeys([*fields, *SYNC_STAMP_FIELDS]))
            reset = _bulk_stamped.set(True)
            try:
                changed = super().bulk_update(objs, all_fields, batch_size=batch_size)
            finally:
                _bulk_stamped.reset(reset)
            _capture(using, self.model, [(obj.pk, obj.hlc) for obj in objs], "update")
            return changed

    def bulk_create(self, objs: Iterable[M], *args: Any, **kwargs: Any) -> list[M]:
        if kwargs.get("update_conflicts"):
            # An upsert would overwrite rows without bumping their version.
            raise ReplicationPathForbidden("bulk_create(update_conflicts=True) is not allowed.")
        objs = list(objs)
        if not objs:
            return objs
        using = self.db
        now, node = timezone.now(), current_node_id()
        with transaction.atomic(using=using, savepoint=False):
            for obj in objs:
                obj.version = 1
                obj.last_modified_at = now
                obj.last_modified_by = node
                obj.hlc = _hlc_after(using, 0)
                obj.version_vector = {node: 1}
            created = super().bulk_create(objs, *args, **kwargs)
            _capture(using, self.model, [(obj.pk, obj.hlc) for obj in created], "insert")
            return created


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
        """Save with fresh stamps, feeding the change feed in the same transaction."""
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        adding = self._state.adding
        node = current_node_id()
        with transaction.atomic(using=using, savepoint=False):
            if not adding:
                self.version += 1
            self.last_modified_at = timezone.now()
            self.last_modified_by = node
            self.hlc = _hlc_after(using, self.hlc)
            self.version_vector = vector_bump(self.version_vector, node)
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = list(dict.fromkeys([*update_fields, *SYNC_STAMP_FIELDS]))
            super().save(*args, **kwargs)
            _capture(using, type(self), [(self.pk, self.hlc)], "insert" if adding else "update")


def _capture_delete(
    sender: type[ReplicatedModel], instance: ReplicatedModel, using: str, **kwargs: Any
) -> None:
    # post_delete runs inside the deleting transaction, for Model.delete(), QuerySet.delete() and
    # cascades alike (a receiver makes Django collect the rows instead of fast-deleting them).
    if _capture_enabled.get():
        from apps.sync.capture import capture_delete

        capture_delete(using=using, instance=instance)


def _connect_delete_capture(sender: type[models.Model], **kwargs: Any) -> None:
    if issubclass(sender, ReplicatedModel) and not sender._meta.abstract:
        post_delete.connect(_capture_delete, sender=sender, dispatch_uid=f"sync-delete-{sender._meta.label}")


class_prepared.connect(_connect_delete_capture, dispatch_uid="sync-delete-capture")
