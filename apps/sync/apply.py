"""Applying a peer's feed page: set-based, in one transaction with the cursor.

Per entity in the page: one SELECT ... FOR UPDATE of the local versions (and tombstones), the
strategy decided in Python (apps.sync.resolve), then one pipelined executemany upsert (PostgreSQL,
psycopg on Django's connection; the last-write-wins guard is in the SQL too) or a plain bulk write
(SQLite), one delete, one feed upsert re-feeding the changed rows with the writer's origin (so a
third node gets them through this one, and the writer never gets them back), and the conflict rows.

Foreign keys between entities of different lanes: Django's constraints are DEFERRABLE INITIALLY
DEFERRED, so inside the page order does not matter; a row whose parent is neither here nor in
the page is parked in SyncDeadLetter (not applied, the lane moves on) and retried after every
later batch until its parent arrives, then dead after MAX_ATTEMPTS. Rows the database refuses
(bad data, a unique business key taken by another row) are isolated one by one in savepoints
and dead-lettered.

Multi-node apply needs PostgreSQL in production (concurrent pullers, the xmin-safe feed); on SQLite
it works for one writer at a time (writes are serialised by BEGIN IMMEDIATE).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.db import DatabaseError, IntegrityError, connections, models, transaction
from django.utils import timezone

from apps.sync.capture import (
    SEQUENCE_AFTER_COMMIT_MIN,
    EntityConfig,
    capture_feed_rows,
    entity_configs,
    feed_numbered_at_end,
    pg_array,
    table_statistics_refresh,
    tombstone_upsert,
)
from apps.sync.feed import Tomb, json_safe, json_safe_cursor, page_verify, rows_serialize, tombstones_get
from apps.sync.gcpause import gc_held_during
from apps.sync.hlc import clock
from apps.sync.hooks import apply_order, run_post_apply
from apps.sync.models import (
    SyncConflict,
    SyncCursor,
    SyncDeadLetter,
    SyncTombstone,
    current_node_id,
)
from apps.sync.models.feed import Strategy
from apps.sync.resolve import (
    ORDER_FILL_GROUP,
    ORDER_STATUS_GROUP,
    STAMP_KEYS,
    ConflictRecord,
    Resolution,
    Version,
    conflict_created_at,
    conflict_id,
    resolve,
    vv_join,
)
from apps.trading.exceptions import ClockDrift, SyncCursorGap

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 50  # parked rows retried this many batches before they are declared dead
RETRY_BATCH = 200

__all__ = ["ApplyResult", "ClockDrift", "batch_apply", "dead_letters_retry", "repair_apply"]


@dataclass
class ApplyResult:
    peer: str
    lane: int
    cursor: int
    rows: int = 0
    applied: int = 0
    unchanged: int = 0
    deleted: int = 0
    conflicts: int = 0
    new_conflicts: int = 0
    compensated: int = 0
    parked: int = 0
    dead_lettered: int = 0
    retried: int = 0
    already_applied: bool = False
    conflict_ids: list[str] = field(default_factory=list)

    def add(self, other: ApplyResult) -> None:
        for name in ("applied", "unchanged", "deleted", "conflicts", "new_conflicts", "compensated"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.parked += other.parked
        self.dead_lettered += other.dead_lettered
        self.conflict_ids += other.conflict_ids


def _check_drift(rows: Iterable[Mapping[str, Any]], using: str) -> int:
    """The page's highest stamp, after checking it against the drift limit (nothing merged yet)."""
    top = max((int(row["hlc"]) for row in rows), default=0)
    if top:
        clock(using).check_drift(top)
    return top


@gc_held_during
def batch_apply(
    *, peer: str, lane: int, page: dict[str, Any], using: str = "default", verified: bool = False
) -> ApplyResult:
    """Apply a page of `peer`'s feed and move the (peer, lane) cursor to page["next"], in one
    transaction: a crash repeats at most this page, never skips it. Idempotent.

    Raises ChecksumMismatch (nothing applied), ClockDrift when a stamp is further ahead than
    HAUNT_SYNC_MAX_DRIFT_MS (quarantine: nothing applied, cursor unchanged), SyncCursorGap when the
    page starts after the cursor. `verified`: the caller has just run page_verify on this page
    (the worker does, in the thread that fetched it).
    """
    if not verified:
        page_verify(page)
    rows = list(page["rows"])
    top = _check_drift(rows, using)
    next_seq, since = int(page["next"]), int(page["since"])
    with transaction.atomic(using=using):
        cursor = _cursor_locked(peer=peer, lane=lane, using=using)
        result = ApplyResult(peer=peer, lane=lane, cursor=cursor.seq, rows=len(rows))
        if next_seq <= cursor.seq:
            result.already_applied = next_seq < cursor.seq or bool(rows)
            return result
        if since > cursor.seq:
            raise SyncCursorGap(
                f"The page starts at {since}, after this node's cursor {cursor.seq}.",
                peer=peer,
                lane=lane,
                since=since,
                cursor=cursor.seq,
            )
        if top:
            clock(using).recv(top)
        with feed_numbered_at_end(using):
            result.add(_apply_rows(rows=rows, peer=peer, lane=lane, using=using))
            result.retried = dead_letters_retry(using=using, result=result)
        cursor.seq = next_seq
        cursor.head = max(int(page.get("head") or 0), next_seq, cursor.head)
        cursor.rows_applied += len(rows)
        cursor.updated_at = timezone.now()
        cursor.save(update_fields=["seq", "head", "rows_applied", "updated_at"])
        result.cursor = next_seq
    return result


