"""seeding_job_request / seeding_job_run against the fake providers (Haunt's services unpatched)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.markets.exceptions import UnknownSymbol
from apps.markets.models import Candle, SeedingJob
from apps.markets.services.seeding import seeding_job_request, seeding_job_run
from tests.markets.seeding.conftest import CC_DAY_PRICE, CC_HOUR_PRICE, CG_PRICE, CRYPTOCOMPARE_ERROR, Answer

pytestmark = pytest.mark.django_db

HOUR_MS = 3_600_000


def candles(interval: str, symbol: str = "btc"):
    return Candle.objects.filter(source="haunt", symbol=symbol, interval=interval).order_by("open_time")


def requested(django_capture_on_commit_callbacks, symbol: str = "btc") -> SeedingJob:
    """A pending job, its run left queued."""
    with django_capture_on_commit_callbacks(execute=False):
        return seeding_job_request(symbol=symbol, requested_by="test")


def test_run_fetches_the_three_sources_in_order_and_stores_closed_candles(
    history, history_exchanges, django_capture_on_commit_callbacks
):
    job = requested(django_capture_on_commit_callbacks)

    seeding_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.progress, job.failed_sources) == ("completed", 100, [])
    assert [(r.path, r.query.get("days") or r.query["limit"]) for r in history.requests] == [
        ("/api/v3/coins/bitcoin/market_chart", "1"),
        ("/api/v3/coins/bitcoin/market_chart", "30"),
        ("/data/v2/histohour", "720"),
        ("/data/v2/histoday", "365"),
    ]
    assert 287 <= candles("5m").count() <= 289  # a day of 5-minute buckets, the open one left out
    assert candles("1d").count() == 365
    assert candles("1h").count() >= 720
    assert job.candles_written == Candle.objects.count()
    assert job.started_at is not None and job.finished_at is not None
    assert not Candle.objects.filter(is_filled=True).exists()  # contiguous fakes: no gap to fill


def test_cryptocompare_ohlc_wins_over_coingecko_derived_buckets(
    history, history_exchanges, django_capture_on_commit_callbacks
):
    job = requested(django_capture_on_commit_callbacks)

    seeding_job_run(job_id=job.pk)

    hourly = list(candles("1h"))
    cc_hours = [c for c in hourly if c.open >= CC_HOUR_PRICE]
    assert len(cc_hours) == 720  # every closed CryptoCompare hour, none shadowed by CoinGecko
    newest = hourly[-1]
    assert newest.open == Decimal(CC_HOUR_PRICE + 1) and newest.close == Decimal(CC_HOUR_PRICE + 2)
    assert newest.high - newest.open == Decimal("10.5")  # real high, not a max of price points
    assert newest.volume == Decimal("123.45")
    five = candles("5m").last()
    assert CG_PRICE <= five.low <= five.high < CG_PRICE + 100
    # A 5-minute share of 28.8 G$ a day is 100 M$: ~2,000 coins at ~50,000 $.
    assert Decimal(1990) < five.volume < Decimal(2000)
    assert candles("1d").last().open == Decimal(CC_DAY_PRICE + 1)


def test_cryptocompare_replaces_coingecko_candles_whatever_order_they_arrive(
    history, history_exchanges, django_capture_on_commit_callbacks
):
    history.override["/data/v2/histohour"] = Answer(status=500)
    first = requested(django_capture_on_commit_callbacks)
    seeding_job_run(job_id=first.pk)
    assert candles("1h").last().open < CC_HOUR_PRICE  # only CoinGecko's hours so far
    del history.override["/data/v2/histohour"]

    second = requested(django_capture_on_commit_callbacks)
    seeding_job_run(job_id=second.pk)

    assert second.pk != first.pk
    assert candles("1h").filter(open__gte=CC_HOUR_PRICE).count() == 720
    assert (
        candles("1h").count() == Candle.objects.filter(interval="1h").values("open_time").distinct().count()
    )


def test_candles_built_from_live_prices_are_never_overwritten(
    history, history_exchanges, django_capture_on_commit_callbacks
):
    job = requested(django_capture_on_commit_callbacks)
    now_hour = (int(__import__("time").time()) * 1000) // HOUR_MS * HOUR_MS
    live_open = now_hour - 3 * HOUR_MS
    Candle.objects.create(
        source="haunt",
        symbol="btc",
        interval="1h",
        open_time=live_open,
        open=Decimal(1),
        high=Decimal(2),
        low=Decimal(1),
        close=Decimal(2),
        volume=Decimal(5),
        trade_count=60,
    )

    seeding_job_run(job_id=job.pk)

    live = Candle.objects.get(source="haunt", symbol="btc", interval="1h", open_time=live_open)
    assert (live.open, live.trade_count) == (Decimal(1), 60)


def test_a_source_failing_midway_is_reported_and_the_others_are_stored(
    history, history_exchanges, django_capture_on_commit_callbacks
):
    history.override["/data/v2/histohour"] = Answer(body=CRYPTOCOMPARE_ERROR)
    job = requested(django_capture_on_commit_callbacks)

    seeding_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.progress) == ("completed", 100)
    assert job.failed_sources == ["cryptocompare_hourly"]
    assert "cryptocompare_hourly" in job.message
    assert candles("5m").exists() and candles("1h").exists()
    assert not candles("1h").filter(open__gte=CC_HOUR_PRICE).exists()
    assert candles("1d").count() == 365


def test_every_source_failing_fails_the_job(history, history_exchanges, django_capture_on_commit_callbacks):
    history.override["/api/v3/coins/bitcoin/market_chart"] = Answer(status=503)
    history.override["/data/v2/histohour"] = Answer(status=500)
    history.override["/data/v2/histoday"] = Answer(body=CRYPTOCOMPARE_ERROR)
    job = requested(django_capture_on_commit_callbacks)

    seeding_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == "failed"
    assert job.failed_sources == ["coingecko", "cryptocompare_hourly", "cryptocompare_daily"]
    assert not Candle.objects.exists()
    # The symbol is free again.
    assert requested(django_capture_on_commit_callbacks).pk != job.pk


def test_a_symbol_only_coingecko_knows_skips_cryptocompare(
    history, history_exchanges, django_capture_on_commit_callbacks
):
    history_exchanges(coingecko={"btc": "bitcoin", "pepe": "pepe"})
    job = requested(django_capture_on_commit_callbacks, "pepe")

    seeding_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.failed_sources) == ("completed", [])
    assert "skipped" in job.message
    assert not history.seen("/data/")
    assert candles("5m", "pepe").exists() and not candles("1d", "pepe").exists()


def test_gaps_in_coingecko_points_are_filled_with_the_previous_close(
    history, history_exchanges, django_capture_on_commit_callbacks
):
    now_ms = int(__import__("time").time()) * 1000
    base = now_ms // 300_000 * 300_000 - 10 * 300_000
    # Points in buckets 0, 1 and 4: buckets 2 and 3 are missing.
    points = [[base + 1000, 10], [base + 300_000 + 1000, 11], [base + 4 * 300_000 + 1000, 14]]
    history.override["/api/v3/coins/bitcoin/market_chart"] = Answer(
        body={"prices": points, "market_caps": [], "total_volumes": []}
    )
    job = requested(django_capture_on_commit_callbacks)

    seeding_job_run(job_id=job.pk)

    five = [(c.open_time - base, c.close, c.is_filled, c.volume) for c in candles("5m")]
    assert five == [
        (0, Decimal(10), False, Decimal(0)),
        (300_000, Decimal(11), False, Decimal(0)),
        (600_000, Decimal(11), True, Decimal(0)),
        (900_000, Decimal(11), True, Decimal(0)),
        (1_200_000, Decimal(14), False, Decimal(0)),
    ]


def test_request_returns_the_active_job_instead_of_a_second_one(
    history_exchanges, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = seeding_job_request(symbol="BTC", requested_by="api")
        again = seeding_job_request(symbol="btc", requested_by="chart")

    assert again.pk == first.pk
    assert first.symbol == "btc" and first.status == "pending"
    assert SeedingJob.objects.count() == 1
    assert len(callbacks) == 2  # one "pending" frame, one run enqueued: only by the creator


def test_running_a_claimed_or_finished_job_again_is_a_no_op(
    history, history_exchanges, django_capture_on_commit_callbacks
):
    job = requested(django_capture_on_commit_callbacks)
    seeding_job_run(job_id=job.pk)
    calls = len(history.requests)

    again = seeding_job_run(job_id=job.pk)

    assert again.status == "completed"
    assert len(history.requests) == calls


@pytest.mark.parametrize("symbol", ["doge", "BTC/USD", "x" * 40])
def test_unknown_symbols_are_refused(history_exchanges, symbol):
    with pytest.raises(UnknownSymbol):
        seeding_job_request(symbol=symbol, requested_by="api")

    assert not SeedingJob.objects.exists()


def test_disabled_exchanges_are_not_used(history_exchanges):
    from apps.markets.models import Exchange

    Exchange.objects.update(enabled=False)

    with pytest.raises(UnknownSymbol):
        seeding_job_request(symbol="btc", requested_by="api")


def test_a_job_whose_worker_died_is_taken_over(
    history, history_exchanges, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    stale = SeedingJob.objects.create(
        symbol="btc", status="in_progress", progress=50, started_at=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        again = seeding_job_request(symbol="btc", requested_by="api")

    stale.refresh_from_db()
    assert again.pk == stale.pk
    assert (stale.status, stale.progress) == ("completed", 100)
