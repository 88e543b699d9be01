"""Latency fixtures: exchange rows pointing at the fake provider, and a local WebSocket server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from apps.markets.models import Exchange
from tests.markets.conftest import FakeProvider, Reply


@pytest.fixture
def exchange(db: None) -> Callable[..., Exchange]:
    """Make an Exchange row (a WebSocket source unless told otherwise)."""

    def make(slug: str, **overrides: Any) -> Exchange:
        fields = {"name": slug.title(), "kind": Exchange.Kind.WEBSOCKET, "weight": Decimal("1.00")}
        return Exchange.objects.create(slug=slug, **(fields | overrides))

    return make


@pytest.fixture
def time_endpoints(provider: FakeProvider) -> FakeProvider:
    """The fake provider answering Binance's, Coinbase's and Kraken's time endpoints."""
    provider.routes["/api/v3/time"] = Reply('{"serverTime": 1704067200000}')
    provider.routes["/time"] = Reply('{"iso": "2024-01-01T00:00:00Z", "epoch": 1704067200.0}')
    provider.routes["/0/public/Time"] = Reply('{"error": [], "result": {"unixtime": 1704067200}}')
    return provider


@pytest.fixture
def ws_url() -> Iterator[str]:
    """A WebSocket server on 127.0.0.1 (websockets answers pings itself), in its own thread."""
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()
    address: list[str] = []

    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            address.append(f"ws://127.0.0.1:{port}")
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    yield address[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(5)
    loop.close()
