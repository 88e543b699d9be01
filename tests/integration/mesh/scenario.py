"""Building blocks of the mesh scenarios: mesh setup with users, the fault schedule, the oracle
checks after convergence, and the artifacts kept for a failed run."""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.mesh import checks
from tests.integration.mesh.harness import Mesh, Node, dump_json
from tests.integration.mesh.workload import OK, MeshUser, Oracle, Record, users_script

ADMIN_USERNAME = "meshadmin"
ADMIN_TOKEN = "0000adminadminadminadminadminadminmesh"

ADMIN_SCRIPT = """
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
user, _ = User.objects.get_or_create(username={username!r}, defaults={{"is_staff": True, "is_superuser": True}})
Token.objects.get_or_create(user=user, defaults={{"key": {token!r}}})
"""


def admin_create(node: Node) -> None:
    """A staff user with a known token (the monitoring API is staff-only); created first on every
    node so the traders' ids line up."""
    node.shell(ADMIN_SCRIPT.format(username=ADMIN_USERNAME, token=ADMIN_TOKEN))


TOKENS_SCRIPT = """
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
for username, key in {pairs!r}:
    Token.objects.get_or_create(user=User.objects.get(username=username), defaults={{"key": key}})
"""


def accounts_replicate(node: Node) -> bool:
    """True when users travel between nodes (the sync app's Account mirror)."""
    with node.connect() as conn:
        return checks.table_exists(conn, "sync_account")


def accounts_create(nodes: list[Node], users: list[MeshUser], *, origin: Node | None = None) -> None:
    """The staff user and the traders on every node, with the same ids and API tokens.

    When accounts replicate, they are created once on `origin` (default: the first node) and the
    others wait for them, then get the same tokens (tokens are node-local). Otherwise they are
    created identically on every node, in the same order (one shell per node, in parallel).
    """
    script = ADMIN_SCRIPT.format(username=ADMIN_USERNAME, token=ADMIN_TOKEN) + users_script(users)
    if not accounts_replicate(nodes[0]):
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda node: node.shell(script), nodes))
        return
    origin = origin or nodes[0]
    if origin in nodes:
        origin.shell(script)
    others = [node for node in nodes if node is not origin]
    pairs = [(ADMIN_USERNAME, ADMIN_TOKEN)] + [(u.username, u.token) for u in users]
    for node in others:
        users_wait(node, [name for name, _ in pairs], timeout=90)
    with ThreadPoolExecutor(max(1, len(others))) as pool:
        list(pool.map(lambda node: node.shell(TOKENS_SCRIPT.format(pairs=pairs)), others))


def users_wait(node: Node, usernames: list[str], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with node.connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM auth_user WHERE username = ANY(%s)", [usernames]
            ).fetchone()
        have = int(row[0]) if row else 0
        if have == len(usernames):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{node.name}: {have}/{len(usernames)} users replicated after {timeout} s")
        time.sleep(0.2)


# --- Faults -----------------------------------------------------------------------------------


@dataclass
class FaultLog:
    events: list[tuple[float, str]] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, text: str) -> None:
        self.events.append((round(time.time() - self.started, 2), text))
        print(f"[nemesis +{time.time() - self.started:6.1f}s] {text}")


def partition(mesh: Mesh, node: str, seconds: float, log: FaultLog) -> None:
    log.add(f"blackhole {node}")
    mesh.nemesis.isolate(node)
    time.sleep(seconds)
    mesh.nemesis.heal(node)
    log.add(f"heal {node}")


def kill_worker_mid_batch(mesh: Mesh, node: str, down_seconds: float, log: FaultLog) -> None:
    """SIGKILL the worker while it is applying: wait until it has rows in flight (its database
    session is inside a transaction), then kill it and restart after `down_seconds`."""
    target = mesh[node]
    deadline = time.monotonic() + 5
    busy = False
    while time.monotonic() < deadline and not busy:
        busy = worker_in_transaction(target)
        if not busy:
            time.sleep(0.005)
    target.kill_worker(signal.SIGKILL)
    log.add(f"SIGKILL {node} worker ({'mid-transaction' if busy else 'no transaction seen in 5 s'})")
    time.sleep(down_seconds)
    target.start_worker()
    log.add(f"restart {node} worker")


