"""Reading this node's change feed: pages for peers (with checksums), page verification, cursors,
lanes and backlog progress.

A page lists each changed row once, at its latest version, read from the row itself. On
PostgreSQL only entries whose transaction id is below the oldest running transaction are read
(research §R2): a row whose transaction started earlier but commits later still has a seq above
anything handed out before it, so a cursor never moves past it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
from django.db import connections, models

from apps.sync.capture import SEQUENCE_BATCH, EntityConfig, entity_configs, feed_sequence
from apps.sync.gcpause import gc_held_during
from apps.sync.models import SyncCursor, SyncTombstone, current_node_id
from apps.trading.exceptions import ChecksumMismatch, ClockDrift

__all__ = [
    "ChecksumMismatch",
    "ClockDrift",
    "backlog_progress",
    "cursor_get",
    "feed_page",
    "json_safe",
    "lanes",
    "page_checksum",
    "page_rebase",
    "page_verify",
    "row_checksum",
    "rows_serialize",
]

MAX_PAGE = 5000


def json_safe(value: Any) -> Any:
    """A column value as JSON: Decimal and UUID as strings, datetimes as ISO 8601."""
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return value


def canonical(value: Any) -> bytes:
    """Compact JSON with sorted keys, UTF-8 (orjson: the same bytes on every node, ~10x the
    standard library's speed, which was a fifth of a page's cost)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def row_checksum(row: Mapping[str, Any]) -> str:
    if "sha256" in row:
        row = {k: v for k, v in row.items() if k != "sha256"}
    return hashlib.sha256(canonical(row)).hexdigest()


