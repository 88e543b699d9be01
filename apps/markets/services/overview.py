"""Market overview: provider data (listings, global metrics, Fear & Greed) behind a 5-minute
cache, listings enriched with Haunt's live prices, and top movers from the live prices.

Caching: each provider answer is kept in the Django cache with the time it was fetched. Younger
than FRESH_S it is served without asking the provider. Older, the provider is asked again; if
that fails, the old answer is served marked stale (kept up to KEEP_S), and only with nothing
kept does the caller get a 503 (`unavailable`).

Live prices are never cached here: they are read from the price store on every request, so a
listing row shows the price of the moment on top of a provider row up to 5 minutes old.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache

from apps.markets.clients_overview import (
    coingecko_global_fetch,
    coingecko_markets_fetch,
    coinmarketcap_listings_fetch,
    fear_greed_fetch,
)
from apps.markets.exceptions import (
    MarketDataUnavailable,
    SourceNotConfigured,
    SourceUnavailable,
    UnknownSymbol,
)
from apps.markets.models import Exchange
from apps.markets.selectors import prices_all
from apps.markets.services.aggregation import AggregatedPrice

logger = logging.getLogger(__name__)

FRESH_S = 300  # listings, asset details, global metrics, Fear & Greed: 5 minutes (SPEC)
KEEP_S = 86_400  # how long an answer stays available as a stale fallback during an outage
# One provider call serves every page: CoinMarketCap counts 1 credit per 200 rows, so a refresh
# every 5 minutes costs 288 credits a day, within the free plan's 10,000 a month.
LISTING_DEPTH = 200
FEAR_GREED_URL = "https://api.alternative.me/fng/"
CACHE_PREFIX = "markets:overview:v1:"


@dataclass(frozen=True, slots=True)
class Cached:
    """A provider answer and where it came from."""

    value: Any
    provider: str
    fetched_at: float  # seconds since the epoch
    stale: bool  # True when the provider failed just now and this is an older answer

    @property
    def fetched_at_dt(self) -> datetime:
        return datetime.fromtimestamp(self.fetched_at, UTC)

    @property
    def age_s(self) -> int:
        return max(0, int(time.time() - self.fetched_at))


def _cached(key: str, fetch: Callable[[], tuple[str, Any]]) -> Cached:
    """The answer under `key`, fetched again when older than FRESH_S; see the module docstring."""
    entry = cache.get(CACHE_PREFIX + key)
    now = time.time()
    if entry is not None and now - entry["fetched_at"] < FRESH_S:
        return Cached(entry["value"], entry["provider"], entry["fetched_at"], stale=False)
    try:
        provider, value = fetch()
    except (SourceUnavailable, SourceNotConfigured) as exc:
        if entry is not None:
            logger.warning("Serving cached %s from %s: %s", key, entry["provider"], exc.message)
            return Cached(entry["value"], entry["provider"], entry["fetched_at"], stale=True)
        if isinstance(exc, SourceNotConfigured):
            raise
        raise MarketDataUnavailable(
            f"Market data provider unavailable and nothing cached: {exc.message}", **exc.detail
        ) from None
    cache.set(CACHE_PREFIX + key, {"value": value, "provider": provider, "fetched_at": now}, KEEP_S)
    return Cached(value, provider, now, stale=False)


def _rest_url(slug: str) -> str:
    """The enabled Exchange row's rest_url: a provider disabled in the admin is not asked."""
    url = Exchange.objects.filter(slug=slug, enabled=True).values_list("rest_url", flat=True).first()
    if not url:
        raise SourceNotConfigured(f"{slug}: no enabled exchange with a REST URL", source=slug)
    return url


def _symbol_map(slug: str) -> dict[str, str]:
    row = Exchange.objects.filter(slug=slug).values_list("symbol_map", flat=True).first()
    return {str(k): str(v) for k, v in row.items()} if isinstance(row, dict) else {}


# --- Listings ---------------------------------------------------------------------------------