def worker_in_transaction(node: Node) -> bool:
    """True while a session of the node's worker has an open transaction that wrote something."""
    if node.worker is None:
        return False
    with node.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state IN ('active', 'idle in transaction') AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
        ).fetchone()
    return bool(row and row[0])


def pause_worker(mesh: Mesh, node: str, seconds: float, log: FaultLog) -> None:
    log.add(f"SIGSTOP {node} worker")
    mesh[node].pause_worker()
    time.sleep(seconds)
    mesh[node].resume_worker()
    log.add(f"SIGCONT {node} worker")


def reset_links(mesh: Mesh, node: str, seconds: float, log: FaultLog) -> None:
    log.add(f"reset links of {node}")
    mesh.nemesis.set_mode(mesh.nemesis.links_of(node), "reset")
    time.sleep(seconds)
    mesh.nemesis.heal(node)
    log.add(f"heal {node}")


def delay_links(mesh: Mesh, node: str, seconds: float, log: FaultLog) -> None:
    log.add(f"delay 75ms links of {node}")
    mesh.nemesis.set_mode(mesh.nemesis.links_of(node), "delay", delay_ms=75, jitter_ms=10)
    time.sleep(seconds)
    mesh.nemesis.heal(node)
    log.add(f"heal {node}")


FAULTS: dict[str, Callable[[Mesh, str, float, FaultLog], None]] = {
    "partition": partition,
    "kill": lambda mesh, node, seconds, log: kill_worker_mid_batch(mesh, node, min(seconds, 3), log),
    "pause": pause_worker,
    "reset": reset_links,
    "delay": delay_links,
}


async def soak_faults(mesh: Mesh, *, seconds: float, seed: int, log: FaultLog) -> None:
    """A fault every 3-8 s, drawn from FAULTS, each kind at least once, for `seconds`."""
    rng = random.Random(seed ^ 0x5EED)
    deadline = time.monotonic() + seconds
    kinds = list(FAULTS)
    pending = kinds[:]
    rng.shuffle(pending)
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(3, 8))
        kind = pending.pop() if pending else rng.choice(kinds)
        node = rng.choice(list(mesh.nodes))
        await asyncio.to_thread(FAULTS[kind], mesh, node, rng.uniform(2, 10), log)


def heal_everything(mesh: Mesh, log: FaultLog) -> None:
    mesh.nemesis.heal()
    for node in mesh:
        node.resume_worker()
        if not node.worker_alive():
            node.start_worker()
        if node.web is None or node.web.poll() is not None:
            node.start_web()
            node.wait_ready()
    log.add("heal all")


# --- Checks after convergence -------------------------------------------------------------------


def strategies(node: Node) -> dict[str, str]:
    """entity -> configured strategy, from the node's EntitySyncConfig table."""
    with node.connect() as conn:
        if not checks.table_exists(conn, "sync_entitysyncconfig"):
            return {}
        return {str(e): str(s) for e, s in conn.execute("SELECT entity, strategy FROM sync_entitysyncconfig")}


