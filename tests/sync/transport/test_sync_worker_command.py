"""`manage.py sync_worker` as a process: it starts a puller per (peer, lane) and exits cleanly on
SIGTERM, closing its sessions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings

from apps.sync.models import SyncSession
from tests.integration.processes import child_database_url
from tests.sync.transport.conftest import make_peer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_sigterm_stops_the_worker_gracefully(tmp_path):
    make_peer("seoul")  # nothing listens there: the pullers back off behind the breaker
    from apps.sync.models import Peer

    Peer.objects.update(url="http://127.0.0.1:9")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HAUNT_", "DJANGO_", "CELERY_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="haunt.test_settings",
        HAUNT_SECRET_KEY=settings.SECRET_KEY,
        HAUNT_DATA_DIR=str(tmp_path),
        DATABASE_URL=child_database_url(),
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sync_worker", "--lane", "0", "--lane", "5", "--wait", "2"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not SyncSession.objects.filter(outcome="error").exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            time.sleep(0.2)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        stop_time = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    text = output.decode()
    assert process.returncode == 0, text
    assert "Sync worker started" in text and "Sync worker stopped" in text
    assert stop_time < 10
    # The failed connection attempts left one error row per lane (one per outage, not per retry).
    assert sorted(SyncSession.objects.filter(outcome="error").values_list("lane", flat=True)) == [0, 5]
