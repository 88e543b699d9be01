"""Overview fixtures: the fake provider answering the overview endpoints with real response
shapes (from the providers' API docs), the CoinGecko/CoinMarketCap exchange rows pointing at it,
and live prices in the price store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from apps.markets.models import Exchange
from apps.markets.services.aggregation import AggregatedPrice
from apps.markets.services.store import price_store
from tests.markets.conftest import FakeProvider, Reply
from tests.markets.factories import make_quote

CMC_LISTINGS_PATH = "/v1/cryptocurrency/listings/latest"
GECKO_MARKETS_PATH = "/api/v3/coins/markets"
GECKO_GLOBAL_PATH = "/api/v3/global"
FNG_PATH = "/fng/"

# CoinMarketCap /v1/cryptocurrency/listings/latest (the API reference's example, two rows).
CMC_LISTINGS = """{
  "data": [
    {"id": 1, "name": "Bitcoin", "symbol": "BTC", "slug": "bitcoin", "cmc_rank": 1, "num_market_pairs": 500,
     "circulating_supply": 16950100, "total_supply": 16950100, "max_supply": 21000000, "infinite_supply": false,
     "last_updated": "2018-06-02T22:51:28.209Z", "date_added": "2013-04-28T00:00:00.000Z", "tags": ["mineable"],
     "platform": null, "self_reported_circulating_supply": null, "self_reported_market_cap": null,
     "quote": {"USD": {"price": 9283.92, "volume_24h": 7155680000, "volume_change_24h": -0.152774,
       "percent_change_1h": -0.152774, "percent_change_24h": 0.518894, "percent_change_7d": 0.986573,
       "market_cap": 852164659250.2758, "market_cap_dominance": 51, "fully_diluted_market_cap": 952835089431.14,
       "last_updated": "2018-08-09T22:53:32.000Z"}}},
    {"id": 1027, "name": "Ethereum", "symbol": "ETH", "slug": "ethereum", "cmc_rank": 2, "num_market_pairs": 6360,
     "circulating_supply": 16950100, "total_supply": 16950100, "max_supply": null, "infinite_supply": true,
     "last_updated": "2018-06-02T22:51:28.209Z", "date_added": "2015-08-07T00:00:00.000Z", "tags": [],
     "platform": null, "self_reported_circulating_supply": null, "self_reported_market_cap": null,
     "quote": {"USD": {"price": 1283.92, "volume_24h": 7155680000, "volume_change_24h": -0.152774,
       "percent_change_1h": -0.152774, "percent_change_24h": 0.518894, "percent_change_7d": 0.986573,
       "market_cap": 158055024432, "market_cap_dominance": 51, "fully_diluted_market_cap": 952835089431.14,
       "last_updated": "2018-08-09T22:53:32.000Z"}}}
  ],
  "status": {"timestamp": "2018-06-02T22:51:28.209Z", "error_code": 0, "error_message": "", "elapsed": 10,
             "credit_count": 1}
}"""

# CoinGecko /coins/markets?vs_currency=usd&price_change_percentage=1h,24h,7d (the API reference's
# example row, plus Ethereum and "Batcat", a namesake token that also calls itself BTC).
GECKO_MARKETS = """[
  {"id": "bitcoin", "symbol": "btc", "name": "Bitcoin",
   "image": "https://assets.coingecko.com/coins/images/1/large/bitcoin.png?1696501400",
   "current_price": 70187, "market_cap": 1381651251183, "market_cap_rank": 1,
   "fully_diluted_valuation": 1474623675796, "total_volume": 20154184933, "high_24h": 70215, "low_24h": 68060,
   "price_change_24h": 2126.88, "price_change_percentage_24h": 3.12502, "market_cap_change_24h": 44287678051,
   "market_cap_change_percentage_24h": 3.31157, "circulating_supply": 19675987, "total_supply": 21000000,
   "max_supply": 21000000, "ath": 73738, "ath_change_percentage": -4.77063, "ath_date": "2024-03-14T07:10:36.635Z",
   "atl": 67.81, "atl_change_percentage": 103455.83335, "atl_date": "2013-07-06T00:00:00.000Z", "roi": null,
   "last_updated": "2024-04-07T16:49:31.736Z", "price_change_percentage_1h_in_currency": 0.1234,
   "price_change_percentage_24h_in_currency": 3.12502, "price_change_percentage_7d_in_currency": 5.6789},
  {"id": "ethereum", "symbol": "eth", "name": "Ethereum",
   "image": "https://assets.coingecko.com/coins/images/279/large/ethereum.png?1696501628",
   "current_price": 3432.21, "market_cap": 412000000000.1, "market_cap_rank": 2,
   "fully_diluted_valuation": 412000000000.1, "total_volume": 12000000000, "high_24h": 3500, "low_24h": 3300,
   "price_change_24h": -12.5, "price_change_percentage_24h": -0.36, "market_cap_change_24h": -1500000000,
   "market_cap_change_percentage_24h": -0.36, "circulating_supply": 120000000, "total_supply": 120000000,
   "max_supply": null, "ath": 4878.26, "ath_change_percentage": -29.6, "ath_date": "2021-11-10T14:24:19.604Z",
   "atl": 0.432979, "atl_change_percentage": 792000.1, "atl_date": "2015-10-20T00:00:00.000Z", "roi": null,
   "last_updated": "2024-04-07T16:49:30.100Z", "price_change_percentage_1h_in_currency": -0.05,
   "price_change_percentage_24h_in_currency": -0.36, "price_change_percentage_7d_in_currency": 1.5},
  {"id": "batcat", "symbol": "btc", "name": "Batcat", "image": null,
   "current_price": 0.0001234, "market_cap": 1234567, "market_cap_rank": 150,
   "fully_diluted_valuation": null, "total_volume": 1000, "high_24h": null, "low_24h": null,
   "price_change_24h": null, "price_change_percentage_24h": null, "market_cap_change_24h": null,
   "market_cap_change_percentage_24h": null, "circulating_supply": 10000000000, "total_supply": null,
   "max_supply": null, "ath": null, "ath_change_percentage": null, "ath_date": null,
   "atl": null, "atl_change_percentage": null, "atl_date": null, "roi": null,
   "last_updated": "2024-04-07T16:40:00.000Z"}
]"""

# CoinGecko /global (the API reference's example).
GECKO_GLOBAL = """{"data": {"active_cryptocurrencies": 13690, "upcoming_icos": 0, "ongoing_icos": 49,
  "ended_icos": 3376, "markets": 1046,
  "total_market_cap": {"btc": 39003738.0847159, "eth": 803832137.207531, "usd": 2721226850772.63},
  "total_volume": {"btc": 993675.225562481, "eth": 20478757.2115529, "usd": 69327091133.5476},
  "market_cap_percentage": {"btc": 50.4465263233584, "eth": 14.9228066918211, "usdt": 3.92430087292716},
  "market_cap_change_percentage_24h_usd": 1.72179506060272, "updated_at": 1712512855}}"""

# alternative.me /fng/?limit=2 (its documentation's example, with a second day).
FEAR_GREED = """{
  "name": "Fear and Greed Index",
  "data": [
    {"value": "40", "value_classification": "Fear", "timestamp": "1551157200", "time_until_update": "68499"},
    {"value": "47", "value_classification": "Neutral", "timestamp": "1551070800"}
  ],
  "metadata": {"error": null}
}"""


@pytest.fixture
def overview(db: None, provider: FakeProvider, settings: Any) -> FakeProvider:
    """The fake provider answering the overview endpoints; CoinGecko/CMC rows and alternative.me at it."""
    provider.routes.update(
        {
            CMC_LISTINGS_PATH: Reply(CMC_LISTINGS),
            GECKO_MARKETS_PATH: Reply(GECKO_MARKETS),
            GECKO_GLOBAL_PATH: Reply(GECKO_GLOBAL),
            FNG_PATH: Reply(FEAR_GREED),
        }
    )
    Exchange.objects.create(
        slug="coingecko",
        name="CoinGecko",
        kind=Exchange.Kind.REST,
        rest_url=provider.url + "/api/v3",
        symbol_map={"btc": "bitcoin", "eth": "ethereum"},
    )
    Exchange.objects.create(
        slug="coinmarketcap",
        name="CoinMarketCap",
        kind=Exchange.Kind.REST,
        rest_url=provider.url,
        symbol_map={"btc": "1", "eth": "1027"},
    )
    settings.HAUNT_COINMARKETCAP_API_KEY = None
    settings.HAUNT_FEAR_GREED_URL = provider.url + FNG_PATH
    return provider


def hits(provider: FakeProvider, path: str) -> int:
    return sum(1 for request in provider.requests if request.path == path)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def live_price() -> Callable[..., AggregatedPrice]:
    """Put an aggregated price in the price store (fresh unless `age_ms` says otherwise)."""

    def put(symbol: str, price: str, change_percent: str | None = None, age_ms: int = 0) -> AggregatedPrice:
        aggregated = AggregatedPrice(
            symbol=symbol,
            price=Decimal(price),
            previous_price=None,
            direction="up",
            source="coinbase",
            sources=("coinbase", "binance"),
            timestamp=now_ms() - age_ms,
            volume_24h=Decimal("12.5"),
            change_24h=None,
            change_percent_24h=None if change_percent is None else Decimal(change_percent),
        )
        store = price_store()
        store.quotes_put({symbol: [make_quote(price=price, exchange_ts=aggregated.timestamp)]})  # lists it
        store.prices_put([aggregated])
        return aggregated

    return put
