"""Chart fixtures: hand-built candles, and per-test clean chart and catalogue caches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from apps.markets.models import Candle, Exchange
from apps.markets.selectors_candles import candle_symbols_reset
from apps.markets.services.charts import chart_cache_clear

# 2024-01-01T12:00:30Z: half a minute into a minute, mid 5-minute and mid hour buckets.
NOW = 1_704_110_400_000 + 30_000
MINUTE, HOUR = 60_000, 3_600_000


@pytest.fixture(autouse=True)
def _clean_chart_caches() -> Iterator[None]:
    chart_cache_clear()
    candle_symbols_reset()
    yield
    chart_cache_clear()
    candle_symbols_reset()


@pytest.fixture
def btc_listed(db: None) -> Exchange:
    """An exchange mapping btc: the symbol is known before any candle exists."""
    return Exchange.objects.create(
        slug="coinbase", name="Coinbase", kind=Exchange.Kind.WEBSOCKET, symbol_map={"btc": "BTC-USD"}
    )


def make_candle(
    *,
    open_time: int,
    close: str | Decimal = "100",
    symbol: str = "btc",
    interval: str = "1m",
    source: str = "haunt",
    **overrides: Any,
) -> Candle:
    price = Decimal(close)
    fields: dict[str, Any] = {
        "open": price,
        "high": price,
        "low": price,
        "close": price,
        "volume": Decimal("1.5"),
        "trade_count": 3,
    }
    fields.update(overrides)
    return Candle.objects.create(
        source=source, symbol=symbol, interval=interval, open_time=open_time, **fields
    )


@pytest.fixture
def candle(db: None) -> Callable[..., Candle]:
    return make_candle
