"""Chart assembly for `GET /api/crypto/{id}/chart`: fixed-size OHLC bucket series of the Haunt
aggregate (source "haunt"), gaps interpolated or marked missing, plus the live (forming) bucket.

Resolution order: the live store (Redis `klines:{symbol}:1m` + the forming 1m candle, or process
memory), then the database's candles of the bucket interval; what neither has is a gap, and
when too much is missing `needs_seeding` says so (the caller triggers the seeding job).

Caching, two levels:
- Redis `haunt:chart:{symbol}:{range}` (process memory without REDIS_URL) keeps the *closed*
  buckets with `closedThrough`, the open time of the bucket that was forming when they were
  assembled. A reader whose current bucket differs rebuilds, so each newly closed bucket
  invalidates the entry by itself (every minute for 1h, 5 min for 4h/1d, 1 h for 1w/1m); the
  24 h / 7 d TTLs of the spec are only a backstop. The forming bucket is never cached there: it
  is rebuilt from the live store (one pipelined Redis round trip) on every request.
- Process memory keeps the whole body for MEMORY_TTL_MS, so a burst of readers costs one
  Redis read per process per symbol and range.
Seeding changes the history without a bucket closing: while the cached body reports an active
job or needs seeding, readers re-read the latest SeedingJob (one indexed query) and rebuild
when a job has completed since. `chart_cache_invalidate` drops a symbol's entries explicitly
(e.g. after a backfill wrote candles).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.markets import candles as ohlc
from apps.markets.exceptions import ChartRangeInvalid, UnknownSymbol
from apps.markets.models import AGGREGATE_SOURCE, DECIMALS, SeedingJob
from apps.markets.selectors_candles import (
    SYMBOL_RE,
    buckets_from_minutes,
    candles_between,
    forming_bucket,
    haunt_symbol_known,
    live_tail,
    seeding_job_latest,
)
from apps.markets.services.store import redis_client


@dataclass(frozen=True, slots=True)
class ChartRange:
    interval: str
    points: int  # including the forming bucket
    cache_ttl_s: int


HOUR_S, DAY_S = 3600, 86_400
RANGES: dict[str, ChartRange] = {
    "1h": ChartRange("1m", 60, DAY_S),
    "4h": ChartRange("5m", 48, DAY_S),
    "1d": ChartRange("5m", 288, DAY_S),
    "1w": ChartRange("1h", 168, 7 * DAY_S),
    "1m": ChartRange("1h", 720, 7 * DAY_S),
}
# Runs of missing buckets shorter than this, between two real buckets, are interpolated.
INTERPOLATE_BELOW = 3
# Below this share of real closed buckets the chart needs a history backfill.
SEEDING_COMPLETENESS_MIN = 90.0
MEMORY_TTL_MS = 2_000
MEMORY_MAX_ENTRIES = 4096
ACTIVE_SEEDING = (SeedingJob.Status.PENDING, SeedingJob.Status.IN_PROGRESS)
_QUANTUM = Decimal(1).scaleb(-DECIMALS)


@dataclass(frozen=True, slots=True)
class Chart:
    """An assembled chart: the JSON body the API returns and whether a backfill is due."""

    body: dict[str, Any]
    needs_seeding: bool


# --- Cache state -----------------------------------------------------------------------------

_lock = threading.Lock()
# (symbol, range) -> (current bucket open time, built at ms, body)
_bodies: dict[tuple[str, str], tuple[int, int, dict[str, Any]]] = {}
# Without Redis: (symbol, range) -> (expires at ms, history)
_histories: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}


def chart_cache_key(*, symbol: str, range_name: str) -> str:
    return f"haunt:chart:{symbol}:{range_name}"


def chart_cache_invalidate(*, symbol: str) -> None:
    """Drop every cached chart of a symbol (Redis and this process); the next read rebuilds."""
    symbol = symbol.lower()
    with _lock:
        for key in [k for k in (*_bodies, *_histories) if k[0] == symbol]:
            _bodies.pop(key, None)
            _histories.pop(key, None)
    if settings.REDIS_URL:
        redis_client(settings.REDIS_URL).delete(
            *(chart_cache_key(symbol=symbol, range_name=name) for name in RANGES)
        )


def chart_cache_clear() -> None:
    """Forget this process's cached charts (tests; Redis entries stay)."""
    with _lock:
        _bodies.clear()
        _histories.clear()


