"""Real processes: the feed runner replaying recorded traffic, daphne, Redis, a WebSocket client."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest
from websockets.asyncio.client import connect

from haunt.seeding import seed_defaults
from tests.conftest import redis_url_or_skip
from tests.integration import processes

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SPEC_KEYS = {"id", "symbol", "price", "previousPrice", "tradeDirection", "source", "sources", "timestamp"}


def wait_for_health_reports(port: int) -> dict[str, str]:
    """Source states once the runner's first health report is in (it reports every few seconds)."""
    deadline = time.monotonic() + 15
    while True:
        status, rows = processes.get_json(f"http://127.0.0.1:{port}/api/market/sources")
        states = {row["slug"]: row["state"] for row in rows} if status == 200 else {}
        if states.get("okx") == "healthy" or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def test_client_receives_price_updates_from_the_replayed_feed(tmp_path):
    redis_url = processes.redis_db(redis_url_or_skip(), 13)
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    seed_defaults()
    env = processes.child_env(redis_url=redis_url, data_dir=tmp_path)
    port = processes.free_port()
    logs = [tmp_path / "daphne.log", tmp_path / "feeds.log"]
    web = processes.start(processes.daphne_command(port), env=env, log=logs[0])
    feeds = processes.start(
        [sys.executable, "manage.py", "run_feeds", "--mode", "replay", "--speed", "4"], env=env, log=logs[1]
    )

    async def scenario() -> tuple[list[dict], dict]:
        async with connect(f"ws://127.0.0.1:{port}/ws/prices") as ws:
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["btc", "skl", "bsv"]}))
            frames: list[dict] = []
            async with asyncio.timeout(30):
                while len([f for f in frames if f["type"] == "price_update"]) < 5:
                    frames.append(json.loads(await ws.recv()))
            # While a client holds the process's channel-layer receive loop, the health
            # check's own round trip through the layer must still get through.
            _, health = await asyncio.to_thread(processes.get_json, f"http://127.0.0.1:{port}/api/health")
            return frames, health

    try:
        processes.wait_port(port, timeout=30, logs=logs)
        frames, health = asyncio.run(scenario())
        states = wait_for_health_reports(port)
    finally:
        feeds_code = processes.stop(feeds)
        processes.stop(web)

    updates = [f["data"] for f in frames if f["type"] == "price_update"]
    assert frames[0]["type"] == "subscribed"
    assert all(set(u) == SPEC_KEYS for u in updates)
    assert {u["symbol"] for u in updates} <= {"btc", "skl", "bsv"}
    assert all(isinstance(u["price"], float) and u["price"] > 0 for u in updates)
    assert health["components"]["channel_layer"]["ok"] is True
    assert states["okx"] == "healthy"  # replayed sources report like live ones
    assert feeds_code == 0, logs[1].read_text()[-2000:]
