"""Trading services: every write to a replicated trading row goes through this package."""

from apps.trading.services.profiles import (
    UsernameSkeletonTaken,
    profile_ensure,
    profile_preferences_update,
    profile_username_reset,
    profile_username_set,
)

__all__ = [
    "UsernameSkeletonTaken",
    "profile_ensure",
    "profile_preferences_update",
    "profile_username_reset",
    "profile_username_set",
]
