"""Chart history seeding: backfill a symbol's candles from CoinGecko and CryptoCompare.

A job runs three steps, publishing a `seeding_progress` frame to the symbol's group
(events_seeding.seeding_group) after each:

  0-50 %   CoinGecko market_chart: days=1 (~5-minute points) -> 5m candles, days=30 (hourly
           points) -> 1h candles. OHLC is derived from price points, volume estimated (below).
  50-90 %  CryptoCompare histohour (720 h, the 1m chart range) -> 1h candles, real OHLC.
  90-100 % CryptoCompare histoday (365 d) -> 1d candles, real OHLC.

Candles are stored as Haunt's aggregate (source "haunt"), one row per bucket (the candle unique
constraint), only for buckets already closed when the job started. Precedence per bucket:

  1. candles built from live prices (trade_count > 0) are never touched by seeding;
  2. CryptoCompare candles (real exchange OHLC) are upserted: they replace seeded rows;
  3. CoinGecko-derived candles and gap fillers are insert-only: they fill buckets nothing else has.

So the order in which the steps (or two seedings) store does not change the result. Seeded rows
carry trade_count 0 (the providers report no trade counts), which is also what tells them apart
from live ones; is_filled is True only for the gap fillers (previous close, no volume) that make
each fetched series contiguous. A failing source is recorded in failed_sources and named in the
message; the other sources are still stored; the job fails only if no source gave candles.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.markets import candles as ohlc
from apps.markets import clients_history
from apps.markets.events import SYMBOL_PATTERN
from apps.markets.events_seeding import seeding_group, seeding_progress
from apps.markets.exceptions import SeedingJobNotFound, SourceUnavailable, UnknownSymbol
from apps.markets.models import (
    AGGREGATE_SOURCE,
    DECIMALS,
    PRICE_DIGITS,
    VOLUME_DIGITS,
    Candle,
    Exchange,
    SeedingJob,
)
from apps.markets.selectors import prices_all
from apps.markets.services.candles import candle_row, klines_cache_refresh
from apps.markets.services.charts import chart_cache_invalidate, chart_get, seeding_snapshot
from haunt.errors import TransientError
from haunt.realtime import publish_on_commit

logger = logging.getLogger(__name__)

COINGECKO, CRYPTOCOMPARE = "coingecko", "cryptocompare"
# The chart ranges (SPEC): 1d at 5 min needs the last day; 1w and 1m at 1 h need 30 days.
COINGECKO_5M_DAYS = 1
COINGECKO_1H_DAYS = 30
CRYPTOCOMPARE_HOURS = 720
CRYPTOCOMPARE_DAYS = 365
# A job in progress this long lost its worker (a run takes four requests of at most ~25 s each):
# a redelivered task may take it over.
STALE_AFTER = timedelta(minutes=15)
ACTIVE = [SeedingJob.Status.PENDING, SeedingJob.Status.IN_PROGRESS]
_SYMBOL_RE = re.compile(SYMBOL_PATTERN)
_QUANTUM = Decimal(1).scaleb(-DECIMALS)
CANDLE_UNIQUE = ["source", "symbol", "interval", "open_time"]
CANDLE_UPDATE = ["open", "high", "low", "close", "volume", "trade_count", "is_filled"]


@dataclass(frozen=True)
class SeedingSources:
    """The provider ids of a symbol: CoinGecko coin id, CryptoCompare ticker, and their base URLs."""

    coingecko_id: str | None = None
    coingecko_url: str = ""
    cryptocompare_symbol: str | None = None
    cryptocompare_url: str = ""


def seeding_sources(*, symbol: str) -> SeedingSources:
    """Where a symbol's history comes from; UnknownSymbol if neither provider maps it."""
    if not _SYMBOL_RE.match(symbol):
        raise UnknownSymbol(f"Unknown symbol {symbol!r}.", symbol=symbol)
    rows = {
        exchange.slug: exchange
        for exchange in Exchange.objects.filter(slug__in=[COINGECKO, CRYPTOCOMPARE], enabled=True)
    }
    ids = {slug: _mapped(rows.get(slug), symbol) for slug in (COINGECKO, CRYPTOCOMPARE)}
    if not any(ids.values()):
        raise UnknownSymbol(f"No history source knows {symbol!r}.", symbol=symbol)
    return SeedingSources(
        coingecko_id=ids[COINGECKO],
        coingecko_url=rows[COINGECKO].rest_url if ids[COINGECKO] else "",
        cryptocompare_symbol=ids[CRYPTOCOMPARE],
        cryptocompare_url=rows[CRYPTOCOMPARE].rest_url if ids[CRYPTOCOMPARE] else "",
    )


