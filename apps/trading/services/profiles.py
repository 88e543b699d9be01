"""Trading services. Every write to a replicated trading row goes through this module."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

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


class UsernameSkeletonTaken(Exception):
    """Another profile holds a name with the same matching form."""


@transaction.atomic
def profile_username_set(*, user: User, display_name: str, skeleton: str) -> Profile:
    """Set the public name (already validated by apps.moderation) and stamp the change time.

    The unique constraint on the skeleton is the final word when two users race for look-alike
    names: the loser gets UsernameSkeletonTaken and nothing is written.
    """
    profile = profile_ensure(user=user)
    profile = Profile.objects.select_for_update().get(pk=profile.pk)
    profile.username, profile.username_skeleton = display_name, skeleton
    profile.username_changed_at = timezone.now()
    try:
        with transaction.atomic():
            profile.save(update_fields=["username", "username_skeleton", "username_changed_at"])
    except IntegrityError:
        raise UsernameSkeletonTaken(skeleton) from None
    return profile


@transaction.atomic
def profile_username_reset(*, user: User) -> Profile:
    """Replace a name moderators refused with a neutral one; the user may pick a new one at once."""
    profile = Profile.objects.select_for_update().get(user=user)
    profile.username, profile.username_skeleton = f"trader-{profile.pk.hex[:8]}", ""
    profile.username_changed_at = None
    profile.save(update_fields=["username", "username_skeleton", "username_changed_at"])
    return profile
