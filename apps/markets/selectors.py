from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.markets.exceptions import PriceUnavailable
from apps.markets.models import Exchange
from apps.markets.services.aggregation import MAX_AGE_MS, AggregatedPrice
from apps.markets.services.store import price_store

_WEIGHTS_TTL_S = 10.0
_weights_cache: tuple[float, dict[str, Decimal]] | None = None


def source_weights() -> dict[str, Decimal]:
    """Weights of enabled sources, from the admin-edited table (cached for 10 s per process)."""
    global _weights_cache
    now = time.monotonic()
    if _weights_cache is None or now - _weights_cache[0] > _WEIGHTS_TTL_S:
        weights = dict(Exchange.objects.filter(enabled=True).values_list("slug", "weight"))
        _weights_cache = (now, weights)
    return _weights_cache[1]


def source_weights_reset() -> None:
    global _weights_cache
    _weights_cache = None


def usd_quotes() -> frozenset[str]:
    """Quote assets counted as US dollars when aggregating (HAUNT_USD_QUOTES)."""
    return frozenset(settings.HAUNT_USD_QUOTES)


def _with_staleness(price: AggregatedPrice, now_ms: int) -> AggregatedPrice:
    if not price.stale and now_ms - price.timestamp > MAX_AGE_MS:
        return replace(price, stale=True)
    return price


def price_latest(*, symbol: str) -> AggregatedPrice:
    """The latest aggregated price; raises PriceUnavailable when there is none."""
    price = price_store().prices_get([symbol]).get(symbol)
    if price is None:
        raise PriceUnavailable(f"No price for {symbol}.", symbol=symbol)
    return _with_staleness(price, time.time_ns() // 1_000_000)


def prices_all() -> list[AggregatedPrice]:
    store = price_store()
    now_ms = time.time_ns() // 1_000_000
    return [_with_staleness(p, now_ms) for p in store.prices_get(store.symbols()).values()]


# A reporter silent this long is presumed gone: the feed runner reports every 5 s; REST polls
# run every 30 s (CoinMarketCap every 5 min), so two missed CoinMarketCap polls.
REPORT_MAX_AGE_MS = {"websocket": 30_000, "rest": 600_000}


def sources_status() -> list[dict[str, Any]]:
    """Every configured source with its last health report (down when silent or never seen)."""
    reports = price_store().health_all()
    now_ms = time.time_ns() // 1_000_000
    rows = []
    for exchange in Exchange.objects.order_by("slug"):
        report = reports.get(exchange.slug)
        if not exchange.enabled:
            state, detail = "disabled", {}
        elif report is None:
            state, detail = "down", {"last_error": "no report from a feed runner or poller yet"}
        elif now_ms - report["reported_at"] > REPORT_MAX_AGE_MS[exchange.kind]:
            state, detail = (
                "down",
                {**report, "last_error": "no recent report: is the feed runner or beat running?"},
            )
        else:
            state, detail = report["state"], report
        rows.append(
            {
                "slug": exchange.slug,
                "name": exchange.name,
                "kind": exchange.kind,
                "enabled": exchange.enabled,
                "weight": exchange.weight,
                "state": state,
                "detail": detail,
            }
        )
    return rows