@gc_held_during
def repair_apply(*, peer: str, page: dict[str, Any], using: str = "default") -> ApplyResult:
    """Apply rows exported by a peer for reconciliation (rows_export), without moving any cursor."""
    page_verify(page)
    rows = list(page["rows"])
    top = _check_drift(rows, using)
    lane = int(page.get("lane") or 0)
    with transaction.atomic(using=using):
        if top:
            clock(using).recv(top)
        result = ApplyResult(peer=peer, lane=lane, cursor=0, rows=len(rows))
        with feed_numbered_at_end(using):
            result.add(_apply_rows(rows=rows, peer=peer, lane=lane, using=using))
    return result


def _cursor_locked(*, peer: str, lane: int, using: str) -> SyncCursor:
    cursors = SyncCursor.objects.using(using)
    cursor = cursors.select_for_update().filter(peer=peer, lane=lane).first()
    if cursor is None:
        cursors.get_or_create(peer=peer, lane=lane)
        cursor = cursors.select_for_update().get(peer=peer, lane=lane)
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            # Two pullers (two peers) applying the same lane decide against the same local rows:
            # take turns, so neither overwrites a row the other just decided on.
            c.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x5359, lane])
    return cursor


# --- Applying rows ----------------------------------------------------------------------------


@dataclass
class _Plan:
    """What one entity's rows do to the local table."""

    writes: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> full JSON-safe row
    expected: dict[str, Version | None] = field(default_factory=dict)  # id -> local version replaced
    deletes: dict[str, Version] = field(default_factory=dict)  # id -> tombstone version
    untomb: list[str] = field(default_factory=list)
    feed: list[tuple[str, int, str, str]] = field(default_factory=list)  # id, hlc, op, origin
    conflicts: list[tuple[str, ConflictRecord]] = field(default_factory=list)
    source: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # id -> page row


def _apply_rows(*, rows: list[Mapping[str, Any]], peer: str, lane: int, using: str) -> ApplyResult:
    result = ApplyResult(peer=peer, lane=lane, cursor=0)
    configs = entity_configs(using)
    by_entity: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_entity[row["entity"]][str(row["id"])] = row  # a repeated id: the later entry wins
    page_ids = _page_ids(by_entity, configs)
    parked: list[tuple[Mapping[str, Any], str, str]] = []
    # Entities with a post-apply hook first: what the hook writes (auth users) is a parent here.
    ordered = sorted(
        by_entity.items(), key=lambda item: apply_order(getattr(configs.get(item[0]), "model_label", ""))
    )
    for entity, entity_rows in ordered:
        config = configs.get(entity)
        if config is None or not config.enabled:
            for row in entity_rows.values():
                parked.append((row, "unknown_entity", f"No enabled sync settings for {entity!r}."))
            continue
        # The local versions (locked) and tombstones first: rows with neither are inserted in one
        # statement; the others are decided row by row.
        deciding = _deciding_fields(config)
        local_rows = rows_serialize(
            model=config.model, ids=list(entity_rows), using=using, lock=True, fields=deciding
        )
        tombs = tombstones_get(entity=entity, ids=list(entity_rows), using=using)
        absent = {k: v for k, v in entity_rows.items() if k not in local_rows and k not in tombs}
        inserted = _insert_absent(config=config, rows=absent, page_ids=page_ids, using=using)
        rest = {k: v for k, v in entity_rows.items() if k not in inserted} if inserted else entity_rows
        plan = _plan(
            config=config,
            rows=rest,
            local_rows=local_rows,
            tombs=tombs,
            using=using,
            result=result,
            light=deciding is not None,
        )
        for row_id, reason, detail in _missing_parents(
            config=config, plan=plan, page_ids=page_ids, using=using
        ):
            parked.append((plan.source[row_id], reason, detail))
            _drop_from_plan(plan, row_id)
        for row_id, reason, detail in _blocked_deletes(config=config, plan=plan, using=using):
            parked.append((plan.source[row_id], reason, detail))
            _drop_from_plan(plan, row_id)
        failed = _execute(config=config, plan=plan, using=using)
        for row_id, detail in failed:
            parked.append((plan.source[row_id], "rejected_by_database", detail))
            _drop_from_plan(plan, row_id)
        if inserted:
            _plan_add_inserted(plan, inserted=inserted, rows=entity_rows)
            if len(inserted) >= SEQUENCE_AFTER_COMMIT_MIN:  # a backlog filling the table
                refresh = partial(
                    table_statistics_refresh,
                    using=using,
                    table=config.model._meta.db_table,
                    changed=len(inserted),
                )
                transaction.on_commit(refresh, using=using, robust=True)
        run_post_apply(model_label=config.model_label, using=using, written=plan.writes, deleted=plan.deletes)
        result.applied += len(plan.writes)
        result.deleted += len(plan.deletes)
        if entity == "sync_conflicts":  # conflicts first heard of from a peer: tell staff here too
            arrived = [row_id for row_id in plan.writes if plan.expected.get(row_id) is None]
            if arrived:
                fresh = list(SyncConflict.objects.using(using).filter(pk__in=arrived))
                for conflict_entity in sorted({c.entity for c in fresh}):
                    _staff_notify(
                        entity=conflict_entity,
                        conflicts=[c for c in fresh if c.entity == conflict_entity],
                        using=using,
                    )
        capture_feed_rows(using=using, entity=entity, lane=config.lane, rows=plan.feed)
        _conflicts_record(config=config, plan=plan, using=using, result=result)
    _park(parked=parked, peer=peer, lane=lane, using=using, result=result)
    return result


