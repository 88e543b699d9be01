"""manage.py import_trades: Binance aggTrades dumps into trades and candles of every interval."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import CommandError, call_command

from apps.markets.models import Candle, Trade
from apps.markets.services.candles import TradeImportInvalid, candles_rebuild, trades_import
from apps.markets.services.store import candle_from_json, redis_client

pytestmark = pytest.mark.django_db

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
M = 60_000
HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match"
# Minute 0: 0.0003, 0.00032, 0.00029 (on the last ms); minutes 1-2 empty; minute 3: 0.00031.
LINES = [
    f"1,0.00030000,10.00000000,1,1,{T0 + 1_000},true,true",
    f"2,0.00032000,5.00000000,2,3,{T0 + 30_000},false,true",
    f"3,0.00029000,2.00000000,4,4,{T0 + 59_999},True,True",
    f"4,0.00031000,1.00000000,5,5,{T0 + 3 * M},false,true",
]
SUMMARY = "Read {lines} lines: 4 trades, 4 new; candles written: 1m=4 5m=1 15m=1 1h=1 4h=1 1d=1."


def write_csv(tmp_path: Path, lines: list[str], name: str = "XRPETH-aggTrades-2024-01-01.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def write_zip(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "XRPETH-aggTrades-2024-01-01.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("XRPETH-aggTrades-2024-01-01.csv", "\n".join(lines) + "\n")
    return path


def import_trades(path: Path, *extra: str) -> str:
    out = io.StringIO()
    call_command(
        "import_trades", str(path), "--exchange", "binance", "--symbol", "XRPETH", *extra, stdout=out
    )
    return out.getvalue().strip()


def candles(interval: str) -> list[tuple[Any, ...]]:
    rows = Candle.objects.filter(source="binance", symbol="XRPETH", interval=interval).order_by("open_time")
    return [(c.open_time, c.open, c.high, c.low, c.close, c.volume, c.trade_count, c.is_filled) for c in rows]


def snapshot() -> tuple[list[tuple[Any, ...]], ...]:
    trades = list(Trade.objects.order_by("agg_trade_id").values_list())
    every = list(Candle.objects.order_by("interval", "open_time").values_list())
    return trades, every


def d(value: str) -> Decimal:
    return Decimal(value)


EXPECTED_1M = [
    (T0, d("0.0003"), d("0.00032"), d("0.00029"), d("0.00029"), d("17"), 3, False),
    (T0 + M, d("0.00029"), d("0.00029"), d("0.00029"), d("0.00029"), d("0"), 0, True),
    (T0 + 2 * M, d("0.00029"), d("0.00029"), d("0.00029"), d("0.00029"), d("0"), 0, True),
    (T0 + 3 * M, d("0.00031"), d("0.00031"), d("0.00031"), d("0.00031"), d("1"), 1, False),
]
EXPECTED_ROLLED = [(T0, d("0.0003"), d("0.00032"), d("0.00029"), d("0.00031"), d("18"), 4, False)]


@pytest.mark.parametrize(
    ("write", "lines", "line_count"),
    [
        pytest.param(write_csv, [HEADER, *LINES], 5, id="csv-with-header"),
        pytest.param(write_csv, LINES, 4, id="csv-without-header"),
        pytest.param(write_zip, [HEADER, *LINES], 5, id="zip-with-header"),
        pytest.param(write_zip, LINES, 4, id="zip-without-header"),
    ],
)
def test_import_builds_every_interval(
    tmp_path: Path, write: Callable[[Path, list[str]], Path], lines: list[str], line_count: int
) -> None:
    path = write(tmp_path, lines)

    output = import_trades(path)

    assert output == SUMMARY.format(lines=line_count)
    assert Trade.objects.filter(exchange="binance", symbol="XRPETH").count() == 4
    assert candles("1m") == EXPECTED_1M
    for interval in ("5m", "15m", "1h", "4h", "1d"):
        assert candles(interval) == EXPECTED_ROLLED, interval


def test_microsecond_timestamps_are_read_as_microseconds(tmp_path: Path) -> None:
    micro = [
        ",".join([*cells[:5], f"{int(cells[5]) * 1000}", *cells[6:]])
        for cells in (x.split(",") for x in LINES)
    ]

    import_trades(write_csv(tmp_path, micro))

    assert candles("1m") == EXPECTED_1M
    assert Trade.objects.get(agg_trade_id=3).time_ms == T0 + 59_999


def test_importing_twice_changes_nothing(tmp_path: Path) -> None:
    path = write_zip(tmp_path, [HEADER, *LINES])
    import_trades(path)
    before = snapshot()

    output = import_trades(path)

    assert output == "Read 5 lines: 4 trades, 0 new; candles written: none."
    assert snapshot() == before


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (f"3,abc,2.0,4,4,{T0 + 59_999},true,true", "price is not a number"),
        (f"3,0.00029,2.0,4,4,{T0 + 59_999}", "expected 7 or 8"),
        (f"3,0.00029,2.0,4,4,{T0 // 1000},true,true", "neither milliseconds nor microseconds"),
        (f"3,0.00029,2.0,4,4,{T0 + 59_999},maybe,true", "expected true or false"),
        (f"3,-0.00029,2.0,4,4,{T0 + 59_999},true,true", "price must be positive"),
        (f"3,0.00029,0.0000000000001,4,4,{T0 + 59_999},true,true", "more than 12 decimal places"),
    ],
)
def test_a_malformed_line_is_reported_with_its_number_and_nothing_is_written(
    tmp_path: Path, bad_line: str, reason: str
) -> None:
    # Batches of 2: the first two trades are already inserted when line 4 (after the header) fails.
    path = write_csv(tmp_path, [HEADER, LINES[0], LINES[1], bad_line, LINES[3]])

    with pytest.raises(CommandError, match=f"^Line 4: .*{reason}") as raised:
        import_trades(path, "--batch-size", "2")

    assert isinstance(raised.value.__cause__, TradeImportInvalid)
    assert raised.value.__cause__.detail == {"line": 4}

    assert Trade.objects.count() == 0
    assert Candle.objects.count() == 0


def test_a_header_anywhere_but_the_first_line_is_malformed(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [LINES[0], HEADER])

    with pytest.raises(CommandError, match="Line 2: agg_trade_id must be"):
        import_trades(path)

    assert Trade.objects.count() == 0


def test_a_missing_file_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No such file"):
        import_trades(tmp_path / "missing.csv")


def test_later_files_extend_and_late_trades_correct_the_candles(tmp_path: Path) -> None:
    import_trades(write_csv(tmp_path, [LINES[0]], "a.csv"))  # minute 0 only: 0.0003
    import_trades(write_csv(tmp_path, [LINES[3]], "b.csv"))  # minute 3: the gap fills at 0.0003
    assert [c[4] for c in candles("1m")] == [d("0.0003"), d("0.0003"), d("0.0003"), d("0.00031")]

    result = trades_import(
        path=write_csv(tmp_path, [LINES[2], LINES[1]], "late.csv"), exchange="binance", symbol="XRPETH"
    )

    assert result.trades_new == 2
    assert candles("1m") == EXPECTED_1M  # minute 0 re-closed at 0.00029, so did the filled minutes 1-2
    assert candles("1h") == EXPECTED_ROLLED


def test_a_gap_across_days_is_filled_up_to_the_next_trade(tmp_path: Path) -> None:
    day = 86_400_000
    import_trades(write_csv(tmp_path, [f"1,2.5,1,1,1,{T0 + day - M},true,true"], "a.csv"))  # 23:59 day 1
    import_trades(
        write_csv(tmp_path, [f"2,3.5,1,2,2,{T0 + 2 * day + 5 * M},true,true"], "b.csv")
    )  # 00:05 day 3

    daily = candles("1d")
    minutes = candles("1m")

    assert [(c[0], c[1], c[4], c[5], c[7]) for c in daily] == [
        (T0, d("2.5"), d("2.5"), d("1"), False),
        (T0 + day, d("2.5"), d("2.5"), d("0"), True),
        (T0 + 2 * day, d("3.5"), d("3.5"), d("1"), False),
    ]
    assert len(minutes) == 1 + 1440 + 6
    assert all(c[4] == d("2.5") and c[7] for c in minutes[1:-1])


def test_rebuild_is_a_no_op_on_unchanged_trades(tmp_path: Path) -> None:
    import_trades(write_csv(tmp_path, LINES))
    before = snapshot()

    written = candles_rebuild(exchange="binance", symbol="XRPETH", start_ms=T0, end_ms=T0 + 4 * M)

    assert written == {"1m": 4, "5m": 1, "15m": 1, "1h": 1, "4h": 1, "1d": 1}
    assert snapshot() == before


def test_bad_exchange_or_symbol_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, LINES)

    with pytest.raises(CommandError, match="Exchange must be"):
        call_command("import_trades", str(path), "--exchange", "haunt", "--symbol", "XRPETH")
    with pytest.raises(CommandError, match="Symbol must be"):
        call_command("import_trades", str(path), "--exchange", "binance", "--symbol", "XRP/ETH")


def _redis_or_skip(url: str) -> redis.Redis:
    client = redis_client(url)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable")
    return client


def test_newest_candles_go_to_redis_after_commit(
    tmp_path: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.REDIS_URL = settings.REDIS_URL or "redis://127.0.0.1:6379/12"
    client: Any = _redis_or_skip(settings.REDIS_URL)
    client.flushdb()

    with django_capture_on_commit_callbacks(execute=True):
        import_trades(write_csv(tmp_path, LINES))

    minutes = [candle_from_json(raw) for raw in client.zrange("klines:XRPETH:1m", 0, -1)]
    hours = [candle_from_json(raw) for raw in client.zrange("klines:XRPETH:1h", 0, -1)]
    assert [(c.open_time, c.close, c.volume, c.closed) for c in minutes] == [
        (c[0], c[4], c[5], True) for c in EXPECTED_1M
    ]
    assert [(c.open, c.high, c.low, c.close) for c in hours] == [
        (d("0.0003"), d("0.00032"), d("0.00029"), d("0.00031"))
    ]
    client.flushdb()


def test_without_redis_the_import_still_commits(
    tmp_path: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.REDIS_URL = None

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        import_trades(write_csv(tmp_path, LINES))

    assert len(callbacks) == 1
    assert candles("1m") == EXPECTED_1M