def row_counts(node: Node, table: str, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    with node.connect() as conn:
        rows = conn.execute(
            f"SELECT id::text, count(*) FROM {table} WHERE id::text = ANY(%s) GROUP BY id", [ids]
        ).fetchall()
    return {str(i): int(c) for i, c in rows}


def acknowledged_rows_present(mesh: Mesh, oracle: Oracle) -> list[str]:
    """Every row an ok write created or changed exists exactly once on every node."""
    wanted: dict[str, set[str]] = {}
    for record in oracle.by_outcome(OK):
        row_id = record.row_id or _path_id(record)
        if record.entity and row_id:
            wanted.setdefault(checks.REPLICATED_TABLES[record.entity], set()).add(row_id)
    problems = []
    for table, ids in wanted.items():
        for node in mesh:
            counts = row_counts(node, table, sorted(ids))
            missing = sorted(ids - set(counts))
            doubled = sorted(i for i, c in counts.items() if c != 1)
            if missing:
                problems.append(
                    f"{node.name}.{table}: {len(missing)} acknowledged rows missing, e.g. {missing[:5]}"
                )
            if doubled:
                problems.append(f"{node.name}.{table}: rows present more than once: {doubled[:5]}")
    return problems


def _path_id(record: Record) -> str | None:
    parts = [p for p in record.path.split("/") if p]
    for part in reversed(parts):
        if len(part) == 36 and part.count("-") == 4:
            return part
    return None


def last_writer_wins_holds(mesh: Mesh, oracle: Oracle, *, gap_s: float = 0.05) -> list[str]:
    """For profiles (LAST_WRITE_WINS): when the last acknowledged theme write started after every
    other write to that profile had been answered, its value is the final one on every node (the
    HLC of a later write is larger: all nodes share this machine's clock)."""
    by_user: dict[str, list[Record]] = {}
    for record in oracle.records:
        if record.entity == "profiles" and record.body and "theme" in record.body:
            by_user.setdefault(record.user, []).append(record)
    problems = []
    checked = 0
    for username, records in by_user.items():
        records.sort(key=lambda r: r.started)
        last = records[-1]
        if last.outcome != OK:
            continue
        others_end = max((r.started + r.elapsed_ms / 1000 for r in records[:-1]), default=0.0)
        if (
            any(r.outcome != OK and r.outcome != "fail" for r in records[:-1])
            or last.started < others_end + gap_s
        ):
            continue  # overlapping or indeterminate writes: any of them may win
        checked += 1
        for node in mesh:
            with node.connect() as conn:
                row = conn.execute(
                    "SELECT p.theme FROM trading_profile p JOIN auth_user u ON u.id = p.user_id WHERE u.username = %s",
                    [username],
                ).fetchone()
            if row is None or row[0] != last.body["theme"]:
                problems.append(
                    f"{node.name}: profile of {username} has theme {row and row[0]!r}, last write "
                    f"(#{last.seq} on {last.node}) set {last.body['theme']!r}"
                )
    print(f"last-writer check: {checked} profiles had a clear last write")
    return problems


CONFLICT_COLUMNS = ("entity", "strategy", "outcome", "status")


def conflicts_consistent(mesh: Mesh) -> tuple[list[str], dict[str, int]]:
    """Each conflict is recorded once per node (same ids everywhere, no duplicate for one row
    and version pair), with the strategy configured for its entity."""
    problems: list[str] = []
    per_strategy: dict[str, int] = {}
    for node in mesh:
        configured = strategies(node)
        with node.connect() as conn:
            if not checks.table_exists(conn, checks.CONFLICT_TABLE):
                return ["no conflict table"], {}
            columns = set(checks.canonical_columns(conn, checks.CONFLICT_TABLE))
            wanted = [c for c in CONFLICT_COLUMNS if c in columns]
            rows = conn.execute(
                f"SELECT id::text, {', '.join(wanted)} FROM {checks.CONFLICT_TABLE}"
            ).fetchall()
            dup_key = [c for c in ("entity", "row_id", "a_node", "a_hlc", "b_node", "b_hlc") if c in columns]
            if len(dup_key) >= 3:
                dups = conn.execute(
                    f"SELECT {', '.join(dup_key)}, count(*) FROM {checks.CONFLICT_TABLE} "
                    f"GROUP BY {', '.join(dup_key)} HAVING count(*) > 1 LIMIT 5"
                ).fetchall()
                if dups:
                    problems.append(f"{node.name}: conflicts recorded more than once: {dups}")
        for row in rows:
            record = dict(zip(["id", *wanted], row, strict=True))
            entity, strategy = record.get("entity"), record.get("strategy")
            if node.name == mesh.primary:
                per_strategy[str(strategy)] = per_strategy.get(str(strategy), 0) + 1
            if configured and entity in configured and strategy != configured[entity]:
                problems.append(
                    f"{node.name}: conflict {record['id']} on {entity} used {strategy}, configured {configured[entity]}"
                )
    return problems, per_strategy


# --- Artifacts ---------------------------------------------------------------------------------------


def save_artifacts(
    mesh: Mesh, artifacts: Path, *, log: FaultLog, extra: dict[str, Any] | None = None
) -> None:
    dump_json(
        artifacts / "timeline.json", {"faults": log.events, "proxy": mesh.nemesis.timeline, **(extra or {})}
    )
    for node in mesh:
        target = artifacts / node.name
        target.mkdir(parents=True, exist_ok=True)
        for path in node.log_dir.glob("*.log"):
            shutil.copy(path, target / path.name)