def _page_ids(
    by_entity: Mapping[str, Mapping[str, Mapping[str, Any]]], configs: Mapping[str, EntityConfig]
) -> dict[type[models.Model], set[str]]:
    ids: dict[type[models.Model], set[str]] = defaultdict(set)
    for entity, rows in by_entity.items():
        config = configs.get(entity)
        if config is not None:
            ids[config.model].update(row_id for row_id, row in rows.items() if row["op"] != "delete")
    return ids


def _incoming(row: Mapping[str, Any]) -> Version:
    if row["op"] == "delete":
        return Version(
            hlc=int(row["hlc"]),
            node=str(row["data"].get("last_modified_by") or row["origin"]),
            vv={str(k): int(v) for k, v in (row.get("vv") or {}).items()},
            version=int(row.get("version") or 0),
            deleted=True,
        )
    return Version.from_row(row["data"])


def _plan(
    *,
    config: EntityConfig,
    rows: Mapping[str, Mapping[str, Any]],
    local_rows: Mapping[str, Mapping[str, Any]],
    tombs: Mapping[str, Tomb],
    using: str,
    result: ApplyResult,
    light: bool = False,
) -> _Plan:
    """Decide each row against the local version (`local_rows`, read locked) or tombstone.

    `light`: local_rows hold only the deciding columns (_deciding_fields). A decision that keeps
    one version as it is without a conflict needs no more; the others are decided again on the
    full local rows."""
    if not rows:
        return _Plan()
    node = current_node_id()
    owners = _owners(config=config, rows=rows, local_rows=local_rows, using=using)
    plan = _Plan(source=dict(rows))
    primary = config.primary or None  # a settings lookup: once, not per row

    def decide(local: Version | None, incoming: Version, row_id: str) -> Resolution:
        return resolve(
            strategy=config.strategy,
            local=local,
            incoming=incoming,
            append_only=config.append_only,
            owner=owners.get(row_id) or primary,
            merge_orders=config.entity == "orders",
        )

    decided: dict[str, tuple[Version, Version | None, Resolution]] = {}
    unsettled: list[str] = []
    for row_id, row in rows.items():
        incoming = _incoming(row)
        local: Version | None = None
        if row_id in local_rows:
            local = Version.from_row(local_rows[row_id])
        elif row_id in tombs:
            tomb = tombs[row_id]
            local = Version(
                hlc=tomb.hlc,
                node=tomb.origin,
                vv=tomb.version_vector or {},
                version=tomb.version,
                deleted=True,
            )
        resolution = decide(local, incoming, row_id)
        decided[row_id] = (incoming, local, resolution)
        if light and row_id in local_rows and not _settled(resolution, local=local, incoming=incoming):
            unsettled.append(row_id)
    if unsettled:  # decided on the deciding columns alone; the rest of the row is needed after all
        full = rows_serialize(model=config.model, ids=unsettled, using=using, lock=True)
        for row_id in unsettled:
            incoming, _, _ = decided[row_id]
            local = Version.from_row(full[row_id])
            decided[row_id] = (incoming, local, decide(local, incoming, row_id))
    for row_id, (incoming, local, resolution) in decided.items():
        row = rows[row_id]
        outcome = _compensate(resolution, local=local, node=node, using=using)
        if outcome is not resolution.result:
            result.compensated += 1
        if resolution.conflict is not None:
            result.conflicts += 1
            if config.record_conflicts:
                plan.conflicts.append((row_id, resolution.conflict))
        if local is not None and outcome == local:
            result.unchanged += 1
            continue
        exact = outcome == incoming
        origin = str(row["origin"]) if exact else node
        plan.feed.append((row_id, outcome.hlc, "delete" if outcome.deleted else "update", origin))
        plan.expected[row_id] = local if local is not None and not local.deleted else None
        if outcome.deleted:
            plan.deletes[row_id] = outcome
        else:
            plan.writes[row_id] = outcome.as_row(row_id)
            if row_id in tombs:
                plan.untomb.append(row_id)
    return plan


