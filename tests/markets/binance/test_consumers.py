"""/ws and /ws/<n>: Binance's SUBSCRIBE protocol through the real ASGI stack."""

import time
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


@pytest.fixture(autouse=True)
def _seeded_and_fresh_hub(db):
    seed_defaults()
    hub.stop()
    hub.__init__()  # a new hub per test: each test runs on its own event loop
    yield
    hub.stop()


async def ingest(price: str, symbol: str = "btc") -> None:
    now = time.time_ns() // 1_000_000
    tick = make_tick(base=symbol, instrument=f"{symbol.upper()}-USD", price=Decimal(price), exchange_ts=now)
    await sync_to_async(ticks_ingest)(ticks=[tick])


async def connected(path: str = "/ws/1") -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, path)
    ok, _ = await ws.connect()
    assert ok
    return ws


async def test_subscribe_is_acknowledged_then_ticker_and_trade_events_arrive():
    await ingest("50000.00")
    ws = await connected()

    await ws.send_json_to({"method": "SUBSCRIBE", "params": ["btcusdt@miniTicker", "btcusdt@trade"], "id": 7})
    ack = await ws.receive_json_from()
    await ingest("50100.00")
    events = {}
    for _ in range(2):
        event = await ws.receive_json_from(timeout=2)
        events[event["e"]] = event

    assert ack == {"result": None, "id": 7}
    assert set(events) == {"24hrMiniTicker", "trade"}
    assert events["24hrMiniTicker"]["s"] == events["trade"]["s"] == "BTCUSDT"
    assert events["24hrMiniTicker"]["c"] == events["trade"]["p"] == "50100.00000000"
    assert events["trade"]["m"] is False  # the price rose: a buy
    await ws.disconnect()


async def test_kline_events_carry_the_forming_minute():
    ws = await connected("/ws")

    await ws.send_json_to(
        {"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m", "btcusdt@kline_1h"], "id": 1}
    )
    await ws.receive_json_from()
    await ingest("42.5")
    events = {}
    for _ in range(2):
        event = await ws.receive_json_from(timeout=2)
        events[event["k"]["i"]] = event

    assert set(events) == {"1m", "1h"}
    assert events["1m"]["e"] == "kline"
    assert events["1m"]["k"]["c"] == events["1h"]["k"]["c"] == "42.50000000"
    assert events["1h"]["k"]["t"] % 3_600_000 == 0
    assert events["1m"]["k"]["x"] is False
    await ws.disconnect()


async def test_list_and_unsubscribe():
    ws = await connected()
    await ws.send_json_to({"method": "SUBSCRIBE", "params": ["btcusdt@ticker", "ethusdt@trade"], "id": 1})
    await ws.receive_json_from()

    await ws.send_json_to({"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 2})
    unsubscribed = await ws.receive_json_from()
    await ws.send_json_to({"method": "LIST_SUBSCRIPTIONS", "id": 3})
    listed = await ws.receive_json_from()
    await ingest("10.0", symbol="eth")

    assert unsubscribed == {"result": None, "id": 2}
    assert listed == {"result": ["btcusdt@ticker"], "id": 3}
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 1}, 2),
        ({"method": "SUBSCRIBE", "params": ["btcusdt@kline_3m"], "id": 1}, 2),
        ({"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 1}, 2),
        ({"method": "FLY", "id": 1}, 2),
        ({"method": "SUBSCRIBE", "params": [], "id": True}, 1),
    ],
)
async def test_bad_requests_get_binance_error_replies(message, code):
    ws = await connected()

    await ws.send_json_to(message)
    reply = await ws.receive_json_from()

    assert reply["error"]["code"] == code
    await ws.disconnect()


async def test_invalid_json_gets_an_error_reply():
    ws = await connected()

    await ws.send_to(text_data="{nope")
    reply = await ws.receive_json_from()

    assert reply["error"]["code"] == 3
    await ws.disconnect()


async def test_streams_in_the_path_are_subscribed_on_connect():
    ws = await connected("/ws/btcusdt@trade")

    await ingest("7.25")
    event = await ws.receive_json_from(timeout=2)

    assert (event["e"], event["p"]) == ("trade", "7.25000000")
    await ws.disconnect()


async def test_haunt_price_socket_keeps_its_route():
    ws = await connected("/ws/prices")

    await ws.send_json_to({"type": "subscribe", "symbols": ["btc"]})

    assert (await ws.receive_json_from())["type"] == "subscribed"
    await ws.disconnect()
