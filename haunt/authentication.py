"""Token authentication shared by the REST API and WebSockets."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.request import Request


class BearerOrTokenAuthentication(TokenAuthentication):
    """Accepts `Authorization: Token <key>` (DRF's form) and `Authorization: Bearer <key>`."""

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        parts = get_authorization_header(request).split()
        if len(parts) == 2 and parts[0].lower() == b"bearer":
            try:
                key = parts[1].decode()
            except UnicodeError:
                raise exceptions.AuthenticationFailed("Invalid token header.") from None
            return self.authenticate_credentials(key)
        return super().authenticate(request)


def request_user(request: Request) -> User:
    """The authenticated user of a request behind IsAuthenticated."""
    user = request.user
    assert isinstance(user, User), "view must require authentication"
    return user


def user_for_token(*, key: str) -> AbstractBaseUser | AnonymousUser:
    """The active user owning this API token, or an anonymous user."""
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user