def _mapped(exchange: Exchange | None, symbol: str) -> str | None:
    if exchange is None or not exchange.rest_url or not isinstance(exchange.symbol_map, dict):
        return None
    value = exchange.symbol_map.get(symbol)
    return value if isinstance(value, str) and value else None


def seeding_job_active(*, symbol: str) -> SeedingJob | None:
    """The symbol's pending or in-progress job, if any."""
    return SeedingJob.objects.filter(symbol=symbol, status__in=ACTIVE).first()


def seeding_job_request(*, symbol: str, requested_by: str) -> SeedingJob:
    """Queue a backfill of the symbol's chart history, or return the one already queued or running.

    Idempotent: at most one pending/in-progress job per symbol, decided by the database's
    unique constraint when two requests race. Only the request that created the job enqueues
    its run (after commit) and publishes the "pending" frame.
    """
    symbol = symbol.strip().lower()
    seeding_sources(symbol=symbol)  # UnknownSymbol before anything is written
    for _attempt in range(3):
        active = seeding_job_active(symbol=symbol)
        if active is not None:
            if _is_stale(active):
                _run_enqueue(active.pk)  # its worker died; the claim lets only one run take it over
            return active
        try:
            with transaction.atomic():
                job = SeedingJob.objects.create(
                    symbol=symbol, requested_by=requested_by[:32], message="Queued."
                )
        except IntegrityError:
            # Another request created the symbol's job between our read and our insert.
            continue
        publish_on_commit(seeding_group(symbol), dict(seeding_progress(job)))
        _run_enqueue(job.pk)
        return job
    # Three races lost in a row: jobs finish as fast as they are created. Return the newest.
    newest = SeedingJob.objects.filter(symbol=symbol).order_by("-created_at", "-pk").first()
    if newest is None:
        raise TransientError("Could not queue seeding; try again.", symbol=symbol)
    return newest


def chart_get_or_seed(*, symbol: str, range_name: str) -> dict[str, Any]:
    """The chart body; when too much history is missing, also queue a seeding job and report it.

    A symbol no history provider maps is served as it is (the chart shows what it has).
    """
    chart = chart_get(symbol=symbol, range_name=range_name)
    if not chart.needs_seeding:
        return chart.body
    try:
        job = seeding_job_request(symbol=symbol, requested_by="chart")
    except UnknownSymbol:
        return chart.body
    return {**chart.body, "needsSeeding": False, "seeding": seeding_snapshot(job)}


def _run_enqueue(job_id: int) -> None:
    from apps.markets.tasks import seeding_job_run_task  # tasks import this module

    transaction.on_commit(lambda: seeding_job_run_task.delay(job_id), robust=True)


def _is_stale(job: SeedingJob) -> bool:
    return (
        job.status == SeedingJob.Status.IN_PROGRESS
        and job.started_at is not None
        and job.started_at < timezone.now() - STALE_AFTER
    )


# Below the batch's 6-hour beat interval, so each batch refreshes what the previous one seeded.
BATCH_FRESH_FOR = timedelta(hours=5)


