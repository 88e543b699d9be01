"""Conflict resolution, pure: given this node's version of a row and an incoming one, which version
stays. No database access, so the same code runs in apply and in the property tests.

Every strategy but REJECT is a join over a total order that agrees with causality (a write made
after seeing a version always sorts above it), so the result does not depend on the order versions
arrive in, on duplicates, or on which node computes it:

- LAST_WRITE_WINS: the greater (hlc, node).
- PRIMARY_WINS: the greater (writes of the owner seen, hlc, node): of two concurrent versions the
  one that has seen more of the owner's writes wins, which is the owner's own version; a causal
  successor has seen at least as many, so it still just applies.
- MERGE (orders): field groups each take the greater version in their own order; the status
  group follows the lattice pending < open < rejected < expired < cancelled < filled, so an order
  never goes back from filled or cancelled; filled quantity (with its average price and fee) is
  the maximum; every other field is last-write-wins. A delete wins over a concurrent edit.
- Append-only: last-write-wins for determinism, but two versions with different content are a
  bug signal (conflict status "open").
- REJECT: of two concurrent versions the earlier in (hlc, node) stands and the later is rejected
  the same way everywhere; the rejected write's origin compensates by re-writing the winner as a
  new write that dominates both (apply does that), which is what converges every node.

The version vectors of the two inputs are joined whenever they are concurrent, so the result
dominates both and a late copy of either is recognised as stale.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from apps.sync.hlc import hlc_ms
from apps.sync.models.feed import Strategy, SyncConflict

Relation = Literal["equal", "before", "after", "concurrent"]

# Stamps kept outside `data`; last_modified_at stays in data (taken with the winning fields).
STAMP_KEYS = ("id", "hlc", "last_modified_by", "version", "version_vector")
NOT_CONTENT = ("last_modified_at",)
ORDER_STATUS_RANK = {"pending": 0, "open": 1, "rejected": 2, "expired": 3, "cancelled": 4, "filled": 5}
ORDER_STATUS_GROUP = ("status", "closed_at", "reject_reason", "triggered_at")
ORDER_FILL_GROUP = ("filled_quantity", "average_price", "fee")
_ORDER_MERGED = ORDER_STATUS_GROUP + ORDER_FILL_GROUP

__all__ = [
    "ConflictRecord",
    "Resolution",
    "Version",
    "conflict_id",
    "resolve",
    "vv_join",
    "vv_relation",
]


@dataclass(frozen=True)
class Version:
    """One version of a row: its stamps and its other columns (JSON-safe values)."""

    hlc: int
    node: str
    vv: Mapping[str, int]
    version: int = 1
    data: Mapping[str, Any] = field(default_factory=dict)
    deleted: bool = False

    @property
    def key(self) -> tuple[int, str]:
        return (self.hlc, self.node)

    @property
    def content(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k not in NOT_CONTENT}

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, deleted: bool = False) -> Version:
        """From a full row (a feed page's `data`, or a local row made JSON-safe)."""
        data = dict(row)
        for key in STAMP_KEYS:
            data.pop(key, None)
        return cls(
            hlc=int(row["hlc"]),
            node=str(row["last_modified_by"]),
            vv={str(k): int(v) for k, v in (row.get("version_vector") or {}).items()},
            version=int(row.get("version") or 0),
            data=data,
            deleted=deleted,
        )

    def as_row(self, row_id: str) -> dict[str, Any]:
        """The full row to write (JSON-safe)."""
        return {
            **self.data,
            "id": row_id,
            "hlc": self.hlc,
            "last_modified_by": self.node,
            "version": self.version,
            "version_vector": dict(sorted(self.vv.items())),
        }


@dataclass(frozen=True)
class ConflictRecord:
    """Two concurrent versions and the strategy's result; `a` sorts below `b` in (hlc, node)."""

    a: Version
    b: Version
    result: Version
    strategy: str
    winner: str  # "a" | "b" | "merged"
    status: str


@dataclass(frozen=True)
class Resolution:
    result: Version
    conflict: ConflictRecord | None = None
    rejected: Version | None = None  # REJECT: the version every node refuses


def vv_relation(a: Mapping[str, int], b: Mapping[str, int]) -> Relation:
    """How version vector `a` relates to `b`: equal, before (b has seen a), after, or concurrent."""
    a_le_b = all(v <= b.get(k, 0) for k, v in a.items())
    b_le_a = all(v <= a.get(k, 0) for k, v in b.items())
    if a_le_b and b_le_a:
        return "equal"
    if a_le_b:
        return "before"
    if b_le_a:
        return "after"
    return "concurrent"


def vv_join(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: max(a.get(k, 0), b.get(k, 0)) for k in sorted({*a, *b})}


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _owner_key(version: Version, owner: str | None) -> tuple[int, int, str]:
    return (version.vv.get(owner, 0) if owner else 0, version.hlc, version.node)


_ABSENT = object()


def _by_status(v: Version) -> tuple[Any, ...]:
    data = v.data
    return (
        ORDER_STATUS_RANK.get(str(data.get("status")), -1),
        *[str(data.get(name) or "") for name in ORDER_STATUS_GROUP],
    )


def _by_fill(v: Version) -> tuple[Any, ...]:
    data = v.data
    return (
        *[_decimal(data.get(name)) for name in ORDER_FILL_GROUP],
        *[str(data.get(name) or "") for name in ORDER_FILL_GROUP],
    )


def _merge_order(x: Version, y: Version) -> Version:
    hi, lo = (x, y) if x.key > y.key else (y, x)
    vv = vv_join(x.vv, y.vv)
    version = max(x.version, y.version)
    hi_data, lo_data = hi.data, lo.data
    status_same = all(hi_data.get(name, _ABSENT) == lo_data.get(name, _ABSENT) for name in ORDER_STATUS_GROUP)
    fill_same = all(hi_data.get(name, _ABSENT) == lo_data.get(name, _ABSENT) for name in ORDER_FILL_GROUP)
    if status_same and fill_same:
        # Both groups already agree (an edit of other fields): the maxima below would pick `hi`'s
        # values, so skip computing them.
        return Version(hlc=hi.hlc, node=hi.node, vv=vv, version=version, data=dict(hi_data))
    data = dict(hi_data)

    # Each group is the maximum of its own values (ties broken by the values themselves, never by
    # the row's stamps), so merging is associative whatever the delivery order. A group both
    # versions agree on is `hi`'s already.
    if not status_same:
        status_from = max(hi, lo, key=_by_status)
        for name in ORDER_STATUS_GROUP:
            if name in status_from.data:
                data[name] = status_from.data[name]
    if not fill_same:
        fill_from = max(hi, lo, key=_by_fill)
        for name in ORDER_FILL_GROUP:
            if name in fill_from.data:
                data[name] = fill_from.data[name]
    return Version(hlc=hi.hlc, node=hi.node, vv=vv, version=version, data=data)


def _merge_order_is_hi(x: Version, y: Version) -> Version | None:
    """_merge_order(x, y) when it is simply the later version (the usual case: an update that
    has seen the other), found without building the merge; None otherwise."""
    hi, lo = (x, y) if x.key > y.key else (y, x)
    hi_vv = hi.vv
    if hi.version < lo.version or any(k not in hi_vv or v > hi_vv[k] for k, v in lo.vv.items()):
        return None  # the merge's vector or version would not be hi's
    hi_data, lo_data = hi.data, lo.data
    status_same = all(hi_data.get(name, _ABSENT) == lo_data.get(name, _ABSENT) for name in ORDER_STATUS_GROUP)
    if not status_same and _by_status(lo) > _by_status(hi):
        return None
    fill_same = all(hi_data.get(name, _ABSENT) == lo_data.get(name, _ABSENT) for name in ORDER_FILL_GROUP)
    if not fill_same and _by_fill(lo) > _by_fill(hi):
        return None
    return hi


def _with_vv(version: Version, vv: Mapping[str, int]) -> Version:
    return version if dict(version.vv) == dict(vv) else replace(version, vv=dict(vv))


def resolve(
    *,
    strategy: str,
    local: Version | None,
    incoming: Version,
    append_only: bool = False,
    owner: str | None = None,
    merge_orders: bool = False,
) -> Resolution:
    """What this node keeps when `incoming` arrives while it holds `local` (None: no row, no
    tombstone). `owner` is the node whose writes win under PRIMARY_WINS (home or primary node);
    `merge_orders` turns on the order status lattice for MERGE (other MERGE entities have no
    per-field stamps, so their merge is last-write-wins)."""
    if local is None:
        return Resolution(result=incoming)
    if local.key == incoming.key and vv_relation(local.vv, incoming.vv) == "equal":
        return Resolution(result=local)  # the same version again
    relation = vv_relation(incoming.vv, local.vv)
    concurrent = relation == "concurrent"

    if strategy == Strategy.MERGE and merge_orders:
        if not (local.deleted or incoming.deleted):
            result = _merge_order_is_hi(local, incoming) or _merge_order(local, incoming)
            result = local if result == local else incoming if result == incoming else result
            return Resolution(result=result, conflict=_record(strategy, local, incoming, result, concurrent))
        if concurrent:  # a delete wins over a concurrent edit (remove-wins keeps the lattice a join)
            winner = max((v for v in (local, incoming) if v.deleted), key=lambda v: v.key)
            result = _with_vv(winner, vv_join(local.vv, incoming.vv))
            return Resolution(result=result, conflict=_record(strategy, local, incoming, result, True))

    joined = vv_join(local.vv, incoming.vv)
    if strategy == Strategy.REJECT and concurrent:
        winner, loser = (local, incoming) if local.key < incoming.key else (incoming, local)
        result = _with_vv(winner, joined)
        return Resolution(
            result=result,
            conflict=_record(strategy, local, incoming, result, True, status=SyncConflict.Status.REJECTED),
            rejected=loser,
        )

    if relation in ("before", "equal"):
        return Resolution(result=local)
    if relation == "after":
        return Resolution(result=incoming)

    if strategy == Strategy.PRIMARY_WINS:
        winner = max(local, incoming, key=lambda v: _owner_key(v, owner))
    else:
        winner = max(local, incoming, key=lambda v: v.key)
    result = _with_vv(winner, joined)
    if append_only and not local.deleted and not incoming.deleted and local.content == incoming.content:
        return Resolution(result=result)  # the same record written twice (deterministic ids)
    status = SyncConflict.Status.OPEN if append_only else SyncConflict.Status.AUTO
    return Resolution(result=result, conflict=_record(strategy, local, incoming, result, True, status=status))


def _record(
    strategy: str,
    x: Version,
    y: Version,
    result: Version,
    concurrent: bool,
    *,
    status: str = SyncConflict.Status.AUTO,
) -> ConflictRecord | None:
    if not concurrent:
        return None
    a, b = (x, y) if x.key < y.key else (y, x)
    if result.data == b.data and result.key == b.key and result.deleted == b.deleted:
        winner = "b"
    elif result.data == a.data and result.key == a.key and result.deleted == a.deleted:
        winner = "a"
    else:
        winner = "merged"
    return ConflictRecord(a=a, b=b, result=result, strategy=strategy, winner=winner, status=status)


def conflict_id(entity: str, row_id: str, record: ConflictRecord) -> uuid.UUID:
    """sha256(entity, row id, both writes) as a UUID: the same on every node meeting this pair.

    A write is named by its (hlc, node, deleted) alone: its version vector may arrive joined with
    others' through a relay, and the same pair must still get one id."""
    a, b = record.a, record.b
    key = f"{entity}|{row_id}|{a.hlc}:{a.node}:{int(a.deleted)}|{b.hlc}:{b.node}:{int(b.deleted)}"
    digest = hashlib.sha256(key.encode()).digest()
    return uuid.UUID(bytes=digest[:16])


def conflict_created_at(record: ConflictRecord) -> datetime:
    return datetime.fromtimestamp(hlc_ms(max(record.a.hlc, record.b.hlc)) / 1000, tz=UTC)