def _coingecko_to_cmc(row: dict[str, Any], cmc_ids: dict[str, int]) -> dict[str, Any]:
    """A CoinGecko `/coins/markets` row in CoinMarketCap's listing shape.

    `id` is the CoinMarketCap id when the coin is mapped in the coinmarketcap exchange's
    symbol_map, else null (a CoinGecko id is not a CMC id); `slug` is the CoinGecko id.
    """
    change_24h = row.get("price_change_percentage_24h_in_currency", row.get("price_change_percentage_24h"))
    return {
        "id": cmc_ids.get(row["id"]),
        "name": row["name"],
        "symbol": str(row["symbol"]).upper(),
        "slug": row["id"],
        "cmc_rank": row.get("market_cap_rank"),
        "circulating_supply": row.get("circulating_supply"),
        "total_supply": row.get("total_supply"),
        "max_supply": row.get("max_supply"),
        "last_updated": row.get("last_updated"),
        "quote": {
            "USD": {
                "price": row["current_price"],
                "volume_24h": row.get("total_volume"),
                "percent_change_1h": row.get("price_change_percentage_1h_in_currency"),
                "percent_change_24h": change_24h,
                "percent_change_7d": row.get("price_change_percentage_7d_in_currency"),
                "market_cap": row.get("market_cap"),
                "fully_diluted_market_cap": row.get("fully_diluted_valuation"),
                "last_updated": row.get("last_updated"),
            }
        },
    }


def _assign_haunt_symbols(rows: list[dict[str, Any]], *, provider: str) -> None:
    """Give each row a `haunt` block naming the Haunt symbol whose live price applies to it.

    A coin mapped in the provider exchange's symbol_map is matched by the provider's id, so a
    namesake token never gets Bitcoin's price; an unmapped coin by its ticker, the top-ranked
    one only (rows come in rank order).
    """
    by_id = {coin_id: symbol for symbol, coin_id in _symbol_map(provider).items()}
    claimed = set(by_id.values())
    for row in rows:
        key = str(row["id"]) if provider == "coinmarketcap" else str(row["slug"])
        symbol = by_id.get(key)
        if symbol is None:
            candidate = str(row["symbol"]).lower()
            if candidate not in claimed:
                symbol = candidate
                claimed.add(candidate)
        row["haunt"] = {"symbol": symbol, "live": False, "sources": [], "price_timestamp": None}


def _listings_fetch() -> tuple[str, list[dict[str, Any]]]:
    """Top LISTING_DEPTH rows from CoinMarketCap when a key is set, else (or if it fails) CoinGecko."""
    key = getattr(settings, "HAUNT_COINMARKETCAP_API_KEY", None)
    if key:
        try:
            body = coinmarketcap_listings_fetch(
                base_url=_rest_url("coinmarketcap"), api_key=key, limit=LISTING_DEPTH
            )
        except (SourceUnavailable, SourceNotConfigured) as exc:
            logger.warning("CoinMarketCap listings failed, using CoinGecko: %s", exc.message)
        else:
            rows = body["data"]
            _assign_haunt_symbols(rows, provider="coinmarketcap")
            return "coinmarketcap", rows
    markets = coingecko_markets_fetch(base_url=_rest_url("coingecko"), per_page=LISTING_DEPTH)
    gecko_ids, cmc_ids = _symbol_map("coingecko"), _symbol_map("coinmarketcap")
    ids = {
        gecko_ids[symbol]: int(cmc_ids[symbol])
        for symbol in gecko_ids.keys() & cmc_ids.keys()
        if cmc_ids[symbol].isdigit()
    }
    rows = [_coingecko_to_cmc(row, ids) for row in markets]
    _assign_haunt_symbols(rows, provider="coingecko")
    return "coingecko", rows


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _enriched(row: dict[str, Any], live: dict[str, AggregatedPrice]) -> dict[str, Any]:
    """A copy of the row with its USD price (and 24 h change) replaced by a fresh live price.

    Market caps are scaled with the price. The 24 h volume stays the provider's: Haunt's sums
    its sources' own volumes, in mixed units, and is no substitute for a market-wide figure.
    """
    row = copy.deepcopy(row)
    symbol = row["haunt"]["symbol"]
    price = live.get(symbol) if symbol else None
    if price is None or price.stale:
        return row
    usd = row["quote"]["USD"]
    old = usd.get("price")
    new = float(price.price)
    if isinstance(old, int | float) and old > 0:
        for name in ("market_cap", "fully_diluted_market_cap"):
            if isinstance(usd.get(name), int | float):
                usd[name] = usd[name] * new / old
    usd["price"] = new
    if price.change_percent_24h is not None:
        usd["percent_change_24h"] = float(price.change_percent_24h)
    usd["last_updated"] = _iso_ms(price.timestamp)
    row["haunt"].update(live=True, sources=list(price.sources), price_timestamp=price.timestamp)
    return row


