"""Test doubles of the data plane (feed_page / page_verify / batch_apply...) for transport-level
tests: an in-memory feed with the contract's page shape and checksums."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from apps.trading.exceptions import ChecksumMismatch, ClockDrift


def row_sha(row: dict[str, Any]) -> str:
    body = {k: v for k, v in row.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def page_checksum(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256("".join(row["sha256"] for row in rows).encode()).hexdigest()


def fake_page_verify(page: dict[str, Any]) -> None:
    for row in page["rows"]:
        if row_sha(row) != row["sha256"]:
            raise ChecksumMismatch(f"row {row['seq']}")
    if page_checksum(page["rows"]) != page["checksum"]:
        raise ChecksumMismatch("page")


@dataclass
class FakeFeed:
    node: str = "osaka"
    rows: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(
        self, *, lane: int = 0, origin: str | None = None, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        with self.lock:
            seq = len(self.rows) + 1
            row = {
                "seq": seq,
                "entity": "orders",
                "id": f"00000000-0000-7000-8000-{seq:012d}",
                "op": "insert",
                "hlc": (1_700_000_000_000 << 16) + seq,
                "origin": origin or self.node,
                "version": 1,
                "vv": {origin or self.node: 1},
                "data": data or {"qty": str(seq)},
                "lane": lane,
            }
            row["sha256"] = row_sha(row)
            self.rows.append(row)
            return row

    def feed_page(self, *, lane: int, since: int, limit: int, exclude_origin: str | None) -> dict[str, Any]:
        self.calls.append({"lane": lane, "since": since, "limit": limit, "exclude_origin": exclude_origin})
        with self.lock:
            candidates = [r for r in self.rows if r["lane"] == lane and r["seq"] > since][:limit]
            head = max((r["seq"] for r in self.rows if r["lane"] == lane), default=0)
        rows = [r for r in candidates if r["origin"] != exclude_origin]
        next_seq = candidates[-1]["seq"] if candidates else since
        return {
            "node": self.node,
            "lane": lane,
            "since": since,
            "next": next_seq,
            "head": head,
            "rows": rows,
            "checksum": page_checksum(rows),
        }


@dataclass
class FakeApplier:
    """batch_apply / cursor_get over a dict, recording what it was given."""

    cursors: dict[tuple[str, int], int] = field(default_factory=dict)
    applied: list[dict[str, Any]] = field(default_factory=list)
    drift: bool = False

    def batch_apply(self, *, peer: str, lane: int, page: dict[str, Any], verified: bool = False) -> Any:
        if self.drift:
            raise ClockDrift("hlc 120 s in the future")
        self.applied.extend(page["rows"])
        self.cursors[(peer, lane)] = int(page["next"])
        return type("ApplyResult", (), {"applied": len(page["rows"]), "conflicts": 0})()

    def cursor_get(self, *, peer: str, lane: int) -> int:
        return self.cursors.get((peer, lane), 0)
