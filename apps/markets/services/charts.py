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
from apps.markets.exceptions import CandleQueryInvalid, CandleSymbolUnknown, ChartRangeInvalid, UnknownSymbol
from apps.markets.models import AGGREGATE_SOURCE, DECIMALS, SeedingJob
from apps.markets.selectors_candles import (
    SOURCE_RE,
    SYMBOL_RE,
    CandleSymbol,
    bars_select,
    buckets_from_minutes,
    candle_symbol_known,
    candle_symbols,
    candles_between,
    forming_bucket,
    haunt_symbol_known,
    live_tail,
    price_decimals,
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


# --- Binance klines --------------------------------------------------------------------------

KLINES_LIMIT_DEFAULT, KLINES_LIMIT_MAX = 500, 1000


def binance_decimal(value: Decimal) -> str:
    """Binance's decimal strings: fixed point, at least 8 places ("0.01634790")."""
    exponent = value.normalize().as_tuple().exponent
    places = max(8, -exponent) if isinstance(exponent, int) else 8
    return format(value, f".{places}f")


def candle_source_resolve(*, source: str, symbol: str) -> tuple[str, str]:
    """(source, symbol) as stored: Haunt symbols are lower-case, exchange symbols as imported
    (tried as given, then upper-case). Raises CandleSymbolUnknown when nothing is stored."""
    source = source.lower()
    if source == AGGREGATE_SOURCE:
        symbol = symbol.lower()
        if SYMBOL_RE.match(symbol) and haunt_symbol_known(symbol=symbol):
            return source, symbol
    elif SOURCE_RE.match(source) and SYMBOL_RE.match(symbol):
        for candidate in dict.fromkeys((symbol, symbol.upper())):
            if candle_symbol_known(source=source, symbol=candidate):
                return source, candidate
    raise CandleSymbolUnknown(
        f"Invalid symbol {symbol!r} for source {source!r}.", symbol=symbol, source=source
    )


def klines_get(
    *,
    symbol: str,
    interval: str,
    source: str = AGGREGATE_SOURCE,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int = KLINES_LIMIT_DEFAULT,
    now_ms: int | None = None,
) -> list[list[Any]]:
    """Candles in Binance's kline array format, with Binance's parameter semantics.

    With startTime the oldest `limit` candles from it (up to endTime), otherwise the newest
    `limit` up to endTime (or now); open times are inclusive at both ends; limit is clamped to
    1..1000. Rows: [openTime, "open", "high", "low", "close", "volume", closeTime,
    "quoteVolume", trades, "takerBuyBase", "takerBuyQuote", "0"]. Haunt keeps neither quote
    nor taker volumes ("0"); trades is the stored trade count (0 for the Haunt aggregate,
    which is built from prices, not trades). The current bucket is included, still forming.
    """
    step = ohlc.interval_ms(interval)  # the view validated it
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise CandleQueryInvalid("startTime must not be after endTime.", startTime=start_ms, endTime=end_ms)
    source, symbol = candle_source_resolve(source=source, symbol=symbol)
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    limit = min(max(limit, 1), KLINES_LIMIT_MAX)
    bars = bars_select(
        source=source,
        symbol=symbol,
        interval=interval,
        start_ms=start_ms,
        end_ms=end_ms if end_ms is not None else now_ms,
        limit=limit,
        newest=start_ms is None,
        now_ms=now_ms,
    )
    zero = "0"
    trades_known = source != AGGREGATE_SOURCE
    return [
        [
            bar.open_time,
            binance_decimal(bar.open),
            binance_decimal(bar.high),
            binance_decimal(bar.low),
            binance_decimal(bar.close),
            binance_decimal(bar.volume),
            bar.open_time + step - 1,
            binance_decimal(Decimal(0)),
            bar.trade_count if trades_known else 0,
            binance_decimal(Decimal(0)),
            binance_decimal(Decimal(0)),
            zero,
        ]
        for bar in bars
    ]


# --- TradingView UDF -------------------------------------------------------------------------

UDF_RESOLUTIONS: dict[str, str] = {"1": "1m", "5": "5m", "15": "15m", "60": "1h", "240": "4h", "1D": "1d"}
UDF_ALIASES = {"D": "1D", "1440": "1D"}
UDF_HISTORY_MAX = 5000  # bars per answer; the library asks for visible ranges, far fewer
UDF_SEARCH_MAX = 100


def udf_resolution(resolution: str) -> str:
    """The candle interval of a UDF resolution; CandleQueryInvalid for one Haunt does not serve."""
    interval = UDF_RESOLUTIONS.get(UDF_ALIASES.get(resolution, resolution))
    if interval is None:
        raise CandleQueryInvalid(
            f"Unsupported resolution {resolution!r}; expected one of {', '.join(UDF_RESOLUTIONS)}.",
            resolution=resolution,
        )
    return interval


def _udf_exchange(source: str) -> str:
    return source.upper()


def udf_ticker(entry: CandleSymbol) -> str:
    """UDF ticker of a symbol: "HAUNT:BTC" for the aggregate, "BINANCE:XRPETH" for exchange candles."""
    return f"{_udf_exchange(entry.source)}:{entry.symbol.upper()}"


def udf_symbol_resolve(*, name: str) -> CandleSymbol:
    """A UDF symbol ("BTC", "btc", "HAUNT:BTC", "BINANCE:XRPETH", "XRPETH") to a stored (source, symbol)."""
    if ":" in name:
        exchange, _, symbol = name.partition(":")
        source, stored = candle_source_resolve(source=exchange, symbol=symbol)
        return CandleSymbol(source, stored)
    lowered = name.lower()
    if SYMBOL_RE.match(lowered) and haunt_symbol_known(symbol=lowered):
        return CandleSymbol(AGGREGATE_SOURCE, lowered)
    for entry in candle_symbols():
        if entry.source != AGGREGATE_SOURCE and entry.symbol.upper() == name.upper():
            return entry
    raise CandleSymbolUnknown(f"Unknown symbol {name!r}.", symbol=name)


def _udf_description(entry: CandleSymbol) -> str:
    if entry.source == AGGREGATE_SOURCE:
        return f"{entry.symbol.upper()} / USD (Haunt aggregate)"
    return f"{entry.symbol} ({entry.source} candles)"


def udf_config() -> dict[str, Any]:
    """The datafeed configuration (`onReady`)."""
    sources = sorted({entry.source for entry in candle_symbols()} | {AGGREGATE_SOURCE})
    return {
        "supported_resolutions": list(UDF_RESOLUTIONS),
        "supports_search": True,
        "supports_group_request": False,
        "supports_marks": False,
        "supports_timescale_marks": False,
        "supports_time": True,
        "exchanges": [
            {"value": "", "name": "All Exchanges", "desc": ""},
            *(
                {
                    "value": _udf_exchange(source),
                    "name": _udf_exchange(source),
                    "desc": "Haunt aggregate" if source == AGGREGATE_SOURCE else f"{source} candles",
                }
                for source in sources
            ),
        ],
        "symbols_types": [{"name": "All types", "value": ""}, {"name": "Crypto", "value": "crypto"}],
    }


def udf_symbol_info(*, name: str) -> dict[str, Any]:
    """A LibrarySymbolInfo for `/symbols?symbol=`."""
    entry = udf_symbol_resolve(name=name)
    exchange = _udf_exchange(entry.source)
    live = entry.source == AGGREGATE_SOURCE
    return {
        "name": entry.symbol.upper(),
        "ticker": udf_ticker(entry),
        "description": _udf_description(entry),
        "type": "crypto",
        "session": "24x7",
        "timezone": "Etc/UTC",
        "exchange": exchange,
        "listed_exchange": exchange,
        "minmov": 1,
        "pricescale": 10 ** price_decimals(source=entry.source, symbol=entry.symbol),
        "has_intraday": True,
        "has_daily": True,
        "has_weekly_and_monthly": False,
        "intraday_multipliers": [r for r in UDF_RESOLUTIONS if r != "1D"],
        "daily_multipliers": ["1"],
        "supported_resolutions": list(UDF_RESOLUTIONS),
        "volume_precision": 8,
        "data_status": "streaming" if live else "endofday",
        "format": "price",
    }


def udf_search(*, query: str, type_: str = "", exchange: str = "", limit: int = 30) -> list[dict[str, Any]]:
    """`/search`: symbols whose name or ticker contains the query (case-insensitive)."""
    needle = query.strip().upper()
    limit = min(max(limit, 1), UDF_SEARCH_MAX)
    if type_ and type_ != "crypto":
        return []
    results = []
    for entry in candle_symbols():
        ticker = udf_ticker(entry)
        if exchange and _udf_exchange(entry.source) != exchange.upper():
            continue
        if needle and needle not in ticker:
            continue
        results.append(
            {
                "symbol": entry.symbol.upper(),
                "full_name": ticker,
                "description": _udf_description(entry),
                "exchange": _udf_exchange(entry.source),
                "ticker": ticker,
                "type": "crypto",
            }
        )
        if len(results) >= limit:
            break
    return results


def udf_history(
    *,
    symbol: str,
    resolution: str,
    to_s: int,
    from_s: int | None = None,
    countback: int | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """`/history`: bars with from <= t < to (seconds), or the `countback` bars before `to`
    (countback wins over from). Times in seconds, prices and volumes as numbers; no bars gives
    {"s": "no_data"} with nextTime (seconds) of the closest earlier bar when there is one."""
    interval = udf_resolution(resolution)
    if countback is None and from_s is None:
        raise CandleQueryInvalid("Either from or countback is required.")
    if countback is None and from_s is not None and from_s >= to_s:
        raise CandleQueryInvalid("from must be before to.", **{"from": from_s, "to": to_s})
    entry = udf_symbol_resolve(name=symbol)
    end_ms = to_s * 1000 - 1  # `to` is exclusive
    start_ms = None if countback is not None else (from_s or 0) * 1000
    limit = min(countback, UDF_HISTORY_MAX) if countback is not None else UDF_HISTORY_MAX
    bars = bars_select(
        source=entry.source,
        symbol=entry.symbol,
        interval=interval,
        start_ms=start_ms,
        end_ms=end_ms,
        limit=limit,
        newest=True,
        now_ms=now_ms,
    )
    if not bars:
        before = (start_ms if start_ms is not None else end_ms + 1) - 1
        earlier = bars_select(
            source=entry.source,
            symbol=entry.symbol,
            interval=interval,
            start_ms=None,
            end_ms=before,
            limit=1,
            newest=True,
            now_ms=now_ms,
        )
        body: dict[str, Any] = {"s": "no_data"}
        if earlier:
            body["nextTime"] = earlier[-1].open_time // 1000
        return body
    return {
        "s": "ok",
        "t": [bar.open_time // 1000 for bar in bars],
        "o": [float(bar.open) for bar in bars],
        "h": [float(bar.high) for bar in bars],
        "l": [float(bar.low) for bar in bars],
        "c": [float(bar.close) for bar in bars],
        "v": [float(bar.volume) for bar in bars],
    }
