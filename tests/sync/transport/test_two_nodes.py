"""Two nodes on loopback: osaka is a real server process on its own database, this test process
is the other node; a sync worker here pulls osaka's writes over signed, zstd HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from apps.sync.models import Peer, SyncSession
from apps.sync.worker import PullConfig, SyncWorker
from apps.trading.models import Profile
from tests.conftest import skip_or_fail
from tests.integration.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LINK_KEY = "link-local-osaka"
LINK_SECRET = "two-node-test-link-secret-0123456789abcdef"
USER_BASE = 5000


@dataclass
class RemoteNode:
    name: str
    url: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"manage.py {args[0]} on {self.name} failed:\n{result.stderr.decode()[-3000:]}"
            )
        return result.stdout.decode()

    def shell(self, code: str) -> Any:
        """Run code on the node; it prints one JSON value as its last line."""
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])


def _database_url(name: str, data_dir: Path) -> str:
    if connection.vendor == "sqlite":
        return f"sqlite:///{data_dir / (name + '.sqlite3')}"
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}_{name}"


def _postgres_recreate(database: str) -> None:
    _postgres_drop(database)
    _postgres_admin(f'CREATE DATABASE "{database}"')


def _postgres_drop(database: str) -> None:
    _postgres_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _postgres_admin(statement: str) -> None:
    import psycopg

    db = connection.settings_dict
    with psycopg.connect(
        dbname="postgres", user=db["USER"] or None, password=db["PASSWORD"] or None,
        host=db["HOST"] or None, port=db["PORT"] or None, autocommit=True,
    ) as admin:  # fmt: skip
        admin.execute(statement)


@pytest.fixture
def osaka() -> Iterator[RemoteNode]:
    data_dir = Path(settings.DATA_DIR) / "two_nodes" / "osaka"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    database_url = _database_url("osaka", data_dir)
    if connection.vendor == "postgresql":
        _postgres_recreate(f"{connection.settings_dict['NAME']}_osaka")
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HAUNT_", "DJANGO_", "CELERY_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="haunt.settings",
        HAUNT_ENV="development",
        HAUNT_SECRET_KEY="two-node-osaka-secret-key-0123456789-abcdefghijklmnop",
        HAUNT_DATA_DIR=str(data_dir),
        HAUNT_NODE_ID="osaka",
        HAUNT_NODE_REGION="ap-northeast",
        DATABASE_URL=database_url,
        HAUNT_LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
    )
    log = data_dir / "web.log"
    node = RemoteNode(name="osaka", url=f"http://127.0.0.1:{port}", env=env, log=log)
    node.manage("migrate", "--noinput")
    node.manage("sync_peer_set", "--name", "local", "--url", "http://127.0.0.1:9", "--key-id", LINK_KEY,
                "--secret", LINK_SECRET)  # fmt: skip
    with log.open("wb") as handle:
        process = node.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "haunt.asgi:application"],
            cwd=settings.BASE_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"osaka's server exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{node.url}/api/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                skip_or_fail(f"osaka's server did not come up:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield node
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        if connection.vendor == "postgresql":
            _postgres_drop(f"{connection.settings_dict['NAME']}_osaka")


WRITE_PROFILES = """
import json
from django.contrib.auth.models import User
from apps.trading.models import Profile
ids = []
for i in range({start}, {end}):
    user = User.objects.create(id={base} + i, username=f"trader{{i}}")
    ids.append(str(Profile.objects.create(user=user, username=f"trader{{i}}", theme="dark").pk))
