"""Trading services. Every write to a replicated trading row goes through this module."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from apps.trading.models import Profile


@transaction.atomic
def profile_ensure(*, user: User) -> Profile:
    """The user's profile, created with default preferences on first use."""
    profile, _ = Profile.objects.get_or_create(user=user, defaults={"username": user.get_username()})
    return profile


@transaction.atomic
def profile_preferences_update(
    *,
    user: User,
    theme: str | None = None,
    default_timeframe: str | None = None,
    indicators: list[str] | None = None,
) -> Profile:
    """Change some of the user's preferences; fields left as None keep their value."""
    profile = profile_ensure(user=user)
    profile = Profile.objects.select_for_update().get(pk=profile.pk)
    changes = {
        name: value
        for name, value in (
            ("theme", theme),
            ("default_timeframe", default_timeframe),
            ("indicators", indicators),
        )
        if value is not None
    }
    for name, value in changes.items():
        setattr(profile, name, value)
    if changes:
        profile.full_clean()
        profile.save(update_fields=list(changes))
    return profile
