"""The feed runner against local fake exchanges over real WebSockets."""

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from apps.markets.models import Exchange
from apps.markets.selectors import sources_status
from apps.markets.services.runner import replay_supervisors, runner_build
from apps.markets.services.store import price_store
from haunt.seeding import seed_defaults
from tests.markets.feeds.fake_exchange import FakeExchange, eventually

pytestmark = pytest.mark.django_db(transaction=True)


def coinbase_ticker(price: str) -> str:
    return json.dumps(
        {
            "type": "ticker",
            "product_id": "BTC-USD",
            "price": price,
            "volume_24h": "1234.5",
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
    )


def configure(**ws_urls: str) -> None:
    seed_defaults()
    Exchange.objects.exclude(slug__in=ws_urls).update(enabled=False)
    symbols = {"coinbase": "BTC-USD", "binance": "BTCUSDT"}
    for slug, url in ws_urls.items():
        Exchange.objects.filter(slug=slug).update(ws_url=url, enabled=True, symbol_map={"btc": symbols[slug]})


async def test_a_dead_source_is_reported_down_and_prices_come_from_the_rest():
    fake = FakeExchange(
        [coinbase_ticker(p) for p in ("50000.00", "50010.00", "50020.00")], frame_interval=0.05
    )
    await fake.start()
    await sync_to_async(configure)(coinbase=fake.url, binance="ws://127.0.0.1:9/stream")  # port 9: refused
    runner = await sync_to_async(runner_build)(mode="live")
    runner.flush_s = 0.02
    running = asyncio.create_task(runner.run())
    store = price_store()

    def btc_settled() -> bool:
        price = store.prices_get(["btc"]).get("btc")
        return price is not None and price.price == Decimal("50020.00")

    try:
        await eventually(lambda: btc_settled(), timeout=10, what="btc from coinbase")
        await runner.report_health()
        status = {row["slug"]: row for row in await sync_to_async(sources_status)()}
    finally:
        runner.stop()
        await running
        await fake.stop()

    assert json.loads(fake.received[0])["type"] == "subscribe"
    assert store.prices_get(["btc"])["btc"].sources == ("coinbase",)
    assert status["coinbase"]["state"] == "healthy"
    assert status["binance"]["state"] == "down"
    assert "connect" in status["binance"]["detail"]["last_error"]


async def test_replay_source_drives_prices_without_any_exchange():
    await sync_to_async(seed_defaults)()
    from apps.markets.services.runner import FeedRunner

    runner = FeedRunner(flush_ms=20)
    for name, supervisor in replay_supervisors(runner.on_ticks, speed=0).items():
        runner.add(name, supervisor)
    running = asyncio.create_task(runner.run())
    store = price_store()
    try:
        await eventually(
            lambda: {"btc", "skl", "nkn"} <= set(store.prices_get(["btc", "skl", "nkn"])),
            timeout=10,
            what="replayed prices",
        )
    finally:
        runner.stop()
        await running

    assert store.prices_get(["btc"])["btc"].sources == ("okx",)
    assert runner.ticks_ingested > 100
