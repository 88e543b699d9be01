"""Account events on /ws/events: an order's fill, position and order frames, after commit."""

from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apps.trading.exceptions import InsufficientFunds
from apps.trading.services.orders import order_cancel, order_place
from haunt.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


async def connect(token: str) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, f"/ws/events?token={token}")
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_json_from())["type"] == "authenticated"
    return ws


async def test_a_market_fill_sends_fill_position_and_order_events(token, portfolio, btc):
    ws = await connect(token)

    order = await database_sync_to_async(order_place)(
        portfolio=portfolio, symbol="btc", side="buy", type="market", quantity=D("0.5"), leverage=10
    )
    frames = [await ws.receive_json_from(timeout=2) for _ in range(3)]

    assert [frame["type"] for frame in frames] == ["fill", "position", "order"]
    fill, position, placed = (frame["data"] for frame in frames)
    assert (fill["price"], fill["quantity"], fill["fee"], fill["isMaker"]) == ("50000", "0.5", "12.5", False)
    assert (position["side"], position["quantity"], position["entryPrice"]) == ("long", "0.5", "50000")
    assert (placed["id"], placed["status"]) == (str(order.pk), "filled")
    assert await ws.receive_nothing(timeout=0.1)
    await ws.disconnect()


async def test_resting_and_cancelled_orders_send_order_events(token, portfolio, btc):
    ws = await connect(token)

    order = await database_sync_to_async(order_place)(
        portfolio=portfolio, symbol="btc", side="buy", type="limit", quantity=D("0.1"), price=D("40000")
    )
    await database_sync_to_async(order_cancel)(order=order)
    frames = [await ws.receive_json_from(timeout=2) for _ in range(2)]

    assert [(f["type"], f["data"]["status"]) for f in frames] == [("order", "open"), ("order", "cancelled")]
    await ws.disconnect()


async def test_a_refused_order_sends_nothing(token, portfolio, btc):
    ws = await connect(token)

    with pytest.raises(InsufficientFunds):
        await database_sync_to_async(order_place)(
            portfolio=portfolio, symbol="btc", side="buy", type="market", quantity=D("5")
        )

    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()
