"""Exchange latency: probes from this node, and min/avg/max per exchange and node over a window.

Probes. Every enabled exchange is measured one way, chosen by what its row offers:
- "rest": a GET of a cheap public endpoint (REST_PROBE_PATHS, under the row's rest_url). The
  latency is from sending the request headers to receiving the response headers on an open
  connection (httpx trace events), i.e. one round trip plus the server's think time; DNS, TCP
  and TLS setup are left out so REST and WebSocket figures are comparable.
- "ws": the round trip of a WebSocket ping/pong on a fresh connection to the row's ws_url, for
  exchanges with a WebSocket URL but no known REST probe path.
An exchange with neither (CoinMarketCap: every call spends its metered monthly credits) is not
probed. The paths are protocol knowledge, like an adapter's subscribe frames, so they live in
code; the base URLs are data (the Exchange rows).

Stats. Samples are stored per node (LatencySample.node). The per-node view groups the window's
samples by node; the best node for an exchange is the node with the lowest average successful
latency among the nodes that have samples in this database. Today that is only this node; once
peers replicate their samples (apps.sync), the same query ranks the whole mesh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import httpx
from django.conf import settings
from django.utils import timezone
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

from apps.markets.models import Exchange, LatencySample

logger = logging.getLogger(__name__)

# Probes run every 10 s: an answer slower than this is a failure, not a latency worth averaging.
PROBE_TIMEOUT_S = 3.0
WINDOW_S = 60
# Longer than the widest window the API offers, short enough that the table stays tiny
# (10 s x 9 exchanges x 60 per 10 min = 540 rows per node).
RETENTION = timedelta(minutes=10)
MAX_WINDOW_S = int(RETENTION.total_seconds())

REST_PROBE_PATHS: dict[str, str] = {
    "binance": "/api/v3/time",
    "coinbase": "/time",
    "kraken": "/0/public/Time",
    "okx": "/api/v5/public/time",
    "kucoin": "/api/v1/timestamp",
    "huobi": "/v1/common/timestamp",
    "coingecko": "/ping",  # the row's rest_url already ends in /api/v3
    "cryptocompare": "/stats/rate/limit",  # no time endpoint; this one is free and tiny
}

_MS = Decimal("0.001")
_SHOWN_MS = Decimal("0.1")


class ProbeFailed(Exception):
    """A probe got no usable answer (timeout, connection error, HTTP error)."""


@dataclass(frozen=True)
class ProbeTarget:
    exchange_id: int
    slug: str
    method: str  # "rest" or "ws"
    url: str


def probe_target(exchange: Exchange) -> ProbeTarget | None:
    """How to probe an exchange, or None when it offers no way."""
    path = REST_PROBE_PATHS.get(exchange.slug)
    if path is not None and exchange.rest_url:
        return ProbeTarget(exchange.pk, exchange.slug, "rest", exchange.rest_url.rstrip("/") + path)
    if exchange.ws_url:
        return ProbeTarget(exchange.pk, exchange.slug, "ws", exchange.ws_url)
    return None


async def rest_probe(url: str, *, timeout: float) -> float:
    """Milliseconds from request headers sent to response headers received."""
    marks: dict[str, float] = {}

    async def trace(event: str, info: Mapping[str, object]) -> None:
        marks[event] = time.perf_counter()

    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url, extensions={"trace": trace})
    except httpx.TimeoutException:
        raise ProbeFailed("timed out") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ProbeFailed(f"{type(exc).__name__}: {exc}") from None
    if not response.is_success:
        raise ProbeFailed(f"HTTP {response.status_code} {response.reason_phrase}")
    sent = marks.get("http11.send_request_headers.started")
    received = marks.get("http11.receive_response_headers.complete")
    if sent is None or received is None:  # another transport (HTTP/2): the whole exchange
        return response.elapsed.total_seconds() * 1000
    return (received - sent) * 1000


async def ws_probe(url: str, *, timeout: float) -> float:
    """Milliseconds of one WebSocket ping/pong round trip (the handshake is not counted)."""
    try:
        async with asyncio.timeout(timeout):
            async with ws_connect(url, ping_interval=None, open_timeout=None, close_timeout=1) as ws:
                pong = await ws.ping()
                return float(await pong) * 1000
    except TimeoutError:
        raise ProbeFailed("timed out") from None
    except (OSError, WebSocketException) as exc:  # refused, reset; bad URI, handshake, closed
        raise ProbeFailed(f"{type(exc).__name__}: {exc}") from None


async def _probe(target: ProbeTarget, timeout: float) -> LatencySample:
    measured_at = timezone.now()
    probe = rest_probe if target.method == "rest" else ws_probe
    sample = LatencySample(exchange_id=target.exchange_id, method=target.method, measured_at=measured_at)
    try:
        ms = await probe(target.url, timeout=timeout)
    except ProbeFailed as exc:
        sample.ok, sample.error = False, str(exc)[:255]
    else:
        sample.latency_ms = Decimal(str(ms)).quantize(_MS)
    return sample


async def _probe_all(targets: Iterable[ProbeTarget], timeout: float) -> list[LatencySample]:
    return list(await asyncio.gather(*(_probe(t, timeout) for t in targets)))


def latency_probe_run(*, timeout: float = PROBE_TIMEOUT_S) -> list[LatencySample]:
    """Probe every enabled exchange at once, store one sample each, drop samples past retention.

    Failures are stored too (ok=False with the error), so the failure count is part of the stats.
    """
    node = settings.HAUNT_NODE_ID
    targets = [t for e in Exchange.objects.filter(enabled=True) if (t := probe_target(e)) is not None]
    samples = asyncio.run(_probe_all(targets, timeout)) if targets else []
    for sample in samples:
        sample.node = node
    LatencySample.objects.bulk_create(samples)
    latency_samples_prune()
    return samples


def latency_samples_prune(*, now: datetime | None = None) -> int:
    """Delete samples older than the retention (every node's: replicated ones age the same)."""
    cutoff = (now or timezone.now()) - RETENTION
    deleted, _ = LatencySample.objects.filter(measured_at__lt=cutoff).delete()
    return deleted


# --- Stats -------------------------------------------------------------------------------------


@dataclass
class ExchangeLatency:
    exchange: str
    name: str
    method: str | None = None
    samples: int = 0
    failures: int = 0
    min_ms: Decimal | None = None
    avg_ms: Decimal | None = None
    max_ms: Decimal | None = None
    last_ms: Decimal | None = None
    last_at: datetime | None = None
    last_error: str = ""


@dataclass(frozen=True)
class BestNode:
    node: str
    avg_ms: Decimal


@dataclass
class LatencyView:
    node: str
    window_seconds: int
    exchanges: list[ExchangeLatency]
    nodes: dict[str, list[ExchangeLatency]] = field(default_factory=dict)
    best: dict[str, BestNode] = field(default_factory=dict)


def _shown(value: Decimal) -> Decimal:
    return value.quantize(_SHOWN_MS, rounding=ROUND_HALF_UP)


def _summarize(row: ExchangeLatency, samples: list[LatencySample]) -> ExchangeLatency:
    """Fill a row from one node's samples of one exchange, newest first."""
    values = [s.latency_ms for s in samples if s.ok and s.latency_ms is not None]
    last = samples[0]
    row.method = last.method
    row.samples = len(samples)
    row.failures = len(samples) - len(values)
    if values:
        row.min_ms, row.max_ms = _shown(min(values)), _shown(max(values))
        row.avg_ms = _shown(sum(values, Decimal(0)) / len(values))
    row.last_ms = _shown(last.latency_ms) if last.ok and last.latency_ms is not None else None
    row.last_at, row.last_error = last.measured_at, last.error
    return row


def latency_stats_get(*, window_s: int = WINDOW_S, now: datetime | None = None) -> LatencyView:
    """Min/avg/max/last per exchange for every node with samples in the window, and the best node.

    This node's list also shows enabled exchanges it has no sample of yet (samples=0).
    """
    node = settings.HAUNT_NODE_ID
    now = now or timezone.now()
    rows = LatencySample.objects.filter(
        measured_at__gt=now - timedelta(seconds=window_s), measured_at__lte=now
    ).select_related("exchange")
    grouped: dict[str, dict[Exchange, list[LatencySample]]] = defaultdict(lambda: defaultdict(list))
    for sample in rows.order_by("-measured_at", "-pk"):
        grouped[sample.node][sample.exchange].append(sample)

    nodes: dict[str, list[ExchangeLatency]] = {}
    for name, by_exchange in sorted(grouped.items()):
        nodes[name] = sorted(
            (
                _summarize(ExchangeLatency(exchange.slug, exchange.name), samples)
                for exchange, samples in by_exchange.items()
            ),
            key=lambda r: r.exchange,
        )
    local = {r.exchange: r for r in nodes.get(node, [])}
    for exchange in Exchange.objects.filter(enabled=True):
        local.setdefault(exchange.slug, ExchangeLatency(exchange.slug, exchange.name))
    mine = sorted(local.values(), key=lambda r: r.exchange)
    nodes[node] = mine

    best: dict[str, BestNode] = {}
    for name, node_rows in sorted(nodes.items()):
        for row in node_rows:
            if row.avg_ms is None:
                continue
            current = best.get(row.exchange)
            if current is None or row.avg_ms < current.avg_ms:  # ties: first node by name wins
                best[row.exchange] = BestNode(name, row.avg_ms)
    return LatencyView(
        node=node,
        window_seconds=window_s,
        exchanges=mine,
        nodes=dict(sorted(nodes.items())),
        best=dict(sorted(best.items())),
    )
