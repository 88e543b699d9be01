"""End to end: /ws/prices clients receive seeding_progress frames of the symbols they follow.

A real WebsocketCommunicator on haunt.asgi.application (in-memory channel layer), Celery eager,
only the providers fake.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from apps.markets.fanout import hub
from apps.markets.models import Candle, SeedingJob
from apps.markets.services.seeding import seeding_job_request
from haunt.asgi import application
from tests.markets.seeding.conftest import Answer

pytestmark = pytest.mark.django_db(transaction=True)

SPEC_KEYS = {"symbol", "status", "progress", "message"}


@pytest.fixture(autouse=True)
def _fresh_hub():
    hub.stop()
    hub.__init__()  # a new hub per test: each test runs on its own event loop
    yield
    hub.stop()


async def subscribed(symbols: list[str]) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, "/ws/prices")
    ok, _ = await ws.connect()
    assert ok
    await ws.send_json_to({"type": "subscribe", "symbols": symbols})
    assert (await ws.receive_json_from())["type"] == "subscribed"
    assert (await ws.receive_json_from())["type"] == "snapshot"
    return ws


async def progress_frames(ws: WebsocketCommunicator) -> list[dict]:
    """Frames until the job finishes (everything was published by the time the request returned)."""
    frames = []
    while not frames or frames[-1]["data"]["status"] not in ("completed", "failed"):
        frame = await ws.receive_json_from(timeout=5)
        if frame["type"] == "seeding_progress":
            frames.append(frame)
    return frames


async def request(symbol: str = "btc") -> SeedingJob:
    return await sync_to_async(seeding_job_request)(symbol=symbol, requested_by="test")


async def test_subscriber_sees_progress_rise_to_completed_and_candles_are_stored(history, history_exchanges):
    ws = await subscribed(["btc"])

    job = await request()
    frames = await progress_frames(ws)

    assert all(set(f["data"]) == SPEC_KEYS and f["data"]["symbol"] == "btc" for f in frames)
    progress = [f["data"]["progress"] for f in frames]
    assert progress == sorted(progress) and progress[-1] == 100
    assert [f["data"]["status"] for f in frames[:2]] == ["pending", "in_progress"]
    assert frames[-1]["data"]["status"] == "completed"
    messages = {f["data"]["progress"]: f["data"]["message"] for f in frames[1:]}
    assert messages[0] == "Fetching from CoinGecko..."
    assert "CryptoCompare" in messages[50] and "CryptoCompare" in messages[90]
    assert {50, 90} <= set(progress)
    await ws.disconnect()
    job = await sync_to_async(SeedingJob.objects.get)(pk=job.pk)
    assert job.status == "completed"
    assert await sync_to_async(Candle.objects.filter(symbol="btc", interval="1d").count)() == 365


async def test_a_provider_failing_midway_is_reported_in_the_frames(history, history_exchanges):
    history.override["/data/v2/histohour"] = Answer(status=500)
    ws = await subscribed(["btc"])

    await request()
    frames = await progress_frames(ws)

    after_hourly = next(f["data"] for f in frames if f["data"]["progress"] == 90)
    assert "CryptoCompare hourly failed" in after_hourly["message"]
    assert "HTTP 500" in after_hourly["message"]
    final = frames[-1]["data"]
    assert (final["status"], final["progress"]) == ("completed", 100)
    assert "cryptocompare_hourly" in final["message"]
    stored = await sync_to_async(lambda: set(Candle.objects.values_list("interval", flat=True)))()
    assert stored == {"5m", "1h", "1d"}
    await ws.disconnect()


async def test_only_clients_following_the_symbol_get_its_frames(history, history_exchanges):
    eth = await subscribed(["eth"])
    both = await subscribed(["btc"])
    await both.send_json_to({"type": "unsubscribe", "symbols": ["btc"]})
    assert (await both.receive_json_from())["type"] == "unsubscribed"
    everything = WebsocketCommunicator(application, "/ws/prices")
    await everything.connect()
    await everything.send_json_to({"type": "subscribe", "symbols": "all"})
    await everything.receive_json_from()
    await everything.receive_json_from()

    await request("btc")

    assert await eth.receive_nothing(timeout=0.2)
    assert await both.receive_nothing(timeout=0.1)
    assert await everything.receive_nothing(timeout=0.1)  # "all" is prices, not every backfill
    for ws in (eth, both, everything):
        await ws.disconnect()
