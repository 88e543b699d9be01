"""Candle reads for charts, klines and the UDF datafeed: the database history merged with the
live store (Redis `klines:{symbol}:1m` and `haunt:candle:1m:{symbol}`, or process memory).

Only the Haunt aggregate (source "haunt", lower-case symbols like "btc") has a live store; an
exchange's candles (source = its slug, its own symbol such as "XRPETH") come from the database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.markets import candles as ohlc
from apps.markets.models import AGGREGATE_SOURCE, Candle, Exchange, SeedingJob
from apps.markets.services.store import Candle as StoredCandle
from apps.markets.services.store import MemoryPriceStore, candle_from_json, price_store, redis_client

SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# The symbol catalogue (a DISTINCT over the candle table) is re-read at most this often.
CATALOGUE_TTL_S = 60.0
# The live store keeps hours of minutes (Redis 500, memory 1440), not years: only ask it about
# the recent part of a range.
LIVE_SPAN_MS = 2 * ohlc.DAY_MS


@dataclass(frozen=True, slots=True)
class LiveTail:
    """The live store's closed 1m candles in a span, and the forming 1m candle (if any)."""

    minutes: list[ohlc.Bar]
    forming: ohlc.Bar | None

    def all_minutes(self) -> list[ohlc.Bar]:
        """The closed minutes plus the forming one: a forming candle of an earlier minute is
        closed in fact (it moves to the closed set only when the next price arrives)."""
        if self.forming is None:
            return self.minutes
        rest = [m for m in self.minutes if m.open_time != self.forming.open_time]
        return sorted([*rest, self.forming], key=lambda bar: bar.open_time)


@dataclass(frozen=True, slots=True)
class CandleSymbol:
    source: str  # "haunt" or an exchange slug
    symbol: str  # "btc" for Haunt, the exchange's own symbol otherwise


def _bar_from_row(row: tuple[Any, ...]) -> ohlc.Bar:
    open_time, o, h, low, c, v, trades, first_ms, last_ms, is_filled = row
    # As Candle.as_bar: seeded candles have no trade count but are real prices.
    return ohlc.Bar(open_time, o, h, low, c, v, trades if trades or is_filled else 1, first_ms, last_ms)


_BAR_FIELDS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "trade_count",
    "first_trade_ms",
    "last_trade_ms",
    "is_filled",
)


def candles_between(*, source: str, symbol: str, interval: str, start_ms: int, end_ms: int) -> list[ohlc.Bar]:
    """Stored candles with open_time in [start_ms, end_ms), oldest first."""
    rows = (
        Candle.objects.filter(
            source=source, symbol=symbol, interval=interval, open_time__gte=start_ms, open_time__lt=end_ms
        )
        .order_by("open_time")
        .values_list(*_BAR_FIELDS)
    )
    return [_bar_from_row(row) for row in rows]


def candles_edge(
    *, source: str, symbol: str, interval: str, start_ms: int | None, end_ms: int, limit: int, newest: bool
) -> list[ohlc.Bar]:
    """Up to `limit` stored candles with open_time in [start_ms, end_ms] (inclusive), oldest first:
    the newest ones when `newest`, else the oldest ones."""
    rows = Candle.objects.filter(source=source, symbol=symbol, interval=interval, open_time__lte=end_ms)
    if start_ms is not None:
        rows = rows.filter(open_time__gte=start_ms)
    ordered = rows.order_by("-open_time" if newest else "open_time").values_list(*_BAR_FIELDS)[:limit]
    bars = [_bar_from_row(row) for row in ordered]
    return sorted(bars, key=lambda bar: bar.open_time)


def candle_before(*, source: str, symbol: str, interval: str, before_ms: int) -> ohlc.Bar | None:
    """The newest stored candle opening before before_ms."""
    row = (
        Candle.objects.filter(source=source, symbol=symbol, interval=interval, open_time__lt=before_ms)
        .order_by("-open_time")
        .values_list(*_BAR_FIELDS)
        .first()
    )
    return _bar_from_row(row) if row is not None else None


