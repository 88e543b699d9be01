"""Price WebSocket frames (/ws/prices): group names, outbound frames, inbound commands."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, TypedDict

from rest_framework import serializers

from apps.markets.services.aggregation import AggregatedPrice
from apps.markets.services.store import Candle

# One member per server process (its PriceHub), not one per client. With Redis, batches go over
# pub/sub instead (see prices_channel); the group serves the in-memory layer.
PRICES_GROUP = "markets.prices"
SYMBOL_PATTERN = r"^[a-z0-9]{1,20}$"


class PriceData(TypedDict):
    id: str
    symbol: str
    price: float
    previousPrice: float | None
    tradeDirection: Literal["up", "down"]
    source: str
    sources: list[str]
    timestamp: int


class PriceUpdateFrame(TypedDict):
    type: Literal["price_update"]
    data: PriceData


class CandleData(TypedDict):
    symbol: str
    interval: str
    openTime: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class CandleFrame(TypedDict):
    type: Literal["candle_update", "candle_closed"]
    data: CandleData


def price_data(price: AggregatedPrice) -> PriceData:
    # JSON numbers, as the spec's frame has them; computation and storage stay Decimal.
    return {
        "id": price.symbol,
        "symbol": price.symbol,
        "price": float(price.price),
        "previousPrice": float(price.previous_price) if price.previous_price is not None else None,
        "tradeDirection": price.direction,
        "source": price.source,
        "sources": list(price.sources),
        "timestamp": price.timestamp,
    }


def price_update(data: PriceData) -> PriceUpdateFrame:
    return {"type": "price_update", "data": data}


def candle_frame(candle: Candle) -> CandleFrame:
    return {
        "type": "candle_closed" if candle.closed else "candle_update",
        "data": {
            "symbol": candle.symbol,
            "interval": candle.interval,
            "openTime": candle.open_time,
            "open": float(candle.open),
            "high": float(candle.high),
            "low": float(candle.low),
            "close": float(candle.close),
            "volume": float(candle.volume),
        },
    }


def prices_channel(client: Any) -> str:
    """The Redis pub/sub channel for price batches. Pub/sub ignores database numbers, so the
    number is part of the name: nodes or test runs sharing a server on other databases stay apart."""
    return f"haunt:prices:{client.connection_pool.connection_kwargs.get('db', 0)}"


def prices_batch(prices: Iterable[AggregatedPrice], candles: Iterable[Candle]) -> dict[str, Any]:
    """The one message a flush publishes to every server process."""
    return {
        "type": "prices.batch",
        "prices": [price_update(price_data(p)) for p in prices],
        "candles": [candle_frame(c) for c in candles],
    }


class SymbolsField(serializers.Field):
    """A list of symbols, or the string "all"."""

    default_error_messages = {"invalid": 'Expected a list of symbols or "all".'}

    def to_internal_value(self, data: Any) -> list[str] | Literal["all"]:
        if data == "all":
            return "all"
        if not isinstance(data, list) or not data:
            self.fail("invalid")
        child = serializers.RegexField(SYMBOL_PATTERN, error_messages={"invalid": "Unknown symbol format."})
        return list(dict.fromkeys(child.run_validation(str(s).lower()) for s in data))

    def to_representation(self, value: Any) -> Any:
        return value


class SubscribeCommand(serializers.Serializer):
    type = serializers.ChoiceField(choices=["subscribe", "unsubscribe"])
    symbols = SymbolsField()
    channels = serializers.MultipleChoiceField(
        choices=["prices", "candles"], required=False, default={"prices"}
    )