def _live_prices() -> dict[str, AggregatedPrice]:
    return {price.symbol: price for price in prices_all()}


@dataclass(frozen=True, slots=True)
class Listings:
    rows: list[dict[str, Any]]
    total: int
    source: Cached


def market_listings(*, start: int, limit: int) -> Listings:
    """Rows start..start+limit-1 (1-based, by market cap) of the top LISTING_DEPTH, live-enriched."""
    cached = _cached("listings", _listings_fetch)
    page = cached.value[start - 1 : start - 1 + limit]
    live = _live_prices()
    return Listings([_enriched(row, live) for row in page], len(cached.value), cached)


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str | None
    listing: dict[str, Any]
    live_price: AggregatedPrice | None
    source: Cached


def market_asset(*, symbol: str) -> Asset:
    """One listing row found by Haunt symbol, ticker or slug (btc, BTC, bitcoin), with its live price."""
    cached = _cached("listings", _listings_fetch)
    wanted = symbol.lower()
    rows: list[dict[str, Any]] = cached.value
    row = (
        next((r for r in rows if r["haunt"]["symbol"] == wanted), None)
        or next((r for r in rows if str(r["symbol"]).lower() == wanted), None)
        or next((r for r in rows if str(r.get("slug", "")).lower() == wanted), None)
    )
    if row is None:
        raise UnknownSymbol(f"No listed asset {symbol!r}.", symbol=symbol)
    live = _live_prices()
    haunt_symbol = row["haunt"]["symbol"]
    return Asset(haunt_symbol, _enriched(row, live), live.get(haunt_symbol) if haunt_symbol else None, cached)


# --- Global metrics and Fear & Greed ----------------------------------------------------------


def market_global() -> Cached:
    """CoinGecko `/global` data (Decimal numbers), cached."""
    return _cached("global", lambda: ("coingecko", coingecko_global_fetch(base_url=_rest_url("coingecko"))))


def market_global_metrics() -> tuple[dict[str, Any], Cached]:
    """The global metrics clients show (camelCase), with the cache entry they came from."""
    cached = market_global()
    data: dict[str, Any] = cached.value
    updated = data.get("updated_at")
    metrics = {
        "totalMarketCapUsd": data["total_market_cap"].get("usd"),
        "totalVolume24hUsd": data["total_volume"].get("usd"),
        "marketCapChangePercent24hUsd": data.get("market_cap_change_percentage_24h_usd"),
        "btcDominance": data["market_cap_percentage"].get("btc"),
        "ethDominance": data["market_cap_percentage"].get("eth"),
        "activeCryptocurrencies": data.get("active_cryptocurrencies"),
        "markets": data.get("markets"),
        "updatedAt": datetime.fromtimestamp(int(updated), UTC) if updated is not None else None,
        "provider": cached.provider,
        "fetchedAt": cached.fetched_at_dt,
        "stale": cached.stale,
    }
    return metrics, cached


def fear_greed_url() -> str:
    return getattr(settings, "HAUNT_FEAR_GREED_URL", None) or FEAR_GREED_URL


def market_fear_greed(*, limit: int) -> tuple[dict[str, Any], Cached]:
    """alternative.me's answer for the last `limit` days, its countdown adjusted for the cache age."""
    cached = _cached(
        f"fear-greed:{limit}", lambda: ("alternative.me", fear_greed_fetch(url=fear_greed_url(), limit=limit))
    )
    body = copy.deepcopy(cached.value)
    latest = body["data"][0]
    if str(latest.get("time_until_update", "")).isdigit():
        latest["time_until_update"] = str(max(0, int(latest["time_until_update"]) - cached.age_s))
    return body, cached


# --- Movers -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Movers:
    gainers: list[AggregatedPrice]
    losers: list[AggregatedPrice]


def _pct(price: AggregatedPrice) -> Decimal:
    return price.change_percent_24h if price.change_percent_24h is not None else Decimal(0)


def market_movers(*, limit: int) -> Movers:
    """The fresh live prices that rose most and fell most over 24 h (stale ones left out)."""
    moving = [p for p in prices_all() if not p.stale and p.change_percent_24h is not None]
    gainers = sorted((p for p in moving if _pct(p) > 0), key=lambda p: (-_pct(p), p.symbol))
    losers = sorted((p for p in moving if _pct(p) < 0), key=lambda p: (_pct(p), p.symbol))
    return Movers(gainers[:limit], losers[:limit])