def live_tail(*, symbol: str, start_ms: int, end_ms: int) -> LiveTail:
    """Closed live 1m candles of a Haunt symbol in [start_ms, end_ms) plus the forming one.

    One Redis round trip (a pipeline), or process memory without REDIS_URL. Redis keeps the
    newest 500 closed minutes, memory the newest 1440; older minutes are the database's.
    """
    if settings.REDIS_URL:
        pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
        pipe.zrangebyscore(f"klines:{symbol}:1m", start_ms, end_ms - 1)
        pipe.get(f"haunt:candle:1m:{symbol}")
        raws, forming_raw = pipe.execute()
        minutes = [candle_from_json(raw).as_bar() for raw in raws]
        forming = candle_from_json(forming_raw).as_bar() if forming_raw is not None else None
    else:
        store = price_store()
        closed: Iterable[StoredCandle] = ()
        forming_candle = None
        if isinstance(store, MemoryPriceStore):
            closed = list(store.closed.get(symbol, ()))
            forming_candle = store.forming.get(symbol)
        minutes = [c.as_bar() for c in closed if start_ms <= c.open_time < end_ms]
        forming = forming_candle.as_bar() if forming_candle is not None else None
    by_time = {bar.open_time: bar for bar in minutes}  # a re-written minute appears once
    return LiveTail(sorted(by_time.values(), key=lambda bar: bar.open_time), forming)


def buckets_from_minutes(minutes: list[ohlc.Bar], *, interval: str) -> dict[int, ohlc.Bar]:
    """Candles of `interval` from live 1m candles, only for buckets the minutes fully span.

    A bucket opening before the first minute would be rolled up from its tail only (wrong open,
    maybe wrong high/low), so it is left to the database. Buckets with no minute are absent, not
    filled: a live store without minutes means no data, not an unchanged price.
    """
    if not minutes:
        return {}
    if interval == "1m":
        return {m.open_time: m for m in minutes}
    first = minutes[0].open_time
    groups: dict[int, list[ohlc.Bar]] = {}
    for minute in minutes:
        groups.setdefault(ohlc.bucket_start(minute.open_time, interval), []).append(minute)
    rolled: dict[int, ohlc.Bar] = {}
    for open_time, children in groups.items():
        if open_time >= first:
            rolled[open_time] = ohlc.rollup(children, interval)[0]
    return rolled


def forming_bucket(minutes: Iterable[ohlc.Bar], *, open_time: int, interval: str) -> ohlc.Bar | None:
    """The current (not yet closed) candle of `interval` opening at open_time, from 1m candles."""
    step = ohlc.interval_ms(interval)
    children = sorted(
        (m for m in minutes if open_time <= m.open_time < open_time + step), key=lambda bar: bar.open_time
    )
    if not children:
        return None
    if interval == "1m":
        return children[-1]
    return ohlc.rollup(children, interval)[0]


def bars_select(
    *,
    source: str,
    symbol: str,
    interval: str,
    start_ms: int | None,
    end_ms: int,
    limit: int,
    newest: bool,
    now_ms: int | None = None,
) -> list[ohlc.Bar]:
    """Up to `limit` candles with open_time in [start_ms, end_ms] (inclusive), oldest first, closed
    and forming, for klines and UDF history: the newest when `newest`, else the oldest.

    For the Haunt aggregate the live store wins over the database for the buckets it spans, and
    the current bucket is built from the live minutes plus the forming 1m candle. Exchange
    candles come from the database only (they are closed by construction).
    """
    stored = candles_edge(
        source=source,
        symbol=symbol,
        interval=interval,
        start_ms=start_ms,
        end_ms=end_ms,
        limit=limit,
        newest=newest,
    )
    if source != AGGREGATE_SOURCE:
        return stored
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    current = ohlc.bucket_start(now_ms, interval)
    lo = start_ms if start_ms is not None else 0
    by_time = {bar.open_time: bar for bar in stored}
    live_lo = max(lo, current - LIVE_SPAN_MS)
    if lo <= end_ms and lo <= now_ms and end_ms >= live_lo:
        live_hi = min(ohlc.bucket_start(end_ms, interval) + ohlc.interval_ms(interval), now_ms + 1)
        tail = live_tail(symbol=symbol, start_ms=live_lo, end_ms=live_hi)
        minutes = tail.all_minutes()
        closed = buckets_from_minutes([m for m in minutes if m.open_time < current], interval=interval)
        by_time.update({t: bar for t, bar in closed.items() if lo <= t <= end_ms and t < current})
        if lo <= current <= end_ms:
            minutes_now = minutes
            if interval != "1m" and not any(m.open_time <= current for m in minutes_now):
                # The live store does not reach back to the bucket's start: the database's
                # closed minutes of this bucket (if something writes them) complete it.
                db_minutes = candles_between(
                    source=source, symbol=symbol, interval="1m", start_ms=current, end_ms=now_ms + 1
                )
                seen = {m.open_time for m in minutes_now}
                minutes_now = sorted(
                    [*minutes_now, *(m for m in db_minutes if m.open_time not in seen)],
                    key=lambda bar: bar.open_time,
                )
            bar = forming_bucket(minutes_now, open_time=current, interval=interval)
            if bar is not None:
                by_time[current] = bar
    bars = sorted(by_time.values(), key=lambda bar: bar.open_time)
    return bars[-limit:] if newest else bars[:limit]


