"""Multi-process mesh harness: real Haunt nodes (database, web server, sync worker) on loopback.

Each Node has its own PostgreSQL database (haunt_mesh_<name>), data dir and processes; peers
reach each other through the Nemesis proxy. Nothing here imports Django, so bench/sync_mesh.py
can use it as a plain script.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.integration.mesh.nemesis import Nemesis

ROOT = Path(__file__).resolve().parents[3]
PG_ADMIN_URL = os.environ.get("HAUNT_MESH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HAUNT_MESH_REDIS", "redis://127.0.0.1:6379/8")
DATA_ROOT = Path(os.environ.get("HAUNT_MESH_DATA_DIR", "/tmp/hd_m"))
DB_PREFIX = "haunt_mesh_"
SECRET_KEY = "mesh-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PYTHON = sys.executable


# --- Databases ---------------------------------------------------------------------------------


def pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True)


def database_drop(name: str) -> None:
    assert name.startswith(DB_PREFIX), name
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_create(name: str, *, template: str | None = None) -> None:
    database_drop(name)
    with pg_admin() as conn:
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')


def databases_existing(prefix: str = DB_PREFIX) -> list[str]:
    with pg_admin() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"]
        ).fetchall()
    return [row[0] for row in rows]


def _migrations_fingerprint() -> str:
    digest = hashlib.sha256()
    paths = [*ROOT.glob("**/migrations/*.py"), *ROOT.glob("apps/*/seed/**/*.json"), ROOT / "haunt/seeding.py"]
    for path in sorted(p for p in paths if p.is_file()):
        if ".git" in path.parts or "node_modules" in path.parts:
            continue
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def template_database(*, log_dir: Path) -> str:
    """A migrated database to copy nodes from (CREATE DATABASE ... TEMPLATE): migrate runs once
    per set of migration files, not once per node."""
    name = f"{DB_PREFIX}tpl_{_migrations_fingerprint()}"
    existing = databases_existing(f"{DB_PREFIX}tpl_")
    for stale in existing:
        if stale != name:
            database_drop(stale)
    if name in existing:
        return name
    building = name + "_build"
    database_create(building)
    env = node_env(name="template", region="template", database=building, data_dir=DATA_ROOT / "template")
    log_dir.mkdir(parents=True, exist_ok=True)
    run_manage(["migrate", "--noinput"], env=env, log=log_dir / "template-migrate.log", timeout=600)
    # Seeded rows are operational settings (exchanges, instruments, brackets, entity sync
    # settings), the same on every node, so they are seeded once here too.
    run_manage(["seed"], env=env, log=log_dir / "template-migrate.log", timeout=600)
    with pg_admin() as conn:
        conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return name


# --- Processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_env(
    *, name: str, region: str, database: str, data_dir: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAUNT_", "DJANGO_", "CELERY_"))}
    data_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        DJANGO_SETTINGS_MODULE="haunt.settings",
        HAUNT_ENV="development",
        HAUNT_DEBUG="false",
        HAUNT_SECRET_KEY=SECRET_KEY,
        HAUNT_DATA_DIR=str(data_dir),
        HAUNT_NODE_ID=name,
        HAUNT_NODE_REGION=region,
        DATABASE_URL=pg_url(database),
        REDIS_URL=REDIS_URL,
        HAUNT_CELERY_EAGER="true",
        HAUNT_DB_POOL_MIN="1",
        HAUNT_DB_POOL_MAX="10",
        HAUNT_THROTTLE_USER="1000000/min",
        HAUNT_THROTTLE_ANON="1000000/min",
        HAUNT_THROTTLE_AUTH="1000000/min",
        HAUNT_LOG_LEVEL="info",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra or {})
    return env


def run_manage(
    args: list[str],
    *,
    env: dict[str, str],
    log: Path | None = None,
    timeout: float = 300,
    stdin: str | None = None,
) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(f"$ manage.py {' '.join(args)}\n{result.stdout}\n{result.stderr}\n")
    if result.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result.stdout


def _spawn(command: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        handle.write(f"\n===== {time.strftime('%H:%M:%S')} start: {' '.join(command)}\n".encode())
        handle.flush()
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def _signal(process: subprocess.Popen[bytes] | None, sig: int) -> None:
    if process is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    if process is None or process.poll() is not None:
        return
    _signal(process, signal.SIGCONT)
    _signal(process, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL)
        process.wait(timeout=10)


# --- A node ----------------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    region: str
    port: int = 0
    server: str = "gunicorn"  # or "daphne"
    threads: int = 64
    extra_env: dict[str, str] = field(default_factory=dict)
    worker_args: list[str] = field(default_factory=list)  # e.g. ["--batch-rows", "500"]
    web: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    worker_starts: int = 0

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.data_dir = DATA_ROOT / self.name
        self.db_name = f"{DB_PREFIX}{self.name.replace('-', '_')}"
        self.log_dir = self.data_dir / "logs"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return pg_url(self.db_name)

    @property
    def env(self) -> dict[str, str]:
        return node_env(
            name=self.name,
            region=self.region,
            database=self.db_name,
            data_dir=self.data_dir,
            extra=self.extra_env,
        )

    # lifecycle of the database
    def create(self, *, template: str | None) -> None:
        """A fresh database: a copy of the migrated and seeded template (see template_database),
        or, without one, created empty and migrated and seeded with this node's environment."""
        with contextlib.suppress(FileNotFoundError):
            for old in self.log_dir.glob("*.log"):
                old.unlink()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        database_create(self.db_name, template=template)
        if template is None:
            self.manage("migrate", "--noinput", timeout=600)
            self.manage("seed", timeout=300)
        elif (ROOT / "apps/sync/management/commands/sync_node_init.py").exists():
            # The copy carries the template's id ranges (auth user ids are node-owned ranges).
            self.manage("sync_node_init", timeout=300)

    def drop(self) -> None:
        database_drop(self.db_name)

    def manage(self, *args: str, timeout: float = 300, stdin: str | None = None) -> str:
        return run_manage(
            list(args), env=self.env, log=self.log_dir / "manage.log", timeout=timeout, stdin=stdin
        )

    def shell(self, code: str, *, timeout: float = 120) -> str:
        return self.manage("shell", "--no-startup", "--interface", "python", stdin=code, timeout=timeout)

    def connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.database_url, autocommit=True)
        conn.execute("SET TIME ZONE 'UTC'")
        return conn

    # processes
    def web_command(self) -> list[str]:
        if self.server == "daphne":
            return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "haunt.asgi:application"]
        return [
            PYTHON, "-m", "gunicorn", "haunt.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", "1",
            "-k", "gthread", "--threads", str(self.threads), "--timeout", "120", "--graceful-timeout", "3",
            "--keep-alive", "30", "--access-logfile", "-",
            # The caller's key id tells which peer pulled (through the proxy they all come from 127.0.0.1).
            "--access-logformat", '%(t)s "%(r)s" %(s)s %(B)s %(M)sms key=%({x-haunt-key}i)s',
        ]  # fmt: skip

    def worker_command(self) -> list[str]:
        return [PYTHON, "manage.py", "sync_worker", *self.worker_args]

    def start_web(self) -> None:
        if self.web is None or self.web.poll() is not None:
            self.web = _spawn(self.web_command(), env=self.env, log=self.log_dir / "web.log")

    def start_worker(self) -> None:
        if self.worker is None or self.worker.poll() is not None:
            self.worker_starts += 1
            # One puller thread per (peer, lane) may hold a connection each.
            env = {**self.env, "HAUNT_DB_POOL_MAX": self.extra_env.get("HAUNT_DB_POOL_MAX", "24")}
            self.worker = _spawn(self.worker_command(), env=env, log=self.log_dir / "worker.log")

    def start(self) -> None:
        self.start_web()
        self.start_worker()
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline, last = time.monotonic() + timeout, "no answer"
        while time.monotonic() < deadline:
            if self.web is not None and self.web.poll() is not None:
                raise AssertionError(
                    f"{self.name}: web server exited {self.web.returncode}\n{self.log_tail('web')}"
                )
            try:
                response = httpx.get(f"{self.url}/api/health", timeout=2)
                if response.status_code < 500:
                    return
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready after {timeout} s: {last}\n{self.log_tail('web')}")

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        _signal(self.worker, sig)
        if sig == signal.SIGKILL and self.worker is not None:
            self.worker.wait(timeout=10)

    def pause_worker(self) -> None:
        _signal(self.worker, signal.SIGSTOP)

    def resume_worker(self) -> None:
        _signal(self.worker, signal.SIGCONT)

    def restart_worker(self) -> None:
        self.kill_worker()
        self.start_worker()

    def kill_web(self) -> None:
        _signal(self.web, signal.SIGKILL)
        if self.web is not None:
            self.web.wait(timeout=10)

    def stop(self) -> None:
        _stop(self.worker)
        _stop(self.web)

    def worker_alive(self) -> bool:
        return self.worker is not None and self.worker.poll() is None

    def log_tail(self, which: str, chars: int = 4000) -> str:
        path = self.log_dir / f"{which}.log"
        return f"--- {self.name}/{which}.log\n" + (
            path.read_text(errors="replace")[-chars:] if path.exists() else "(none)"
        )


