"""Per-process fan-out of price batches to WebSocket clients.

The naive design (one channel-layer message per client per tick) costs 40-68 µs of layer work
per delivery and queues without bound under bursts (bench/ws_fanout.py measures both). Here:

- the feed runner publishes one batch per flush (Redis pub/sub, or the in-memory channel layer
  when there is no Redis);
- each server process reads batches in one reader thread (`RedisBatchReader`), off the event loop
  that is busy sending frames, and merges them into the latest frame per symbol while the loop is
  busy, so a backlog coalesces instead of queueing;
- the loop hands each client the frames of the symbols it follows, serialised once per frame,
  through a `Mailbox` that also keeps only the latest frame per symbol: a slow client gets fewer,
  fresher frames, its backlog is bounded by its subscriptions, and it never holds up the others
  because every client drains its own mailbox in its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from apps.markets import events

logger = logging.getLogger(__name__)

GROUP_REFRESH_S = 3600.0  # re-join before channels-redis expires group membership (1 day)

Send = Callable[[str], Awaitable[None]]


class Mailbox:
    """Latest frame per key for one client, drained by the client's own sender task."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._open = asyncio.Event()
        self._open.set()
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

    def offer(self, key: str, text: str) -> None:
        if key in self._pending:
            self.coalesced += 1
        self._pending[key] = text
        self._wake.set()

    def hold(self) -> None:
        """Keep (and coalesce) frames instead of sending them until release()."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            await self._open.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            for text in pending.values():
                await self._send(text)
                self.delivered += 1


class Subscriber:
    """What one connection follows."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.symbols: set[str] = set()
        self.all_symbols = False
        self.channels: set[str] = {"prices"}


def _candle_key(frame: dict[str, Any]) -> str:
    data = frame["data"]
    return f"{frame['type']}:{data['symbol']}:{data['openTime']}"


class PriceHub:
    """This process's single subscription to price batches, fanned out to local clients."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}  # symbol -> last price_update frame
        self.forming: dict[str, dict[str, Any]] = {}  # symbol -> last candle_update frame
        self.by_symbol: dict[str, set[Subscriber]] = {}
        self.everything: set[Subscriber] = set()
        self.batches = 0
        self._task: asyncio.Task[None] | None = None
        self._reader: RedisBatchReader | None = None
        # Filled by the reader thread, emptied on the loop: latest frame per key.
        self._lock = threading.Lock()
        self._merged_prices: dict[str, dict[str, Any]] = {}
        self._merged_candles: dict[str, dict[str, Any]] = {}
        self._flush_scheduled = False
        self.merged_away = 0  # frames superseded before the loop got to them

    # --- intake ------------------------------------------------------------------------------

    async def ensure_started(self, layer: Any, redis_url: str | None) -> None:
        """Start this process's intake once: a Redis reader thread, else the channel layer."""
        loop = asyncio.get_running_loop()
        if redis_url:
            if self._reader is None or not self._reader.is_alive() or self._reader.loop is not loop:
                self.stop()
                self._reader = RedisBatchReader(redis_url, self, loop)
                self._reader.start()
                await asyncio.to_thread(self._reader.subscribed.wait, 5)
            return
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            ready = asyncio.Event()
            self._task = loop.create_task(self._run_layer(layer, ready))
            await ready.wait()

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.stop()
            self._reader = None

    async def _run_layer(self, layer: Any, ready: asyncio.Event) -> None:
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

    def merge_from_thread(self, batch: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        """Called by the reader thread: merge a batch, wake the loop if it is not already due."""
        if self._reader is None or self._reader.loop is not loop:
            return  # a stopped or replaced reader that has not noticed yet
        with self._lock:
            for frame in batch.get("prices", []):
                if frame["data"]["symbol"] in self._merged_prices:
                    self.merged_away += 1
                self._merged_prices[frame["data"]["symbol"]] = frame
            for frame in batch.get("candles", []):
                self._merged_candles[_candle_key(frame)] = frame
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        try:
            loop.call_soon_threadsafe(self._dispatch_merged)
        except RuntimeError:  # the loop closed: the server is stopping
            with self._lock:
                self._flush_scheduled = False
            raise

    def _dispatch_merged(self) -> None:
        with self._lock:
            prices, self._merged_prices = self._merged_prices, {}
            candles, self._merged_candles = self._merged_candles, {}
            self._flush_scheduled = False
        self.dispatch({"prices": list(prices.values()), "candles": list(candles.values())})

    # --- fan-out -----------------------------------------------------------------------------

    def dispatch(self, batch: dict[str, Any]) -> None:
        """Offer each frame, serialised once, to every local client that follows its symbol."""
        self.batches += 1
        for frame in batch.get("prices", []):
            symbol = frame["data"]["symbol"]
            self.latest[symbol] = frame
            text = json.dumps(frame)
            for subscriber in self._subscribers(symbol):
                if "prices" in subscriber.channels:
                    subscriber.mailbox.offer(symbol, text)
        for frame in batch.get("candles", []):
            symbol = frame["data"]["symbol"]
            if frame["type"] == "candle_update":
                self.forming[symbol] = frame
            text, key = json.dumps(frame), _candle_key(frame)
            for subscriber in self._subscribers(symbol):
                if "candles" in subscriber.channels:
                    subscriber.mailbox.offer(key, text)

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


class RedisBatchReader(threading.Thread):
    """Reads published price batches from Redis pub/sub in its own thread."""

    def __init__(self, url: str, hub: PriceHub, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name="price-batch-reader", daemon=True)
        self.url, self.hub, self.loop = url, hub, loop
        self.subscribed = threading.Event()
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set() and not self.loop.is_closed():
            try:
                self._listen()
            except (redis.RedisError, OSError) as exc:
                logger.warning("Price batch reader lost Redis (%s); retrying", exc)
                self.subscribed.set()  # don't hold up connects while Redis is away
                time.sleep(1)
            except RuntimeError:
                return  # the loop closed under us: the server is shutting down

    def _listen(self) -> None:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=2, health_check_interval=30)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(events.prices_channel(client))
            self.subscribed.set()
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    self.hub.merge_from_thread(json.loads(message["data"]), self.loop)
        finally:
            pubsub.close()
            client.close()


hub = PriceHub()
