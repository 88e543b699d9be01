"""Exchange dominance: each exchange's share of 24 h USD volume, globally and per symbol.

Volume source: the latest per-source quotes in the price store. An exchange's 24 h USD volume
for a symbol is its quote's volume_24h (base asset) x the symbol's aggregated price. Only quotes
that report volume_24h count (tickers that carry it: Binance, Coinbase, OKX, HTX, Kraken, ...),
and only those received in the last VOLUME_MAX_AGE_MS. Price aggregators (AGGREGATOR_SOURCES)
are left out: their volume is the whole market's, not a venue's. Global shares sum each
exchange's USD volume over all symbols.

Shares are rounded to 4 decimals by largest remainder, so they always sum to exactly 100.
The current view is computed live from the store; with nothing live (no volumes yet, or a
process without the shared Redis store) it falls back to the latest snapshot.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.markets.exceptions import UnknownSymbol
from apps.markets.models import DominanceSnapshot, Exchange
from apps.markets.services.store import PriceStore, price_store

AGGREGATOR_SOURCES = frozenset({"coingecko", "coinmarketcap", "cryptocompare"})
# REST exchanges are polled every 30 s, feeds push every second: a volume older than this
# belongs to a source that went quiet and would freeze its share.
VOLUME_MAX_AGE_MS = 10 * 60_000
HISTORY_SPANS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
# One point per snapshot (every 5 min) up to 24 h; longer spans are thinned to about this many.
MAX_HISTORY_POINTS = 288
SNAPSHOT_RETENTION = timedelta(days=30)

_CENT = Decimal("0.01")
_SHARE_UNITS = 1_000_000  # 100 % in steps of 0.0001
_SHARE_STEP = Decimal("0.0001")

Basis = Literal["live", "snapshot", "none"]


@dataclass(frozen=True)
class ExchangeShare:
    exchange: str
    name: str
    volume_24h_usd: Decimal
    share_percent: Decimal


@dataclass(frozen=True)
class HistoryPoint:
    taken_at: datetime
    exchanges: list[ExchangeShare]


@dataclass
class DominanceView:
    symbol: str | None
    basis: Basis
    at: datetime | None
    exchanges: list[ExchangeShare]
    history: list[HistoryPoint] = field(default_factory=list)

    @property
    def total_volume_24h_usd(self) -> Decimal:
        return sum((s.volume_24h_usd for s in self.exchanges), Decimal(0))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _volume_exchanges() -> dict[str, Exchange]:
    return {e.slug: e for e in Exchange.objects.filter(enabled=True).exclude(slug__in=AGGREGATOR_SOURCES)}


def exchange_volumes_usd(
    *, exchanges: Mapping[str, Exchange], now_ms: int | None = None, store: PriceStore | None = None
) -> dict[str, dict[str, Decimal]]:
    """{symbol: {exchange slug: 24 h USD volume}} from the store's fresh quotes that carry volume."""
    store = store or price_store()
    now_ms = now_ms if now_ms is not None else _now_ms()
    symbols = store.symbols()
    quotes, prices = store.quotes_get(symbols), store.prices_get(symbols)
    volumes: dict[str, dict[str, Decimal]] = {}
    for symbol in symbols:
        price = prices.get(symbol)
        if price is None:
            continue
        for source, quote in quotes.get(symbol, {}).items():
            if source not in exchanges or quote.volume_24h is None or quote.volume_24h <= 0:
                continue
            if now_ms - quote.received_ts > VOLUME_MAX_AGE_MS:
                continue
            volumes.setdefault(symbol, {})[source] = quote.volume_24h * price.price
    return volumes