print(json.dumps(ids))
"""

READ_STATE = """
import json
from apps.sync.models import PeerAck
from apps.trading.models import Profile
rows = sorted([str(p.pk), p.username, p.theme, p.version, p.hlc] for p in Profile.objects.all())
acks = {str(a.lane): a.seq for a in PeerAck.objects.filter(peer__name="local")}
print(json.dumps({"rows": rows, "acks": acks}))
"""


def _users_like_osaka(start: int, end: int) -> None:
    # Users are not replicated: each node has its own accounts; ids match here so profiles apply.
    User.objects.bulk_create(User(id=USER_BASE + i, username=f"trader{i}") for i in range(start, end))


def _local_rows() -> list[list[Any]]:
    return sorted([str(p.pk), p.username, p.theme, p.version, p.hlc] for p in Profile.objects.all())


def _run_worker(lanes: list[int]) -> tuple[SyncWorker, threading.Thread]:
    worker = SyncWorker(config=PullConfig(limit=50, wait_s=5), peers=["osaka"], lanes=lanes, publish_s=0.2)
    thread = threading.Thread(target=worker.run, name="two-node-worker")
    thread.start()
    return worker, thread


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_worker_pulls_another_nodes_writes_over_http_and_resumes_from_its_cursor(osaka: RemoteNode):
    from apps.sync.capture import config_for_entity

    lane = config_for_entity("profiles").lane
    Peer.objects.all().delete()
    peer = Peer(name="osaka", url=osaka.url, region="ap-northeast", key_id=LINK_KEY)
    peer.secret = LINK_SECRET
    peer.save()
    _users_like_osaka(0, 160)

    # 1. Backlog: 120 profiles written before this node pulls (three pages of 50).
    first_ids = osaka.shell(WRITE_PROFILES.format(start=0, end=120, base=USER_BASE))
    worker, thread = _run_worker([lane])
    try:
        assert _wait_for(lambda: Profile.objects.count() == 120, timeout=60), "backlog did not arrive"
        # 2. Live: a write on osaka while the worker long-polls arrives without waiting out the poll.
        live_ids = osaka.shell(WRITE_PROFILES.format(start=120, end=130, base=USER_BASE))
        assert _wait_for(lambda: Profile.objects.count() == 130, timeout=30), "live writes did not arrive"
        # Write-to-apply time of the last live row: now minus its HLC (both nodes share the clock).
        (link,) = worker.links.values()
        live_lag_ms = link.pullers[lane].stats.apply_lag_ms
        print(f"two-node live write-to-apply lag: {live_lag_ms} ms")
        assert _wait_for(lambda: osaka.shell(READ_STATE)["acks"].get(str(lane), 0) > 0, timeout=15)
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    first_run_end = (
        SyncSession.objects.filter(peer=peer, kind__in=["pull", "backlog"]).order_by("-started_at").first()
    )

    # 3. Stopped worker, more writes, a new worker: it resumes from the committed cursor.
    more_ids = osaka.shell(WRITE_PROFILES.format(start=130, end=160, base=USER_BASE))
    worker, thread = _run_worker([lane])
    try:
        assert _wait_for(lambda: Profile.objects.count() == 160, timeout=60), "resumed pull did not arrive"
        # Acks are sent after the apply commits (off the hot path): stopping the worker the moment
        # the rows are visible could close the client under the ack.
        (link,) = worker.links.values()
        applied = link.pullers[lane].stats.cursor
        assert _wait_for(
            lambda: int(osaka.shell(READ_STATE)["acks"].get(str(lane), 0)) >= applied, timeout=15
        ), "the resumed worker did not acknowledge what it applied"
    finally:
        worker.stop()
        thread.join(timeout=30)

    remote = osaka.shell(READ_STATE)
    assert _local_rows() == remote["rows"]  # same ids, values, versions and clocks
    assert {row[0] for row in remote["rows"]} == set(first_ids + live_ids + more_ids)
    # Answered on the write, not after the 5 s wait. On PostgreSQL the feed is read below the
    # cluster-wide xmin, so transactions in other databases of this server can add some delay.
    assert live_lag_ms is not None and live_lag_ms < (1500 if connection.vendor == "sqlite" else 4500)
    resumed = SyncSession.objects.filter(peer=peer).order_by("-started_at").first()
    assert first_run_end is not None and resumed is not None
    assert resumed.cursor_start == first_run_end.cursor_end  # no page pulled twice
    assert resumed.rows == 30
    assert int(remote["acks"][str(lane)]) >= resumed.cursor_start
