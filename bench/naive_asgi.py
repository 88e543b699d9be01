"""The naive /ws/prices, for bench/ws_fanout.py to measure beside the real one.

One channel-layer group per symbol (`naive.{symbol}`): a client joins the group of every symbol
it subscribes to, and the publisher does one `group_send` per price update, so the layer carries
one message per subscribed client per update (the design apps/markets/fanout.py replaces).

Served by its own daphne process from the repository root:

    PYTHONPATH=. python -m daphne -b 127.0.0.1 -p 18302 bench.naive_asgi:application

It uses the project's settings, channel layer and WebSocket middleware, so only the fan-out
differs from haunt.asgi.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "haunt.settings")
django_asgi_app = get_asgi_application()  # set up Django before importing consumers

from asgiref.sync import async_to_sync  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from haunt.ws_auth import HauntAuthMiddlewareStack, browser_origin_validator  # noqa: E402

MAX_SYMBOLS = 100


def naive_group(symbol: str) -> str:
    return f"naive.{symbol}"


class NaivePriceConsumer(AsyncJsonWebsocketConsumer):
    """Joins one layer group per subscribed symbol; every update is its own layer message."""

    async def connect(self) -> None:
        self.symbols: set[str] = set()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for symbol in self.symbols:
            await self.channel_layer.group_discard(naive_group(symbol), self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "subscribe":
            await self.send_json({"type": "error", "data": {"code": "unknown_type"}})
            return
        symbols = [str(s).lower() for s in content.get("symbols") or []][:MAX_SYMBOLS]
        for symbol in symbols:
            if symbol not in self.symbols:
                await self.channel_layer.group_add(naive_group(symbol), self.channel_name)
                self.symbols.add(symbol)
        data = {"symbols": sorted(self.symbols), "channels": ["prices"]}
        await self.send_json({"type": "subscribed", "data": data})
        await self.send_json({"type": "snapshot", "data": {"prices": []}})

    async def event_forward(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])


def naive_publish(frames: list[dict[str, Any]]) -> None:
    """One group_send per price_update frame (called from a worker thread, like publish())."""
    layer = get_channel_layer()

    async def send_all() -> None:
        for frame in frames:
            event = {"type": "event.forward", "event": frame}
            await layer.group_send(naive_group(frame["data"]["symbol"]), event)

    async_to_sync(send_all)()


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": browser_origin_validator(
            HauntAuthMiddlewareStack(URLRouter([path("ws/prices", NaivePriceConsumer.as_asgi())]))
        ),
    }
)
