"""GET /api/crypto/{id}/chart and the chart service: shapes, gaps, completeness, seeding, cache."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.markets.models import Exchange, SeedingJob
from apps.markets.services.charts import RANGES, chart_cache_invalidate, chart_get
from apps.markets.services.store import Candle as StoredCandle
from apps.markets.services.store import price_store

from .conftest import HOUR, MINUTE, NOW, make_candle

pytestmark = pytest.mark.django_db

CURRENT_MINUTE = NOW - NOW % MINUTE
FIRST_MINUTE = CURRENT_MINUTE - 59 * MINUTE  # first bucket of the 1h range


def minutes(count: int, *, skip: set[int] = frozenset(), start: int = FIRST_MINUTE) -> None:  # type: ignore[assignment]
    """Stored 1m candles for the first `count` buckets from start, except the indexes in skip."""
    for i in range(count):
        if i not in skip:
            make_candle(open_time=start + i * MINUTE, close=str(100 + i))


def stored(symbol: str, interval: str, open_time: int, close: str, volume: str = "1") -> StoredCandle:
    price = Decimal(close)
    return StoredCandle(symbol, interval, open_time, price, price, price, price, Decimal(volume))


@pytest.mark.parametrize(
    ("range_name", "interval", "points", "bucket_ms"),
    [
        ("1h", "1m", 60, MINUTE),
        ("4h", "5m", 48, 5 * MINUTE),
        ("1d", "5m", 288, 5 * MINUTE),
        ("1w", "1h", 168, HOUR),
        ("1m", "1h", 720, HOUR),
    ],
)
def test_every_range_has_its_bucket_size_and_point_count(
    btc_listed: Exchange, range_name: str, interval: str, points: int, bucket_ms: int
) -> None:
    body = chart_get(symbol="btc", range_name=range_name, now_ms=NOW).body

    current = NOW - NOW % bucket_ms
    assert (body["range"], body["interval"], body["bucketMs"]) == (range_name, interval, bucket_ms)
    assert len(body["candles"]) == points
    assert body["candles"][-1]["time"] == current
    assert body["from"] == current - (points - 1) * bucket_ms == body["candles"][0]["time"]
    assert body["to"] == current + bucket_ms
    assert [c["time"] for c in body["candles"]] == list(range(body["from"], body["to"], bucket_ms))
    assert body["expectedBuckets"] == points - 1


def test_empty_chart_is_all_missing_and_needs_seeding(btc_listed: Exchange) -> None:
    chart = chart_get(symbol="BTC", range_name="1h", now_ms=NOW)

    assert chart.needs_seeding is True
    body = chart.body
    assert body["id"] == body["symbol"] == "btc"
    assert body["dataCompleteness"] == 0.0
    assert body["missingBuckets"] == 59
    assert body["seeding"] is None
    assert {c["status"] for c in body["candles"]} == {"missing"}
    assert body["candles"][0]["close"] is None


def test_full_history_is_complete_with_decimal_strings(btc_listed: Exchange) -> None:
    minutes(59)

    chart = chart_get(symbol="btc", range_name="1h", now_ms=NOW)

    body = chart.body
    assert chart.needs_seeding is False
    assert body["dataCompleteness"] == 100.0
    assert body["realBuckets"] == 59
    first = body["candles"][0]
    assert first == {
        "time": FIRST_MINUTE,
        "open": "100",
        "high": "100",
        "low": "100",
        "close": "100",
        "volume": "1.5",
        "status": "real",
    }
    assert body["candles"][-1]["status"] == "missing"  # no live price: no forming bucket


def test_gap_of_two_buckets_is_interpolated_and_flagged(btc_listed: Exchange) -> None:
    minutes(59, skip={10, 11})  # closes 109 ... (110, 111 missing) ... 112

    body = chart_get(symbol="btc", range_name="1h", now_ms=NOW).body

    gap = body["candles"][10:12]
    assert [c["status"] for c in gap] == ["interpolated", "interpolated"]
    assert [c["close"] for c in gap] == ["110", "111"]  # linear from 109 (left close) to 112 (right open)
    assert [c["open"] for c in gap] == ["109", "110"]
    assert [c["volume"] for c in gap] == ["0", "0"]
    assert body["candles"][9]["status"] == body["candles"][12]["status"] == "real"
    assert body["interpolatedBuckets"] == 2
    assert body["realBuckets"] == 57


def test_interpolation_is_linear_with_uneven_steps(btc_listed: Exchange) -> None:
    make_candle(open_time=FIRST_MINUTE, close="100")
    make_candle(open_time=FIRST_MINUTE + 2 * MINUTE, close="101")

    body = chart_get(symbol="btc", range_name="1h", now_ms=NOW).body

    assert body["candles"][1]["status"] == "interpolated"
    assert body["candles"][1]["close"] == "100.5"


def test_gap_of_three_buckets_is_missing_with_null_values(btc_listed: Exchange) -> None:
    minutes(59, skip={20, 21, 22})

    body = chart_get(symbol="btc", range_name="1h", now_ms=NOW).body

    gap = body["candles"][20:23]
    assert [c["status"] for c in gap] == ["missing"] * 3
    assert all(c[name] is None for c in gap for name in ("open", "high", "low", "close", "volume"))
    assert body["missingBuckets"] == 3
    assert body["interpolatedBuckets"] == 0


def test_gaps_at_either_end_are_missing_not_interpolated(btc_listed: Exchange) -> None:
    minutes(59, skip={0, 58})

    body = chart_get(symbol="btc", range_name="1h", now_ms=NOW).body

    assert body["candles"][0]["status"] == "missing"
    assert body["candles"][58]["status"] == "missing"


def test_data_completeness_counts_real_closed_buckets_only(btc_listed: Exchange) -> None:
    minutes(59, skip={5, 30, 31, 40, 41, 42})  # 1 + 2 interpolated, 3 missing: 53 real of 59

    chart = chart_get(symbol="btc", range_name="1h", now_ms=NOW)

    assert chart.body["dataCompleteness"] == round(100 * 53 / 59, 2) == 89.83
    assert chart.body["realBuckets"] == 53
    assert chart.body["interpolatedBuckets"] == 3
    assert chart.body["missingBuckets"] == 3
    assert chart.needs_seeding is True  # under 90 %


def test_long_ranges_read_their_own_interval(btc_listed: Exchange) -> None:
    current_hour = NOW - NOW % HOUR
    for i in range(1, 168):
        make_candle(open_time=current_hour - i * HOUR, close="200", interval="1h")
    make_candle(open_time=current_hour - HOUR, close="999", interval="1m")  # another interval: ignored

    body = chart_get(symbol="btc", range_name="1w", now_ms=NOW).body

    assert body["dataCompleteness"] == 100.0
    assert body["candles"][-2]["close"] == "200"


def test_seeding_status_comes_from_the_latest_job(btc_listed: Exchange) -> None:
    SeedingJob.objects.create(symbol="btc", status=SeedingJob.Status.FAILED, message="old")
    job = SeedingJob.objects.create(
        symbol="btc", status=SeedingJob.Status.IN_PROGRESS, progress=50, message="Fetching from CoinGecko..."
    )

    chart = chart_get(symbol="btc", range_name="1d", now_ms=NOW)

    seeding = chart.body["seeding"]
    assert seeding["jobId"] == job.pk
    assert (seeding["status"], seeding["progress"], seeding["message"]) == (
        "in_progress",
        50,
        "Fetching from CoinGecko...",
    )
    assert chart.needs_seeding is False  # a job is already running


def test_live_forming_candle_is_the_last_bucket(btc_listed: Exchange) -> None:
    minutes(59)
    price_store().candles_put([stored("btc", "1m", CURRENT_MINUTE, "150", "2")], [])

    body = chart_get(symbol="btc", range_name="1h", now_ms=NOW).body

    last = body["candles"][-1]
    assert (last["time"], last["close"], last["volume"], last["status"]) == (
        CURRENT_MINUTE,
        "150",
        "2",
        "forming",
    )
    assert body["dataCompleteness"] == 100.0


def test_live_minutes_win_over_the_database_and_roll_up(btc_listed: Exchange) -> None:
    five = 5 * MINUTE
    current = NOW - NOW % five
    previous = current - five
    make_candle(open_time=previous, close="1", interval="5m")
    live = [stored("btc", "1m", previous + i * MINUTE, str(10 + i)) for i in range(5)]
    forming = [stored("btc", "1m", current, "20"), stored("btc", "1m", current + MINUTE, "21")]
    store = price_store()
    store.candles_put([forming[0]], live)
    store.candles_put([forming[1]], [forming[0]])  # the minute turned: 20 closed, 21 forming

    body = chart_get(symbol="btc", range_name="4h", now_ms=current + MINUTE + 1000).body

    closed, last = body["candles"][-2], body["candles"][-1]
    assert (closed["open"], closed["high"], closed["low"], closed["close"]) == ("10", "14", "10", "14")
    assert closed["volume"] == "5"
    assert (last["open"], last["close"], last["status"]) == ("20", "21", "forming")


def test_cached_chart_is_reused_until_a_bucket_closes(btc_listed: Exchange) -> None:
    minutes(58)
    first = chart_get(symbol="btc", range_name="1h", now_ms=NOW).body

    make_candle(open_time=FIRST_MINUTE + 58 * MINUTE, close="500")  # late write, same bucket
    again = chart_get(symbol="btc", range_name="1h", now_ms=NOW + 500).body
    later = chart_get(symbol="btc", range_name="1h", now_ms=NOW + 5_000).body  # past memory TTL
    next_minute = chart_get(symbol="btc", range_name="1h", now_ms=NOW + MINUTE).body

    assert again is first  # process memory
    assert later["candles"] == first["candles"]  # cached history (Redis or memory)
    assert later["historyBuiltAt"] == first["historyBuiltAt"] == NOW
    assert first["candles"][58]["status"] == "missing"
    assert next_minute["historyBuiltAt"] == NOW + MINUTE
    assert next_minute["candles"][57] == {**next_minute["candles"][57], "close": "500", "status": "real"}


def test_cached_chart_refreshes_its_live_tail(btc_listed: Exchange) -> None:
    minutes(59)
    first = chart_get(symbol="btc", range_name="1h", now_ms=NOW).body

    price_store().candles_put([stored("btc", "1m", CURRENT_MINUTE, "123")], [])
    later = chart_get(symbol="btc", range_name="1h", now_ms=NOW + 5_000).body

    assert first["candles"][-1]["status"] == "missing"
    assert later["candles"][-1]["close"] == "123"
    assert later["candles"][:-1] == first["candles"][:-1]


def test_completed_seeding_rebuilds_the_cached_chart(btc_listed: Exchange) -> None:
    job = SeedingJob.objects.create(symbol="btc", status=SeedingJob.Status.IN_PROGRESS, progress=10)
    first = chart_get(symbol="btc", range_name="1h", now_ms=NOW).body
    SeedingJob.objects.filter(pk=job.pk).update(progress=60)
    progressed = chart_get(symbol="btc", range_name="1h", now_ms=NOW + 5_000).body

    minutes(59)
    SeedingJob.objects.filter(pk=job.pk).update(
        status=SeedingJob.Status.COMPLETED, progress=100, finished_at=timezone.now()
    )
    done = chart_get(symbol="btc", range_name="1h", now_ms=NOW + 10_000).body

    assert first["dataCompleteness"] == 0.0
    assert progressed["seeding"]["progress"] == 60
    assert progressed["historyBuiltAt"] == NOW  # progress alone does not rebuild
    assert done["seeding"]["status"] == "completed"
    assert done["dataCompleteness"] == 100.0
    assert done["needsSeeding"] is False


def test_invalidate_drops_the_cached_chart(btc_listed: Exchange) -> None:
    chart_get(symbol="btc", range_name="1h", now_ms=NOW)
    minutes(59)

    chart_cache_invalidate(symbol="btc")
    body = chart_get(symbol="btc", range_name="1h", now_ms=NOW + 100).body

    assert body["dataCompleteness"] == 100.0


# --- API -------------------------------------------------------------------------------------


def test_chart_api_answers_the_range_with_camel_case_fields(btc_listed: Exchange) -> None:
    now = time.time_ns() // 1_000_000
    current = now - now % (5 * MINUTE)
    for i in range(1, 48):
        make_candle(open_time=current - i * 5 * MINUTE, close="42000.5", interval="5m")

    response = APIClient().get("/api/crypto/btc/chart", {"range": "4h"})

    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert len(body["candles"]) == 48
    assert body["dataCompleteness"] == 100.0
    assert body["candles"][0]["close"] == "42000.5"
    assert set(body) >= {"dataCompleteness", "needsSeeding", "seeding", "bucketMs", "from", "to"}


def test_chart_api_defaults_to_one_day(btc_listed: Exchange) -> None:
    response = APIClient().get("/api/crypto/btc/chart")

    assert response.status_code == 200
    assert len(response.json()["candles"]) == RANGES["1d"].points


@pytest.mark.parametrize("query", [{"range": "2h"}, {"range": "1y"}, {"range": "1M"}])
def test_chart_api_refuses_unknown_ranges(btc_listed: Exchange, query: dict[str, str]) -> None:
    response = APIClient().get("/api/crypto/btc/chart", query)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize("symbol", ["nosuchcoin", "a" * 40, "b%20c"])
def test_chart_api_answers_404_for_unknown_symbols(btc_listed: Exchange, symbol: str) -> None:
    response = APIClient().get(f"/api/crypto/{symbol}/chart", {"range": "1h"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_symbol"


def test_symbol_known_only_from_its_candles_is_charted(db: None) -> None:
    make_candle(open_time=FIRST_MINUTE, symbol="doge")

    body = chart_get(symbol="doge", range_name="1h", now_ms=NOW).body

    assert body["realBuckets"] == 1