def page_checksum(page: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(f"{page['node']}|{page['lane']}|{page['since']}|{page['next']}|".encode())
    for row in page["rows"]:
        digest.update(str(row.get("sha256", "")).encode())
    return digest.hexdigest()


def page_verify(page: Mapping[str, Any]) -> None:
    """Raise ChecksumMismatch unless every row and the page match their SHA-256."""
    try:
        rows = page["rows"]
        for row in rows:
            if row_checksum(row) != row.get("sha256"):
                raise ChecksumMismatch(
                    "A row's checksum does not match its content.", entity=row.get("entity"), id=row.get("id")
                )
        if page_checksum(page) != page.get("checksum"):
            raise ChecksumMismatch("The page checksum does not match its rows.")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ChecksumMismatch(f"The page is malformed: {exc!r}.") from None


def _field_names(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


def rows_serialize(
    *,
    model: type[models.Model],
    ids: Iterable[Any],
    using: str,
    lock: bool = False,
    fields: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The current rows of `model` with these ids, JSON-safe, by id string (locked FOR UPDATE
    with `lock`; only the columns named in `fields`, which must include "id", when given)."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        return _rows_postgresql(model=model, ids=ids, connection=connection, lock=lock, fields=fields)
    names = [name for name in _field_names(model) if fields is None or name in fields]
    found: dict[str, dict[str, Any]] = {}
    rows = model._base_manager.using(using).filter(pk__in=list(ids))
    if lock:
        rows = rows.select_for_update()
    for row in rows.values(*names):
        safe = {name: json_safe(value) for name, value in row.items()}
        found[safe["id"]] = safe
    return found


def uuid_array(ids: Iterable[Any]) -> str:
    """Ids as a PostgreSQL uuid[] literal (one text parameter: no per-element adaptation)."""
    return "{" + ",".join(str(i) for i in ids) + "}"


def _rows_postgresql(
    *,
    model: type[models.Model],
    ids: Iterable[Any],
    connection: Any,
    lock: bool,
    fields: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    # PostgreSQL renders each row as JSON in json_safe()'s formats (numerics as text, timestamps
    # in UTC ISO 8601 as datetime.isoformat() writes them) and aggregates the page into one
    # document, which orjson parses at once: no per-value work in Python.
    sql, numeric = _row_json_select(model, connection, lock=lock, fields=fields)
    import psycopg

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, [uuid_array(ids)])
        fetched = cursor.fetchone()
    text = fetched[0] if fetched and fetched[0] else "[]"
    rows: list[dict[str, Any]] = orjson.loads(text)
    # str(Decimal) switches to exponent notation below 1e-6; PostgreSQL never does. The SQL
    # writes zeros as str(Decimal) does ("0E-12"); any other such value takes the round trip.
    if numeric and ('"0.000000' in text or '"-0.000000' in text):
        for row in rows:
            for name in numeric:
                value = row[name]
                if value is not None and value.startswith(("0.000000", "-0.000000")):
                    row[name] = str(Decimal(value))
    return {row["id"]: row for row in rows}


_ROW_JSON: dict[tuple[str, str, bool, tuple[str, ...] | None], tuple[str, tuple[str, ...]]] = {}
_UTC_ISO = """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'"""


def _row_json_select(
    model: type[models.Model], connection: Any, *, lock: bool, fields: Sequence[str] | None = None
) -> tuple[str, tuple[str, ...]]:
    """The statement reading rows of `model` by id as one JSON array, and its numeric columns."""
    key = (model._meta.label_lower, connection.alias, lock, tuple(fields) if fields is not None else None)
    if key in _ROW_JSON:
        return _ROW_JSON[key]
    quote = connection.ops.quote_name
    pairs: list[str] = []
    numeric: list[str] = []
    for f in model._meta.concrete_fields:
        if fields is not None and f.attname not in fields:
            continue
        column = quote(f.column)
        db_type = (f.db_type(connection) or "").lower()
        if db_type.startswith(("numeric", "decimal")):
            value = f"CASE WHEN {column} = 0 AND scale({column}) > 6 THEN '0E-' || scale({column}) ELSE {column}::text END"
            numeric.append(f.attname)
        elif db_type.startswith("timestamp"):
            value = f"replace(to_char({column} AT TIME ZONE 'UTC', {_UTC_ISO}), '.000000+', '+')"
        elif db_type == "date":
            value = f"to_char({column}, 'YYYY-MM-DD')"
        else:
            value = column
        pairs.append(f"'{f.attname}', {value}")
    # json_build_object takes at most 100 arguments: wider tables are built from parts.
    parts = [f"jsonb_build_object({', '.join(pairs[i : i + 50])})" for i in range(0, len(pairs), 50)]
    built = f"json_build_object({', '.join(pairs)})" if len(pairs) <= 50 else " || ".join(parts)
    inner = (
        f"SELECT {built} AS j FROM {quote(model._meta.db_table)} WHERE id = ANY(%s::uuid[])"  # noqa: S608  (identifiers from the model)
        f"{' FOR UPDATE' if lock else ''}"
    )
    _ROW_JSON[key] = (f"SELECT json_agg(j)::text FROM ({inner}) AS rows", tuple(numeric))  # noqa: S608
    return _ROW_JSON[key]


def json_safe_cursor(connection: Any) -> Any:
    """A psycopg cursor on Django's connection (server-side binding) whose numeric, uuid, date,
    timestamptz and json values load as json_safe() would make them."""
    import psycopg

    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    for name, loader in _json_safe_loaders().items():
        cursor.adapters.register_loader(name, loader)
    return cursor


_LOADERS: dict[str, Any] = {}


def _json_safe_loaders() -> dict[str, Any]:
    if _LOADERS:
        return _LOADERS
    from psycopg.adapt import Loader

    class DecimalText(Loader):
        def load(self, data: Any) -> str:
            text = bytes(data).decode()
            # str(Decimal) switches to exponent notation below 1e-6 ("0E-12"); PostgreSQL never
            # does: only those values need the round trip.
            if text.startswith(("0.000000", "-0.000000")):
                return str(Decimal(text))
            return text

    class UUIDText(Loader):
        def load(self, data: Any) -> str:
            return bytes(data).decode()

    class DateText(Loader):
        def load(self, data: Any) -> str:
            return dt.date.fromisoformat(bytes(data).decode()).isoformat()

    class JsonText(Loader):
        def load(self, data: Any) -> Any:
            return orjson.loads(data)

    class TimestamptzText(Loader):
        def load(self, data: Any) -> str:
            return timestamptz_iso(bytes(data).decode())

    _LOADERS.update(
        numeric=DecimalText,
        uuid=UUIDText,
        date=DateText,
        timestamptz=TimestamptzText,
        json=JsonText,
        jsonb=JsonText,
    )
    return _LOADERS


def timestamptz_iso(text: str) -> str:
    """PostgreSQL's ISO text of a timestamptz in UTC ("2024-05-01 10:00:00.25+00") as
    datetime.isoformat() writes it ("2024-05-01T10:00:00.250000+00:00")."""
    if len(text) >= 22 and text[10] == " " and text[19] in ".+" and text.endswith("+00") and text[4] == "-":
        body = text[:-3]
        if len(body) > 19:
            body = body[:20] + body[20:].ljust(6, "0")
        return f"{body[:10]}T{body[11:]}+00:00"
    return json_safe(dt.datetime.fromisoformat(text).astimezone(dt.UTC))


class Tomb(NamedTuple):
    hlc: int
    origin: str
    version: int
    version_vector: dict[str, int]


def tombstones_get(*, entity: str, ids: Iterable[Any], using: str) -> dict[str, Tomb]:
    """The tombstones of these ids of `entity`, by id string."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with json_safe_cursor(connection) as cursor:
            cursor.execute(
                "SELECT entity_id, hlc, origin, version, version_vector FROM sync_synctombstone "
                "WHERE entity = %s AND entity_id = ANY(%s::uuid[])",
                [entity, uuid_array(ids)],
            )
            return {row[0]: Tomb(int(row[1]), row[2], int(row[3]), row[4] or {}) for row in cursor}
    return {
        str(t.entity_id): Tomb(t.hlc, t.origin, t.version, t.version_vector or {})
        for t in SyncTombstone.objects.using(using).filter(entity=entity, entity_id__in=list(ids))
    }


def feed_rows_build(
    *, entries: list[tuple[int, str, Any, str, str, int]], configs: Mapping[str, EntityConfig], using: str
) -> list[dict[str, Any]]:
    """Page rows for feed entries (seq, entity, id, op, origin, hlc), in the entries' order.

    Data comes from the row as it is now. When it is newer than the entry (written since), the
    entry is about to be superseded by a later seq; it is sent as this node's version then.
    """
    node = current_node_id()
    by_entity: dict[str, list[Any]] = defaultdict(list)
    for _, entity, entity_id, _, _, _ in entries:
        by_entity[entity].append(entity_id)
    current: dict[str, dict[str, dict[str, Any]]] = {}
    tombs: dict[str, dict[str, Tomb]] = {}
    for entity, ids in by_entity.items():
        config = configs.get(entity)
        if config is None:
            continue
        found = current[entity] = rows_serialize(model=config.model, ids=ids, using=using)
        gone = [i for i in ids if str(i) not in found]  # only a row not here can have a tombstone
        tombs[entity] = tombstones_get(entity=entity, ids=gone, using=using) if gone else {}
    rows: list[dict[str, Any]] = []
    for seq, entity, entity_id, op, origin, hlc in entries:
        key = str(entity_id)
        data = current.get(entity, {}).get(key)
        if data is not None:
            row = {
                "seq": seq,
                "entity": entity,
                "id": key,
                "op": "update" if op == "delete" else op,
                "hlc": int(data["hlc"]),
                "origin": origin if int(data["hlc"]) == hlc and op != "delete" else node,
                "version": int(data["version"]),
                "vv": data["version_vector"] or {},
                "data": data,
            }
        elif (tomb := tombs.get(entity, {}).get(key)) is not None:
            row = {
                "seq": seq,
                "entity": entity,
                "id": key,
                "op": "delete",
                "hlc": tomb.hlc,
                "origin": origin if tomb.hlc == hlc else node,
                "version": tomb.version,
                "vv": tomb.version_vector or {},
                "data": {"last_modified_by": tomb.origin},
            }
        else:
            continue  # deleted meanwhile without a tombstone yet visible: its entry moves on
        row["sha256"] = row_checksum(row)
        rows.append(row)
    return rows


def page_build(
    *, lane: int, since: int, next_seq: int, head: int, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    page: dict[str, Any] = {
        "node": current_node_id(),
        "lane": lane,
        "since": since,
        "next": next_seq,
        "head": head,
        "rows": rows,
    }
    page["checksum"] = page_checksum(page)
    return page


def page_rebase(page: dict[str, Any], *, since: int) -> dict[str, Any]:
    """The page as covering the feed from `since` (the entries between held only the caller's own
    writes, stepped over), checksum recomputed."""
    return page_build(
        lane=int(page["lane"]),
        since=since,
        next_seq=int(page["next"]),
        head=int(page["head"]),
        rows=page["rows"],
    )


@gc_held_during
def feed_page(
    *, lane: int, since: int, limit: int, exclude_origin: str | None = None, using: str = "default"
) -> dict[str, Any]:
    """Up to `limit` feed entries of `lane` after `since`, as a JSON-safe page.

    `next` is the last seq read, including entries left out because `exclude_origin` wrote them
    (a peer is never sent its own writes back, yet its cursor moves past them).
    """
    limit = max(1, min(int(limit), MAX_PAGE))
    connection = connections[using]
    feed_sequence(lane=lane, using=using, limit=max(limit, SEQUENCE_BATCH))
    postgresql = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT seq, entity, {'entity_id::text' if postgresql else 'entity_id'}, op, origin, hlc "  # noqa: S608  (constants)
            "FROM sync_syncfeed WHERE lane = %s AND seq > %s AND sequenced ORDER BY seq LIMIT %s",
            [lane, since, limit],
        )
        scanned: list[tuple[int, str, str, str, str, int]] = cursor.fetchall()
        if not postgresql:  # SQLite keeps a uuid as 32 hex digits
            scanned = [(q, e, str(uuid.UUID(str(i))), op, o, h) for q, e, i, op, o, h in scanned]
        cursor.execute("SELECT MAX(seq) FROM sync_syncfeed WHERE lane = %s AND sequenced", [lane])
        head = int(cursor.fetchone()[0] or 0)
    next_seq = scanned[-1][0] if scanned else since
    wanted = [entry for entry in scanned if entry[4] != exclude_origin]
    rows = feed_rows_build(entries=wanted, configs=entity_configs(using), using=using)
    if exclude_origin is not None:
        rows = [row for row in rows if row["origin"] != exclude_origin]
    return page_build(lane=lane, since=since, next_seq=next_seq, head=max(head, next_seq), rows=rows)


def cursor_get(*, peer: str, lane: int, using: str = "default") -> int:
    """How far this node has applied `peer`'s feed in `lane` (0 before the first page)."""
    seq = SyncCursor.objects.using(using).filter(peer=peer, lane=lane).values_list("seq", flat=True).first()
    return int(seq or 0)


def lanes(*, using: str = "default") -> list[int]:
    """The lanes in use, most urgent first."""
    return sorted({config.lane for config in entity_configs(using).values() if config.enabled})


def backlog_progress(*, peer: str, using: str = "default") -> dict[str, Any]:
    """Percent of `peer`'s feed applied, per lane and overall: (cursor - start) / (head - start)."""
    cursors = {c.lane: c for c in SyncCursor.objects.using(using).filter(peer=peer)}
    per_lane: dict[int, float] = {}
    done = total = 0
    for lane in lanes(using=using):
        cursor = cursors.get(lane)
        if cursor is None:
            per_lane[lane] = 0.0
            continue
        per_lane[lane] = cursor.progress_percent
        span = max(0, cursor.head - cursor.backlog_start)
        total += span
        done += min(span, max(0, cursor.seq - cursor.backlog_start))
    overall = 100.0 if total == 0 else round(100.0 * done / total, 2)
    if any(lane not in cursors for lane in per_lane):
        overall = min(overall, round(100.0 * sum(per_lane.values()) / max(1, len(per_lane)), 2))
    return {"peer": peer, "lanes": per_lane, "overall": overall}
