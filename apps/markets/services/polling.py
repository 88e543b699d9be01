"""Polling the REST price sources: one provider request, its prices ingested, its health recorded."""

from __future__ import annotations

from apps.markets.clients import REST_CLIENTS
from apps.markets.exceptions import SourceNotConfigured, SourceUnavailable
from apps.markets.feeds.types import Tick
from apps.markets.models import Exchange
from apps.markets.services.prices import ticks_ingest
from apps.markets.services.sources import rest_poll_outcome


def rest_source_poll(*, slug: str) -> int:
    """Poll one REST source once, ingest its prices and record its health; returns the tick count.

    A disabled, unknown or WebSocket source is skipped (0). A failure is recorded as down and
    re-raised: SourceUnavailable when the provider failed, SourceNotConfigured when the source
    cannot be polled as set up (no API key, no symbols mapped, no client for it).
    """
    exchange = Exchange.objects.filter(slug=slug, enabled=True, kind=Exchange.Kind.REST).first()
    if exchange is None:
        return 0
    try:
        ticks = _rest_fetch(exchange)
    except (SourceUnavailable, SourceNotConfigured) as exc:
        rest_poll_outcome(slug=slug, ok=False, ticks=0, error=exc.message)
        raise
    ticks_ingest(ticks=ticks)
    error = None if ticks else "no prices in the response"
    rest_poll_outcome(slug=slug, ok=bool(ticks), ticks=len(ticks), error=error)
    return len(ticks)


def _rest_fetch(exchange: Exchange) -> list[Tick]:
    fetch = REST_CLIENTS.get(exchange.slug)
    if fetch is None:
        raise SourceNotConfigured(f"{exchange.slug}: no REST client for this source", source=exchange.slug)
    symbol_map = exchange.symbol_map
    if not isinstance(symbol_map, dict) or not symbol_map:
        raise SourceNotConfigured(f"{exchange.slug}: no symbols mapped", source=exchange.slug)
    return fetch(base_url=exchange.rest_url, symbol_map={str(k): str(v) for k, v in symbol_map.items()})
