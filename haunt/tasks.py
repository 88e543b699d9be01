from __future__ import annotations

import logging

from celery import shared_task
from django.contrib.auth import get_user_model

from apps.storage.selectors import retention_days
from haunt.services import notification_purge, notification_send

logger = logging.getLogger(__name__)


@shared_task
def notification_send_task(*, user_id: int, kind: str, title: str, body: str = "") -> int | None:
    """Send a notification from a worker (e.g. when a background job finishes)."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None  # user removed or deactivated since the task was queued
    return notification_send(user=user, kind=kind, title=title, body=body).pk


@shared_task
def notification_purge_task() -> int:
    """Apply the `notifications` retention policy."""
    days = retention_days(entity="notifications")
    if days is None:
        return 0
    deleted = notification_purge(older_than_days=days)
    logger.info("Purged %d read notifications older than %d days", deleted, days)
    return deleted
