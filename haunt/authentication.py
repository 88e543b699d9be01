"""Token authentication shared by the REST API and WebSockets."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token


class BearerOrTokenAuthentication(TokenAuthentication):
    """Accepts `Authorization: Token <key>` (DRF's form) and `Authorization: Bearer <key>`."""

    def authenticate(self, request):  # type: ignore[no-untyped-def]
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Bearer "):
            request.META["HTTP_AUTHORIZATION"] = "Token " + header[len("Bearer ") :]
        return super().authenticate(request)


def user_for_token(*, key: str) -> AbstractBaseUser | AnonymousUser:
    """The active user owning this API token, or an anonymous user."""
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user
