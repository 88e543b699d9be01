"""Aggregating per-source quotes into one price per symbol (pure functions, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

MAX_AGE_MS = 30_000  # a source's price older than this, by its own timestamp, is dropped
MAX_FUTURE_MS = 5_000  # a timestamp further ahead than this is a broken clock, not a price

Direction = Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class Quote:
    """The latest price one source gave for one symbol."""

    source: str
    price: Decimal
    exchange_ts: int
    received_ts: int
    volume_24h: Decimal | None = None


@dataclass(frozen=True, slots=True)
class AggregatedPrice:
    symbol: str
    price: Decimal
    previous_price: Decimal | None
    direction: Direction
    source: str  # the contributing source that spoke last
    sources: tuple[str, ...]  # contributing sources, heaviest first
    timestamp: int  # ms: the newest contributing source timestamp
    volume_24h: Decimal | None = None
    change_24h: Decimal | None = None
    change_percent_24h: Decimal | None = None
    stale: bool = False


def fresh_quotes(
    quotes: Mapping[str, Quote], weights: Mapping[str, Decimal], now_ms: int, max_age_ms: int = MAX_AGE_MS
) -> list[Quote]:
    """Quotes from enabled, weighted sources whose own timestamp is recent enough."""
    return [
        quote
        for quote in quotes.values()
        if weights.get(quote.source, Decimal(0)) > 0
        and -MAX_FUTURE_MS <= now_ms - quote.exchange_ts <= max_age_ms
    ]


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def weighted_average(quotes: list[Quote], weights: Mapping[str, Decimal]) -> Decimal:
    """Weighted mean, rounded to the finest precision any source quoted."""
    total_weight = sum((weights[q.source] for q in quotes), Decimal(0))
    mean = sum((q.price * weights[q.source] for q in quotes), Decimal(0)) / total_weight
    places = max(_places(q.price) for q in quotes)
    return mean.quantize(Decimal(1).scaleb(-places))


def price_aggregate(
    *,
    symbol: str,
    quotes: Mapping[str, Quote],
    weights: Mapping[str, Decimal],
    previous: AggregatedPrice | None,
    now_ms: int,
    open_24h: Decimal | None = None,
) -> AggregatedPrice | None:
    """The symbol's price from its fresh quotes.

    With no fresh quote the previous price is kept and marked stale (never invented); with no
    previous price either, there is nothing to report (None).
    """
    fresh = fresh_quotes(quotes, weights, now_ms)
    if not fresh:
        return replace(previous, stale=True) if previous is not None else None
    price = weighted_average(fresh, weights)
    if previous is None or price == previous.price:
        direction: Direction = previous.direction if previous is not None else "up"
    else:
        direction = "up" if price > previous.price else "down"
    latest = max(fresh, key=lambda q: (q.exchange_ts, q.source))
    volumes = [q.volume_24h for q in fresh if q.volume_24h is not None]
    change = change_pct = None
    if open_24h:
        change = price - open_24h
        change_pct = (change / open_24h * 100).quantize(Decimal("0.01"))
    return AggregatedPrice(
        symbol=symbol,
        price=price,
        previous_price=previous.price if previous is not None else None,
        direction=direction,
        source=latest.source,
        sources=tuple(q.source for q in sorted(fresh, key=lambda q: (-weights[q.source], q.source))),
        timestamp=latest.exchange_ts,
        volume_24h=sum(volumes, Decimal(0)) if volumes else None,
        change_24h=change,
        change_percent_24h=change_pct,
    )
