"""OHLC bucketing by Binance's conventions: pure functions on Decimal, no ORM.

- A candle covers [open_time, open_time + interval), keyed by each trade's own time (ms, UTC).
- A bucket with no trade between two traded buckets is *filled*: volume 0, trade_count 0 and
  O=H=L=C = the previous close.
- Rolling smaller candles up skips the filled ones: counting them would drag the open and the
  low back to the previous close.
- Merging is order-independent except for trades with the same millisecond, where the later
  arrival is the later trade (feed trades in (time, trade id) order to be exact).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

MINUTE_MS = 60_000
INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}
INTERVALS = tuple(INTERVAL_MS)
DAY_MS = INTERVAL_MS["1d"]


@dataclass(frozen=True, slots=True)
class Trade:
    time_ms: int
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class Bar:
    """One candle. first_ms/last_ms are the times of its first and last trade (None when filled)."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int = 0
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def is_filled(self) -> bool:
        return self.trade_count == 0


def interval_ms(interval: str) -> int:
    """The interval's length in ms; ValueError for an interval the store does not keep."""
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(f"Unknown interval {interval!r}; expected one of {', '.join(INTERVALS)}.") from None


def bucket_start(ts_ms: int, interval: str) -> int:
    """The open time of the candle holding ts_ms: buckets are [start, start + interval), UTC."""
    return ts_ms - ts_ms % interval_ms(interval)


def filled_bar(open_time: int, close: Decimal) -> Bar:
    """An empty bucket: O=H=L=C = the previous close, no volume, no trades."""
    return Bar(open_time, close, close, close, close, Decimal(0))


def bar_merge(bar: Bar | None, trade: Trade, interval: str) -> Bar:
    """The candle after one more trade of its bucket, whenever that trade arrives (late ticks too)."""
    open_time = bucket_start(trade.time_ms, interval)
    if bar is not None and bar.open_time != open_time:
        raise ValueError(f"Trade at {trade.time_ms} is outside the candle opening at {bar.open_time}.")
    p, q, t = trade.price, trade.quantity, trade.time_ms
    if bar is None or bar.is_filled:
        return Bar(open_time, p, p, p, p, q, 1, t, t)
    assert bar.first_ms is not None and bar.last_ms is not None  # set on every traded bar
    is_first, is_last = t < bar.first_ms, t >= bar.last_ms
    return replace(
        bar,
        open=p if is_first else bar.open,
        high=max(bar.high, p),
        low=min(bar.low, p),
        close=p if is_last else bar.close,
        volume=bar.volume + q,
        trade_count=bar.trade_count + 1,
        first_ms=t if is_first else bar.first_ms,
        last_ms=t if is_last else bar.last_ms,
    )


def bars_fill(
    bars: Iterable[Bar],
    interval: str,
    *,
    previous_close: Decimal | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[Bar]:
    """A contiguous series: every missing or filled bucket gets the previous close.

    Without previous_close the series starts at its first bar (a leading filled bar keeps its
    own close as the seed). start_ms extends the series back and needs previous_close; end_ms
    (exclusive) extends it forward with filled buckets, e.g. when later trades exist elsewhere.
    """
    step = interval_ms(interval)
    by_time = {bar.open_time: bar for bar in bars}
    if start_ms is not None and previous_close is None:
        raise ValueError("start_ms needs previous_close to fill from.")
    if not by_time and end_ms is None:
        return []  # nothing to fill up to
    if start_ms is not None:
        first = bucket_start(start_ms, interval)
    elif by_time:
        first = min(by_time)
    else:
        return []
    last = max(by_time, default=first)
    if end_ms is not None:
        last = max(last, bucket_start(end_ms - 1, interval))
    series: list[Bar] = []
    close = previous_close
    for open_time in range(first, last + step, step):
        bar = by_time.get(open_time)
        if bar is not None and not bar.is_filled:
            series.append(bar)
        elif close is not None:
            series.append(filled_bar(open_time, close))
        elif bar is not None:
            series.append(bar)  # a leading filled bar with nothing before it: its close is the seed
        else:
            continue
        close = series[-1].close
    return series


def candles_from_trades(
    trades: Iterable[Trade],
    interval: str,
    *,
    previous_close: Decimal | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[Bar]:
    """Candles of one interval from trades, filled between the first and the last trade.

    previous_close/start_ms/end_ms widen the series as in bars_fill (a chunk of a longer history).
    """
    by_time: dict[int, Bar] = {}
    for trade in trades:
        open_time = bucket_start(trade.time_ms, interval)
        by_time[open_time] = bar_merge(by_time.get(open_time), trade, interval)
    return bars_fill(
        by_time.values(), interval, previous_close=previous_close, start_ms=start_ms, end_ms=end_ms
    )


def bars_merge(bars: Iterable[Bar], trades: Iterable[Trade], interval: str) -> list[Bar]:
    """Late trades merged into an existing series; filled buckets after them take the new close."""
    by_time = {bar.open_time: bar for bar in bars}
    for trade in trades:
        open_time = bucket_start(trade.time_ms, interval)
        by_time[open_time] = bar_merge(by_time.get(open_time), trade, interval)
    return bars_fill(by_time.values(), interval)


def rollup(candles: Iterable[Bar], interval: str) -> list[Bar]:
    """Larger candles from smaller ones (e.g. 1m -> 1h), skipping filled children.

    A bucket whose children are all filled is itself filled with the previous close.
    """
    groups: dict[int, list[Bar]] = {}
    for child in sorted(candles, key=lambda bar: bar.open_time):
        groups.setdefault(bucket_start(child.open_time, interval), []).append(child)
    rolled: list[Bar] = []
    for open_time, children in groups.items():
        traded = [child for child in children if not child.is_filled]
        if not traded:
            rolled.append(filled_bar(open_time, children[-1].close))
            continue
        rolled.append(
            Bar(
                open_time=open_time,
                open=traded[0].open,
                high=max(child.high for child in traded),
                low=min(child.low for child in traded),
                close=traded[-1].close,
                volume=sum((child.volume for child in traded), Decimal(0)),
                trade_count=sum(child.trade_count for child in traded),
                first_ms=traded[0].first_ms,
                last_ms=traded[-1].last_ms,
            )
        )
    return bars_fill(rolled, interval)
