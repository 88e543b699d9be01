"""Anti-entropy, this node's side: additive per-bucket checksums of each replicated table, the rows of
one bucket, and rows exported for a peer to repair from (research §R8).

A row's hash is the first 8 bytes of blake2b(id | hlc | node | version | version vector); a bucket's
checksum is the sum of its rows' hashes mod 2^64, so it does not depend on row order and can be
kept incrementally. Rows are bucketed by the low 32 bits of their UUID (random in a UUIDv7).
Only live rows count: a tombstone purged on one node and not yet on another is no difference.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

from django.db import connections

from apps.sync.capture import EntityConfig, config_for_entity
from apps.sync.feed import feed_rows_build, page_build
from apps.sync.models import SyncFeed, SyncTombstone

__all__ = ["bucket_checksums", "bucket_of", "bucket_rows", "reconcile_diff", "rows_export"]

_MASK = (1 << 64) - 1
_STREAM_CHUNK = 5000


def _config(entity: str, using: str) -> EntityConfig:
    config = config_for_entity(entity, using)
    if config is None:
        raise KeyError(f"Unknown replicated entity {entity!r}.")
    return config


def bucket_of(row_id: Any, buckets: int) -> int:
    value = row_id if isinstance(row_id, uuid.UUID) else uuid.UUID(str(row_id))
    return (value.int & 0xFFFFFFFF) % buckets


def row_hash(row_id: Any, hlc: int, node: str, version: int, vv: dict[str, int] | None) -> int:
    material = (
        f"{uuid.UUID(str(row_id))}|{int(hlc)}|{node}|{int(version)}|{json.dumps(vv or {}, sort_keys=True)}"
    )
    return int.from_bytes(hashlib.blake2b(material.encode(), digest_size=8).digest(), "big")


def _stamps(
    config: EntityConfig, using: str, bucket: int | None = None, buckets: int = 256
) -> Iterator[tuple[Any, ...]]:
    rows = config.model._base_manager.using(using).order_by()
    connection = connections[using]
    if bucket is not None and connection.vendor == "postgresql":
        table = connection.ops.quote_name(config.model._meta.db_table)
        rows = rows.extra(  # noqa: S610  (the low 32 bits of the uuid, as in bucket_of(); no input in the SQL)
            where=[f"(('x' || right(replace({table}.id::text, '-', ''), 8))::bit(32)::bigint) %% %s = %s"],
            params=[buckets, bucket],
        )
    for row in rows.values_list("pk", "hlc", "last_modified_by", "version", "version_vector").iterator(
        chunk_size=_STREAM_CHUNK
    ):
        if bucket is None or bucket_of(row[0], buckets) == bucket:
            yield row


def bucket_checksums(*, entity: str, buckets: int = 256, using: str = "default") -> list[str]:
    """One 16-hex-digit checksum per bucket of `entity`'s live rows."""
    sums = [0] * buckets
    for pk, hlc, node, version, vv in _stamps(_config(entity, using), using):
        index = bucket_of(pk, buckets)
        sums[index] = (sums[index] + row_hash(pk, hlc, node, version, vv)) & _MASK
    return [f"{value:016x}" for value in sums]


def bucket_rows(*, entity: str, bucket: int, buckets: int = 256, using: str = "default") -> list[list[Any]]:
    """[id, version, hlc] of every live row of `entity` in one bucket."""
    return [
        [str(pk), int(version), int(hlc)]
        for pk, hlc, _node, version, _vv in _stamps(
            _config(entity, using), using, bucket=bucket, buckets=buckets
        )
    ]


def reconcile_diff(*, local_rows: list[list[Any]], remote_rows: list[list[Any]]) -> list[str]:
    """Ids to fetch from the peer (rows_export there, repair_apply here): rows it has that this
    node lacks or holds with other stamps. Applying is decided by the strategies, so fetching a
    row this node actually has newer is harmless."""
    mine = {row_id: (version, hlc) for row_id, version, hlc in local_rows}
    return sorted(row_id for row_id, version, hlc in remote_rows if mine.get(row_id) != (version, hlc))


def rows_export(*, entity: str, ids: list[str], using: str = "default") -> dict[str, Any]:
    """These rows of `entity` (deleted ones as delete ops from their tombstones) as a page for
    repair_apply on a peer; ids this node knows nothing about are left out."""
    config = _config(entity, using)
    wanted = [uuid.UUID(str(i)) for i in ids]
    origins = {
        str(row_id): (origin, hlc)
        for row_id, origin, hlc in SyncFeed.objects.using(using)
        .filter(entity=entity, entity_id__in=wanted)
        .values_list("entity_id", "origin", "hlc")
    }
    tombstoned = set(
        SyncTombstone.objects.using(using)
        .filter(entity=entity, entity_id__in=wanted)
        .values_list("entity_id", flat=True)
    )
    entries = []
    for row_id in wanted:
        origin, hlc = origins.get(str(row_id), ("", -1))
        op = "delete" if row_id in tombstoned else "update"
        entries.append((0, entity, row_id, op, origin, hlc))
    rows = feed_rows_build(entries=entries, configs={entity: config}, using=using)
    return page_build(lane=config.lane, since=0, next_seq=0, head=0, rows=rows)
