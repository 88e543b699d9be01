"""OHLC bucketing by Binance's conventions, on trade sequences small enough to check by hand."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from apps.markets.candles import (
    INTERVALS,
    Bar,
    Trade,
    bar_merge,
    bars_merge,
    bucket_start,
    candles_from_trades,
    rollup,
)

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
M = 60_000  # one minute in ms


def trade(minute: float, price: str, quantity: str = "1") -> Trade:
    return Trade(T0 + int(minute * M), Decimal(price), Decimal(quantity))


def ohlcv(bar: Bar) -> tuple[str, str, str, str, str]:
    return (str(bar.open), str(bar.high), str(bar.low), str(bar.close), str(bar.volume))


def test_bucket_start_is_inclusive_at_start_and_exclusive_at_end() -> None:
    assert bucket_start(T0, "1m") == T0
    assert bucket_start(T0 + 59_999, "1m") == T0
    assert bucket_start(T0 + 60_000, "1m") == T0 + M
    assert bucket_start(T0 + 5 * M - 1, "5m") == T0
    assert bucket_start(T0 + 5 * M, "5m") == T0 + 5 * M
    assert bucket_start(T0 + 14 * M, "15m") == T0
    assert bucket_start(T0 + 61 * M, "1h") == T0 + 60 * M
    assert bucket_start(T0 + 5 * 60 * M, "4h") == T0 + 4 * 60 * M
    assert bucket_start(T0 + 86_399_999, "1d") == T0
    assert bucket_start(T0 + 86_400_000, "1d") == T0 + 86_400_000


def test_bucket_start_rejects_an_unknown_interval() -> None:
    with pytest.raises(ValueError, match="Unknown interval"):
        bucket_start(T0, "3m")


def test_one_minute_of_trades_gives_first_max_min_last_and_summed_volume() -> None:
    trades = [trade(0.1, "10", "1"), trade(0.2, "12", "2"), trade(0.3, "9", "3"), trade(0.4, "11", "4")]

    (bar,) = candles_from_trades(trades, "1m")

    assert bar.open_time == T0
    assert ohlcv(bar) == ("10", "12", "9", "11", "10")
    assert (bar.trade_count, bar.is_filled, bar.first_ms, bar.last_ms) == (4, False, T0 + 6000, T0 + 24000)


def test_trade_on_a_bucket_boundary_opens_the_next_bucket() -> None:
    trades = [trade(0, "10"), Trade(T0 + 59_999, Decimal("11"), Decimal("1")), trade(1, "12")]

    first, second = candles_from_trades(trades, "1m")

    assert (first.open_time, ohlcv(first)) == (T0, ("10", "11", "10", "11", "2"))
    assert (second.open_time, ohlcv(second)) == (T0 + M, ("12", "12", "12", "12", "1"))


def test_empty_buckets_between_trades_repeat_the_previous_close_with_no_volume() -> None:
    trades = [trade(0, "10"), trade(0.5, "11"), trade(3.5, "13", "2")]

    bars = candles_from_trades(trades, "1m")

    assert [b.open_time for b in bars] == [T0, T0 + M, T0 + 2 * M, T0 + 3 * M]  # none before or after
    assert [ohlcv(b) for b in bars] == [
        ("10", "11", "10", "11", "2"),
        ("11", "11", "11", "11", "0"),
        ("11", "11", "11", "11", "0"),
        ("13", "13", "13", "13", "2"),
    ]
    assert [(b.is_filled, b.trade_count) for b in bars] == [(False, 2), (True, 0), (True, 0), (False, 1)]


def test_rollup_skips_empty_minutes_for_open_and_low() -> None:
    # Minute 4 closes at 10; minutes 5 and 6 are empty (10); the 5m bucket [5, 10) trades from minute 7.
    trades = [trade(4, "10"), trade(7, "20"), trade(7.2, "22"), trade(7.5, "19"), trade(9, "21")]
    minutes = candles_from_trades(trades, "1m")
    assert [ohlcv(b)[0] for b in minutes] == ["10", "10", "10", "20", "19", "21"]  # 5, 6 and 8 filled

    first, second = rollup(minutes, "5m")

    assert (first.open_time, ohlcv(first)) == (T0, ("10", "10", "10", "10", "1"))
    # A naive roll-up would give open 10 and low 10 from the filled minutes 5 and 6.
    assert (second.open_time, ohlcv(second)) == (T0 + 5 * M, ("20", "22", "19", "21", "4"))
    assert (second.trade_count, second.first_ms, second.last_ms) == (4, T0 + 7 * M, T0 + 9 * M)


def test_rollup_of_an_all_empty_span_is_itself_empty_at_the_previous_close() -> None:
    trades = [trade(1, "10", "2"), trade(2, "11"), trade(12, "30")]

    bars = rollup(candles_from_trades(trades, "1m"), "5m")

    assert [b.open_time for b in bars] == [T0, T0 + 5 * M, T0 + 10 * M]
    assert [ohlcv(b) for b in bars] == [
        ("10", "11", "10", "11", "3"),
        ("11", "11", "11", "11", "0"),
        ("30", "30", "30", "30", "1"),
    ]
    assert [b.is_filled for b in bars] == [False, True, False]


def test_rollup_across_empty_minutes_equals_bucketing_the_trades_directly() -> None:
    trades = [
        trade(0.5, "5.1", "0.3"),
        trade(3, "4.9"),
        trade(59.9, "5.3", "2"),
        trade(61, "5.0"),
        trade(63, "5.6", "0.01"),
        trade(130, "4.2"),
        trade(250, "4.4", "7"),
        trade(1439.99, "4.8"),
        trade(1441, "4.7"),
    ]
    minutes = candles_from_trades(trades, "1m")

    for interval in INTERVALS[1:]:
        assert rollup(minutes, interval) == candles_from_trades(trades, interval), interval


def test_a_late_trade_merges_into_its_closed_bucket() -> None:
    bar = candles_from_trades([trade(0.2, "10"), trade(0.5, "12"), trade(0.8, "11")], "1m")[0]

    earlier = bar_merge(bar, trade(0.1, "9.5", "2"), "1m")
    between = bar_merge(bar, trade(0.6, "13"), "1m")
    later = bar_merge(bar, trade(0.9, "10.5"), "1m")

    assert ohlcv(earlier) == ("9.5", "12", "9.5", "11", "5")  # new open and low
    assert earlier.first_ms == T0 + 6000
    assert ohlcv(between) == ("10", "13", "10", "11", "4")  # only the high moves
    assert ohlcv(later) == ("10", "12", "10", "10.5", "4")  # new close
    assert later.trade_count == 4


def test_a_late_trade_in_an_empty_bucket_updates_the_filled_buckets_after_it() -> None:
    on_time = [trade(0, "10"), trade(3, "13")]
    series = candles_from_trades(on_time, "1m")
    assert [ohlcv(b)[3] for b in series] == ["10", "10", "10", "13"]

    merged = bars_merge(series, [trade(1.5, "15", "2")], "1m")

    assert [ohlcv(b) for b in merged] == [
        ("10", "10", "10", "10", "1"),
        ("15", "15", "15", "15", "2"),
        ("15", "15", "15", "15", "0"),  # was filled at 10
        ("13", "13", "13", "13", "1"),
    ]
    assert merged == candles_from_trades([*on_time, trade(1.5, "15", "2")], "1m")


def test_trade_order_does_not_matter_except_within_a_millisecond() -> None:
    trades = [trade(m / 7, str(10 + (m * 37) % 11), str(1 + m % 3)) for m in range(60)]
    shuffled = random.Random(7).sample(trades, len(trades))

    assert candles_from_trades(shuffled, "1m") == candles_from_trades(trades, "1m")


def test_a_trade_from_another_bucket_is_refused() -> None:
    bar = candles_from_trades([trade(0, "10")], "1m")[0]

    with pytest.raises(ValueError, match="outside the candle"):
        bar_merge(bar, trade(1, "10"), "1m")


def test_a_chunk_of_history_fills_from_its_start_and_to_its_end_when_asked() -> None:
    bars = candles_from_trades(
        [trade(2, "12")], "1m", previous_close=Decimal("9"), start_ms=T0, end_ms=T0 + 4 * M
    )

    assert [ohlcv(b) for b in bars] == [
        ("9", "9", "9", "9", "0"),
        ("9", "9", "9", "9", "0"),
        ("12", "12", "12", "12", "1"),
        ("12", "12", "12", "12", "0"),
    ]


def test_no_trades_and_nothing_to_fill_up_to_gives_no_candles() -> None:
    assert candles_from_trades([], "1m") == []
    assert candles_from_trades([], "1m", previous_close=Decimal("9"), start_ms=T0) == []


@pytest.mark.django_db
def test_seeded_candle_is_a_real_bar_not_a_filled_one():
    from apps.markets.models import Candle

    seeded = Candle(
        source="haunt",
        symbol="btc",
        interval="1h",
        open_time=0,
        open=Decimal("10"),
        high=Decimal("12"),
        low=Decimal("9"),
        close=Decimal("11"),
        volume=Decimal("5"),
        trade_count=0,
        is_filled=False,
    )
    gap = Candle(
        source="haunt",
        symbol="btc",
        interval="1h",
        open_time=3_600_000,
        open=Decimal("11"),
        high=Decimal("11"),
        low=Decimal("11"),
        close=Decimal("11"),
        volume=Decimal("0"),
        trade_count=0,
        is_filled=True,
    )

    assert seeded.as_bar().is_filled is False
    assert gap.as_bar().is_filled is True