def seeding_batch_request(*, limit: int, fresh_for: timedelta = BATCH_FRESH_FOR) -> list[SeedingJob]:
    """Request seeding for the top `limit` seedable symbols, skipping those seeded within `fresh_for`.

    Top means the largest live 24 h volume (volume x price, an approximation across sources),
    then the order of the CoinGecko and CryptoCompare symbol maps for symbols without a live price.
    """
    recent = set(
        SeedingJob.objects.filter(
            status=SeedingJob.Status.COMPLETED, finished_at__gte=timezone.now() - fresh_for
        ).values_list("symbol", flat=True)
    )
    jobs = []
    for symbol in seeding_symbols_top(limit=limit):
        if symbol in recent:
            continue
        try:
            jobs.append(seeding_job_request(symbol=symbol, requested_by="batch"))
        except UnknownSymbol:
            continue  # mapped with an empty id
    return jobs


def seeding_symbols_top(*, limit: int) -> list[str]:
    """The `limit` seedable symbols most worth seeding first (see seeding_batch_request)."""
    seedable: dict[str, None] = {}
    for exchange in Exchange.objects.filter(slug__in=[COINGECKO, CRYPTOCOMPARE], enabled=True).order_by(
        "slug"
    ):
        if exchange.rest_url and isinstance(exchange.symbol_map, dict):
            seedable.update(dict.fromkeys(s for s in exchange.symbol_map if _SYMBOL_RE.match(s)))
    traded = sorted(
        (p for p in prices_all() if p.symbol in seedable),
        key=lambda p: -(p.volume_24h or Decimal(0)) * p.price,
    )
    ranked = dict.fromkeys(p.symbol for p in traded)
    ranked.update(seedable)
    return list(ranked)[:limit]


# --- Running a job -----------------------------------------------------------------------------


@dataclass
class _Run:
    job: SeedingJob
    now_ms: int
    buckets: set[tuple[str, int]] = field(default_factory=set)  # (interval, open_time) written
    succeeded: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what happened in the last step, for the next message

    @property
    def written(self) -> int:
        """Candles stored by this run (a bucket CryptoCompare rewrote after CoinGecko counts once)."""
        return len(self.buckets)


def seeding_job_run(*, job_id: int) -> SeedingJob:
    """Run a pending job: fetch, convert and store the three sources, publishing progress.

    Claims the job with a conditional update (pending -> in_progress, or a stale in-progress
    job), so of two workers given the same job only one runs it; for the other, and for a job
    already finished, this is a no-op returning the job as it is.
    """
    now = timezone.now()
    claimed = (
        SeedingJob.objects.filter(pk=job_id)
        .filter(
            Q(status=SeedingJob.Status.PENDING)
            | Q(status=SeedingJob.Status.IN_PROGRESS, started_at__lt=now - STALE_AFTER)
        )
        .update(
            status=SeedingJob.Status.IN_PROGRESS,
            started_at=now,
            progress=0,
            failed_sources=[],
            candles_written=0,
            finished_at=None,
        )
    )
    job = SeedingJob.objects.filter(pk=job_id).first()
    if job is None:
        raise SeedingJobNotFound(f"No seeding job {job_id}.", job_id=job_id)
    if claimed != 1:
        return job
    run = _Run(job=job, now_ms=int(now.timestamp() * 1000))
    try:
        _steps_run(run)
    except Exception:
        logger.exception("Seeding job %s for %s stopped", job.pk, job.symbol)
        _progress(run, 100, "Seeding stopped by an internal error.", status=SeedingJob.Status.FAILED)
        raise
    finally:
        transaction.on_commit(lambda: chart_cache_invalidate(symbol=job.symbol), robust=True)
    return job


