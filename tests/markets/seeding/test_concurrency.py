"""Two seed requests (or two workers) for one symbol at once: one job, one run.

Threads need real concurrent transactions: PostgreSQL only (SQLite serialises writers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from apps.markets.models import Candle, SeedingJob
from apps.markets.services.seeding import seeding_job_request, seeding_job_run
from tests.conftest import skip_or_fail

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("concurrent transactions need PostgreSQL; SQLite serialises whole-database writes")


def together(call: Callable[[], Any], n: int = 2) -> list[Any]:
    barrier, outcomes = threading.Barrier(n), []

    def work() -> None:
        try:
            barrier.wait()
            outcomes.append(call())
        except Exception as exc:  # surfaced by the assertions
            outcomes.append(exc)
        finally:
            connection.close()  # each thread has its own DB connection

    threads = [threading.Thread(target=work) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_requests_for_one_symbol_make_one_job_and_one_run(history, history_exchanges):
    # Celery is eager: the creating request runs the job on commit, inside its thread.
    jobs = together(lambda: seeding_job_request(symbol="btc", requested_by="api"))

    assert all(isinstance(job, SeedingJob) for job in jobs), jobs
    assert jobs[0].pk == jobs[1].pk
    assert SeedingJob.objects.count() == 1
    assert SeedingJob.objects.get().status == "completed"
    assert len(history.seen("/api/v3/coins/bitcoin/market_chart")) == 2  # days=1 and days=30, once
    assert len(history.seen("/data/v2/")) == 2
    assert Candle.objects.filter(interval="1d").count() == 365


def test_two_workers_given_one_job_run_it_once(history, history_exchanges):
    job = SeedingJob.objects.create(symbol="btc")

    results = together(lambda: seeding_job_run(job_id=job.pk))

    assert all(isinstance(r, SeedingJob) for r in results), results
    assert len(history.requests) == 4  # one run's requests
    job.refresh_from_db()
    assert (job.status, job.progress) == ("completed", 100)
