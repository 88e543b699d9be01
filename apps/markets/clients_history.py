"""HTTP clients for price history (chart seeding): CoinGecko market charts, CryptoCompare OHLCV.

No ORM: callers pass the Exchange row's rest_url (the base URL, so tests can point it at a local
server) and the provider's id for the coin (its symbol_map value). Numbers are parsed straight
into Decimal. Anything that keeps a request from giving history (network, timeout, HTTP status,
an unreadable body, the provider's own error body) raises SourceUnavailable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import httpx
from django.conf import settings

from apps.markets.clients import http_get_text
from apps.markets.exceptions import SourceUnavailable

# History requests are one-off (seeding), not on a poll schedule: a 30-day chart may take a while.
TIMEOUT = httpx.Timeout(20.0, connect=5.0)


@dataclass(frozen=True, slots=True)
class MarketChart:
    """CoinGecko market_chart: (ms, USD price) and (ms, rolling 24 h USD volume) points, oldest first."""

    prices: list[tuple[int, Decimal]]
    total_volumes: list[tuple[int, Decimal]]


@dataclass(frozen=True, slots=True)
class OhlcvRow:
    """One CryptoCompare candle: time is the bucket start in ms; volume is in the base coin."""

    time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def _get_json(
    source: str,
    base_url: str,
    path: str,
    *,
    params: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
) -> Any:
    """The JSON body of a successful GET (floats as Decimal); every failure raises SourceUnavailable."""
    text = http_get_text(source, base_url, path, params=params, headers=headers, timeout=TIMEOUT)
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError:
        raise SourceUnavailable(f"{source}: bad response: not JSON", source=source) from None


def _bad(source: str, reason: str) -> SourceUnavailable:
    return SourceUnavailable(f"{source}: bad response: {reason}", source=source)


def _points(source: str, body: dict[str, Any], name: str) -> list[tuple[int, Decimal]]:
    raw = body.get(name)
    if not isinstance(raw, list):
        raise _bad(source, f"no {name!r} list")
    points: list[tuple[int, Decimal]] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2):
            raise _bad(source, f"{name} point is not [ms, value]: {item!r}")
        ts, value = item
        if value is None:
            continue  # CoinGecko sends null for a point it has no value for
        if isinstance(ts, bool) or not isinstance(ts, int | Decimal) or isinstance(value, bool):
            raise _bad(source, f"{name} point is not [ms, value]: {item!r}")
        if not isinstance(value, int | Decimal) or not Decimal(value).is_finite() or value < 0:
            raise _bad(source, f"{name} value is not a non-negative number: {value!r}")
        points.append((int(ts), Decimal(value)))
    points.sort(key=lambda point: point[0])
    return points


def coingecko_market_chart_fetch(*, base_url: str, coin_id: str, days: int) -> MarketChart:
    """USD history from CoinGecko `/coins/{id}/market_chart`.

    CoinGecko picks the granularity from `days`: ~5-minute points for 1 day, hourly for 2-90,
    daily beyond.
    """
    source = "coingecko"
    if not coin_id or "/" in coin_id:
        raise SourceUnavailable(f"{source}: invalid coin id {coin_id!r}", source=source)
    body = _get_json(
        source,
        base_url,
        f"/coins/{coin_id}/market_chart",
        params={"vs_currency": "usd", "days": str(days)},
    )
    if not isinstance(body, dict):
        raise _bad(source, "not a JSON object")
    if "error" in body or ("status" in body and "prices" not in body):
        error = body.get("error") or body.get("status")
        raise SourceUnavailable(f"{source}: error: {error}", source=source)
    return MarketChart(
        prices=[p for p in _points(source, body, "prices") if p[1] > 0],
        total_volumes=_points(source, body, "total_volumes"),
    )


def cryptocompare_history_fetch(
    *, base_url: str, fsym: str, unit: Literal["hour", "day"], limit: int
) -> list[OhlcvRow]:
    """USD candles from CryptoCompare `/data/v2/histohour` or `/data/v2/histoday`, oldest first.

    `limit` is the number of candles before the newest one (the API returns limit + 1).
    HAUNT_CRYPTOCOMPARE_API_KEY is optional (keyless calls get a lower rate limit). CryptoCompare
    reports errors with HTTP 200 and {"Response": "Error", "Message": ...}.
    """
    source = "cryptocompare"
    key = getattr(settings, "HAUNT_CRYPTOCOMPARE_API_KEY", None)
    headers = {"Authorization": f"Apikey {key}"} if key else None
    body = _get_json(
        source,
        base_url,
        f"/data/v2/histo{unit}",
        params={"fsym": fsym, "tsym": "USD", "limit": str(limit)},
        headers=headers,
    )
    if not isinstance(body, dict):
        raise _bad(source, "not a JSON object")
    if body.get("Response") != "Success":
        message = body.get("Message") or "no message"
        raise SourceUnavailable(f"{source}: error: {message}", source=source)
    data = body.get("Data")
    rows = data.get("Data") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise _bad(source, "no Data.Data list")
    candles: list[OhlcvRow] = []
    for row in rows:
        candle = _ohlcv_row(source, row)
        if candle is not None:
            candles.append(candle)
    candles.sort(key=lambda candle: candle.time_ms)
    return candles


def _ohlcv_row(source: str, row: Any) -> OhlcvRow | None:
    """One histo row, or None for the all-zero rows CryptoCompare pads before a coin's listing."""
    if not isinstance(row, dict):
        raise _bad(source, f"row is not an object: {row!r}")
    try:
        time_s = row["time"]
        values = [row[name] for name in ("open", "high", "low", "close", "volumefrom")]
    except KeyError as exc:
        raise _bad(source, f"row without {exc.args[0]!r}") from None
    if isinstance(time_s, bool) or not isinstance(time_s, int):
        raise _bad(source, f"row time is not an integer: {time_s!r}")
    numbers: list[Decimal] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | Decimal) or not Decimal(value).is_finite():
            raise _bad(source, f"row value is not a number: {value!r}")
        numbers.append(Decimal(value))
    open_, high, low, close, volume = numbers
    if min(open_, high, low, close) <= 0:
        return None
    if low > high or volume < 0:
        raise _bad(source, f"inconsistent row at {time_s}")
    return OhlcvRow(time_s * 1000, open_, high, low, close, volume)
