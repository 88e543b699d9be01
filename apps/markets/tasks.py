"""Celery tasks of the markets app (routed to the "feeds" queue)."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.markets.exceptions import SourceNotConfigured, SourceUnavailable
from apps.markets.models import Exchange
from apps.markets.services.dominance import dominance_snapshot_take
from apps.markets.services.latency import latency_probe_run
from apps.markets.services.polling import rest_source_poll

logger = logging.getLogger(__name__)

# A poll still queued after this long would only run just before the next scheduled one.
POLL_EXPIRES_S = 25


@shared_task
def rest_source_poll_task(slug: str) -> int:
    """Poll one REST price source; returns how many ticks it gave.

    Never retried: the next scheduled poll supersedes a failed one, and the failure is already
    recorded in the source's health.
    """
    try:
        return rest_source_poll(slug=slug)
    except SourceUnavailable as exc:
        logger.warning("REST poll of %s failed: %s", slug, exc.message)
    except SourceNotConfigured as exc:
        logger.info("REST poll of %s skipped: %s", slug, exc.message)
    return 0


@shared_task
def rest_sources_poll_task(exclude: list[str] | None = None) -> int:
    """Queue one poll per enabled REST source; `exclude` names those polled on a schedule of their own."""
    slugs = list(
        Exchange.objects.filter(enabled=True, kind=Exchange.Kind.REST)
        .exclude(slug__in=exclude or [])
        .values_list("slug", flat=True)
    )
    for slug in slugs:
        rest_source_poll_task.apply_async(args=(slug,), expires=POLL_EXPIRES_S)
    return len(slugs)


@shared_task
def latency_probe_task() -> int:
    """Probe every enabled exchange from this node; returns how many samples were stored.

    Never retried: a late probe measures nothing useful, and the next one is 10 s away.
    """
    return len(latency_probe_run())


@shared_task
def dominance_snapshot_take_task() -> int:
    """Store the current exchange volume shares; returns the rows written."""
    return dominance_snapshot_take()


# --- Chart history seeding -----------------------------------------------------------------------

from apps.markets.services.seeding import seeding_batch_request, seeding_job_run  # noqa: E402
from haunt.errors import DomainError, TransientError  # noqa: E402

# Top assets the batch seeds by default: the seeded exchange maps list 10.
SEEDING_BATCH_LIMIT = 10


@shared_task(autoretry_for=(TransientError,), retry_backoff=True, max_retries=3)
def seeding_job_run_task(job_id: int) -> None:
    """Run one seeding job. A provider failing is recorded in the job, not retried; a claimed or
    finished job makes a redelivery a no-op."""
    try:
        seeding_job_run(job_id=job_id)
    except DomainError as exc:
        logger.info("Seeding job %s dropped: %s", job_id, exc.code)


@shared_task
def seeding_batch_task(limit: int = SEEDING_BATCH_LIMIT) -> int:
    """Request seeding for the top `limit` symbols; returns how many jobs are queued or running."""
    return len(seeding_batch_request(limit=limit))
