"""Celery tasks (bots): thin wrappers around services.

None is retried: each runs on a short beat schedule and the next run picks up whatever this one
left (a bot not yet due, an option whose underlying had no price, an unresolved prediction).
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from apps.trading.services.bots import bots_run_due
from apps.trading.services.options import options_settle_expired
from apps.trading.services.predictions import predictions_resolve


@shared_task
def bots_run_due_task() -> int:
    """Run the bots whose interval has passed; returns how many ran."""
    return bots_run_due(now=timezone.now())


@shared_task
def options_settle_expired_task() -> int:
    """Settle expired options into cash; returns how many were settled."""
    return options_settle_expired(now=timezone.now())


@shared_task
def predictions_resolve_task() -> int:
    """Resolve predictions whose horizon has passed; returns how many were resolved."""
    return predictions_resolve(now=timezone.now())
