"""From ticks to aggregated prices, forming candles and one published batch per flush."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.markets import events
from apps.markets.feeds.types import Tick
from apps.markets.selectors import source_weights, usd_quotes
from apps.markets.services.aggregation import AggregatedPrice, Quote, price_aggregate
from apps.markets.services.candles import live_candles_store
from apps.markets.services.store import Candle, PriceStore, price_store, redis_client
from haunt.realtime import publish

MINUTE_MS = 60_000


@dataclass
class IngestResult:
    prices: list[AggregatedPrice] = field(default_factory=list)
    candles: list[Candle] = field(default_factory=list)  # forming and just-closed 1m candles


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def latest_quotes(ticks: Iterable[Tick], quotes: frozenset[str]) -> dict[str, dict[str, Quote]]:
    """The newest quote per (symbol, source) among USD-quoted ticks."""
    latest: dict[str, dict[str, Quote]] = {}
    for tick in ticks:
        if tick.quote not in quotes:
            continue
        per_source = latest.setdefault(tick.base, {})
        current = per_source.get(tick.source)
        if current is not None and current.exchange_ts > tick.exchange_ts:
            continue
        volume = tick.volume_24h if tick.volume_24h is not None else (current.volume_24h if current else None)
        per_source[tick.source] = Quote(tick.source, tick.price, tick.exchange_ts, tick.received_ts, volume)
    return latest


def traded_volume(ticks: Iterable[Tick], quotes: frozenset[str]) -> dict[str, Decimal]:
    volume: dict[str, Decimal] = {}
    for tick in ticks:
        if tick.kind == "trade" and tick.quote in quotes:
            volume[tick.base] = volume.get(tick.base, Decimal(0)) + tick.size
    return volume


def candle_advance(
    *, candle: Candle | None, price: AggregatedPrice, volume: Decimal
) -> tuple[Candle, Candle | None]:
    """The forming 1m candle after this price, and the candle it closed (if the minute turned)."""
    bucket = price.timestamp - price.timestamp % MINUTE_MS
    if candle is not None and bucket < candle.open_time:
        return candle, None  # a late price for a closed minute: the candle store owns history
    if candle is None or bucket > candle.open_time:
        fresh = Candle(price.symbol, "1m", bucket, price.price, price.price, price.price, price.price, volume)
        return fresh, (replace(candle, closed=True) if candle is not None else None)
    return (
        replace(
            candle,
            high=max(candle.high, price.price),
            low=min(candle.low, price.price),
            close=price.price,
            volume=candle.volume + volume,
        ),
        None,
    )


def ticks_ingest(
    *, ticks: Iterable[Tick], now_ms: int | None = None, store: PriceStore | None = None
) -> IngestResult:
    """Record the ticks' quotes, re-aggregate the symbols they touch and publish the changes.

    The feed runner calls this once per flush (many ticks), REST pollers once per poll, so a
    burst of ticks becomes one store round trip and one published batch.
    """
    ticks = list(ticks)
    store = store or price_store()
    now_ms = now_ms if now_ms is not None else _now_ms()
    quotes = usd_quotes()
    latest = latest_quotes(ticks, quotes)
    if not latest:
        return IngestResult()
    store.quotes_put({symbol: list(by_source.values()) for symbol, by_source in latest.items()})
    result = prices_aggregate(symbols=latest, now_ms=now_ms, store=store, traded=traded_volume(ticks, quotes))
    price_batch_publish(result)
    return result


def prices_aggregate(
    *, symbols: Iterable[str], now_ms: int, store: PriceStore, traded: dict[str, Decimal] | None = None
) -> IngestResult:
    """Re-aggregate symbols from their stored quotes and save prices and candles."""
    symbols = list(symbols)
    weights = source_weights()
    quotes, previous = store.quotes_get(symbols), store.prices_get(symbols)
    candles, opens = store.candles_get(symbols), store.opens_24h(symbols, now_ms)
    result, forming, closed, stale = IngestResult(), [], [], []
    for symbol in symbols:
        price = price_aggregate(
            symbol=symbol,
            quotes=quotes.get(symbol, {}),
            weights=weights,
            previous=previous.get(symbol),
            now_ms=now_ms,
            open_24h=opens.get(symbol),
        )
        if price is None:
            continue
        if price.stale:
            stale.append(price)
            continue
        candle, just_closed = candle_advance(
            candle=candles.get(symbol), price=price, volume=(traded or {}).get(symbol, Decimal(0))
        )
        result.prices.append(price)
        forming.append(candle)
        result.candles.append(candle)
        if just_closed is not None:
            closed.append(just_closed)
            result.candles.append(just_closed)
    store.prices_put([*result.prices, *stale])
    store.candles_put(forming, closed)
    if closed:
        live_candles_store(closed=closed)
    return result


def prices_sweep(*, now_ms: int | None = None, store: PriceStore | None = None) -> int:
    """Mark prices whose every source went quiet as stale; returns how many are fresh.

    Symbols with no quote left at all (their quotes expire after an hour of silence) are
    forgotten, so their stale ticker lapses with its TTL instead of being renewed forever.
    """
    store = store or price_store()
    symbols = store.symbols()
    quoted = store.quotes_get(symbols)
    store.symbols_forget([s for s in symbols if not quoted.get(s)])
    live = [s for s in symbols if quoted.get(s)]
    return len(prices_aggregate(symbols=live, now_ms=now_ms or _now_ms(), store=store).prices)


def price_batch_publish(result: IngestResult) -> None:
    """One message per batch (Redis pub/sub, else the channel layer); each server process fans
    it out to its own clients."""
    if result.prices or result.candles:
        prices_batch_send(events.prices_batch(result.prices, result.candles))


def prices_batch_send(batch: dict[str, Any]) -> None:
    """Deliver a batch to every server process: Redis pub/sub, else the in-memory layer."""
    if settings.REDIS_URL:
        client = redis_client(settings.REDIS_URL)
        client.publish(events.prices_channel(client), json.dumps(batch))
    else:
        publish(events.PRICES_GROUP, batch)
