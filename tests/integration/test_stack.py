"""Real processes: daphne and a Celery worker on Redis, a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest
from celery import Celery
from django.conf import settings
from rest_framework.authtoken.models import Token
from websockets.asyncio.client import connect

from haunt.models import Notification
from tests.conftest import make_user, redis_url_or_skip
from tests.integration import processes

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_url() -> str:
    return processes.redis_db(redis_url_or_skip(), 15)


@pytest.fixture
def web_and_worker(redis_url, tmp_path):
    env = processes.child_env(redis_url=redis_url, data_dir=tmp_path)
    port = processes.free_port()
    logs = [tmp_path / "daphne.log", tmp_path / "worker.log"]
    web = processes.start(processes.daphne_command(port), env=env, log=logs[0])
    worker = processes.start(processes.worker_command(f"itest-{uuid.uuid4().hex[:8]}"), env=env, log=logs[1])
    try:
        health = processes.wait_healthy(f"http://127.0.0.1:{port}", timeout=60, logs=logs)
        yield port, health
    finally:
        processes.stop(web)
        processes.stop(worker)


async def receive_until(ws, frame_type: str, timeout: float) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == frame_type:
                return frame


def test_celery_task_reaches_a_websocket_client_through_redis(web_and_worker, redis_url):
    port, health = web_and_worker
    user = make_user("alice")
    token = Token.objects.create(user=user).key
    producer = Celery(broker=redis_url)
    title = f"built by the worker {uuid.uuid4().hex[:6]}"

    async def scenario() -> dict:
        async with connect(f"ws://127.0.0.1:{port}/ws/events?token={token}") as ws:
            await receive_until(ws, "authenticated", timeout=10)
            producer.send_task(
                "haunt.tasks.notification_send_task",
                kwargs={"user_id": user.pk, "kind": "info", "title": title},
                queue="default",
            )
            return await receive_until(ws, "notification", timeout=20)

    frame = asyncio.run(scenario())
    producer.close()

    assert health["components"]["celery"]["workers"] >= 1
    assert health["components"]["channel_layer"]["backend"] == "RedisChannelLayer"
    assert frame["data"]["title"] == title
    assert Notification.objects.filter(user=user, title=title).exists()


def test_runstack_serves_and_stops_every_process_on_ctrl_c(tmp_path):
    redis_url = processes.redis_db(redis_url_or_skip(), 14)
    env = processes.child_env(redis_url=redis_url, data_dir=tmp_path)
    port = processes.free_port()
    log = tmp_path / "runstack.log"
    stack = processes.start([sys.executable, "manage.py", "runstack", "--port", str(port)], env=env, log=log)
    try:
        processes.wait_healthy(f"http://127.0.0.1:{port}", timeout=60, logs=[log])
        children = [int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", log.read_text())]

        os.killpg(stack.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        code = stack.wait(timeout=30)
    finally:
        processes.stop(stack)

    assert code == 0, log.read_text()[-3000:]
    assert len(children) >= 3  # web, worker, beat
    time.sleep(0.2)
    assert [pid for pid in children if _alive(pid)] == []
    assert "All processes stopped." in log.read_text()
    assert settings.BASE_DIR  # ran from the project directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    result = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return bool(result.stdout.strip()) and not result.stdout.strip().startswith("Z")
