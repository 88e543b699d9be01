"""The engine: one order query per evaluation, the sweep, and prices flowing from the markets price
path (ticks_ingest -> store -> Redis pub/sub) into the engine loop, with the account events on
/ws/events."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.markets.feeds.types import Tick
from apps.markets.services.prices import ticks_ingest
from apps.trading.models import Fill, Liquidation, Order, Position
from apps.trading.services.engine import PriceEngine, batch_symbols
from apps.trading.services.orders import order_place
from apps.trading.services.triggers import prices_evaluate
from apps.trading.tasks.orders import resting_orders_sweep_task
from haunt.asgi import application
from tests.conftest import redis_url_or_skip
from tests.trading.factories import make_order

D = Decimal


# --- cost and sweep ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_evaluating_a_price_that_crosses_nothing_costs_one_order_query(portfolio, btc):
    for i in range(20):  # resting rows written directly: placing 40 through the service is slow
        make_order(portfolio, symbol="btc", type="limit", price=D(40000 + i), quantity="0.01")
        make_order(
            portfolio, symbol="btc", type="stop", price=None, stop_price=D(60000 + i), status="pending"
        )

    with CaptureQueriesContext(connection) as queries:
        result = prices_evaluate(prices={"btc": D("50000"), "notlisted": D("1")})

    order_queries = [q["sql"] for q in queries if "trading_order" in q["sql"]]
    assert (result.symbols, result.crossed) == (1, 0)
    assert len(order_queries) == 1


@pytest.mark.django_db
def test_prices_of_untradable_symbols_are_ignored(portfolio):
    with CaptureQueriesContext(connection) as queries:
        result = prices_evaluate(prices={"notlisted": D("1")})

    assert result.symbols == 0
    assert len(queries) == 1  # the instrument lookup


@pytest.mark.django_db
def test_the_sweep_task_evaluates_current_marks(place, btc):
    order = place(type="limit", price=D("49000"))
    btc("48500")

    filled = resting_orders_sweep_task.delay().get()

    order.refresh_from_db()
    assert filled == 1
    assert order.status == Order.Status.FILLED


def test_batch_symbols_reads_the_published_batch_shape():
    batch = {
        "type": "prices.batch",
        "prices": [{"type": "price_update", "data": {"symbol": "btc", "price": 1.0}}],
        "candles": [{"type": "candle_update", "data": {"symbol": "eth"}}],
    }

    assert batch_symbols(batch) == {"btc"}


# --- end to end ---------------------------------------------------------------------------------


def tick(symbol: str, price: str) -> Tick:
    now = int(time.time() * 1000)
    return Tick("binance", f"{symbol.upper()}USDT", symbol, "usdt", D(price), D(0), "ticker", now, now)


class Account:
    """The /ws/events socket of the test user, collecting frames."""

    def __init__(self, ws: WebsocketCommunicator) -> None:
        self.ws = ws
        self.frames: list[dict] = []

    async def until(self, predicate, timeout: float = 5.0) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames:
                    if predicate(frame):
                        return frame
                self.frames.append(await self.ws.receive_json_from(timeout=timeout))

    async def order_status(self, order_id: object, status: str) -> dict:
        return await self.until(
            lambda f: (
                f["type"] == "order" and f["data"]["id"] == str(order_id) and f["data"]["status"] == status
            )
        )


@pytest.fixture
def engine_redis(settings) -> str:
    redis_url_or_skip()
    return settings.REDIS_URL


@pytest.fixture
async def engine(engine_redis):
    """The engine loop in a thread of its own, subscribed to the price batches."""
    loop = PriceEngine(redis_url=engine_redis, sweep_seconds=3600)

    def run() -> None:
        try:
            loop.run()
        finally:
            connection.close()

    # Not thread-sensitive: a thread of its own, so the test's ORM calls don't queue behind it;
    # events it publishes still reach this test's event loop (and its in-memory channel layer).
    task = asyncio.ensure_future(sync_to_async(run, thread_sensitive=False)())
    assert await asyncio.to_thread(loop.subscribed.wait, 5)
    yield loop
    loop.stop()
    await asyncio.wait_for(task, 10)


async def connect(token: str) -> Account:
    ws = WebsocketCommunicator(application, f"/ws/events?token={token}")
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_json_from())["type"] == "authenticated"
    return Account(ws)


ingest = database_sync_to_async(lambda symbol, price: ticks_ingest(ticks=[tick(symbol, price)]))
place = database_sync_to_async(order_place)


@pytest.mark.django_db(transaction=True)
async def test_prices_from_the_feed_path_fill_a_limit_and_trigger_a_stop(token, portfolio, engine):
    account = await connect(token)
    await ingest("btc", "50000")
    limit = await place(
        portfolio=portfolio, symbol="btc", side="buy", type="limit", quantity=D("0.1"), price=D("49000")
    )
    stop = await place(
        portfolio=portfolio, symbol="btc", side="sell", type="stop", quantity=D("0.3"), stop_price=D("48000")
    )
    await account.order_status(limit.pk, "open")
    await account.order_status(stop.pk, "pending")

    await ingest("btc", "48900")
    limit_filled = await account.order_status(limit.pk, "filled")
    await ingest("btc", "47950")
    stop_filled = await account.order_status(stop.pk, "filled")

    assert limit_filled["data"]["averagePrice"] == "49000"  # maker, at its limit
    assert stop_filled["data"]["averagePrice"] == "47950"  # taker, at the live price
    assert [f["data"]["price"] for f in account.frames if f["type"] == "fill"] == ["49000", "47950", "47950"]
    short = await account.until(lambda f: f["type"] == "position" and f["data"]["side"] == "short")
    assert short["data"]["quantity"] == "0.2"  # the stop sold 0.3 against a 0.1 long: flipped
    assert await database_sync_to_async(Fill.objects.count)() == 3
    assert engine.batches >= 2
    await account.ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_price_through_the_liquidation_price_liquidates_the_position(token, portfolio, engine):
    account = await connect(token)
    await ingest("btc", "50000")
    await place(
        portfolio=portfolio,
        symbol="btc",
        side="buy",
        type="market",
        quantity=D("0.1"),
        leverage=100,
        margin_mode="isolated",
    )
    position = await database_sync_to_async(Position.objects.get)()
    # long 0.1 @ 50,000, 100x isolated: WB = 50; LP = (Q·EP - WB - cum)/(Q·(1 - MMR)) = 4,950/0.0996
    expected = D("4950") / (D("0.1") * (1 - D("0.004")))
    assert position.liquidation_price.quantize(D("0.01")) == expected.quantize(D("0.01"))

    await ingest("btc", "49600")
    event = await account.until(lambda f: f["type"] == "liquidation")
    closed = await account.until(lambda f: f["type"] == "position" and f["data"]["status"] == "liquidated")

    position = await database_sync_to_async(Position.objects.get)(pk=position.pk)
    assert position.status == Position.Status.LIQUIDATED
    assert await database_sync_to_async(Liquidation.objects.count)() == 1
    data = event["data"]
    assert (data["symbol"], data["positionId"], closed["data"]["id"]) == (
        "btc",
        str(position.pk),
        str(position.pk),
    )
    assert D(data["markPrice"]) == D("49600")
    # bankruptcy price of an isolated long: EP - WB/Q = 50,000 - 50/0.1
    assert D(data["bankruptcyPrice"]) == D("49500")
    await account.ws.disconnect()
