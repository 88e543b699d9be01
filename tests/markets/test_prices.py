"""Ingesting ticks: quotes stored, prices aggregated, candles formed, one batch published."""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.markets import events
from apps.markets.services.prices import prices_sweep, ticks_ingest
from apps.markets.services.store import price_store, redis_client
from haunt.seeding import seed_defaults
from tests.markets.factories import NOW, make_tick

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _seeded(db):
    seed_defaults()


def test_ticks_from_two_sources_become_one_weighted_price():
    result = ticks_ingest(
        ticks=[
            make_tick(source="coinbase", price=Decimal("100.00")),
            make_tick(source="huobi", instrument="btcusdt", quote="usdt", price=Decimal("110.00")),
        ],
        now_ms=NOW,
    )

    stored = price_store().prices_get(["btc"])["btc"]
    assert [p.symbol for p in result.prices] == ["btc"]
    assert stored.price == Decimal("104.12")
    assert stored.sources == ("coinbase", "huobi")


def test_newest_tick_per_source_wins_within_a_batch():
    ticks_ingest(
        ticks=[
            make_tick(price=Decimal("101.00"), exchange_ts=NOW - 10),
            make_tick(price=Decimal("102.00"), exchange_ts=NOW),
            make_tick(price=Decimal("100.00"), exchange_ts=NOW - 20),
        ],
        now_ms=NOW,
    )

    assert price_store().prices_get(["btc"])["btc"].price == Decimal("102.00")


def test_non_dollar_quotes_are_not_mixed_in():
    result = ticks_ingest(ticks=[make_tick(quote="eur", instrument="BTC-EUR")], now_ms=NOW)

    assert result.prices == []
    assert price_store().prices_get(["btc"]) == {}


def test_previous_price_and_direction_carry_across_batches():
    ticks_ingest(ticks=[make_tick(price=Decimal("100.00"))], now_ms=NOW)

    ticks_ingest(ticks=[make_tick(price=Decimal("99.00"), exchange_ts=NOW + 1000)], now_ms=NOW + 1000)

    price = price_store().prices_get(["btc"])["btc"]
    assert (price.price, price.previous_price, price.direction) == (
        Decimal("99.00"),
        Decimal("100.00"),
        "down",
    )


def test_forming_candle_updates_then_closes_when_the_minute_turns():
    ticks_ingest(ticks=[make_tick(price=Decimal("100.00"), kind="trade", size=Decimal("1"))], now_ms=NOW)
    ticks_ingest(ticks=[make_tick(price=Decimal("104.00"), exchange_ts=NOW + 20_000)], now_ms=NOW + 20_000)
    ticks_ingest(ticks=[make_tick(price=Decimal("98.00"), exchange_ts=NOW + 40_000)], now_ms=NOW + 40_000)

    result = ticks_ingest(
        ticks=[make_tick(price=Decimal("99.00"), exchange_ts=NOW + 61_000)], now_ms=NOW + 61_000
    )

    closed = [c for c in result.candles if c.closed]
    forming = [c for c in result.candles if not c.closed]
    assert len(closed) == 1 and len(forming) == 1
    c = closed[0]
    assert (c.open_time, c.open, c.high, c.low, c.close, c.volume) == (
        NOW,
        Decimal("100.00"),
        Decimal("104.00"),
        Decimal("98.00"),
        Decimal("98.00"),
        Decimal("1"),
    )
    assert (forming[0].open_time, forming[0].open) == (NOW + 60_000, Decimal("99.00"))


def test_24h_change_from_closed_minutes():
    ticks_ingest(ticks=[make_tick(price=Decimal("100.00"))], now_ms=NOW)

    ticks_ingest(ticks=[make_tick(price=Decimal("110.00"), exchange_ts=NOW + 61_000)], now_ms=NOW + 61_000)
    ticks_ingest(ticks=[make_tick(price=Decimal("110.00"), exchange_ts=NOW + 62_000)], now_ms=NOW + 62_000)

    price = price_store().prices_get(["btc"])["btc"]
    assert price.change_percent_24h == Decimal("10.00")


