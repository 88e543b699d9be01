"""Project-wide services: user notifications and their cleanup."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from haunt import events
from haunt.models import Notification
from haunt.realtime import publish_on_commit


@transaction.atomic
def notification_send(
    *, user: User, kind: str, title: str, body: str = "", data: dict[str, Any] | None = None
) -> Notification:
    """Store a notification and push it to the user's open WebSockets after commit."""
    notification = Notification.objects.create(user=user, kind=kind, title=title, body=body, data=data or {})
    frame = events.notification_frame(
        id=notification.pk,
        kind=kind,
        title=title,
        body=body,
        data=notification.data,
        created_at=notification.created_at.isoformat(),
    )
    publish_on_commit(events.user_group(notification.user_id), dict(frame))
    return notification


def notification_mark_read(*, user: User, notification_ids: list[int]) -> int:
    """Mark the user's own notifications read; returns how many changed."""
    return Notification.objects.filter(user=user, pk__in=notification_ids, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def notification_purge(*, older_than_days: int, batch_size: int = 1000) -> int:
    """Delete read notifications older than the cut-off, in small batches; returns the count.

    Batches keep each DELETE short so the table is never locked for long.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted = 0
    while True:
        ids = list(
            Notification.objects.filter(read_at__isnull=False, created_at__lt=cutoff).values_list(
                "pk", flat=True
            )[:batch_size]
        )
        if not ids:
            return deleted
        deleted += Notification.objects.filter(pk__in=ids).delete()[0]
