"""Convergence checks over the nodes' databases: per-table content hashes, row diffs, cursor
progress, and the wait for convergence with a report of what is stuck."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.integration.mesh.harness import Node

# entity -> table of the 13 replicated entities (tests/integration/mesh/test_convergence.py checks
# this against the ReplicatedModel subclasses Django knows).
REPLICATED_TABLES = {
    "profiles": "trading_profile",
    "portfolios": "trading_portfolio",
    "orders": "trading_order",
    "positions": "trading_position",
    "trades": "trading_trade",
    "options_positions": "trading_options_position",
    "strategies": "trading_strategy",
    "funding_payments": "trading_fundingpayment",
    "liquidations": "trading_liquidation",
    "margin_history": "trading_marginhistory",
    "portfolio_snapshots": "trading_portfoliosnapshot",
    "insurance_fund": "trading_insurance_fund",
    "prediction_history": "trading_predictionhistory",
}
CONFLICT_TABLE = "sync_syncconflict"
# Columns that are this node's own bookkeeping, not replicated content.
NODE_LOCAL_COLUMNS: dict[str, set[str]] = {}


def table_exists(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", [table]).fetchone()
    return row is not None and row[0] is not None


def canonical_columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s ORDER BY column_name",
        [table],
    ).fetchall()
    skip = NODE_LOCAL_COLUMNS.get(table, set())
    return [row[0] for row in rows if row[0] not in skip]


def _row_expr(columns: list[str]) -> str:
    return "row(" + ", ".join(f't."{c}"' for c in columns) + ")::text"


def table_hash(conn: psycopg.Connection[Any], table: str) -> tuple[int, str]:
    """(count, md5 over the md5 of each row's canonical columns in id order)."""
    expr = _row_expr(canonical_columns(conn, table))
    row = conn.execute(
        f"SELECT count(*), coalesce(md5(string_agg(md5({expr}), '' ORDER BY t.id)), '') FROM {table} t"
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def checked_tables(conn: psycopg.Connection[Any]) -> list[str]:
    tables = list(REPLICATED_TABLES.values())
    if table_exists(conn, CONFLICT_TABLE):
        tables.append(CONFLICT_TABLE)
    return tables


def mesh_hashes(nodes: Iterable[Node]) -> dict[str, dict[str, tuple[int, str]]]:
    """table -> node -> (count, md5)."""
    result: dict[str, dict[str, tuple[int, str]]] = {}
    for node in nodes:
        with node.connect() as conn:
            for table in checked_tables(conn):
                result.setdefault(table, {})[node.name] = table_hash(conn, table)
    return result


def differing_tables(hashes: dict[str, dict[str, tuple[int, str]]]) -> list[str]:
    return [table for table, per_node in hashes.items() if len(set(per_node.values())) > 1]


def row_diff(nodes: list[Node], table: str, limit: int = 20) -> list[dict[str, Any]]:
    """The first `limit` ids whose canonical row differs between nodes (or is missing on some),
    with each node's row."""
    digests: dict[str, dict[str, str]] = {}
    for node in nodes:
        with node.connect() as conn:
            expr = _row_expr(canonical_columns(conn, table))
            for row_id, digest in conn.execute(f"SELECT t.id::text, md5({expr}) FROM {table} t"):
                digests.setdefault(row_id, {})[node.name] = digest
    names = [node.name for node in nodes]
    bad = sorted(
        row_id
        for row_id, per_node in digests.items()
        if len(per_node) != len(names) or len(set(per_node.values())) > 1
    )[:limit]
    report = []
    for row_id in bad:
        entry: dict[str, Any] = {"id": row_id}
        for node in nodes:
            with node.connect() as conn:
                cur = conn.execute(f"SELECT * FROM {table} WHERE id::text = %s", [row_id])
                row = cur.fetchone()
                columns = [d.name for d in cur.description or []]
                entry[node.name] = dict(zip(columns, row, strict=True)) if row else None
        report.append(entry)
    return report


# --- Sync progress (cursors against heads), read straight from the sync tables ------------------


@dataclass(frozen=True)
class LaneProgress:
    node: str  # the puller
    peer: str  # whose feed
    lane: int
    cursor: int
    head: int  # the peer's highest feed seq on that lane

    @property
    def behind(self) -> int:
        return max(0, self.head - self.cursor)


def _sync_schema(conn: psycopg.Connection[Any]) -> dict[str, str] | None:
    """Table names of the sync feed and cursors, if the data plane has created them."""
    names = {"feed": "sync_syncfeed", "cursor": "sync_synccursor", "peer": "sync_peer"}
    return names if all(table_exists(conn, t) for t in names.values()) else None


def feed_heads(node: Node) -> dict[int, int]:
    with node.connect() as conn:
        schema = _sync_schema(conn)
        if schema is None:
            return {}
        rows = conn.execute(f"SELECT lane, max(seq) FROM {schema['feed']} GROUP BY lane").fetchall()
    return {int(lane): int(seq) for lane, seq in rows}


def cursors(node: Node) -> dict[tuple[str, int], int]:
    with node.connect() as conn:
        schema = _sync_schema(conn)
        if schema is None:
            return {}
        columns = set(canonical_columns(conn, schema["cursor"]))
        peer_expr = "p.name" if "peer_id" in columns else "c.peer"
        join = f"JOIN {schema['peer']} p ON p.id = c.peer_id" if "peer_id" in columns else ""
        rows = conn.execute(f"SELECT {peer_expr}, c.lane, c.seq FROM {schema['cursor']} c {join}").fetchall()
    return {(str(peer), int(lane)): int(seq) for peer, lane, seq in rows}


def progress(nodes: list[Node]) -> list[LaneProgress]:
    heads = {node.name: feed_heads(node) for node in nodes}
    result = []
    for node in nodes:
        mine = cursors(node)
        for peer in nodes:
            if peer.name == node.name:
                continue
            for lane, head in heads[peer.name].items():
                result.append(LaneProgress(node.name, peer.name, lane, mine.get((peer.name, lane), 0), head))
    return result


# --- Waiting for convergence -------------------------------------------------------------------------


class NotConverged(AssertionError):
    pass


def wait_converged(
    nodes: list[Node], *, timeout: float, settle: float = 1.0, poll: float = 0.5
) -> dict[str, Any]:
    """Wait until every table hashes the same on every node and stays so for `settle` seconds.

    Returns {"seconds", "hashes"}; on timeout raises NotConverged with the differing tables,
    the first differing rows, the lanes still behind, and the tails of the worker logs.
    """
    started = time.monotonic()
    deadline = started + timeout
    equal_since: float | None = None
    hashes: dict[str, dict[str, tuple[int, str]]] = {}
    while time.monotonic() < deadline:
        try:
            hashes = mesh_hashes(nodes)
        except psycopg.OperationalError:  # a connection cut from outside (admin, restart): poll again
            time.sleep(poll)
            continue
        if not differing_tables(hashes):
            equal_since = equal_since or time.monotonic()
            if time.monotonic() - equal_since >= settle:
                return {"seconds": round(time.monotonic() - started, 2), "hashes": hashes}
        else:
            equal_since = None
        time.sleep(poll)
    raise NotConverged(convergence_report(nodes, hashes, timeout))


def _brief(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    return f"v{row.get('version')} by {row.get('last_modified_by')} hlc {row.get('hlc')}"


def row_trace(nodes: list[Node], table: str, row_id: str) -> list[str]:
    """Where a row is in the sync pipeline: the feed entry on every node that has one, each
    other node's cursor on that lane of that feed, and dead letters about it."""
    lines = []
    for node in nodes:
        with node.connect() as conn:
            feed = conn.execute(
                "SELECT seq, lane, origin, op FROM sync_syncfeed WHERE entity_id::text = %s", [row_id]
            ).fetchone()
            dead = conn.execute(
                "SELECT peer, reason, status, attempts, left(detail, 160) FROM sync_syncdeadletter "
                "WHERE entity_id::text = %s",
                [row_id],
            ).fetchall()
        if feed:
            seq, lane, origin, op = feed
            readers = []
            for other in nodes:
                if other.name != node.name:
                    cursor = cursors(other).get((node.name, int(lane)), 0)
                    readers.append(f"{other.name} cursor {cursor}{' (past it)' if cursor >= seq else ''}")
            lines.append(
                f"    {node.name} feed: seq {seq} lane {lane} {op} origin {origin}; " + ", ".join(readers)
            )
        for peer, reason, status, attempts, detail in dead:
            lines.append(f"    {node.name} dead letter from {peer}: {reason} {status} x{attempts}: {detail}")
    return lines or [f"    no feed entry or dead letter for {table}/{row_id} on any node"]


def dead_letters(nodes: list[Node]) -> dict[str, list[tuple[Any, ...]]]:
    result = {}
    for node in nodes:
        with node.connect() as conn:
            if not table_exists(conn, "sync_syncdeadletter"):
                continue
            rows = conn.execute(
                "SELECT entity, reason, status, count(*) FROM sync_syncdeadletter WHERE status <> 'resolved' "
                "GROUP BY entity, reason, status"
            ).fetchall()
        if rows:
            result[node.name] = rows
    return result


def convergence_report(
    nodes: list[Node], hashes: dict[str, dict[str, tuple[int, str]]], timeout: float
) -> str:
    lines = [f"not converged after {timeout} s"]
    for table in differing_tables(hashes):
        lines.append(
            f"table {table}: " + ", ".join(f"{n}={c}/{h[:8]}" for n, (c, h) in hashes[table].items())
        )
        for entry in row_diff(nodes, table, limit=5):
            lines.append(f"  {entry['id']}: " + "; ".join(f"{n.name} {_brief(entry[n.name])}" for n in nodes))
            lines.extend(row_trace(nodes, table, entry["id"]))
    for name, rows in dead_letters(nodes).items():
        lines.append(f"dead letters on {name}: {rows}")
    try:
        behind = [p for p in progress(nodes) if p.behind]
    except psycopg.Error as exc:
        behind, lines = [], [*lines, f"(progress unreadable: {exc})"]
    for lane in behind:
        lines.append(
            f"stuck: {lane.node} pulling {lane.peer} lane {lane.lane}: cursor {lane.cursor} < head {lane.head}"
        )
    for node in nodes:
        log = node.log_tail("worker", 400_000).splitlines()
        errors = [line for line in log if "Error" in line or "failed" in line or "Exception" in line]
        lines.append(f"--- {node.name} worker: {len(errors)} error lines, last 6:")
        lines.extend(line[:300] for line in errors[-6:])
    return "\n".join(lines)