def _steps_run(run: _Run) -> None:
    job = run.job
    try:
        sources = seeding_sources(symbol=job.symbol)
    except UnknownSymbol:  # the mapping was removed after the request
        _progress(run, 100, f"No history source knows {job.symbol}.", status=SeedingJob.Status.FAILED)
        return
    cg_id, cc_symbol = sources.coingecko_id, sources.cryptocompare_symbol

    def coingecko() -> None:
        assert cg_id is not None
        chart = clients_history.coingecko_market_chart_fetch(
            base_url=sources.coingecko_url, coin_id=cg_id, days=COINGECKO_5M_DAYS
        )
        _store(run, "5m", _bars_from_chart(chart, "5m"), real_ohlc=False)
        _progress(run, 25, "Fetching hourly prices from CoinGecko...")
        chart = clients_history.coingecko_market_chart_fetch(
            base_url=sources.coingecko_url, coin_id=cg_id, days=COINGECKO_1H_DAYS
        )
        _store(run, "1h", _bars_from_chart(chart, "1h"), real_ohlc=False)

    def cryptocompare(unit: str, limit: int, interval: str) -> Callable[[], None]:
        def fetch() -> None:
            assert cc_symbol is not None
            rows = clients_history.cryptocompare_history_fetch(
                base_url=sources.cryptocompare_url,
                fsym=cc_symbol,
                unit="hour" if unit == "hour" else "day",
                limit=limit,
            )
            _store(run, interval, _bars_from_rows(rows, interval), real_ohlc=True)

        return fetch

    steps = [
        ("coingecko", "CoinGecko", 0, "Fetching from CoinGecko...", cg_id, coingecko),
        (
            "cryptocompare_hourly",
            "CryptoCompare hourly",
            50,
            "Fetching hourly history from CryptoCompare...",
            cc_symbol,
            cryptocompare("hour", CRYPTOCOMPARE_HOURS, "1h"),
        ),
        (
            "cryptocompare_daily",
            "CryptoCompare daily",
            90,
            "Fetching daily history from CryptoCompare...",
            cc_symbol,
            cryptocompare("day", CRYPTOCOMPARE_DAYS, "1d"),
        ),
    ]
    for name, label, start, message, provider_id, fetch in steps:
        _progress(run, start, " ".join([*run.notes, message]))
        run.notes = []
        if provider_id is None:
            run.notes.append(f"{label} skipped: no id for {job.symbol}.")
            continue
        try:
            fetch()
        except SourceUnavailable as exc:
            logger.warning("Seeding %s: %s failed: %s", job.symbol, name, exc.message)
            job.failed_sources = [*job.failed_sources, name]
            run.notes.append(f"{label} failed ({exc.message}).")
        else:
            run.succeeded.append(name)

    if run.written:
        symbol = job.symbol
        transaction.on_commit(
            lambda: klines_cache_refresh(source=AGGREGATE_SOURCE, symbol=symbol), robust=True
        )
    failed = ", ".join(job.failed_sources)
    if not run.succeeded:
        status = SeedingJob.Status.FAILED
        summary = f"Seeding failed: no source gave complete history ({failed}); {run.written} candles."
    elif failed:
        status = SeedingJob.Status.COMPLETED
        summary = f"Completed with {run.written} candles; failed sources: {failed}."
    else:
        status = SeedingJob.Status.COMPLETED
        summary = f"Completed with {run.written} candles."
    _progress(run, 100, " ".join([*run.notes, summary]), status=status)


def _progress(run: _Run, progress: int, message: str, *, status: str = SeedingJob.Status.IN_PROGRESS) -> None:
    """Save the job's progress and publish it to the symbol's subscribers."""
    job = run.job
    job.status = status
    job.progress = progress
    job.message = message[:255]
    job.candles_written = run.written
    fields = ["status", "progress", "message", "failed_sources", "candles_written"]
    if status not in ACTIVE:
        job.finished_at = timezone.now()
        fields.append("finished_at")
    job.save(update_fields=fields)
    publish_on_commit(seeding_group(job.symbol), dict(seeding_progress(job)))


# --- Conversion ---------------------------------------------------------------------------------


