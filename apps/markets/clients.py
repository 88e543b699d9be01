"""HTTP clients for the REST price sources: one request per poll, the body parsed into Ticks.

No ORM: callers pass the Exchange row's rest_url (the base URL, so tests can point it at a local
server) and its symbol_map (Haunt symbol -> the provider's id for the coin). Anything that keeps
a poll from giving prices (network, timeout, HTTP status, an unreadable or error body) raises
SourceUnavailable; a source that cannot be asked as configured raises SourceNotConfigured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

import httpx
from django.conf import settings

from apps.markets.exceptions import SourceNotConfigured, SourceUnavailable
from apps.markets.feeds import rest
from apps.markets.feeds.types import Tick

# Polls run every 30 s or more; a source slower than this is better skipped until the next one.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class RestFetch(Protocol):
    def __call__(self, *, base_url: str, symbol_map: Mapping[str, str]) -> list[Tick]: ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def http_get_text(
    source: str,
    base_url: str,
    path: str,
    *,
    params: Mapping[str, str | int],
    headers: Mapping[str, str] | None = None,
    timeout: httpx.Timeout | None = None,
) -> str:
    """The body of a successful GET to a provider; every failure raises SourceUnavailable.

    `path` may be a full URL (with an empty `base_url`)."""
    try:
        with httpx.Client(base_url=base_url, timeout=timeout or TIMEOUT, headers=headers) as client:
            response = client.get(path, params=dict(params))
    except httpx.TimeoutException:
        raise SourceUnavailable(f"{source}: timed out", source=source) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise SourceUnavailable(f"{source}: {type(exc).__name__}: {exc}", source=source) from None
    if response.status_code == 429:
        retry_after = response.headers.get("Retry-After")
        raise SourceUnavailable(f"{source}: rate limited (HTTP 429)", source=source, retry_after=retry_after)
    if not response.is_success:
        raise SourceUnavailable(
            f"{source}: HTTP {response.status_code} {response.reason_phrase}",
            source=source,
            status=response.status_code,
        )
    return response.text


@contextmanager
def _readable(source: str) -> Iterator[None]:
    """Turn a body the parser refuses (not JSON, wrong shape, API error) into SourceUnavailable."""
    try:
        yield
    except rest.RestFormatError as exc:
        raise SourceUnavailable(f"{source}: bad response: {exc}", source=source) from None


def _joined(values: Mapping[str, str]) -> str:
    return ",".join(sorted(set(values.values())))


def coingecko_prices_fetch(*, base_url: str, symbol_map: Mapping[str, str]) -> list[Tick]:
    """USD prices from CoinGecko `/simple/price`; symbol_map values are CoinGecko coin ids."""
    coins = {coin_id: symbol for symbol, coin_id in symbol_map.items()}
    params = {"ids": _joined(symbol_map), "vs_currencies": "usd", "include_last_updated_at": "true"}
    body = http_get_text("coingecko", base_url, "/simple/price", params=params)
    with _readable("coingecko"):
        return rest.coingecko_simple_price(body, received_ts=_now_ms(), symbols=coins)


def coinmarketcap_prices_fetch(*, base_url: str, symbol_map: Mapping[str, str]) -> list[Tick]:
    """USD prices from CoinMarketCap `/v2/cryptocurrency/quotes/latest`; symbol_map values are CMC ids.

    Ids, not tickers: asked by symbol, v2 answers every coin that uses the symbol, so a namesake
    token could stand in for the real coin (v1, which picks the top-ranked one, is deprecated).
    Without HAUNT_COINMARKETCAP_API_KEY nothing is requested.
    """
    key = getattr(settings, "HAUNT_COINMARKETCAP_API_KEY", None)
    if not key:
        raise SourceNotConfigured(
            "coinmarketcap: no API key (set HAUNT_COINMARKETCAP_API_KEY)", source="coinmarketcap"
        )
    if not all(value.isdigit() for value in symbol_map.values()):
        raise SourceNotConfigured(
            'coinmarketcap: symbol_map values must be CoinMarketCap ids, e.g. {"btc": "1"}',
            source="coinmarketcap",
        )
    params = {"id": _joined(symbol_map), "convert": "USD"}
    headers = {"X-CMC_PRO_API_KEY": key, "Accept": "application/json"}
    body = http_get_text(
        "coinmarketcap", base_url, "/v2/cryptocurrency/quotes/latest", params=params, headers=headers
    )
    with _readable("coinmarketcap"):
        return rest.coinmarketcap_quotes_latest(body, received_ts=_now_ms())


def cryptocompare_prices_fetch(*, base_url: str, symbol_map: Mapping[str, str]) -> list[Tick]:
    """USD prices from CryptoCompare `/data/pricemultifull`; symbol_map values are tickers (BTC).

    HAUNT_CRYPTOCOMPARE_API_KEY is optional (keyless calls get a lower rate limit).
    """
    key = getattr(settings, "HAUNT_CRYPTOCOMPARE_API_KEY", None)
    headers = {"Authorization": f"Apikey {key}"} if key else None
    params = {"fsyms": _joined(symbol_map), "tsyms": "USD"}
    body = http_get_text("cryptocompare", base_url, "/data/pricemultifull", params=params, headers=headers)
    with _readable("cryptocompare"):
        return rest.cryptocompare_pricemultifull(body, received_ts=_now_ms())


def kraken_prices_fetch(*, base_url: str, symbol_map: Mapping[str, str]) -> list[Tick]:
    """Last trade prices from Kraken `/0/public/Ticker`; symbol_map values are pair names (XBT/USD)."""
    # The map holds the WebSocket names; REST takes the same pairs' altnames (XBTUSD).
    pairs = {symbol: name.replace("/", "") for symbol, name in symbol_map.items()}
    body = http_get_text("kraken", base_url, "/0/public/Ticker", params={"pair": _joined(pairs)})
    with _readable("kraken"):
        return rest.kraken_ticker(body, received_ts=_now_ms())


REST_CLIENTS: dict[str, RestFetch] = {
    "coingecko": coingecko_prices_fetch,
    "coinmarketcap": coinmarketcap_prices_fetch,
    "cryptocompare": cryptocompare_prices_fetch,
    "kraken": kraken_prices_fetch,
}
