import pytest

from haunt.models import Notification
from haunt.services import notification_mark_read, notification_send
from haunt.tasks import notification_purge_task, notification_send_task

pytestmark = pytest.mark.django_db


def test_notification_is_published_only_after_commit(user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        notification_send(user=user, kind="appeal.approved", title="Your appeal was approved")

    assert Notification.objects.filter(user=user).count() == 1
    assert len(callbacks) == 1


def test_unserialisable_payload_fails_at_the_call_site(user):
    with pytest.raises(TypeError):
        notification_send(user=user, kind="x", title="x", data={"when": object()})


def test_task_skips_users_that_are_gone(db):
    assert notification_send_task(user_id=987654, kind="x", title="x") is None


def test_list_shows_only_own_notifications_paginated(auth_client, user, outsider):
    for i in range(3):
        notification_send(user=user, kind="info", title=f"n{i}")
    notification_send(user=outsider, kind="info", title="not yours")

    response = auth_client.get("/api/notifications?page_size=2")

    body = response.json()
    assert response.status_code == 200
    assert body["count"] == 3
    assert [n["title"] for n in body["results"]] == ["n2", "n1"]
    assert body["next"] is not None


def test_mark_read_touches_only_own_notifications(auth_client, user, outsider):
    mine = notification_send(user=user, kind="info", title="mine")
    theirs = notification_send(user=outsider, kind="info", title="theirs")

    response = auth_client.post("/api/notifications/read", {"ids": [mine.pk, theirs.pk]}, format="json")

    assert response.json() == {"marked": 1}
    assert Notification.objects.get(pk=theirs.pk).read_at is None


def test_purge_applies_the_retention_policy(user, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from apps.storage.models import RetentionPolicy

    RetentionPolicy.objects.create(entity="notifications", retention_days=30)
    old_read, old_unread, new_read = (
        notification_send(user=user, kind="k", title=t) for t in ("a", "b", "c")
    )
    notification_mark_read(user=user, notification_ids=[old_read.pk, new_read.pk])
    Notification.objects.filter(pk__in=[old_read.pk, old_unread.pk]).update(
        created_at=timezone.now() - timedelta(days=31)
    )

    deleted = notification_purge_task()

    assert deleted == 1
    assert set(Notification.objects.values_list("title", flat=True)) == {"b", "c"}
