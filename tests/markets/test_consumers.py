"""/ws/prices through the real ASGI stack with the in-memory channel layer."""

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from apps.markets.fanout import hub
from apps.markets.services.prices import ticks_ingest
from haunt.asgi import application
from haunt.seeding import seed_defaults
from tests.markets.factories import make_tick

pytestmark = pytest.mark.django_db(transaction=True)

SPEC_KEYS = {"id", "symbol", "price", "previousPrice", "tradeDirection", "source", "sources", "timestamp"}


@pytest.fixture(autouse=True)
def _seeded_and_fresh_hub(db):
    seed_defaults()
    hub.stop()
    hub.__init__()  # a new hub per test: each test runs on its own event loop
    yield
    hub.stop()


def now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


async def ingest(symbol: str = "btc", price: str = "50000.00", **overrides) -> None:
    tick = make_tick(
        base=symbol,
        instrument=f"{symbol.upper()}-USD",
        price=Decimal(price),
        exchange_ts=now_ms(),
        **overrides,
    )
    await sync_to_async(ticks_ingest)(ticks=[tick])


async def connected() -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, "/ws/prices")
    ok, _ = await ws.connect()
    assert ok
    return ws


async def subscribe(ws, symbols, **extra) -> tuple[dict, dict]:
    await ws.send_json_to({"type": "subscribe", "symbols": symbols, **extra})
    return await ws.receive_json_from(), await ws.receive_json_from()


async def test_subscribe_gets_a_snapshot_then_price_updates_in_the_spec_shape():
    await ingest(price="49500.00")
    ws = await connected()

    ack, snapshot = await subscribe(ws, ["btc"])
    await ingest(price="50000.00")
    update = await ws.receive_json_from(timeout=2)

    assert ack == {"type": "subscribed", "data": {"symbols": ["btc"], "channels": ["prices"]}}
    assert snapshot["type"] == "snapshot"
    assert [p["price"] for p in snapshot["data"]["prices"]] == [49500.0]
    assert update["type"] == "price_update"
    assert set(update["data"]) == SPEC_KEYS
    assert update["data"]["id"] == update["data"]["symbol"] == "btc"
    assert (update["data"]["price"], update["data"]["previousPrice"]) == (50000.0, 49500.0)
    assert update["data"]["tradeDirection"] == "up"
    assert update["data"]["sources"] == ["coinbase"]
    await ws.disconnect()


async def test_only_subscribed_symbols_arrive_and_unsubscribe_stops_them():
    ws = await connected()
    await subscribe(ws, ["eth"])

    await ingest("btc")
    await ingest("eth", "3000.00")
    first = await ws.receive_json_from(timeout=2)
    await ws.send_json_to({"type": "unsubscribe", "symbols": ["eth"]})
    ack = await ws.receive_json_from()
    await ingest("eth", "3001.00")

    assert first["data"]["symbol"] == "eth"
    assert ack["data"]["symbols"] == []
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_all_receives_every_symbol():
    ws = await connected()
    await subscribe(ws, "all")

    await ingest("btc")
    await ingest("eth", "3000.00")

    symbols = {(await ws.receive_json_from(timeout=2))["data"]["symbol"] for _ in range(2)}
    assert symbols == {"btc", "eth"}
    await ws.disconnect()


async def test_forming_candle_streams_separately_when_asked():
    ws = await connected()
    await subscribe(ws, ["btc"], channels=["prices", "candles"])

    await ingest("btc", "100.00")

    frames = [await ws.receive_json_from(timeout=2) for _ in range(2)]
    by_type = {f["type"]: f["data"] for f in frames}
    assert set(by_type) == {"price_update", "candle_update"}
    assert by_type["candle_update"]["interval"] == "1m"
    assert by_type["candle_update"]["close"] == 100.0
    await ws.disconnect()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "subscribe", "symbols": ["BTC/USD!"]}, "invalid"),
        ({"type": "subscribe", "symbols": []}, "invalid"),
        ({"type": "subscribe", "symbols": ["btc"], "channels": ["gossip"]}, "invalid"),
        ({"type": "subscribe"}, "invalid"),
        ({"type": "teleport"}, "unknown_type"),
    ],
)
async def test_bad_messages_get_an_error_frame_and_the_socket_stays_open(message, code):
    ws = await connected()

    await ws.send_json_to(message)
    error = await ws.receive_json_from()
    await ws.send_json_to({"type": "ping"})

    assert (error["type"], error["data"]["code"]) == ("error", code)
    assert await ws.receive_json_from() == {"type": "pong"}
    await ws.disconnect()


async def test_subscription_limit_per_connection(settings):
    settings.HAUNT_WS_MAX_SUBSCRIPTIONS = 2
    ws = await connected()
    await subscribe(ws, ["btc", "eth"])

    await ws.send_json_to({"type": "subscribe", "symbols": ["sol"]})
    error = await ws.receive_json_from()

    assert error["data"]["code"] == "too_many_subscriptions"
    assert error["data"]["detail"] == {"limit": 2}
    await ws.disconnect()


async def test_symbols_are_case_insensitive():
    ws = await connected()

    ack, _ = await subscribe(ws, ["BTC", "btc"])

    assert ack["data"]["symbols"] == ["btc"]
    await ws.disconnect()