def _bars_from_chart(chart: clients_history.MarketChart, interval: str) -> list[ohlc.Bar]:
    """Candles from CoinGecko price points: open first, close last, high/low of the points.

    total_volumes are rolling 24 h USD volumes, not per bucket, so a bucket's volume is an
    estimate: the 24 h volume at its last point, scaled to the bucket's length, in coins.
    """
    by_time: dict[int, ohlc.Bar] = {}
    for ts, price in chart.prices:
        start = ohlc.bucket_start(ts, interval)
        by_time[start] = ohlc.bar_merge(by_time.get(start), ohlc.Trade(ts, price, Decimal(0)), interval)
    volume_24h: dict[int, Decimal] = {}
    for ts, volume in chart.total_volumes:  # oldest first: the bucket's last point wins
        volume_24h[ohlc.bucket_start(ts, interval)] = volume
    share = Decimal(ohlc.interval_ms(interval)) / Decimal(ohlc.DAY_MS)
    bars = []
    for start, bar in sorted(by_time.items()):
        usd = volume_24h.get(start)
        volume = usd * share / bar.close if usd is not None else Decimal(0)
        bars.append(_fitted(ohlc.Bar(start, bar.open, bar.high, bar.low, bar.close, volume, bar.trade_count)))
    return ohlc.bars_fill(bars, interval)


def _bars_from_rows(rows: Iterable[clients_history.OhlcvRow], interval: str) -> list[ohlc.Bar]:
    """Candles from CryptoCompare rows (already bucketed by the provider)."""
    bars = [
        _fitted(ohlc.Bar(r.time_ms, r.open, r.high, r.low, r.close, r.volume, trade_count=1))
        for r in rows
        if r.time_ms == ohlc.bucket_start(r.time_ms, interval)
    ]
    return ohlc.bars_fill(bars, interval)


def _fitted(bar: ohlc.Bar) -> ohlc.Bar:
    """The bar rounded to the candle columns; SourceUnavailable for values they cannot hold."""
    try:
        open_, high, low, close = (
            _fit(value, PRICE_DIGITS) for value in (bar.open, bar.high, bar.low, bar.close)
        )
        volume = _fit(bar.volume, VOLUME_DIGITS)
    except (ValueError, InvalidOperation):
        raise SourceUnavailable("history value out of range", open_time=bar.open_time) from None
    return ohlc.Bar(bar.open_time, open_, high, low, close, volume, bar.trade_count)


def _fit(value: Decimal, digits: int) -> Decimal:
    if not value.is_finite() or abs(value) >= Decimal(10) ** (digits - DECIMALS):
        raise ValueError(value)
    return value.quantize(_QUANTUM)


# --- Storing ------------------------------------------------------------------------------------


def _store(run: _Run, interval: str, bars: list[ohlc.Bar], *, real_ohlc: bool) -> None:
    """Write the closed buckets by the module's precedence; counts rows written into the run."""
    step = ohlc.interval_ms(interval)
    closed = [bar for bar in bars if bar.open_time + step <= run.now_ms]
    if not closed:
        return
    symbol = run.job.symbol
    with transaction.atomic():
        existing = dict(
            Candle.objects.filter(
                source=AGGREGATE_SOURCE,
                symbol=symbol,
                interval=interval,
                open_time__gte=closed[0].open_time,
                open_time__lte=closed[-1].open_time,
            ).values_list("open_time", "trade_count")
        )
        replace, insert = [], []
        for bar in closed:
            if existing.get(bar.open_time, 0) > 0:
                continue  # built from live prices
            if real_ohlc and not bar.is_filled:
                replace.append(_row(bar, symbol=symbol, interval=interval))
            elif bar.open_time not in existing:
                insert.append(_row(bar, symbol=symbol, interval=interval))
        Candle.objects.bulk_create(
            replace,
            batch_size=500,
            update_conflicts=True,
            unique_fields=CANDLE_UNIQUE,
            update_fields=CANDLE_UPDATE,
        )
        # ignore_conflicts: a bucket the live writer created since our read keeps its candle.
        Candle.objects.bulk_create(insert, batch_size=500, ignore_conflicts=True)
    run.buckets.update((interval, row.open_time) for row in [*replace, *insert])


def _row(bar: ohlc.Bar, *, symbol: str, interval: str) -> Candle:
    row = candle_row(bar, source=AGGREGATE_SOURCE, symbol=symbol, interval=interval)
    # No trade count on seeded rows: live candles (trade_count > 0) take precedence over them.
    row.trade_count, row.first_trade_ms, row.last_trade_ms = 0, None, None
    return row
