"""Celery tasks of the sync app (routed to the "sync" queue). Periodic only: the hot path (pull,
apply, ack) runs in `manage.py sync_worker`, never through Celery."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.sync.worker import metrics_collect, reconcile_run, sync_cleanup

logger = logging.getLogger(__name__)


@shared_task
def sync_metrics_collect_task() -> int:
    """Store this node's 10 s link samples; returns how many.

    Never retried: a late sample is worth nothing and the next one is 10 s away.
    """
    return metrics_collect()


@shared_task
def sync_reconcile_task(peers: list[str] | None = None) -> int:
    """One anti-entropy round with every enabled peer; returns the rows repaired.

    A peer that cannot be reached is skipped until the next round (its error is in the sync
    session history), so there is nothing to retry here.
    """
    results = reconcile_run(peers=peers)
    for result in results:
        if result.error:
            logger.warning("Reconciliation with %s stopped: %s", result.peer, result.error)
    return sum(result.rows_repaired for result in results)


@shared_task
def sync_cleanup_task() -> dict[str, int]:
    """Purge acknowledged tombstones, completed feed items, and old sessions, metrics and conflicts."""
    counts = sync_cleanup()
    logger.info("Sync cleanup: %s", counts)
    return counts
