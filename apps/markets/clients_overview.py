"""HTTP clients for the market-overview providers: CoinMarketCap listings, CoinGecko markets and
global metrics, alternative.me's Fear & Greed index.

No ORM and no caching: callers pass base URLs (an Exchange row's rest_url, or a setting) so tests
can point them at a local server. Each function returns the provider's parsed JSON after checking
the parts Haunt relies on; anything that keeps a call from giving that (network, timeout, HTTP
status, an unreadable body, an error the provider reports in its body) raises SourceUnavailable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx

from apps.markets.clients import http_get_text
from apps.markets.exceptions import SourceUnavailable

# Served from a 5-minute cache, so a slow provider is better given up on than waited for.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _get_json(
    source: str,
    url: str,
    *,
    params: Mapping[str, str | int],
    headers: Mapping[str, str] | None = None,
    exact: bool = False,
) -> Any:
    """The JSON body of a successful GET (floats as Decimal if `exact`); failures raise SourceUnavailable."""
    text = http_get_text(source, "", url, params=params, headers=headers, timeout=TIMEOUT)
    try:
        # Exact numbers where Haunt re-serves them as Decimal strings; plain floats where the
        # body is passed on in the provider's own (JSON number) convention.
        return json.loads(text, parse_float=Decimal) if exact else json.loads(text)
    except ValueError:
        raise SourceUnavailable(f"{source}: bad response: not JSON", source=source) from None


def _bad(source: str, what: str) -> SourceUnavailable:
    return SourceUnavailable(f"{source}: bad response: {what}", source=source)


def _rows(source: str, rows: Any, *keys: str) -> list[dict[str, Any]]:
    """`rows` if it is a list of objects that each have `keys`."""
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise _bad(source, "expected a list of objects")
    for row in rows:
        missing = [key for key in keys if key not in row]
        if missing:
            raise _bad(source, f"row without {', '.join(missing)}")
    return rows


def coinmarketcap_listings_fetch(*, base_url: str, api_key: str, limit: int) -> dict[str, Any]:
    """CoinMarketCap `/v1/cryptocurrency/listings/latest` in USD, the top `limit` by market cap."""
    body = _get_json(
        "coinmarketcap",
        base_url.rstrip("/") + "/v1/cryptocurrency/listings/latest",
        params={"start": 1, "limit": limit, "convert": "USD"},
        headers={"X-CMC_PRO_API_KEY": api_key, "Accept": "application/json"},
    )
    if not isinstance(body, dict) or not isinstance(body.get("status"), dict):
        raise _bad("coinmarketcap", "no status")
    if body["status"].get("error_code") not in (0, "0", None):
        raise _bad("coinmarketcap", str(body["status"].get("error_message")))
    rows = _rows("coinmarketcap", body.get("data"), "id", "symbol", "quote")
    if not all(isinstance(row["quote"], dict) and isinstance(row["quote"].get("USD"), dict) for row in rows):
        raise _bad("coinmarketcap", "row without a USD quote")
    return body


def coingecko_markets_fetch(*, base_url: str, per_page: int) -> list[dict[str, Any]]:
    """CoinGecko `/coins/markets` in USD, the top `per_page` by market cap, with 1 h/24 h/7 d change."""
    body = _get_json(
        "coingecko",
        base_url.rstrip("/") + "/coins/markets",
        params={
            "vs_currency": "usd",
            "order": "market_cap_desc",
            "per_page": per_page,
            "page": 1,
            "price_change_percentage": "1h,24h,7d",
        },
    )
    return _rows("coingecko", body, "id", "symbol", "name", "current_price")


def coingecko_global_fetch(*, base_url: str) -> dict[str, Any]:
    """CoinGecko `/global`: the `data` object (market cap, volume, dominance, counts), as Decimals."""
    body = _get_json("coingecko", base_url.rstrip("/") + "/global", params={}, exact=True)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise _bad("coingecko", "no data")
    for key in ("total_market_cap", "total_volume", "market_cap_percentage"):
        if not isinstance(data.get(key), dict):
            raise _bad("coingecko", f"no {key}")
    return data


def fear_greed_fetch(*, url: str, limit: int) -> dict[str, Any]:
    """alternative.me's Fear & Greed index (`/fng/?limit=N`), newest first, as it answered."""
    body = _get_json("alternative.me", url, params={"limit": limit, "format": "json"})
    if not isinstance(body, dict):
        raise _bad("alternative.me", "not an object")
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("error"):
        raise _bad("alternative.me", str(metadata["error"]))
    data = _rows("alternative.me", body.get("data"), "value", "value_classification", "timestamp")
    if not data:
        raise _bad("alternative.me", "no data")
    return body
