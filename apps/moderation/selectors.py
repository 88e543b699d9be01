from __future__ import annotations

from django.db.models import QuerySet

from apps.moderation.engine.types import Severity
from apps.moderation.models import UsernameAppeal, UsernameReview


def usernames_hidden() -> set[int]:
    """Users whose name awaits review for a refusal: public leaderboards must not show it."""
    pending = UsernameReview.objects.filter(status=UsernameReview.Status.PENDING, severity=Severity.REJECT)
    return set(pending.values_list("user_id", flat=True))


def username_appeals_of(*, user_id: int) -> QuerySet[UsernameAppeal]:
    return UsernameAppeal.objects.filter(user_id=user_id)
