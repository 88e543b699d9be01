"""ccxt, as an unmodified client, reads Haunt through the Binance facade of a real daphne.

The test process writes the data (Candle/Trade rows, ticks through ticks_ingest into Redis);
daphne serves it; ccxt's binance and ccxt.pro's binance point at 127.0.0.1 instead of Binance.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from apps.markets.feeds.types import Tick
from apps.markets.models import AGGREGATE_SOURCE, Candle, Exchange, Trade
from apps.markets.selectors import source_weights_reset
from apps.markets.services.prices import ticks_ingest
from apps.markets.services.store import redis_client
from tests.conftest import redis_url_or_skip
from tests.integration import processes

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINUTE_MS = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def tick(price: str) -> Tick:
    now = now_ms()
    return Tick(
        source="binance",
        instrument="BTCUSDT",
        base="btc",
        quote="usdt",
        price=Decimal(price),
        size=Decimal("0.5"),
        kind="trade",
        exchange_ts=now,
        received_ts=now,
        volume_24h=Decimal("1234.5"),
    )


def point_at(urls: Any, http: str, ws: str) -> Any:
    """Binance's URLs (nested dicts of strings) with every host swapped for the local server."""
    if isinstance(urls, dict):
        return {key: point_at(value, http, ws) for key, value in urls.items()}
    if isinstance(urls, str):
        return re.sub(r"^wss://[^/]+", ws, re.sub(r"^https://[^/]+", http, urls))
    return urls


def history(start: int) -> None:
    """Three closed aggregate minutes and three imported Binance trades."""
    for i, close in enumerate(("60000", "60100", "60200")):
        Candle.objects.create(
            source=AGGREGATE_SOURCE,
            symbol="btc",
            interval="1m",
            open_time=start + i * MINUTE_MS,
            open=Decimal(close) - 50,
            high=Decimal(close) + 10,
            low=Decimal(close) - 60,
            close=Decimal(close),
            volume=Decimal("2.5"),
            trade_count=3,
        )
    for i in range(3):
        Trade.objects.create(
            exchange="binance",
            symbol="BTCUSDT",
            agg_trade_id=1001 + i,
            price=Decimal("60000.5") + i,
            quantity=Decimal("0.25"),
            time_ms=start + i * 1000,
            is_buyer_maker=i == 1,
        )


async def until_done(result: Awaitable[Any], nudge: Callable[[], None], timeout: float = 20) -> Any:
    """Await a ccxt watch_* while new prices keep arriving (subscribing takes a moment)."""
    task = asyncio.ensure_future(result)
    async with asyncio.timeout(timeout):
        while not task.done():
            await asyncio.to_thread(nudge)
            await asyncio.wait([task], timeout=0.3)
    return task.result()


def test_ccxt_reads_haunt_through_the_binance_facade(tmp_path, settings):
    redis_url = processes.redis_db(redis_url_or_skip(), 10)
    settings.REDIS_URL = redis_url
    redis_client(redis_url).flushdb()
    Exchange.objects.create(
        slug="binance", name="Binance", kind=Exchange.Kind.WEBSOCKET, symbol_map={"btc": "BTCUSDT"}
    )
    source_weights_reset()
    minute = now_ms() - now_ms() % MINUTE_MS
    history(minute - 10 * MINUTE_MS)
    ticks_ingest(ticks=[tick("61000.25")])

    port = processes.free_port()
    log = tmp_path / "daphne.log"
    web = processes.start(
        processes.daphne_command(port),
        env=processes.child_env(redis_url=redis_url, data_dir=tmp_path),
        log=log,
    )
    prices = iter(range(1, 10_000))

    def nudge() -> None:
        ticks_ingest(ticks=[tick(f"{61000 + next(prices)}.5")])

    async def scenario() -> dict[str, Any]:
        import ccxt.async_support
        import ccxt.pro

        http, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        rest = ccxt.async_support.binance()
        rest.urls["api"] = point_at(rest.urls["api"], http, ws)
        live = ccxt.pro.binance()
        live.urls["api"] = point_at(live.urls["api"], http, ws)
        seen: dict[str, Any] = {}
        try:
            seen["markets"] = await rest.load_markets()
            seen["ticker"] = await rest.fetch_ticker("BTC/USDT")
            seen["ohlcv"] = await rest.fetch_ohlcv("BTC/USDT", "1m")
            seen["trades"] = await rest.fetch_trades("BTC/USDT")
            seen["time"] = await rest.fetch_time()
            await live.load_markets()
            seen["watch_ticker"] = await until_done(live.watch_ticker("BTC/USDT"), nudge)
            seen["watch_trades"] = await until_done(live.watch_trades("BTC/USDT"), nudge)
            seen["watch_ohlcv"] = await until_done(live.watch_ohlcv("BTC/USDT", "1m"), nudge)
        finally:
            await rest.close()
            await live.close()
        return seen

    try:
        processes.wait_port(port, timeout=30, logs=[log])
        seen = asyncio.run(scenario())
    finally:
        processes.stop(web)

    market = seen["markets"]["BTC/USDT"]
    assert (market["id"], market["base"], market["quote"], market["spot"]) == ("BTCUSDT", "BTC", "USDT", True)
    assert market["active"] is True
    assert seen["ticker"]["last"] == 61000.25
    assert seen["ticker"]["baseVolume"] == 1234.5
    closes = [row[4] for row in seen["ohlcv"]]
    assert closes[:3] == [60000.0, 60100.0, 60200.0]
    assert seen["ohlcv"][-1][0] == minute or seen["ohlcv"][-1][0] > minute  # the forming minute
    assert [t["id"] for t in seen["trades"]] == ["1001", "1002", "1003"]
    assert [t["side"] for t in seen["trades"]] == ["buy", "sell", "buy"]
    assert abs(seen["time"] - now_ms()) < 60_000
    assert seen["watch_ticker"]["symbol"] == "BTC/USDT"
    assert seen["watch_ticker"]["last"] > 61000.25  # a price ingested after subscribing
    assert seen["watch_trades"][-1]["price"] > 61000.25
    assert seen["watch_trades"][-1]["symbol"] == "BTC/USDT"
    assert seen["watch_ohlcv"][-1][4] > 61000.25
