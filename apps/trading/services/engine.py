"""The engine runner: evaluates resting orders and liquidations as price batches arrive.

The feed runner publishes one batch per flush (apps.markets.services.prices.prices_batch_send):
on Redis pub/sub when REDIS_URL is set, else on the channel layer's PRICES_GROUP. The engine
subscribes to the same stream, so a crossing price is acted on within one flush, not a poll.
While an evaluation runs, further batches wait in the subscription and are merged into the
latest price per symbol, so a burst costs one evaluation, not one per batch. The prices
evaluated are the exact Decimal marks from the price store (the batch carries floats), and only
fresh ones. Every `sweep_seconds` without a batch, and after every (re)subscription, a sweep
evaluates all current marks to catch anything published while the engine was not listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import close_old_connections

from apps.markets import events as market_events
from apps.trading.selectors import mark_prices
from apps.trading.services.triggers import EvaluationResult, prices_evaluate, resting_orders_sweep

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 10.0
POLL_SECONDS = 1.0  # how often a quiet subscription checks for stop requests and due sweeps


def batch_symbols(batch: dict[str, Any]) -> set[str]:
    """The symbols a published price batch carries a price for."""
    return {frame["data"]["symbol"] for frame in batch.get("prices", []) if frame.get("data")}


class PriceEngine:
    """One engine loop. `run()` blocks until `stop()`; run it in a process of its own
    (`manage.py run_engine`) or in a thread."""

    def __init__(self, *, redis_url: str | None, sweep_seconds: float = SWEEP_SECONDS) -> None:
        self.redis_url = redis_url
        self.sweep_seconds = sweep_seconds
        self.subscribed = threading.Event()
        self._stopping = threading.Event()
        self._last_sweep = 0.0
        self.batches = 0
        self.evaluations = 0
        self.totals = EvaluationResult()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        try:
            if self.redis_url:
                self._run_redis()
            else:
                asyncio.run(self._run_layer())
        finally:
            close_old_connections()

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, symbols: Iterable[str]) -> EvaluationResult | None:
        """Evaluate the current fresh marks of these symbols; errors are logged, never raised."""
        symbols = sorted(set(symbols))
        if not symbols:
            return None
        return self._guarded(lambda: prices_evaluate(prices=mark_prices(symbols)))

    def sweep(self) -> EvaluationResult | None:
        self._last_sweep = time.monotonic()
        return self._guarded(resting_orders_sweep)

    def _sweep_if_due(self) -> None:
        if time.monotonic() - self._last_sweep >= self.sweep_seconds:
            self.sweep()

    def _guarded(self, action: Any) -> EvaluationResult | None:
        close_old_connections()  # a long-lived process must not keep a connection the DB dropped
        try:
            result: EvaluationResult = action()
        except Exception:
            logger.exception("Price evaluation failed; continuing with the next batch")
            return None
        self.evaluations += 1
        for name in vars(result):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(result, name))
        if result.crossed or result.liquidations:
            logger.info("Engine: %s", result)
        return result

    # --- Redis pub/sub ----------------------------------------------------------------------

    def _run_redis(self) -> None:
        while not self.stopping:
            try:
                self._listen()
            except (redis.RedisError, OSError) as exc:
                logger.warning("Engine lost Redis (%s); resubscribing", exc)
                time.sleep(1)

    def _listen(self) -> None:
        assert self.redis_url is not None
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, health_check_interval=30)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(market_events.prices_channel(client))
            # Wait for the server's confirmation: from then on no batch can be missed.
            first = pubsub.get_message(timeout=POLL_SECONDS)
            self.subscribed.set()
            self.sweep()
            pending = self._symbols_of(first) if first is not None else set()
            while not self.stopping:
                message = pubsub.get_message(timeout=POLL_SECONDS) if not pending else None
                if message is None and not pending:
                    self._sweep_if_due()
                    continue
                if message is not None:
                    pending |= self._symbols_of(message)
                # Whatever queued while the last evaluation ran merges into this one.
                while (message := pubsub.get_message(timeout=0.0)) is not None:
                    pending |= self._symbols_of(message)
                self.evaluate(pending)
                pending = set()
        finally:
            pubsub.close()
            client.close()

    def _symbols_of(self, message: dict[str, Any]) -> set[str]:
        self.batches += 1
        try:
            return batch_symbols(json.loads(message["data"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("Engine: ignoring a malformed price batch")
            return set()

    # --- channel layer (no Redis) -----------------------------------------------------------

    async def _run_layer(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            logger.error("Engine: no Redis and no channel layer; nothing to listen to")
            return
        channel = await layer.new_channel()
        await layer.group_add(market_events.PRICES_GROUP, channel)
        self.subscribed.set()
        await sync_to_async(self.sweep, thread_sensitive=False)()
        try:
            while not self.stopping:
                try:
                    async with asyncio.timeout(POLL_SECONDS):
                        message = await layer.receive(channel)
                except TimeoutError:
                    await sync_to_async(self._sweep_if_due, thread_sensitive=False)()
                    continue
                self.batches += 1
                await sync_to_async(self.evaluate, thread_sensitive=False)(
                    batch_symbols(message.get("event", {}))
                )
        finally:
            with contextlib.suppress(Exception):
                await layer.group_discard(market_events.PRICES_GROUP, channel)
