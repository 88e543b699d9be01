"""Change capture: every write to a replicated row upserts that row's one entry in the change feed,
in the writing transaction (called from apps.sync.models.base on save / update / bulk_* / delete).

The feed entry of a row is moved to a fresh `seq` on each change (coalescing), so the feed holds at
most one entry per distinct row. On PostgreSQL `seq` comes from the identity sequence and `txid`
from pg_current_xact_id(); on SQLite writers are serialised, so a `seq` taken from the table's
autoincrement counter inside the write transaction is in commit order.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connections, models, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from apps.sync.models import EntitySyncConfig, SyncTombstone, current_node_id, vector_bump
from apps.sync.models.feed import Strategy

FEED_TABLE = "sync_syncfeed"
SEQUENCER_LOCK = 0x68617574  # advisory lock key, with the lane, of the feed's numbering ("haut")
FEED_CHANNEL = "haunt_sync_feed"
SEED_PATH = Path(__file__).resolve().parent / "seed" / "entity_config.json"
CONFIG_TTL_S = 5.0
_CHUNK = 5000
SEQUENCE_BATCH = 5000
# A local write of at least this many rows numbers its feed entries itself, after its commit.
SEQUENCE_AFTER_COMMIT_MIN = 500

__all__ = [
    "EntityConfig",
    "capture_delete",
    "capture_feed_rows",
    "capture_rows",
    "config_for_entity",
    "config_for_model",
    "entity_configs",
    "feed_sequence",
    "feed_statistics_refresh",
    "invalidate_configs",
    "pg_array",
    "table_statistics_refresh",
]


@dataclass(frozen=True)
class EntityConfig:
    """An entity's sync settings (a row of EntitySyncConfig, or the seeded default)."""

    entity: str
    model_label: str
    lane: int
    priority_weight: int
    strategy: str
    append_only: bool
    primary_node: str = ""
    owner: str = ""
    record_conflicts: bool = True
    enabled: bool = True

    @cached_property
    def model(self) -> type[models.Model]:
        return apps.get_model(self.model_label)

    @property
    def primary(self) -> str:
        return self.primary_node or str(getattr(settings, "HAUNT_SYNC_PRIMARY_NODE", "") or "")


_FIELDS = (
    "lane",
    "priority_weight",
    "strategy",
    "append_only",
    "primary_node",
    "owner",
    "record_conflicts",
    "enabled",
)
_cache: dict[str, tuple[float, dict[str, EntityConfig]]] = {}
_cache_lock = threading.Lock()


def _seeded_defaults() -> dict[str, EntityConfig]:
    rows = json.loads(SEED_PATH.read_text())["rows"]
    return {
        row["entity"]: EntityConfig(
            entity=row["entity"],
            model_label=row["model"],
            lane=int(row["lane"]),
            priority_weight=int(row.get("priority_weight", 1)),
            strategy=row.get("strategy", Strategy.LAST_WRITE_WINS),
            append_only=bool(row.get("append_only", False)),
            primary_node=row.get("primary_node", ""),
            owner=row.get("owner", ""),
            record_conflicts=bool(row.get("record_conflicts", True)),
            enabled=bool(row.get("enabled", True)),
        )
        for row in rows
    }


def entity_configs(using: str = "default") -> dict[str, EntityConfig]:
    """Every entity's settings by entity name: the database rows over the seeded defaults (so a
    node captures correctly before `manage.py seed` ran). Cached for a few seconds."""
    now = time.monotonic()
    cached = _cache.get(using)
    if cached is not None and now - cached[0] < CONFIG_TTL_S:
        return cached[1]
    configs = _seeded_defaults()
    for row in EntitySyncConfig.objects.using(using).all():
        configs[row.entity] = EntityConfig(
            entity=row.entity, model_label=row.model, **{name: getattr(row, name) for name in _FIELDS}
        )
    with _cache_lock:
        _cache[using] = (now, configs)
    return configs


def invalidate_configs(**kwargs: Any) -> None:
    with _cache_lock:
        _cache.clear()


post_save.connect(invalidate_configs, sender=EntitySyncConfig, dispatch_uid="sync-config-invalidate")


def config_for_entity(entity: str, using: str = "default") -> EntityConfig | None:
    return entity_configs(using).get(entity)


def config_for_model(model: type[models.Model], using: str = "default") -> EntityConfig | None:
    label = model._meta.label_lower
    for config in entity_configs(using).values():
        if config.model_label == label:
            return config
    return None