def _settled(resolution: Resolution, *, local: Version | None, incoming: Version) -> bool:
    """A decision the other columns of the local row cannot change: one version kept as it is
    (the local one unchanged, or the incoming one written as it came), no conflict."""
    return (
        resolution.conflict is None
        and resolution.rejected is None
        and (resolution.result is incoming or resolution.result is local)
    )


def _deciding_fields(config: EntityConfig) -> tuple[str, ...] | None:
    """The columns resolve() reads of a local row when no conflict arises: stamps, an order's
    status and fill (MERGE), the owner's (PRIMARY_WINS). None: read whole rows (append-only
    entities compare whole contents)."""
    if config.append_only:
        return None
    wanted = set(STAMP_KEYS)
    if config.entity == "orders" and config.strategy == Strategy.MERGE:
        wanted.update(ORDER_STATUS_GROUP, ORDER_FILL_GROUP)
    if config.strategy == Strategy.PRIMARY_WINS:
        wanted.add("home_node" if config.owner == "self" else "portfolio_id")
    return tuple(f.attname for f in config.model._meta.concrete_fields if f.attname in wanted)


def _compensate(resolution: Resolution, *, local: Version | None, node: str, using: str) -> Version:
    """REJECT: when the rejected version is this node's own write, re-write the winner as a new
    local write (dominating both), which replicates and converges every node."""
    rejected = resolution.rejected
    if rejected is None or local is None or rejected != local or local.node != node:
        return resolution.result
    winner = resolution.result
    vv = vv_join(winner.vv, local.vv)
    vv[node] = vv.get(node, 0) + 1
    return Version(
        hlc=clock(using).after(max(winner.hlc, local.hlc)),
        node=node,
        vv=vv,
        version=max(winner.version, local.version) + 1,
        data={**winner.data, "last_modified_at": json_safe(timezone.now())},
        deleted=winner.deleted,
    )


def _owners(
    *,
    config: EntityConfig,
    rows: Mapping[str, Mapping[str, Any]],
    local_rows: Mapping[str, Mapping[str, Any]],
    using: str,
) -> dict[str, str]:
    """PRIMARY_WINS: the home node owning each row (only rows that exist here can conflict)."""
    if config.strategy != Strategy.PRIMARY_WINS or not config.owner:
        return {}
    if config.owner == "self":
        return {row_id: str(row.get("home_node") or "") for row_id, row in local_rows.items()}
    from apps.trading.models import Portfolio

    portfolio_of = {row_id: str(row.get("portfolio_id")) for row_id, row in local_rows.items()}
    homes = _column_by_pk(Portfolio, set(portfolio_of.values()), "home_node", using)
    return {row_id: homes.get(pid, "") for row_id, pid in portfolio_of.items()}


def _column_by_pk(
    model: type[models.Model], pks: Iterable[Any], column: str | None, using: str
) -> dict[str, Any]:
    """{pk as string: value of `column` (None: just which pks exist)} for the rows of `model`
    among `pks`."""
    pks = list(pks)
    if not pks:
        return {}
    connection = connections[using]
    if connection.vendor != "postgresql":
        names = ["pk", column] if column else ["pk", "pk"]
        return {
            str(pk): value
            for pk, value in model._base_manager.using(using).filter(pk__in=pks).values_list(*names)
        }
    pk = model._meta.pk
    assert pk is not None
    quote = connection.ops.quote_name
    selected = quote(column) if column else "NULL"
    with json_safe_cursor(connection) as cursor:
        cursor.execute(
            f"SELECT {quote(pk.column)}, {selected} FROM {quote(model._meta.db_table)} "  # noqa: S608  (identifiers from the model)
            f"WHERE {quote(pk.column)} = ANY(%s::{pk.db_type(connection)}[])",
            [pg_array(pks)],
        )
        return {str(found): value for found, value in cursor}


