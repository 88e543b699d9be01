"""Where latest prices live: Redis when REDIS_URL is set (shared by every process), else memory.

Redis keys (compatible with the existing data collector):
  ticker:{symbol}              JSON of the aggregated price, 60 s TTL
  haunt:quotes:{symbol}        hash source -> JSON quote (latest per source)
  haunt:candle:1m:{symbol}     JSON of the 1-minute candle being formed
  klines:{symbol}:1m           sorted set of closed 1-minute candles by open time, newest 500
  haunt:closes:{symbol}        sorted set of minute closes over the last 24 h (for 24 h change)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Protocol

import redis
from django.conf import settings

from apps.markets import candles as ohlc
from apps.markets.services.aggregation import AggregatedPrice, Quote

TICKER_TTL_S = 60
QUOTES_TTL_S = 3600
KLINES_KEEP = 500
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Candle:
    symbol: str
    interval: str
    open_time: int  # ms, bucket start
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    closed: bool = False

    def as_bar(self) -> ohlc.Bar:
        """A live minute had at least one price, so it is never a filled bucket."""
        last_ms = self.open_time + ohlc.interval_ms(self.interval) - 1
        return ohlc.Bar(
            self.open_time,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            1,
            self.open_time,
            last_ms,
        )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str, separators=(",", ":"))


def price_to_json(price: AggregatedPrice) -> str:
    data = asdict(price)
    data["sources"] = list(price.sources)
    return _dumps(data)


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def price_from_json(raw: str | bytes) -> AggregatedPrice:
    data = json.loads(raw)
    for name in ("price", "previous_price", "volume_24h", "change_24h", "change_percent_24h"):
        data[name] = _decimal(data.get(name))
    data["sources"] = tuple(data["sources"])
    return AggregatedPrice(**data)


def quote_to_json(quote: Quote) -> str:
    return _dumps(asdict(quote))


def quote_from_json(raw: str | bytes) -> Quote:
    data = json.loads(raw)
    return Quote(
        source=data["source"],
        price=Decimal(data["price"]),
        exchange_ts=data["exchange_ts"],
        received_ts=data["received_ts"],
        volume_24h=_decimal(data.get("volume_24h")),
    )


def candle_to_json(candle: Candle) -> str:
    return _dumps(asdict(candle))


def candle_from_json(raw: str | bytes) -> Candle:
    data = json.loads(raw)
    for name in ("open", "high", "low", "close", "volume"):
        data[name] = Decimal(data[name])
    return Candle(**data)


class PriceStore(Protocol):
    def quotes_put(self, quotes: Mapping[str, list[Quote]]) -> None: ...
    def quotes_get(self, symbols: Iterable[str]) -> dict[str, dict[str, Quote]]: ...
    def symbols(self) -> list[str]: ...
    def symbols_forget(self, symbols: Iterable[str]) -> None: ...
    def prices_get(self, symbols: Iterable[str]) -> dict[str, AggregatedPrice]: ...
    def prices_put(self, prices: Iterable[AggregatedPrice]) -> None: ...
    def candles_get(self, symbols: Iterable[str]) -> dict[str, Candle]: ...
    def candles_put(self, forming: Iterable[Candle], closed: Iterable[Candle]) -> None: ...
    def opens_24h(self, symbols: Iterable[str], now_ms: int) -> dict[str, Decimal]: ...
    def health_put(self, reports: Mapping[str, dict[str, Any]]) -> None: ...
    def health_all(self) -> dict[str, dict[str, Any]]: ...


class RedisPriceStore:
    def __init__(self, client: redis.Redis) -> None:
        # Any: redis-py types every sync reply as `Awaitable | Any`.
        self.redis: Any = client

    def quotes_put(self, quotes: Mapping[str, list[Quote]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for symbol, items in quotes.items():
            key = f"haunt:quotes:{symbol}"
            pipe.hset(key, mapping={q.source: quote_to_json(q) for q in items})
            pipe.expire(key, QUOTES_TTL_S)
            pipe.sadd("haunt:symbols", symbol)
        pipe.execute()

    def quotes_get(self, symbols: Iterable[str]) -> dict[str, dict[str, Quote]]:
        symbols = list(symbols)
        pipe = self.redis.pipeline(transaction=False)
        for symbol in symbols:
            pipe.hgetall(f"haunt:quotes:{symbol}")
        rows = pipe.execute()
        return {
            symbol: {source.decode(): quote_from_json(raw) for source, raw in row.items()}
            for symbol, row in zip(symbols, rows, strict=True)
        }

    def symbols(self) -> list[str]:
        return sorted(s.decode() for s in self.redis.smembers("haunt:symbols"))

    def symbols_forget(self, symbols: Iterable[str]) -> None:
        symbols = list(symbols)
        if symbols:
            self.redis.srem("haunt:symbols", *symbols)

    def prices_get(self, symbols: Iterable[str]) -> dict[str, AggregatedPrice]:
        symbols = list(symbols)
        if not symbols:
            return {}
        raws = self.redis.mget([f"ticker:{s}" for s in symbols])
        return {s: price_from_json(raw) for s, raw in zip(symbols, raws, strict=True) if raw is not None}

    def prices_put(self, prices: Iterable[AggregatedPrice]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for price in prices:
            pipe.set(f"ticker:{price.symbol}", price_to_json(price), ex=TICKER_TTL_S)
        pipe.execute()

    def candles_get(self, symbols: Iterable[str]) -> dict[str, Candle]:
        symbols = list(symbols)
        if not symbols:
            return {}
        raws = self.redis.mget([f"haunt:candle:1m:{s}" for s in symbols])
        return {s: candle_from_json(raw) for s, raw in zip(symbols, raws, strict=True) if raw is not None}

    def candles_put(self, forming: Iterable[Candle], closed: Iterable[Candle]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for candle in forming:
            pipe.set(f"haunt:candle:1m:{candle.symbol}", candle_to_json(candle), ex=DAY_MS // 1000)
        for candle in closed:
            klines = f"klines:{candle.symbol}:1m"
            pipe.zremrangebyscore(klines, candle.open_time, candle.open_time)
            pipe.zadd(klines, {candle_to_json(candle): candle.open_time})
            pipe.zremrangebyrank(klines, 0, -KLINES_KEEP - 1)
            closes = f"haunt:closes:{candle.symbol}"
            pipe.zremrangebyscore(closes, candle.open_time, candle.open_time)
            pipe.zadd(closes, {f"{candle.open_time}:{candle.close}": candle.open_time})
            pipe.zremrangebyscore(closes, "-inf", candle.open_time - DAY_MS - 1)
        pipe.execute()

    def opens_24h(self, symbols: Iterable[str], now_ms: int) -> dict[str, Decimal]:
        symbols = list(symbols)
        pipe = self.redis.pipeline(transaction=False)
        for symbol in symbols:
            pipe.zrangebyscore(f"haunt:closes:{symbol}", now_ms - DAY_MS, "+inf", start=0, num=1)
        rows = pipe.execute()
        return {
            s: Decimal(row[0].decode().split(":", 1)[1]) for s, row in zip(symbols, rows, strict=True) if row
        }

    def health_put(self, reports: Mapping[str, dict[str, Any]]) -> None:
        if reports:
            self.redis.hset("haunt:sources:health", mapping={k: _dumps(v) for k, v in reports.items()})

    def health_all(self) -> dict[str, dict[str, Any]]:
        return {k.decode(): json.loads(v) for k, v in self.redis.hgetall("haunt:sources:health").items()}


class MemoryPriceStore:
    """The same contract in process memory, for a run without Redis (and tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.quotes: dict[str, dict[str, Quote]] = {}
        self.prices: dict[str, AggregatedPrice] = {}
        self.forming: dict[str, Candle] = {}
        self.closed: dict[str, list[Candle]] = {}
        self.health: dict[str, dict[str, Any]] = {}

    def quotes_put(self, quotes: Mapping[str, list[Quote]]) -> None:
        with self._lock:
            for symbol, items in quotes.items():
                self.quotes.setdefault(symbol, {}).update({q.source: q for q in items})

    def quotes_get(self, symbols: Iterable[str]) -> dict[str, dict[str, Quote]]:
        with self._lock:
            return {s: dict(self.quotes.get(s, {})) for s in symbols}

    def symbols(self) -> list[str]:
        return sorted(self.quotes)

    def symbols_forget(self, symbols: Iterable[str]) -> None:
        with self._lock:
            for symbol in symbols:
                self.quotes.pop(symbol, None)

    def prices_get(self, symbols: Iterable[str]) -> dict[str, AggregatedPrice]:
        return {s: self.prices[s] for s in symbols if s in self.prices}

    def prices_put(self, prices: Iterable[AggregatedPrice]) -> None:
        self.prices.update({p.symbol: p for p in prices})

    def candles_get(self, symbols: Iterable[str]) -> dict[str, Candle]:
        return {s: self.forming[s] for s in symbols if s in self.forming}

    def candles_put(self, forming: Iterable[Candle], closed: Iterable[Candle]) -> None:
        self.forming.update({c.symbol: c for c in forming})
        for candle in closed:
            history = [c for c in self.closed.get(candle.symbol, []) if c.open_time != candle.open_time]
            self.closed[candle.symbol] = [*history, candle][-1440:]

    def opens_24h(self, symbols: Iterable[str], now_ms: int) -> dict[str, Decimal]:
        opens = {}
        for symbol in symbols:
            recent = [c for c in self.closed.get(symbol, []) if c.open_time >= now_ms - DAY_MS]
            if recent:
                opens[symbol] = recent[0].close
        return opens

    def health_put(self, reports: Mapping[str, dict[str, Any]]) -> None:
        self.health.update(reports)

    def health_all(self) -> dict[str, dict[str, Any]]:
        return dict(self.health)


@cache
def _memory_store() -> MemoryPriceStore:
    return MemoryPriceStore()


def price_store() -> PriceStore:
    """The store for this process's configuration."""
    if settings.REDIS_URL:
        return RedisPriceStore(redis_client(settings.REDIS_URL))
    return _memory_store()


@cache
def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)