def capture_rows(*, using: str, model: type[models.Model], rows: Sequence[tuple[Any, int]], op: str) -> None:
    """Feed local writes of `model`: rows are (pk, hlc) pairs, origin is this node."""
    config = config_for_model(model, using)
    if config is None or not config.enabled:
        return
    node = current_node_id()
    capture_feed_rows(
        using=using, entity=config.entity, lane=config.lane, rows=[(pk, hlc, op, node) for pk, hlc in rows]
    )
    if len(rows) >= SEQUENCE_AFTER_COMMIT_MIN and connections[using].vendor == "postgresql":
        # A bulk write numbers its entries once it has committed, so a peer reading the backlog
        # later (a node joining, one back from an outage) finds them numbered instead of
        # renumbering them page by page. Single writes stay unnumbered: numbering under the
        # lane's lock at commit would serialise their commits.
        numbering = partial(
            _number_after_commit, lane=config.lane, using=using, count=len(rows), table=model._meta.db_table
        )
        transaction.on_commit(numbering, using=using, robust=True)


_changed_since_analyze: dict[tuple[str, str], int] = {}


def _number_after_commit(*, lane: int, using: str, count: int, table: str) -> None:
    feed_sequence(lane=lane, using=using, limit=count)
    feed_statistics_refresh(using=using, changed=2 * count)  # inserted, then numbered
    table_statistics_refresh(using=using, table=table, changed=count)


def feed_statistics_refresh(*, using: str, changed: int) -> bool:
    """ANALYZE the feed table once bulk writes have changed a tenth of it since this process last
    did (or it was never analysed). Its reads find unnumbered entries through a partial index,
    which the planner picks only when the statistics say few entries are unnumbered: with stale
    ones it walks the whole primary key instead, on every page read. Autovacuum would do this on a
    default server; this one may run without (this machine's does)."""
    return _statistics_refresh(using=using, table=FEED_TABLE, changed=changed, fraction=0.1)


def table_statistics_refresh(*, using: str, table: str, changed: int) -> bool:
    """ANALYZE a replicated table after bulk writes once it was never analysed or has about
    doubled since. Feed pages and applies read up to 5,000 rows by primary key: the planner
    picks the index only once it knows the table (never analysed, a 200,000-row snapshot table
    was scanned whole for every page: 25 ms against 4). The statistics scale with the table's
    size, so doubling is often enough."""
    return _statistics_refresh(using=using, table=table, changed=changed, fraction=1.0)


def _statistics_refresh(*, using: str, table: str, changed: int, fraction: float) -> bool:
    key = (using, table)
    total = _changed_since_analyze.get(key, 0) + changed
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        found = cursor.fetchone()
        estimated = float(found[0]) if found else -1.0
        if estimated >= 0 and total < max(1000.0, estimated * fraction):
            _changed_since_analyze[key] = total
            return False
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    _changed_since_analyze[key] = 0
    return True


def capture_feed_rows(
    *, using: str, entity: str, lane: int, rows: Iterable[tuple[Any, int, str, str]]
) -> None:
    """Upsert feed entries given as (pk, hlc, op, origin): one INSERT ... ON CONFLICT per chunk."""
    rows = list(rows)
    if not rows:
        return
    deferred = getattr(_numbered, "pending", None)
    if deferred is not None and deferred[0] == using:
        deferred[1].setdefault(lane, []).append((entity, rows))
        return
    connection = connections[using]
    changed_at = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            if connection.vendor == "postgresql" and len(chunk) == 1:
                _feed_upsert_one(cursor, entity, lane, chunk[0], changed_at)
            elif connection.vendor == "postgresql":
                _feed_upsert_postgresql(connection.connection, entity, lane, chunk, changed_at)
            else:
                _feed_upsert_serialised(cursor, connection, entity, lane, chunk, changed_at)


def _feed_upsert_one(
    cursor: Any, entity: str, lane: int, row: tuple[Any, int, str, str], changed_at: Any
) -> None:
    # The common case (one save()): the cheapest statement to parse, and the NOTIFY in the same
    # round trip (Django's client-side binding allows two statements).
    pk, hlc, op, origin = row
    cursor.execute(
        f"INSERT INTO {FEED_TABLE} (lane, entity, entity_id, op, origin, hlc, changed_at, sequenced) "  # noqa: S608  (constants)
        "VALUES (%s, %s, %s, %s, %s, %s, %s, false) ON CONFLICT (entity, entity_id) DO UPDATE SET "
        "seq = EXCLUDED.seq, sequenced = false, lane = EXCLUDED.lane, op = EXCLUDED.op, origin = EXCLUDED.origin, "
        f"hlc = EXCLUDED.hlc, changed_at = EXCLUDED.changed_at, txid = EXCLUDED.txid; NOTIFY {FEED_CHANNEL}, '{int(lane)}'",
        [lane, entity, _as_uuid(pk), op, origin, hlc, changed_at],
    )