def _insert_absent(
    *,
    config: EntityConfig,
    rows: Mapping[str, Mapping[str, Any]],
    page_ids: Mapping[type[models.Model], set[str]],
    using: str,
) -> dict[str, Mapping[str, Any]]:
    """PostgreSQL: COPY straight into the table the page's rows that have neither a local row
    nor a tombstone here (`rows`, read under the page's lock) and whose parents are here or in
    the page; returns {id: row written}.

    Whatever the strategy, such a row is applied as it came (resolve() with no local version),
    so deciding row by row is only needed for the others, which go through _plan. A database
    error (a unique business key taken) sends every row of the entity down that careful path."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return {}
    written = {
        row_id: _as_written(row_id, row["data"]) for row_id, row in rows.items() if row["op"] != "delete"
    }
    written = _with_parents(config=config, rows=written, page_ids=page_ids, using=using)
    if not written:
        return {}
    import psycopg

    model = config.model
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields
    names = [f.attname for f in fields]
    values_of = itemgetter(*names)
    json_at = [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]
    columns = ", ".join(quote(f.column) for f in fields)
    connection.ensure_connection()
    try:
        sql = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"  # identifiers from the model
        with (
            transaction.atomic(using=using),
            psycopg.Cursor(connection.connection) as cursor,
            cursor.copy(sql) as copy,
        ):
            for row in written.values():
                try:
                    values = list(values_of(row))
                except KeyError:  # a column the sender left out: NULL, as before
                    values = [row.get(name) for name in names]
                for i in json_at:
                    if values[i] is not None:
                        values[i] = orjson.dumps(values[i]).decode()
                copy.write_row(values)
    except (DatabaseError, psycopg.Error):
        return {}
    return written


def _as_written(row_id: str, data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The row to write for an incoming version with no local one: Version.from_row(data).as_row()
    — which is `data` itself when its stamps are already well-typed (the usual case)."""
    vv = data.get("version_vector")
    if (
        data.get("id") == row_id
        and type(data.get("hlc")) is int
        and type(data.get("version")) is int
        and data["version"]
        and isinstance(data.get("last_modified_by"), str)
        and isinstance(vv, dict)
        and all(type(count) is int for count in vv.values())
    ):
        return data
    return Version.from_row(data).as_row(row_id)


def _with_parents(
    *,
    config: EntityConfig,
    rows: dict[str, Mapping[str, Any]],
    page_ids: Mapping[type[models.Model], set[str]],
    using: str,
) -> dict[str, Mapping[str, Any]]:
    """`rows` without those whose foreign key points at a row neither here nor in the page."""
    for fk in config.model._meta.concrete_fields:
        if not rows:
            break
        if not fk.is_relation or fk.related_model is None:
            continue
        target = fk.related_model
        assert not isinstance(target, str)
        name = fk.attname
        wanted = {str(row[name]) for row in rows.values() if row.get(name) is not None}
        wanted -= page_ids.get(target, set())
        absent = wanted - set(_column_by_pk(target, wanted, None, using))
        if absent:
            rows = {
                k: row for k, row in rows.items() if row.get(name) is None or str(row[name]) not in absent
            }
    return rows


def _plan_add_inserted(
    plan: _Plan, *, inserted: Mapping[str, Mapping[str, Any]], rows: Mapping[str, Any]
) -> None:
    """Account rows _insert_absent wrote as _plan would have planned them (no local version:
    written as they came, re-fed with their origin), keeping the page's order in the feed."""
    planned = bool(plan.feed)
    for row_id, written in inserted.items():
        plan.writes[row_id] = written if isinstance(written, dict) else dict(written)
        plan.expected[row_id] = None
        plan.source[row_id] = rows[row_id]
        plan.feed.append((row_id, int(written["hlc"]), "update", str(rows[row_id]["origin"])))
    if planned:  # `inserted` is in the page's order already
        order = {row_id: position for position, row_id in enumerate(rows)}
        plan.feed.sort(key=lambda entry: order[entry[0]])


def _drop_from_plan(plan: _Plan, row_id: str) -> None:
    plan.writes.pop(row_id, None)
    plan.deletes.pop(row_id, None)
    plan.expected.pop(row_id, None)
    if row_id in plan.untomb:
        plan.untomb.remove(row_id)
    plan.feed = [entry for entry in plan.feed if entry[0] != row_id]


