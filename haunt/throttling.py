from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import UserRateThrottle


class AuthenticatedUserRateThrottle(UserRateThrottle):
    """The per-user rate, for signed-in users only: anonymous requests are AnonRateThrottle's
    (DRF's UserRateThrottle would count them a second time by IP)."""

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return super().get_cache_key(request, view)
