"""Per-process fan-out of price batches to WebSocket clients.

The naive design (one channel-layer message per client per tick) costs 40-68 µs of layer work
per delivery and queues without bound under bursts. Here each server process joins the prices
group once (`PriceHub`), receives one message per flush, and hands each client the frames of
the symbols it follows through a `Mailbox` that keeps only the latest frame per symbol: a slow
client gets fewer, fresher frames, its backlog is bounded by its subscriptions, and it never
holds up the others because every client drains its own mailbox in its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from apps.markets import events

logger = logging.getLogger(__name__)

GROUP_REFRESH_S = 3600.0  # re-join before channels-redis expires group membership (1 day)


class Mailbox:
    """Latest frame per key for one client, drained by the client's own sender task."""

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self._send = send
        self._pending: dict[str, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.coalesced = 0  # frames replaced before they were sent

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def offer(self, key: str, frame: dict[str, Any]) -> None:
        if key in self._pending:
            self.coalesced += 1
        self._pending[key] = frame
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            for frame in pending.values():
                await self._send(frame)
                self.delivered += 1


class Subscriber:
    """What one connection follows."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.symbols: set[str] = set()
        self.all_symbols = False
        self.channels: set[str] = {"prices"}

    def wants(self, symbol: str) -> bool:
        return self.all_symbols or symbol in self.symbols


class PriceHub:
    """This process's single subscription to price batches, fanned out to local clients."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}  # symbol -> last price_update frame
        self.forming: dict[str, dict[str, Any]] = {}  # symbol -> last candle frame
        self.by_symbol: dict[str, set[Subscriber]] = {}
        self.everything: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def ensure_started(self, layer: Any) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            ready = asyncio.Event()
            self._task = loop.create_task(self._run(layer, ready))
            await ready.wait()

    async def _run(self, layer: Any, ready: asyncio.Event) -> None:
        # The default "specific." prefix matters with channels-redis: all of a process's
        # channels must share it, or one receiver holds the receive lock on its own Redis key
        # and starves the other (measured: the hub got nothing while a client was connected).
        channel = await layer.new_channel()
        while True:
            try:
                await layer.group_add(events.PRICES_GROUP, channel)
                ready.set()
                async with asyncio.timeout(GROUP_REFRESH_S):
                    while True:
                        message = await layer.receive(channel)
                        self.dispatch(message.get("event", {}))
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Price hub lost the channel layer; retrying")
                ready.set()
                await asyncio.sleep(1)

    def dispatch(self, batch: dict[str, Any]) -> None:
        self.batches += 1
        for frame in batch.get("prices", []):
            symbol = frame["data"]["symbol"]
            self.latest[symbol] = frame
            for subscriber in self._subscribers(symbol):
                if "prices" in subscriber.channels:
                    subscriber.mailbox.offer(symbol, frame)
        for frame in batch.get("candles", []):
            symbol = frame["data"]["symbol"]
            if frame["type"] == "candle_update":
                self.forming[symbol] = frame
            key = f"{frame['type']}:{symbol}:{frame['data']['openTime']}"
            for subscriber in self._subscribers(symbol):
                if "candles" in subscriber.channels:
                    subscriber.mailbox.offer(key, frame)

    def _subscribers(self, symbol: str) -> set[Subscriber]:
        listeners = self.by_symbol.get(symbol)
        if not listeners:
            return self.everything
        return listeners | self.everything if self.everything else listeners

    def subscribe(self, subscriber: Subscriber, symbols: list[str] | str) -> None:
        if symbols == "all":
            subscriber.all_symbols = True
            self.everything.add(subscriber)
            return
        for symbol in symbols:
            subscriber.symbols.add(symbol)
            self.by_symbol.setdefault(symbol, set()).add(subscriber)

    def unsubscribe(self, subscriber: Subscriber, symbols: list[str] | str) -> None:
        if symbols == "all":
            subscriber.all_symbols = False
            self.everything.discard(subscriber)
            symbols = list(subscriber.symbols)
        for symbol in symbols:
            subscriber.symbols.discard(symbol)
            listeners = self.by_symbol.get(symbol)
            if listeners is not None:
                listeners.discard(subscriber)
                if not listeners:
                    del self.by_symbol[symbol]

    def remove(self, subscriber: Subscriber) -> None:
        self.unsubscribe(subscriber, "all")


hub = PriceHub()