# --- The mesh --------------------------------------------------------------------------------------


def link_key_id(a: str, b: str) -> str:
    first, second = sorted((a, b))
    return f"mesh-{first}-{second}"


@dataclass
class Mesh:
    """Nodes wired all-to-all through the nemesis proxy."""

    nodes: dict[str, Node]
    nemesis: Nemesis
    primary: str
    secrets: dict[str, str] = field(default_factory=dict)
    peer_command: str = "sync_peer_set"

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def link_secret(self, a: str, b: str) -> str:
        key = link_key_id(a, b)
        if key not in self.secrets:
            self.secrets[key] = secrets.token_urlsafe(32)
        return self.secrets[key]

    def wire(self, node: Node, peers: Iterable[Node] | None = None, *, proxied: bool = True) -> None:
        """Register `node`'s peers on node, and node on each of them; through the proxy's ports
        unless `proxied` is False (benchmarks). The rows are written by `manage.py sync_peer_set`'s
        service, one Django start per node (in parallel) rather than one per row."""
        chosen = peers if peers is not None else [n for n in self if n.name != node.name]
        self.wire_pairs([(node, peer) for peer in chosen], proxied=proxied)

    def wire_pairs(self, pairs: Iterable[tuple[Node, Node]], *, proxied: bool = True) -> None:
        calls: dict[str, list[dict[str, Any]]] = {}
        for node, peer in pairs:
            for source, target in ((node, peer), (peer, node)):
                port = target.port
                if proxied:
                    if (source.name, target.name) not in self.nemesis.links:
                        self.nemesis.add_link(source.name, target.name, target.port)
                    port = self.nemesis.links[(source.name, target.name)].port
                calls.setdefault(source.name, []).append(
                    {
                        "name": target.name,
                        "url": f"http://127.0.0.1:{port}",
                        "region": target.region,
                        "key_id": link_key_id(source.name, target.name),
                        "secret": self.link_secret(source.name, target.name),
                        "is_primary": target.name == self.primary,
                        "enabled": True,
                    }
                )

        def register(name: str) -> None:
            script = "from apps.sync.management.commands.sync_peer_set import peer_set\n" + "".join(
                f"peer_set(**{call!r})\n" for call in calls[name]
            )
            self.nodes[name].shell(script)

        with ThreadPoolExecutor(max(1, len(calls))) as pool:
            list(pool.map(register, calls))

    def stop(self) -> None:
        for node in self:
            node.stop()
        self.nemesis.close()


def mesh_build(
    specs: list[tuple[str, str]],
    *,
    primary: str,
    template: str,
    server: str = "gunicorn",
    start: bool = True,
    proxied: bool = True,
    extra_env: dict[str, str] | None = None,
) -> Mesh:
    mesh = Mesh(nodes={}, nemesis=Nemesis(), primary=primary)
    try:
        for name, region in specs:
            node = Node(name, region, server=server, extra_env=dict(extra_env or {}))
            mesh.nodes[name] = node
            node.create(template=template)
        started = time.monotonic()
        for node in mesh:
            node.start_web()
        for node in mesh:
            node.wait_ready()
        mesh.wire_pairs([(a, b) for a in mesh for b in mesh if a.name < b.name], proxied=proxied)
        if start:
            for node in mesh:
                node.start_worker()
    except BaseException:
        mesh.stop()  # never leave servers behind when the build fails
        for node in mesh:
            with contextlib.suppress(psycopg.Error):
                node.drop()
        raise
    print(f"mesh of {len(mesh.nodes)} built: web up and peers wired in {time.monotonic() - started:.1f} s")
    return mesh


def dump_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=str))