_numbered = threading.local()


@contextmanager
def feed_numbered_at_end(using: str) -> Iterator[None]:
    """Inside an apply transaction on PostgreSQL: hold back the feed entries it writes (the
    re-feed of applied rows, conflict rows) and write them at the end already numbered, under
    their lanes' sequencer locks taken in ascending lane order, instead of leaving every one for a
    reader to renumber (a second write of each row, and of its four index entries).

    Numbering under the lock is what a reader's feed_sequence() does: while this transaction
    holds a lane's lock no other numbering of that lane can commit, so its numbers are above every
    number a reader has seen and below every later one. The lock is held from the flush to the
    commit: readers of those lanes wait for the end of the apply, not longer."""
    connection = connections[using]
    if connection.vendor != "postgresql" or getattr(_numbered, "pending", None) is not None:
        yield
        return
    pending: dict[int, list[tuple[str, list[Any]]]] = {}
    _numbered.pending = (using, pending)
    try:
        yield
        _numbered.pending = None
        if pending:
            changed_at = connection.ops.adapt_datetimefield_value(timezone.now())
            connection.ensure_connection()
            with connection.cursor() as cursor:
                for lane in sorted(pending):
                    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SEQUENCER_LOCK, lane])
                    for entity, rows in pending[lane]:
                        for start in range(0, len(rows), _CHUNK):
                            _feed_upsert_postgresql(
                                connection.connection,
                                entity,
                                lane,
                                rows[start : start + _CHUNK],
                                changed_at,
                                numbered=True,
                            )
    finally:
        _numbered.pending = None


def _feed_upsert_postgresql(
    raw_connection: Any, entity: str, lane: int, rows: list[Any], changed_at: Any, *, numbered: bool = False
) -> None:
    import psycopg

    sequenced = "true" if numbered else "false"  # numbered: the caller holds the lane's lock
    # Seven arrays bound server-side, whatever the row count: the statement stays small, so
    # the server parses it quickly (a 1,000-row VALUES list costs more to parse than to apply).
    # The NOTIFY wakes the lane's long-polling feed readers at commit (repeats within a
    # transaction fold).
    with psycopg.Cursor(raw_connection) as raw:
        raw.execute(
            f"WITH fed AS (INSERT INTO {FEED_TABLE} (lane, entity, entity_id, op, origin, hlc, changed_at, sequenced) "  # noqa: S608
            f"SELECT %s::smallint, %s::varchar, i, o, n, h, %s::timestamptz, {sequenced} "
            "FROM unnest(%s::uuid[], %s::varchar[], %s::varchar[], %s::bigint[]) AS u(i, o, n, h) "
            f"ON CONFLICT (entity, entity_id) DO UPDATE SET seq = EXCLUDED.seq, sequenced = {sequenced}, lane = EXCLUDED.lane, "
            "op = EXCLUDED.op, origin = EXCLUDED.origin, hlc = EXCLUDED.hlc, "
            "changed_at = EXCLUDED.changed_at, txid = EXCLUDED.txid RETURNING 1) "
            f"SELECT pg_notify('{FEED_CHANNEL}', '{int(lane)}') WHERE EXISTS (SELECT 1 FROM fed)",
            [
                lane,
                entity,
                changed_at,
                "{" + ",".join([_uuid_text(r[0]) for r in rows]) + "}",
                pg_array(r[2] for r in rows),
                pg_array(r[3] for r in rows),
                "{" + ",".join([str(int(r[1])) for r in rows]) + "}",
            ],
        )


