"""Exchange WebSocket adapters, by slug."""

from __future__ import annotations

from apps.markets.feeds.adapters.binance import BinanceAdapter
from apps.markets.feeds.adapters.coinbase import CoinbaseAdapter
from apps.markets.feeds.adapters.huobi import HuobiAdapter
from apps.markets.feeds.adapters.kraken import KrakenAdapter
from apps.markets.feeds.adapters.kucoin import KucoinAdapter
from apps.markets.feeds.adapters.okx import OkxAdapter
from apps.markets.feeds.types import FeedAdapter

ADAPTERS: dict[str, type[FeedAdapter]] = {
    adapter.slug: adapter
    for adapter in (
        CoinbaseAdapter,
        BinanceAdapter,
        KucoinAdapter,
        OkxAdapter,
        HuobiAdapter,
        KrakenAdapter,
    )
}

__all__ = [
    "ADAPTERS",
    "BinanceAdapter",
    "CoinbaseAdapter",
    "HuobiAdapter",
    "KrakenAdapter",
    "KucoinAdapter",
    "OkxAdapter",
]
