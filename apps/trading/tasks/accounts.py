"""Celery tasks (accounts): thin wrappers around services."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.utils import timezone

from apps.trading.exceptions import FundingIncomplete
from apps.trading.selectors import engine_settings
from apps.trading.services.funding import funding_period_start, funding_settle, funding_unpaid_count
from apps.trading.services.snapshots import snapshot_slot, snapshots_take
from haunt.errors import TransientError

logger = logging.getLogger(__name__)


@shared_task(autoretry_for=(TransientError,), retry_backoff=True, max_retries=8)
def funding_settle_task(funding_time: str | None = None) -> int:
    """Settle the period that ended last (or `funding_time`, ISO 8601), and catch up the one before.

    The period is computed from the clock, not from when beat fired, so a late or retried run
    still settles the right one; settling is idempotent, so the catch-up only pays positions an
    earlier run could not (no fresh mark then). Positions left unpaid make the task retry.
    """
    if funding_time:
        periods = [datetime.fromisoformat(funding_time)]
    else:
        hours = engine_settings().funding_interval_hours
        last = funding_period_start(now=timezone.now(), interval_hours=hours)
        periods = [last - timedelta(hours=hours), last]
    paid = sum(funding_settle(funding_time=moment) for moment in periods)
    unpaid = funding_unpaid_count(funding_time=periods[-1])
    logger.info("Funding %s: %d payment(s), %d position(s) unpaid", periods[-1].isoformat(), paid, unpaid)
    if unpaid:
        raise FundingIncomplete(
            f"{unpaid} position(s) not yet paid for {periods[-1].isoformat()}",
            funding_time=periods[-1].isoformat(),
        )
    return paid


@shared_task(autoretry_for=(TransientError,), retry_backoff=True, max_retries=3)
def snapshots_take_task(taken_at: str | None = None) -> int:
    """Snapshot every portfolio at the start of the current 15-minute slot (or at `taken_at`)."""
    moment = datetime.fromisoformat(taken_at) if taken_at else snapshot_slot(now=timezone.now())
    return snapshots_take(taken_at=moment)