def _feed_upsert_serialised(
    cursor: Any, connection: Any, entity: str, lane: int, rows: list[Any], changed_at: Any
) -> None:
    # SQLite: this transaction already holds the write lock (it wrote the row being fed), so
    # numbering from the autoincrement counter here is commit order.
    cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [FEED_TABLE])
    found = cursor.fetchone()
    base = int(found[0]) if found else 0
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for offset, (pk, hlc, op, origin) in enumerate(rows, start=1):
        params += [base + offset, lane, entity, _as_uuid(pk).hex, op, origin, hlc, changed_at]
    cursor.execute(
        f"INSERT INTO {FEED_TABLE} (seq, lane, entity, entity_id, op, origin, hlc, changed_at) VALUES {values} "  # noqa: S608
        "ON CONFLICT (entity, entity_id) DO UPDATE SET seq = excluded.seq, lane = excluded.lane, "
        "op = excluded.op, origin = excluded.origin, hlc = excluded.hlc, changed_at = excluded.changed_at",
        params,
    )
    top = base + len(rows)
    if found:
        cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [top, FEED_TABLE])
    else:
        cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [FEED_TABLE, top])


def pg_array(values: Iterable[Any]) -> str:
    """Values as one PostgreSQL array literal (text, cast in the statement): no per-element
    adaptation by the driver."""
    quoted = (str(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _uuid_text(value: Any) -> str:
    """A uuid as text; a string in the canonical form is taken as it is (the uuid[] cast in SQL
    checks it)."""
    if isinstance(value, str) and len(value) == 36:
        return value
    return str(_as_uuid(value))


def feed_sequence(*, lane: int | None = None, using: str = "default", limit: int = SEQUENCE_BATCH) -> int:
    """PostgreSQL: number the committed, not yet sequenced feed entries of `lane` above every
    earlier run of that lane.

    Runs of a lane are serialised by a transaction-level advisory lock, so run k+1 starts after
    run k committed and, the identity sequence being monotonic, all its numbers are higher; entries
    still locked by a writer are skipped and numbered by a later run, after that writer commits.
    Readers only ever look at one lane, so lanes need not wait for each other: a backlog of a
    hundred thousand entries being numbered on the analytics lane does not hold up the orders
    lane. At most `limit` entries per run (the oldest first), so one run stays short. Returns how
    many entries were numbered. Without a lane, every lane in turn.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return 0
    if lane is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT DISTINCT lane FROM sync_syncfeed WHERE NOT sequenced")
            waiting = sorted(int(row[0]) for row in cursor.fetchall())
        return sum(feed_sequence(lane=each, using=using, limit=limit) for each in waiting)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SEQUENCER_LOCK, lane])
        # By ctid (rows locked by the subquery cannot move before the UPDATE reaches them): a TID
        # scan, where a join on seq let the planner hash the whole feed table for every batch.
        cursor.execute(
            "UPDATE sync_syncfeed SET seq = nextval(pg_get_serial_sequence('sync_syncfeed', 'seq')), "
            "sequenced = true WHERE ctid = ANY(ARRAY(SELECT ctid FROM sync_syncfeed WHERE NOT sequenced "
            "AND lane = %s ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED))",
            [lane, limit],
        )
        return int(cursor.rowcount or 0)


def capture_delete(*, using: str, instance: models.Model) -> None:
    """Record a local delete: a tombstone stamped after the deleted version, and a delete entry."""
    from apps.sync.hlc import clock

    config = config_for_model(type(instance), using)
    if config is None or not config.enabled:
        return
    node = current_node_id()
    stamp = clock(using).after(int(getattr(instance, "hlc", 0) or 0))
    tombstone_upsert(
        using=using,
        rows=[
            {
                "entity": config.entity,
                "entity_id": instance.pk,
                "hlc": stamp,
                "origin": node,
                "version": int(getattr(instance, "version", 0)) + 1,
                "version_vector": vector_bump(getattr(instance, "version_vector", None), node),
            }
        ],
    )
    capture_feed_rows(
        using=using, entity=config.entity, lane=config.lane, rows=[(instance.pk, stamp, "delete", node)]
    )


def tombstone_upsert(*, using: str, rows: list[dict[str, Any]]) -> None:
    """Insert or move forward the tombstones (entity, entity_id, hlc, origin, version, version_vector)."""
    if not rows:
        return
    connection = connections[using]
    id_field = SyncTombstone._meta.get_field("entity_id")
    deleted_at = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [
        [
            row["entity"],
            id_field.get_db_prep_value(_as_uuid(row["entity_id"]), connection),
            row["hlc"],
            row["origin"],
            row["version"],
            json.dumps(row["version_vector"], sort_keys=True),
            deleted_at,
        ]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO sync_synctombstone (entity, entity_id, hlc, origin, version, version_vector, deleted_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (entity, entity_id) DO UPDATE SET "
            "hlc = excluded.hlc, origin = excluded.origin, version = excluded.version, "
            "version_vector = excluded.version_vector, deleted_at = excluded.deleted_at",
            params,
        )
