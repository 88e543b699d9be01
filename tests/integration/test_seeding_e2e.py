"""Real processes: seeding through daphne and a Celery worker against fake history providers.

A WebSocket client subscribed to btc on /ws/prices receives the job's seeding_progress frames
(published by daphne for "pending", then by the worker for each step) through Redis.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import redis
from rest_framework.authtoken.models import Token
from websockets.asyncio.client import connect

from apps.markets.models import AGGREGATE_SOURCE, Candle, Exchange, SeedingJob
from haunt.seeding import seed_defaults
from tests.conftest import make_user, redis_url_or_skip
from tests.integration import processes
from tests.markets.seeding.conftest import FakeHistory, _Server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SPEC_KEYS = {"symbol", "status", "progress", "message"}


@pytest.fixture
def fake_providers() -> Iterator[FakeHistory]:
    """The seeding tests' fake CoinGecko + CryptoCompare server, on 127.0.0.1 in this process."""
    fake = FakeHistory()
    server = _Server(fake)
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


def post_seed(port: int, symbol: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/crypto/{symbol}/seed",
        method="POST",
        headers={"Authorization": f"Token {token}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_seeding_progress_reaches_a_websocket_client(fake_providers, tmp_path):
    redis_url = processes.redis_db(redis_url_or_skip(), 5)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    seed_defaults()
    Exchange.objects.filter(slug="coingecko").update(rest_url=fake_providers.url + "/api/v3")
    Exchange.objects.filter(slug="cryptocompare").update(rest_url=fake_providers.url)
    token = Token.objects.create(user=make_user("alice")).key

    env = processes.child_env(redis_url=redis_url, data_dir=tmp_path)
    port = processes.free_port()
    logs = [tmp_path / "daphne.log", tmp_path / "worker.log"]
    worker_cmd = processes.worker_command(f"itest-seed-{uuid.uuid4().hex[:8]}")
    worker_cmd[worker_cmd.index("-Q") + 1] = "default,feeds"
    web = processes.start(processes.daphne_command(port), env=env, log=logs[0])
    worker = processes.start(worker_cmd, env=env, log=logs[1])

    async def scenario() -> tuple[int, dict, list[dict]]:
        async with connect(f"ws://127.0.0.1:{port}/ws/prices") as ws:
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["btc"]}))
            async with asyncio.timeout(10):
                while json.loads(await ws.recv())["type"] != "subscribed":
                    pass
            status, job = await asyncio.to_thread(post_seed, port, "btc", token)
            progress: list[dict] = []
            async with asyncio.timeout(60):
                while not progress or progress[-1]["status"] not in ("completed", "failed"):
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "seeding_progress":
                        progress.append(frame["data"])
            return status, job, progress

    try:
        health = processes.wait_healthy(f"http://127.0.0.1:{port}", timeout=60, logs=logs)
        assert health["components"]["celery"]["workers"] >= 1, health
        status, job, progress = asyncio.run(scenario())
    finally:
        processes.stop(web)
        processes.stop(worker)

    tail = logs[1].read_text(errors="replace")[-3000:]
    assert status == 202
    assert job["symbol"] == "btc"
    assert progress[-1]["status"] == "completed", (progress, tail)
    assert all(set(data) == SPEC_KEYS for data in progress), progress
    assert {data["symbol"] for data in progress} == {"btc"}
    values = [data["progress"] for data in progress]
    assert values == sorted(values), values
    assert values[-1] == 100
    assert len(progress) >= 3, progress  # pending or a first step, intermediate steps, completed
    assert fake_providers.seen("/api/v3/coins/bitcoin/market_chart")
    assert fake_providers.seen("/data/v2/histohour")
    assert fake_providers.seen("/data/v2/histoday")
    candles = Candle.objects.filter(source=AGGREGATE_SOURCE, symbol="btc")
    assert {"5m", "1h", "1d"} <= set(candles.values_list("interval", flat=True).distinct())
    assert SeedingJob.objects.get(pk=job["id"]).status == SeedingJob.Status.COMPLETED