def _missing_parents(
    *, config: EntityConfig, plan: _Plan, page_ids: Mapping[type[models.Model], set[str]], using: str
) -> list[tuple[str, str, str]]:
    """Rows to write whose foreign key points at a row neither here nor in this page."""
    missing: list[tuple[str, str, str]] = []
    if not plan.writes:
        return missing
    for fk in config.model._meta.concrete_fields:
        if not fk.is_relation or fk.related_model is None:
            continue
        target = fk.related_model
        assert not isinstance(target, str)
        wanted = {str(row[fk.attname]) for row in plan.writes.values() if row.get(fk.attname) is not None}
        wanted -= page_ids.get(target, set())
        if not wanted:
            continue
        absent = wanted - set(_column_by_pk(target, wanted, None, using))
        for row_id, row in list(plan.writes.items()):
            if row.get(fk.attname) is not None and str(row[fk.attname]) in absent:
                missing.append((row_id, "missing_parent", f"{fk.name} {row[fk.attname]} is not here yet."))
    return missing


def _blocked_deletes(*, config: EntityConfig, plan: _Plan, using: str) -> list[tuple[str, str, str]]:
    """Deletes that replicated children still reference here (their own deletes come in their
    lanes); children that never replicate are cascaded like Django would."""
    from apps.sync.models import ReplicatedModel

    ids = [row_id for row_id, _ in plan.deletes.items() if plan.expected.get(row_id) is not None]
    if not ids:
        return []
    blocked: set[str] = set()
    for relation in config.model._meta.related_objects:
        child = relation.related_model
        if relation.many_to_many or not relation.field.concrete or isinstance(child, str):
            continue
        children = child._base_manager.using(using).filter(**{f"{relation.field.name}__in": ids})
        if issubclass(child, ReplicatedModel):
            blocked |= {str(v) for v in children.values_list(relation.field.attname, flat=True)}
        elif relation.on_delete is models.CASCADE:
            children._raw_delete(using)
        elif relation.on_delete is models.SET_NULL:
            models.QuerySet.update(children, **{relation.field.name: None})
    return [
        (row_id, "delete_blocked", "Replicated rows still reference it here.") for row_id in sorted(blocked)
    ]


# --- Writing ------------------------------------------------------------------------------------


def _execute(*, config: EntityConfig, plan: _Plan, using: str) -> list[tuple[str, str]]:
    """Write the plan; returns (row id, error) for rows the database refused (the rest applied)."""
    model = config.model
    failed: list[tuple[str, str]] = []
    if plan.writes:
        rows = list(plan.writes.items())
        try:
            with transaction.atomic(using=using):
                _write(config=config, rows=rows, plan=plan, using=using)
        except DatabaseError:
            # Isolate the poison rows, one savepoint each; the good ones still apply.
            for row_id, row in rows:
                try:
                    with transaction.atomic(using=using):
                        _write(config=config, rows=[(row_id, row)], plan=plan, using=using)
                except DatabaseError as exc:
                    failed.append((row_id, str(exc)[:1000]))
    if plan.untomb:
        SyncTombstone.objects.using(using).filter(entity=config.entity, entity_id__in=plan.untomb).delete()
    if plan.deletes:
        model._base_manager.using(using).filter(pk__in=list(plan.deletes))._raw_delete(using)
        tombstone_upsert(
            using=using,
            rows=[
                {
                    "entity": config.entity,
                    "entity_id": row_id,
                    "hlc": version.hlc,
                    "origin": version.node,
                    "version": version.version,
                    "version_vector": dict(version.vv),
                }
                for row_id, version in plan.deletes.items()
            ],
        )
    return failed


def _write(*, config: EntityConfig, rows: list[tuple[str, dict[str, Any]]], plan: _Plan, using: str) -> None:
    connection = connections[using]
    if connection.vendor == "postgresql":
        _write_postgresql(config=config, rows=rows, plan=plan, using=using)
    else:
        _write_orm(config=config, rows=rows, plan=plan, using=using)


def _json_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    return orjson.dumps(list(rows)).decode()


