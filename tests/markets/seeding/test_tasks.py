"""Celery tasks of seeding (eager in tests)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.markets.models import SeedingJob
from apps.markets.services.aggregation import AggregatedPrice
from apps.markets.services.store import price_store
from apps.markets.tasks import seeding_batch_task, seeding_job_run_task

pytestmark = pytest.mark.django_db


def live(symbol: str, price: str, volume: str) -> AggregatedPrice:
    return AggregatedPrice(
        symbol=symbol,
        price=Decimal(price),
        previous_price=None,
        direction="up",
        source="coinbase",
        sources=("coinbase",),
        timestamp=timezone.now().timestamp().__int__() * 1000,
        volume_24h=Decimal(volume),
    )


def test_run_task_runs_the_job(history, history_exchanges):
    job = SeedingJob.objects.create(symbol="btc")

    seeding_job_run_task.delay(job.pk)

    job.refresh_from_db()
    assert job.status == "completed"


def test_run_task_drops_a_missing_job(history_exchanges):
    assert seeding_job_run_task.delay(987654).get() is None


def test_batch_requests_the_most_traded_seedable_symbols_first(
    history_exchanges, django_capture_on_commit_callbacks
):
    history_exchanges(coingecko={"btc": "bitcoin", "eth": "ethereum", "sol": "solana"})
    price_store().prices_put(
        [live("eth", "3000", "1000000"), live("btc", "50000", "10"), live("xyz", "1", "1e12")]
    )

    with django_capture_on_commit_callbacks(execute=False):
        queued = seeding_batch_task.delay(limit=2).get()

    assert queued == 2
    assert sorted(SeedingJob.objects.values_list("symbol", flat=True)) == ["btc", "eth"]  # 3 G$ and 500 k$


def test_batch_skips_symbols_seeded_recently_and_keeps_active_jobs(
    history_exchanges, django_capture_on_commit_callbacks
):
    SeedingJob.objects.create(
        symbol="btc", status="completed", finished_at=timezone.now() - timedelta(hours=1)
    )
    running = SeedingJob.objects.create(symbol="eth", status="in_progress", started_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = seeding_batch_task.delay(limit=10).get()

    assert queued == 1
    assert SeedingJob.objects.filter(symbol="eth").get().pk == running.pk
    assert callbacks == []  # nothing new to run