def test_sweep_marks_a_silent_symbol_stale_without_inventing_a_price():
    ticks_ingest(ticks=[make_tick(price=Decimal("100.00"))], now_ms=NOW)

    fresh = prices_sweep(now_ms=NOW + 31_000)

    price = price_store().prices_get(["btc"])["btc"]
    assert fresh == 0
    assert (price.stale, price.price) == (True, Decimal("100.00"))


def test_one_batch_is_published_per_ingest(settings):
    ticks = [make_tick(source=s, price=Decimal("100.00")) for s in ("coinbase", "binance")]
    ticks += [make_tick(base="eth", instrument="ETH-USD", price=Decimal("3000.00"))]

    with published_batches(settings) as batches:
        ticks_ingest(ticks=ticks, now_ms=NOW)

    assert len(batches) == 1
    batch = batches[0]
    assert batch["type"] == "prices.batch"
    assert sorted(f["data"]["symbol"] for f in batch["prices"]) == ["btc", "eth"]
    assert {f["type"] for f in batch["candles"]} == {"candle_update"}


@contextmanager
def published_batches(settings) -> Iterator[list[dict]]:
    """Batches published during the block, over Redis pub/sub or the in-memory layer."""
    batches: list[dict] = []
    if settings.REDIS_URL:
        client = redis_client(settings.REDIS_URL)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(events.prices_channel(client))
        pubsub.get_message(timeout=1)
        yield batches
        while (message := pubsub.get_message(timeout=0.5)) is not None:
            batches.append(json.loads(message["data"]))
        pubsub.close()
        return
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.PRICES_GROUP, channel)
    yield batches

    async def drain() -> None:
        with suppress(TimeoutError):
            while True:
                message = await asyncio.wait_for(layer.receive(channel), 0.2)
                batches.append(message["event"])

    async_to_sync(drain)()


def test_sweep_forgets_symbols_whose_quotes_are_gone():
    store = price_store()
    ticks_ingest(ticks=[make_tick(price=Decimal("100.00"))], now_ms=NOW)
    store.symbols_forget([])  # no-op
    if hasattr(store, "redis"):
        store.redis.delete("haunt:quotes:btc")  # what an hour of silence does (TTL)
    else:
        store.quotes.pop("btc")
        store.quotes["btc"] = {}

    prices_sweep(now_ms=NOW + 31_000)

    assert "btc" not in store.symbols()


def test_closed_live_minutes_are_stored_and_rolled_up():
    from apps.markets.models import Candle

    ticks_ingest(ticks=[make_tick(price=Decimal("100.00"))], now_ms=NOW)
    ticks_ingest(ticks=[make_tick(price=Decimal("103.00"), exchange_ts=NOW + 30_000)], now_ms=NOW + 30_000)
    ticks_ingest(ticks=[make_tick(price=Decimal("99.00"), exchange_ts=NOW + 61_000)], now_ms=NOW + 61_000)
    ticks_ingest(ticks=[make_tick(price=Decimal("101.00"), exchange_ts=NOW + 121_000)], now_ms=NOW + 121_000)

    stored = {(c.interval, c.open_time): c for c in Candle.objects.filter(source="haunt", symbol="btc")}
    five = stored[("5m", NOW)]
    assert stored[("1m", NOW)].close == Decimal("103.00")
    assert stored[("1m", NOW + 60_000)].open == Decimal("99.00")
    assert (five.open, five.high, five.low, five.close) == (
        Decimal("100.00"),
        Decimal("103.00"),
        Decimal("99.00"),
        Decimal("99.00"),
    )
    assert {interval for interval, _ in stored} == {"1m", "5m", "15m", "1h", "4h", "1d"}