def _global(volumes: Mapping[str, Mapping[str, Decimal]]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = defaultdict(Decimal)
    for by_exchange in volumes.values():
        for slug, usd in by_exchange.items():
            total[slug] += usd
    return dict(total)


def shares_compute(
    *, volumes: Mapping[str, Decimal], exchanges: Mapping[str, Exchange]
) -> list[ExchangeShare]:
    """Each exchange's share of the total, largest first; rounded so the shares sum to 100."""
    total = sum(volumes.values(), Decimal(0))
    if total <= 0:
        return []
    exact = {slug: volume / total * _SHARE_UNITS for slug, volume in volumes.items()}
    units = {slug: math.floor(value) for slug, value in exact.items()}
    # Hand the units lost to rounding down to the largest remainders (ties by slug).
    missing = _SHARE_UNITS - sum(units.values())
    for slug in sorted(exact, key=lambda s: (-(exact[s] - units[s]), s))[:missing]:
        units[slug] += 1
    rows = [
        ExchangeShare(
            exchange=slug,
            name=exchanges[slug].name,
            volume_24h_usd=volumes[slug].quantize(_CENT, rounding=ROUND_HALF_UP),
            share_percent=(Decimal(units[slug]) * _SHARE_STEP).quantize(_SHARE_STEP),
        )
        for slug in volumes
    ]
    return sorted(rows, key=lambda r: (-r.volume_24h_usd, r.exchange))


def _snapshot_shares(rows: list[DominanceSnapshot]) -> list[ExchangeShare]:
    shares = [
        ExchangeShare(r.exchange.slug, r.exchange.name, r.volume_24h_usd, r.share_percent) for r in rows
    ]
    return sorted(shares, key=lambda r: (-r.share_percent, r.exchange))


def dominance_get(
    *, symbol: str | None, history: str | None = None, store: PriceStore | None = None
) -> DominanceView:
    """Current shares (live, else the latest snapshot) and, if asked, the history of snapshots.

    `symbol` None means global; `history` is a key of HISTORY_SPANS. Raises UnknownSymbol for a
    symbol with neither quotes nor snapshots.
    """
    store = store or price_store()
    now = timezone.now()
    key = symbol or ""
    snapshots = DominanceSnapshot.objects.filter(symbol=key).select_related("exchange")
    if symbol is not None and symbol not in store.symbols() and not snapshots.exists():
        raise UnknownSymbol(f"No market data for {symbol!r}.", symbol=symbol)

    exchanges = _volume_exchanges()
    volumes = exchange_volumes_usd(exchanges=exchanges, store=store)
    live = volumes.get(symbol, {}) if symbol is not None else _global(volumes)
    view = DominanceView(symbol=symbol, basis="none", at=None, exchanges=[])
    if live:
        view.basis, view.at = "live", now
        view.exchanges = shares_compute(volumes=live, exchanges=exchanges)
    else:
        latest = snapshots.order_by("-taken_at").values_list("taken_at", flat=True).first()
        if latest is not None:
            view.basis, view.at = "snapshot", latest
            view.exchanges = _snapshot_shares(list(snapshots.filter(taken_at=latest)))

    if history is not None:
        view.history = _history(snapshots, since=now - HISTORY_SPANS[history])
    return view


def _history(snapshots: QuerySet[DominanceSnapshot], *, since: datetime) -> list[HistoryPoint]:
    moments = list(
        snapshots.filter(taken_at__gte=since)
        .order_by("taken_at")
        .values_list("taken_at", flat=True)
        .distinct()
    )
    step = max(1, math.ceil(len(moments) / MAX_HISTORY_POINTS))
    chosen = moments[::step]
    if moments and chosen[-1] != moments[-1]:
        chosen[-1] = moments[-1]  # always end on the newest snapshot
    grouped: dict[datetime, list[DominanceSnapshot]] = defaultdict(list)
    for row in snapshots.filter(taken_at__in=chosen):
        grouped[row.taken_at].append(row)
    return [HistoryPoint(moment, _snapshot_shares(grouped[moment])) for moment in chosen]


@transaction.atomic
def dominance_snapshot_take(*, now: datetime | None = None, store: PriceStore | None = None) -> int:
    """Store the current shares, per symbol and global; returns the rows written.

    Stamped to the minute and inserted with ignore_conflicts, so a redelivered task in the
    same minute writes nothing twice. Snapshots past SNAPSHOT_RETENTION are deleted.
    """
    now = now or timezone.now()
    taken_at = now.replace(second=0, microsecond=0)
    exchanges = _volume_exchanges()
    volumes = exchange_volumes_usd(exchanges=exchanges, now_ms=int(now.timestamp() * 1000), store=store)
    rows = []
    for symbol, by_exchange in [("", _global(volumes)), *sorted(volumes.items())]:
        for share in shares_compute(volumes=by_exchange, exchanges=exchanges):
            rows.append(
                DominanceSnapshot(
                    taken_at=taken_at,
                    exchange=exchanges[share.exchange],
                    symbol=symbol,
                    volume_24h_usd=share.volume_24h_usd,
                    share_percent=share.share_percent,
                )
            )
    DominanceSnapshot.objects.bulk_create(rows, ignore_conflicts=True)
    DominanceSnapshot.objects.filter(taken_at__lt=now - SNAPSHOT_RETENTION).delete()
    return len(rows)
