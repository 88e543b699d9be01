"""Celery tasks of the markets app (routed to the "feeds" queue)."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.markets.exceptions import SourceNotConfigured, SourceUnavailable
from apps.markets.models import Exchange
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
