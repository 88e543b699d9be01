"""The OHLC candle store: trades imported from exchange dumps, candles rebuilt from them.

Redis keeps the newest candles per interval for charts (`klines:{symbol}:{interval}`, see
apps.markets.services.store); the database is the history.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.markets import candles as ohlc
from apps.markets.models import AGGREGATE_SOURCE, DECIMALS, PRICE_DIGITS, VOLUME_DIGITS, Candle, Trade
from apps.markets.services.store import KLINES_KEEP, candle_to_json, redis_client
from apps.markets.services.store import Candle as StoredCandle
from haunt.errors import DomainError

logger = logging.getLogger(__name__)

HEADER_FIRST_CELL = "agg_trade_id"
# transact_time is ms in Binance's older dumps and µs in newer ones. ms stays below 10^14 until
# the year 5138, µs is above it since 1973; below 10^11 ms (1973) the value is likely seconds.
MS_MIN, US_MIN, US_MAX = 10**11, 10**14, 10**17
BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
CANDLE_UNIQUE = ["source", "symbol", "interval", "open_time"]
CANDLE_UPDATE = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "trade_count",
    "is_filled",
    "first_trade_ms",
    "last_trade_ms",
]


class TradeImportInvalid(DomainError):
    """The trade file (or the exchange/symbol it is filed under) cannot be imported."""

    code = "trade_import_invalid"


Invalid = Callable[[str], TradeImportInvalid]


@dataclass
class ImportResult:
    lines_read: int = 0  # physical lines, header included
    trades_read: int = 0
    trades_new: int = 0
    first_ms: int | None = None  # time range of the new trades
    last_ms: int | None = None
    candles: dict[str, int] = field(default_factory=dict)  # interval -> candles written


def trades_import(*, path: Path | str, exchange: str, symbol: str, batch_size: int = 5000) -> ImportResult:
    """Import a Binance aggTrades CSV dump (plain or zipped) and rebuild the candles it touches.

    Idempotent: trades are unique per (exchange, symbol, agg_trade_id), so a second import adds
    nothing and writes no candle. One transaction: a malformed line raises TradeImportInvalid
    (with its line number) and leaves nothing behind.
    """
    _names_check(exchange=exchange, symbol=symbol)
    result = ImportResult()
    with transaction.atomic():
        batch: list[Trade] = []
        for line, row in _csv_rows(Path(path)):
            result.lines_read = line
            if line == 1 and row and row[0].strip().lower() == HEADER_FIRST_CELL:
                continue
            if not row or row == [""]:
                continue
            batch.append(_trade_parse(row, line=line, exchange=exchange, symbol=symbol))
            if len(batch) >= batch_size:
                _trades_store(batch, result, batch_size=batch_size)
                batch = []
        _trades_store(batch, result, batch_size=batch_size)
        if result.first_ms is not None and result.last_ms is not None:
            result.candles = candles_rebuild(
                exchange=exchange,
                symbol=symbol,
                start_ms=result.first_ms,
                end_ms=result.last_ms + 1,
                batch_size=batch_size,
            )
    return result


@transaction.atomic
def candles_rebuild(
    *, exchange: str, symbol: str, start_ms: int, end_ms: int, batch_size: int = 5000
) -> dict[str, int]:
    """Recompute every interval's candles over [start_ms, end_ms) from the stored trades; upsert them.

    The range widens to whole UTC days and on to the neighbouring trades before and after it,
    because a new trade changes the filled (empty) buckets up to the next traded one. Returns
    how many candles were written per interval. Refreshes the Redis klines after commit.
    """
    trades = Trade.objects.filter(exchange=exchange, symbol=symbol)
    lo = ohlc.bucket_start(start_ms, "1d")
    hi = ohlc.bucket_start(end_ms - 1, "1d") + ohlc.DAY_MS
    before = trades.filter(time_ms__lt=lo).order_by("-time_ms", "-agg_trade_id")
    previous = before.values_list("time_ms", flat=True).first()
    if previous is not None:
        lo = ohlc.bucket_start(previous, "1d")
    following = trades.filter(time_ms__gte=hi).order_by("time_ms").values_list("time_ms", flat=True).first()
    if following is not None:
        hi = ohlc.bucket_start(following, "1d") + ohlc.DAY_MS
    seed = (
        trades.filter(time_ms__lt=lo)
        .order_by("-time_ms", "-agg_trade_id")
        .values_list("price", flat=True)
        .first()
    )
    later = trades.filter(time_ms__gte=hi).exists()

    written = dict.fromkeys(ohlc.INTERVALS, 0)
    rows: list[Candle] = []
    # One UTC day at a time: every interval divides a day, so each day's roll-ups are complete,
    # and memory stays at one day of 1m candles however long the range.
    for day in range(lo, hi, ohlc.DAY_MS):
        day_trades = (
            ohlc.Trade(time_ms, price, quantity)
            for time_ms, price, quantity in trades.filter(time_ms__gte=day, time_ms__lt=day + ohlc.DAY_MS)
            .order_by("time_ms", "agg_trade_id")
            .values_list("time_ms", "price", "quantity")
            .iterator(chunk_size=batch_size)
        )
        has_later = later or day + ohlc.DAY_MS < hi
        minutes = ohlc.candles_from_trades(
            day_trades,
            "1m",
            previous_close=seed,
            start_ms=day if seed is not None else None,
            end_ms=day + ohlc.DAY_MS if has_later else None,
        )
        if not minutes:
            continue
        seed = minutes[-1].close
        for interval in ohlc.INTERVALS:
            bars = minutes if interval == "1m" else ohlc.rollup(minutes, interval)
            rows.extend(candle_row(bar, source=exchange, symbol=symbol, interval=interval) for bar in bars)
            written[interval] += len(bars)
        if len(rows) >= batch_size:
            _candles_upsert(rows, batch_size=batch_size)
            rows = []
    _candles_upsert(rows, batch_size=batch_size)
    if any(written.values()):
        transaction.on_commit(lambda: klines_cache_refresh(source=exchange, symbol=symbol), robust=True)
    return written


def klines_cache_refresh(*, source: str, symbol: str) -> None:
    """Put the source's newest candles per interval into Redis `klines:{symbol}:{interval}`.

    Does nothing without REDIS_URL. Replaces candles by open time and trims to the newest
    KLINES_KEEP, like the live 1m writer, so an old backfill cannot push recent candles out.
    """
    if not settings.REDIS_URL:
        return
    pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
    for interval in ohlc.INTERVALS:
        key = f"klines:{symbol}:{interval}"
        newest = Candle.objects.filter(source=source, symbol=symbol, interval=interval).order_by("-open_time")
        for candle in newest[:KLINES_KEEP]:
            stored = StoredCandle(
                symbol=symbol,
                interval=interval,
                open_time=candle.open_time,
                open=candle.open,
                high=candle.high,
                low=candle.low,
                close=candle.close,
                volume=candle.volume,
                closed=True,
            )
            pipe.zremrangebyscore(key, candle.open_time, candle.open_time)
            pipe.zadd(key, {candle_to_json(stored): candle.open_time})
        pipe.zremrangebyrank(key, 0, -KLINES_KEEP - 1)
    pipe.execute()


# --- Helpers ---------------------------------------------------------------------------------


def _names_check(*, exchange: str, symbol: str) -> None:
    if not SLUG_RE.match(exchange) or exchange == AGGREGATE_SOURCE:
        raise TradeImportInvalid(
            f"Exchange must be a lower-case slug other than {AGGREGATE_SOURCE!r}.", exchange=exchange
        )
    if not SYMBOL_RE.match(symbol):
        raise TradeImportInvalid("Symbol must be 1-32 letters, digits, '.', '_' or '-'.", symbol=symbol)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of a CSV file or of the one CSV inside a zip, streamed."""
    if not path.is_file():
        raise TradeImportInvalid(f"No such file: {path}", path=str(path))
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    raise TradeImportInvalid(
                        f"Expected one CSV file in {path.name}, found {len(names)}.", path=str(path)
                    )
                with archive.open(names[0]) as raw:
                    yield from _text_rows(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        except zipfile.BadZipFile as exc:
            raise TradeImportInvalid(f"Unreadable zip file {path.name}: {exc}", path=str(path)) from None
    else:
        with path.open(encoding="utf-8", newline="") as text:
            yield from _text_rows(text)


def _text_rows(text: io.TextIOBase) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(text)
    try:
        for row in reader:
            yield reader.line_num, row
    except (UnicodeDecodeError, csv.Error) as exc:
        line = reader.line_num + 1
        raise TradeImportInvalid(f"Line {line}: unreadable ({exc}).", line=line) from None


def _trade_parse(row: list[str], *, line: int, exchange: str, symbol: str) -> Trade:
    """One aggTrades line: agg_trade_id, price, quantity, first_trade_id, last_trade_id,
    transact_time, is_buyer_maker[, is_best_match]."""

    def invalid(reason: str) -> TradeImportInvalid:
        return TradeImportInvalid(f"Line {line}: {reason}", line=line)

    if len(row) not in (7, 8):
        raise invalid(f"expected 7 or 8 comma-separated fields, got {len(row)}.")
    cells = [cell.strip() for cell in row]
    agg_trade_id = _integer(cells[0], "agg_trade_id", invalid)
    for index, name in ((3, "first_trade_id"), (4, "last_trade_id")):
        _integer(cells[index], name, invalid)
    price = _decimal(cells[1], "price", PRICE_DIGITS, invalid)
    quantity = _decimal(cells[2], "quantity", VOLUME_DIGITS, invalid)
    if price <= 0:
        raise invalid(f"price must be positive, got {cells[1]!r}.")
    if quantity < 0:
        raise invalid(f"quantity must not be negative, got {cells[2]!r}.")
    time = _integer(cells[5], "transact_time", invalid)
    if US_MIN <= time < US_MAX:
        time //= 1000
    elif not MS_MIN <= time < US_MIN:
        raise invalid(f"transact_time {cells[5]!r} is neither milliseconds nor microseconds.")
    for flag in cells[6:]:
        if flag.lower() not in BOOLEANS:
            raise invalid(f"expected true or false, got {flag!r}.")
    return Trade(
        exchange=exchange,
        symbol=symbol,
        agg_trade_id=agg_trade_id,
        price=price,
        quantity=quantity,
        time_ms=time,
        is_buyer_maker=BOOLEANS[cells[6].lower()],
    )


def _integer(cell: str, name: str, invalid: Invalid) -> int:
    if not cell.isdigit() or not cell.isascii():
        raise invalid(f"{name} must be a non-negative integer, got {cell!r}.")
    return int(cell)


def _decimal(cell: str, name: str, max_digits: int, invalid: Invalid) -> Decimal:
    try:
        value = Decimal(cell)
    except InvalidOperation:
        raise invalid(f"{name} is not a number: {cell!r}.") from None
    if not value.is_finite():
        raise invalid(f"{name} is not a finite number: {cell!r}.")
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    if -exponent > DECIMALS:
        raise invalid(f"{name} has more than {DECIMALS} decimal places: {cell!r}.")
    if abs(value) >= Decimal(10) ** (max_digits - DECIMALS):
        raise invalid(f"{name} is too large: {cell!r}.")
    return value


def _trades_store(batch: list[Trade], result: ImportResult, *, batch_size: int) -> None:
    """Insert the batch's trades not stored yet; count them and widen the new-trade time range."""
    if not batch:
        return
    result.trades_read += len(batch)
    first = batch[0]
    stored = set(
        Trade.objects.filter(
            exchange=first.exchange, symbol=first.symbol, agg_trade_id__in={t.agg_trade_id for t in batch}
        ).values_list("agg_trade_id", flat=True)
    )
    fresh: dict[int, Trade] = {}
    for trade in batch:
        if trade.agg_trade_id not in stored:
            fresh.setdefault(trade.agg_trade_id, trade)  # a repeated id within the file: first wins
    if not fresh:
        return
    # ignore_conflicts: a concurrent import of the same file must not fail this one.
    Trade.objects.bulk_create(fresh.values(), batch_size=batch_size, ignore_conflicts=True)
    result.trades_new += len(fresh)
    times = [t.time_ms for t in fresh.values()]
    result.first_ms = min(times) if result.first_ms is None else min(result.first_ms, *times)
    result.last_ms = max(times) if result.last_ms is None else max(result.last_ms, *times)


def candle_row(bar: ohlc.Bar, *, source: str, symbol: str, interval: str) -> Candle:
    return Candle(
        source=source,
        symbol=symbol,
        interval=interval,
        open_time=bar.open_time,
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        trade_count=bar.trade_count,
        is_filled=bar.is_filled,
        first_trade_ms=bar.first_ms,
        last_trade_ms=bar.last_ms,
    )


def _candles_upsert(rows: list[Candle], *, batch_size: int) -> None:
    if rows:
        Candle.objects.bulk_create(
            rows,
            batch_size=batch_size,
            update_conflicts=True,
            unique_fields=CANDLE_UNIQUE,
            update_fields=CANDLE_UPDATE,
        )


# --- Live candles -----------------------------------------------------------------------------

LARGER_INTERVALS = [i for i in ohlc.INTERVALS if i != "1m"]


def live_candles_store(*, closed: list[StoredCandle]) -> int:
    """Persist closed 1-minute candles of Haunt's aggregate and re-roll the larger buckets they
    fall in (5m ... 1d) from the stored minutes; returns how many rows were written.

    A live minute always had at least one price, so it is never a filled bucket; minutes the
    feed missed stay absent and the chart API reports them as gaps.
    """
    rows, written = [], 0
    for candle in closed:
        rows.append(candle_row(candle.as_bar(), source=AGGREGATE_SOURCE, symbol=candle.symbol, interval="1m"))
    with transaction.atomic():
        _candles_upsert(rows, batch_size=500)
        written += len(rows)
        for symbol, minutes in _by_symbol(closed).items():
            for interval in LARGER_INTERVALS:
                written += _reroll(symbol=symbol, interval=interval, minutes=minutes)
    return written


def _by_symbol(closed: list[StoredCandle]) -> dict[str, list[int]]:
    minutes: dict[str, list[int]] = {}
    for candle in closed:
        minutes.setdefault(candle.symbol, []).append(candle.open_time)
    return minutes


def _reroll(*, symbol: str, interval: str, minutes: list[int]) -> int:
    buckets = sorted({ohlc.bucket_start(minute, interval) for minute in minutes})
    rows = []
    for start in buckets:
        children = Candle.objects.filter(
            source=AGGREGATE_SOURCE,
            symbol=symbol,
            interval="1m",
            open_time__gte=start,
            open_time__lt=start + ohlc.interval_ms(interval),
        ).order_by("open_time")
        bars = [candle.as_bar() for candle in children]
        rows += [
            candle_row(bar, source=AGGREGATE_SOURCE, symbol=symbol, interval=interval)
            for bar in ohlc.rollup(bars, interval)
            if bar.open_time == start
        ]
    _candles_upsert(rows, batch_size=500)
    return len(rows)