# --- Symbols ---------------------------------------------------------------------------------

_catalogue_cache: tuple[float, list[CandleSymbol]] | None = None


def candle_symbols() -> list[CandleSymbol]:
    """Every chartable symbol: Haunt symbols from the exchanges' symbol maps and from stored
    aggregate candles, and each exchange's stored candle symbols. Cached 60 s per process."""
    global _catalogue_cache
    now = time.monotonic()
    if _catalogue_cache is not None and now - _catalogue_cache[0] <= CATALOGUE_TTL_S:
        return _catalogue_cache[1]
    haunt: set[str] = set()
    for symbol_map in Exchange.objects.values_list("symbol_map", flat=True):
        if isinstance(symbol_map, dict):
            haunt.update(str(key).lower() for key in symbol_map)
    stored = Candle.objects.values_list("source", "symbol").distinct()
    exchange: set[tuple[str, str]] = set()
    for source, symbol in stored:
        if source == AGGREGATE_SOURCE:
            haunt.add(symbol)
        else:
            exchange.add((source, symbol))
    catalogue = [CandleSymbol(AGGREGATE_SOURCE, s) for s in sorted(haunt) if SYMBOL_RE.match(s)]
    catalogue += [CandleSymbol(src, sym) for src, sym in sorted(exchange)]
    _catalogue_cache = (now, catalogue)
    return catalogue


def candle_symbols_reset() -> None:
    global _catalogue_cache
    _catalogue_cache = None


def haunt_symbol_known(*, symbol: str) -> bool:
    """A Haunt symbol is known when an exchange maps it, it has candles or a live price."""
    if any(s.source == AGGREGATE_SOURCE and s.symbol == symbol for s in candle_symbols()):
        return True
    if Candle.objects.filter(source=AGGREGATE_SOURCE, symbol=symbol).exists():
        return True  # newer than the cached catalogue
    return bool(price_store().prices_get([symbol]))


def candle_symbol_known(*, source: str, symbol: str) -> bool:
    """Whether klines/UDF can serve this (source, symbol)."""
    if source == AGGREGATE_SOURCE:
        return haunt_symbol_known(symbol=symbol)
    return Candle.objects.filter(source=source, symbol=symbol).exists()


def price_decimals(*, source: str, symbol: str) -> int:
    """Decimal places of the newest stored close (2 to 12), for UDF's pricescale."""
    close = (
        Candle.objects.filter(source=source, symbol=symbol)
        .order_by("-open_time")
        .values_list("close", flat=True)
        .first()
    )
    if close is None:
        return 2
    exponent = Decimal(close).normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return min(max(places, 2), 12)


# --- Seeding ---------------------------------------------------------------------------------


def seeding_job_latest(*, symbol: str) -> SeedingJob | None:
    """The symbol's most recent seeding job, whatever its status."""
    return SeedingJob.objects.filter(symbol=symbol).order_by("-created_at", "-pk").first()
