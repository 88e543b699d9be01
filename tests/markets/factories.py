from __future__ import annotations

from decimal import Decimal

from apps.markets.feeds.types import Tick
from apps.markets.services.aggregation import Quote

NOW = 1_704_067_200_000  # 2024-01-01T00:00:00Z in ms


def make_tick(**overrides: object) -> Tick:
    values: dict[str, object] = {
        "source": "coinbase",
        "instrument": "BTC-USD",
        "base": "btc",
        "quote": "usd",
        "price": Decimal("50000.00"),
        "size": Decimal("0"),
        "kind": "ticker",
        "exchange_ts": NOW,
        "received_ts": NOW + 5,
    }
    values.update(overrides)
    return Tick(**values)  # type: ignore[arg-type]


def make_quote(
    source: str = "coinbase", price: str = "50000.00", age_ms: int = 0, **overrides: object
) -> Quote:
    values: dict[str, object] = {
        "source": source,
        "price": Decimal(price),
        "exchange_ts": NOW - age_ms,
        "received_ts": NOW - age_ms + 5,
    }
    values.update(overrides)
    return Quote(**values)  # type: ignore[arg-type]