def write_sql(model: type[models.Model], connection: Any, *, guard: str) -> str:
    """One statement writing a JSON array of full JSON-safe rows of `model` (one parameter;
    PostgreSQL casts each value to its column's type), guarded:

    - "lww": INSERT ... ON CONFLICT (id) DO UPDATE only when the incoming (hlc, node) is not
      below the stored one (the total order of apps.sync.resolve; node ids compare bytewise, as
      in Python);
    - "insert": INSERT ... ON CONFLICT (id) DO NOTHING (rows decided against no local version);
    - "cas": UPDATE only rows that still have the stamps the decision was made against (each
      row carries them as expected_hlc, expected_node, expected_version).
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    cols = [quote(f.column) for f in model._meta.concrete_fields]
    listed = ", ".join(cols)
    if guard == "cas":
        updates = ", ".join(f"{c} = s.{c}" for c in cols if c != '"id"')
        defs = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in model._meta.concrete_fields)
        return (
            f"UPDATE {table} AS t SET {updates} FROM json_to_recordset(%s::json) "  # noqa: S608  (identifiers from the model)
            f"AS s({defs}, expected_hlc bigint, expected_node text, expected_version bigint) "
            "WHERE t.id = s.id AND t.hlc = s.expected_hlc AND t.last_modified_by = s.expected_node "
            "AND t.version = s.expected_version"
        )
    insert = (
        f"INSERT INTO {table} AS t ({listed}) SELECT {listed} "  # noqa: S608  (identifiers from the model)
        f"FROM json_populate_recordset(NULL::{table}, %s::json) AS s ON CONFLICT (id) DO "
    )
    if guard == "insert":
        return insert + "NOTHING"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != '"id"')
    return (
        f"{insert}UPDATE SET {updates} WHERE "
        '(t.hlc, t.last_modified_by COLLATE "C") <= (EXCLUDED.hlc, EXCLUDED.last_modified_by COLLATE "C")'
    )


def _write_postgresql(
    *, config: EntityConfig, rows: list[tuple[str, dict[str, Any]]], plan: _Plan, using: str
) -> None:
    import psycopg

    model = config.model
    connection = connections[using]
    statements: list[tuple[str, str]] = []
    if config.strategy == Strategy.LAST_WRITE_WINS and not config.append_only:
        statements.append((write_sql(model, connection, guard="lww"), _json_rows(row for _, row in rows)))
    else:
        fresh = [row for row_id, row in rows if plan.expected.get(row_id) is None]
        replacing = [
            {
                **row,
                "expected_hlc": expected.hlc,
                "expected_node": expected.node,
                "expected_version": expected.version,
            }
            for row_id, row in rows
            if (expected := plan.expected.get(row_id)) is not None
        ]
        if fresh:
            statements.append((write_sql(model, connection, guard="insert"), _json_rows(fresh)))
        if replacing:
            statements.append((write_sql(model, connection, guard="cas"), _json_rows(replacing)))
    connection.ensure_connection()
    try:
        with psycopg.Cursor(connection.connection) as cursor:  # server-side binding: no quoting
            for sql, payload in statements:
                cursor.execute(sql, [payload])
    except psycopg.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc
    except psycopg.Error as exc:
        raise DatabaseError(str(exc)) from exc


def _write_orm(
    *, config: EntityConfig, rows: list[tuple[str, dict[str, Any]]], plan: _Plan, using: str
) -> None:
    # SQLite: the transaction holds the write lock since BEGIN IMMEDIATE, so the decisions made
    # above still hold; plain (non-capturing) bulk writes.
    model = config.model
    fields = model._meta.concrete_fields
    inserts: list[models.Model] = []
    updates: list[models.Model] = []
    for row_id, row in rows:
        obj = model(**{f.attname: f.to_python(row.get(f.attname)) for f in fields})
        (updates if plan.expected.get(row_id) is not None else inserts).append(obj)
    manager: models.QuerySet[models.Model] = models.QuerySet(model, using=using)
    if inserts:
        manager.bulk_create(inserts)
    if updates:
        manager.bulk_update(updates, [f.name for f in fields if not f.primary_key])


# --- Conflicts and dead letters ---------------------------------------------------------------


def _conflicts_record(*, config: EntityConfig, plan: _Plan, using: str, result: ApplyResult) -> None:
    """Insert-if-absent the conflict rows (deterministic ids and content), feed them so every node
    holds every conflict, and tell staff about new ones."""
    if not plan.conflicts:
        return
    objs = {}
    for row_id, record in plan.conflicts:
        cid = conflict_id(config.entity, row_id, record)
        objs[cid] = _conflict_row(cid=cid, entity=config.entity, row_id=row_id, record=record)
    existing = set(SyncConflict.objects.using(using).filter(pk__in=list(objs)).values_list("pk", flat=True))
    new = [obj for cid, obj in objs.items() if cid not in existing]
    if not new:
        return
    plain: models.QuerySet[SyncConflict] = models.QuerySet(SyncConflict, using=using)
    plain.bulk_create(new, ignore_conflicts=True)
    conflicts_config = entity_configs(using).get("sync_conflicts")
    if conflicts_config is not None and conflicts_config.enabled:
        capture_feed_rows(
            using=using,
            entity=conflicts_config.entity,
            lane=conflicts_config.lane,
            rows=[(obj.pk, obj.hlc, "insert", current_node_id()) for obj in new],
        )
    result.new_conflicts += len(new)
    result.conflict_ids += [str(obj.pk) for obj in new]
    _staff_notify(entity=config.entity, conflicts=new, using=using)


def _conflict_row(*, cid: Any, entity: str, row_id: str, record: ConflictRecord) -> SyncConflict:
    a, b = record.a, record.b
    created_at = conflict_created_at(record)
    return SyncConflict(
        id=cid,
        # The conflict's own stamps are derived from the pair, so every node writes the same row.
        version=1,
        last_modified_at=created_at,
        last_modified_by=b.node,
        hlc=max(a.hlc, b.hlc),
        version_vector={},
        entity=entity,
        row_id=row_id,
        strategy=record.strategy,
        winner=record.winner,
        status=record.status,
        a_node=a.node,
        a_hlc=a.hlc,
        # Only the writer's own counter: the rest of a version vector can arrive joined with other
        # nodes' through a relay, and the conflict row must read the same on every node.
        a_vv={a.node: a.vv.get(a.node, 0)},
        a_deleted=a.deleted,
        a_data=dict(a.data),
        b_node=b.node,
        b_hlc=b.hlc,
        b_vv={b.node: b.vv.get(b.node, 0)},
        b_deleted=b.deleted,
        b_data=dict(b.data),
        result_data=dict(record.result.data),
        created_at=created_at,
    )


def _staff_notify(*, entity: str, conflicts: list[SyncConflict], using: str) -> None:
    from haunt.models import Notification
    from haunt.services import notification_send

    staff = list(get_user_model()._default_manager.using(using).filter(is_staff=True, is_active=True))
    if not staff:
        return
    count = len(conflicts)
    title = f"{count} sync conflict{'s' if count != 1 else ''} on {entity}"
    data = {"entity": entity, "conflicts": [str(c.pk) for c in conflicts[:20]], "count": count}
    for user in staff:
        if using == "default":
            notification_send(user=user, kind="sync-conflict", title=title, data=data)
        else:
            Notification.objects.using(using).create(user=user, kind="sync-conflict", title=title, data=data)


def _park(
    *, parked: list[tuple[Mapping[str, Any], str, str]], peer: str, lane: int, using: str, result: ApplyResult
) -> None:
    """Dead-letter rows without stopping the lane: rows waiting for a parent are parked (retried),
    rows the database refused are dead."""
    letters = SyncDeadLetter.objects.using(using)
    now = timezone.now()
    for row, reason, detail in parked:
        status = SyncDeadLetter.Status.PARKED if reason in _RETRYABLE else SyncDeadLetter.Status.DEAD
        existing = (
            letters.filter(entity=row["entity"], entity_id=row["id"]).exclude(status="resolved").first()
        )
        if existing is not None:
            existing.row, existing.reason, existing.detail = dict(row), reason, detail
            existing.attempts += 1
            existing.updated_at = now
            if existing.attempts >= MAX_ATTEMPTS:
                status = SyncDeadLetter.Status.DEAD
            existing.status = status
            existing.save()
        else:
            letters.create(
                peer=peer,
                lane=lane,
                seq=int(row.get("seq") or 0),
                entity=row["entity"],
                entity_id=row["id"],
                row=dict(row),
                reason=reason,
                detail=detail,
                status=status,
                created_at=now,
                updated_at=now,
            )
        if status == SyncDeadLetter.Status.DEAD:
            result.dead_lettered += 1
        else:
            result.parked += 1


_RETRYABLE = {"missing_parent", "delete_blocked"}


def dead_letters_retry(*, using: str = "default", result: ApplyResult | None = None) -> int:
    """Re-apply parked rows (their parent may have arrived since); returns how many applied now.
    Runs inside batch_apply's transaction after each page; a row parked again has its attempts
    counted, and is declared dead after MAX_ATTEMPTS."""
    letters = list(
        SyncDeadLetter.objects.using(using)
        .select_for_update()
        .filter(status=SyncDeadLetter.Status.PARKED)
        .order_by("updated_at")[:RETRY_BATCH]
    )
    if not letters:
        return 0
    started = timezone.now()
    by_lane: dict[tuple[str, int], list[SyncDeadLetter]] = defaultdict(list)
    for letter in letters:
        by_lane[(letter.peer, letter.lane)].append(letter)
    applied = 0
    for (peer, lane), group in by_lane.items():
        outcome = _apply_rows(rows=[letter.row for letter in group], peer=peer, lane=lane, using=using)
        # Letters not touched by _park during this retry went through.
        applied += (
            SyncDeadLetter.objects.using(using)
            .filter(pk__in=[letter.pk for letter in group], updated_at__lt=started)
            .update(status=SyncDeadLetter.Status.RESOLVED, updated_at=timezone.now())
        )
        if result is not None:
            result.conflicts += outcome.conflicts
            result.new_conflicts += outcome.new_conflicts
            result.conflict_ids += outcome.conflict_ids
    return applied