def _history_load(symbol: str, range_name: str, now_ms: int) -> dict[str, Any] | None:
    if settings.REDIS_URL:
        client: Any = redis_client(settings.REDIS_URL)  # redis-py types replies as Awaitable | Any
        raw = client.get(chart_cache_key(symbol=symbol, range_name=range_name))
        return json.loads(raw) if raw is not None else None
    with _lock:
        entry = _histories.get((symbol, range_name))
    if entry is None or entry[0] <= now_ms:
        return None
    return entry[1]


def _history_save(symbol: str, range_name: str, history: dict[str, Any], now_ms: int) -> None:
    ttl_s = RANGES[range_name].cache_ttl_s
    if settings.REDIS_URL:
        key = chart_cache_key(symbol=symbol, range_name=range_name)
        redis_client(settings.REDIS_URL).set(key, json.dumps(history, separators=(",", ":")), ex=ttl_s)
        return
    with _lock:
        if len(_histories) >= MEMORY_MAX_ENTRIES:
            _histories.clear()
        _histories[(symbol, range_name)] = (now_ms + ttl_s * 1000, history)


# --- Formatting ------------------------------------------------------------------------------


def decimal_str(value: Decimal) -> str:
    """Plain decimal notation without trailing zeros ("50000", "0.0001"), never exponents."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _point(open_time: int, bar: ohlc.Bar | None, status: str) -> dict[str, Any]:
    if bar is None:
        return {
            "time": open_time,
            "open": None,
            "high": None,
            "low": None,
            "close": None,
            "volume": None,
            "status": status,
        }
    return {
        "time": open_time,
        "open": decimal_str(bar.open),
        "high": decimal_str(bar.high),
        "low": decimal_str(bar.low),
        "close": decimal_str(bar.close),
        "volume": decimal_str(bar.volume),
        "status": status,
    }


def seeding_snapshot(job: SeedingJob | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "jobId": job.pk,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "createdAt": job.created_at.isoformat() if job.created_at else None,
        "finishedAt": job.finished_at.isoformat() if job.finished_at else None,
    }


def _needs_seeding(completeness: float, seeding: dict[str, Any] | None) -> bool:
    active = seeding is not None and seeding["status"] in ACTIVE_SEEDING
    return completeness < SEEDING_COMPLETENESS_MIN and not active


# --- Assembly --------------------------------------------------------------------------------


def buckets_interpolate(
    series: list[tuple[int, ohlc.Bar | None]],
) -> list[tuple[int, ohlc.Bar | None, str]]:
    """Each bucket with its status: real, interpolated (a run of fewer than INTERPOLATE_BELOW
    missing buckets between two real ones, linear from the left close to the right open, no
    volume) or missing (longer runs, and runs at either end)."""
    out: list[tuple[int, ohlc.Bar | None, str]] = [
        (t, bar, "real" if bar is not None else "missing") for t, bar in series
    ]
    i = 0
    while i < len(series):
        if series[i][1] is not None:
            i += 1
            continue
        j = i
        while j < len(series) and series[j][1] is None:
            j += 1
        left = series[i - 1][1] if i > 0 else None
        right = series[j][1] if j < len(series) else None
        gap = j - i
        if left is not None and right is not None and gap < INTERPOLATE_BELOW:
            start, end = left.close, right.open
            previous = start
            for k in range(1, gap + 1):
                value = (start + (end - start) * k / (gap + 1)).quantize(_QUANTUM)
                bar = ohlc.Bar(
                    series[i + k - 1][0],
                    previous,
                    max(previous, value),
                    min(previous, value),
                    value,
                    Decimal(0),
                )
                out[i + k - 1] = (bar.open_time, bar, "interpolated")
                previous = value
        i = j
    return out


def chart_history_build(*, symbol: str, range_name: str, now_ms: int) -> dict[str, Any]:
    """The closed buckets of a chart (everything but the forming one), ready to cache."""
    spec = RANGES[range_name]
    step = ohlc.interval_ms(spec.interval)
    current = ohlc.bucket_start(now_ms, spec.interval)
    first = current - (spec.points - 1) * step
    stored = candles_between(
        source=AGGREGATE_SOURCE, symbol=symbol, interval=spec.interval, start_ms=first, end_ms=current
    )
    by_time: dict[int, ohlc.Bar] = {bar.open_time: bar for bar in stored}
    tail = live_tail(symbol=symbol, start_ms=first, end_ms=current)
    closed_minutes = [m for m in tail.all_minutes() if first <= m.open_time < current]
    by_time.update(buckets_from_minutes(closed_minutes, interval=spec.interval))  # live wins
    series = [(t, by_time.get(t)) for t in range(first, current, step)]
    points = buckets_interpolate(series)
    real = sum(1 for _, _, status in points if status == "real")
    interpolated = sum(1 for _, _, status in points if status == "interpolated")
    expected = len(points)
    completeness = round(100.0 * real / expected, 2) if expected else 100.0
    seeding = seeding_snapshot(seeding_job_latest(symbol=symbol))
    return {
        "closedThrough": current,
        "builtAt": now_ms,
        "candles": [_point(t, bar, status) for t, bar, status in points],
        "dataCompleteness": completeness,
        "realBuckets": real,
        "interpolatedBuckets": interpolated,
        "missingBuckets": expected - real - interpolated,
        "expectedBuckets": expected,
        "seeding": seeding,
        "needsSeeding": _needs_seeding(completeness, seeding),
    }


def _seeding_refresh(history: dict[str, Any], symbol: str) -> dict[str, Any] | None:
    """The cached history with the current seeding status; None when a backfill completed
    since it was built (its candles must be read)."""
    snapshot = history["seeding"]
    active = snapshot is not None and snapshot["status"] in ACTIVE_SEEDING
    if not (active or history["needsSeeding"]):
        return history
    fresh = seeding_snapshot(seeding_job_latest(symbol=symbol))
    if fresh == snapshot:
        return history
    finished_since = fresh is not None and fresh["status"] == SeedingJob.Status.COMPLETED
    if finished_since:
        return None
    return {**history, "seeding": fresh, "needsSeeding": _needs_seeding(history["dataCompleteness"], fresh)}


def chart_get(*, symbol: str, range_name: str, now_ms: int | None = None) -> Chart:
    """The chart of a Haunt symbol over a range ("1h", "4h", "1d", "1w", "1m").

    Raises ChartRangeInvalid for another range and UnknownSymbol for a symbol no exchange maps
    and nothing has priced or stored. Never triggers seeding: see Chart.needs_seeding.
    """
    symbol = symbol.lower()
    spec = RANGES.get(range_name)
    if spec is None:
        raise ChartRangeInvalid(
            f"Unknown range {range_name!r}; expected one of {', '.join(RANGES)}.", range=range_name
        )
    if not SYMBOL_RE.match(symbol):
        raise UnknownSymbol(f"No chart for {symbol!r}.", symbol=symbol)
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    step = ohlc.interval_ms(spec.interval)
    current = ohlc.bucket_start(now_ms, spec.interval)
    key = (symbol, range_name)

    with _lock:
        cached = _bodies.get(key)
    if cached is not None and cached[0] == current and 0 <= now_ms - cached[1] < MEMORY_TTL_MS:
        body = cached[2]
        return Chart(body, body["needsSeeding"])

    history = _history_load(symbol, range_name, now_ms)
    if history is not None and history.get("closedThrough") != current:
        history = None  # a bucket closed since: rebuild
    if history is not None:
        refreshed = _seeding_refresh(history, symbol)
        if refreshed is not history and refreshed is not None:
            _history_save(symbol, range_name, refreshed, now_ms)
        history = refreshed
    if history is None:
        if not haunt_symbol_known(symbol=symbol):
            raise UnknownSymbol(f"No chart for {symbol!r}.", symbol=symbol)
        history = chart_history_build(symbol=symbol, range_name=range_name, now_ms=now_ms)
        _history_save(symbol, range_name, history, now_ms)

    tail = live_tail(symbol=symbol, start_ms=current, end_ms=now_ms + 1)
    live = forming_bucket(tail.all_minutes(), open_time=current, interval=spec.interval)
    body = {
        "id": symbol,
        "symbol": symbol,
        "range": range_name,
        "interval": spec.interval,
        "bucketMs": step,
        "from": current - (spec.points - 1) * step,
        "to": current + step,
        "candles": [*history["candles"], _point(current, live, "forming" if live else "missing")],
        "dataCompleteness": history["dataCompleteness"],
        "realBuckets": history["realBuckets"],
        "interpolatedBuckets": history["interpolatedBuckets"],
        "missingBuckets": history["missingBuckets"],
        "expectedBuckets": history["expectedBuckets"],
        "needsSeeding": history["needsSeeding"],
        "seeding": history["seeding"],
        "historyBuiltAt": history["builtAt"],
        "generatedAt": now_ms,
    }
    with _lock:
        if len(_bodies) >= MEMORY_MAX_ENTRIES:
            _bodies.clear()
        _bodies[key] = (current, now_ms, body)
    return Chart(body, body["needsSeeding"])
