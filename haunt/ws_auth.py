"""WebSocket authentication: the REST API token in the query string, or a Django session."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings

from haunt.authentication import user_for_token


class QueryTokenAuthMiddleware(BaseMiddleware):
    """`/ws/...?token=<key>` authenticates as the token's user, overriding the session."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [""])[0]
        if token:
            scope = dict(scope, user=await database_sync_to_async(user_for_token)(key=token))
        return await super().__call__(scope, receive, send)


def HauntAuthMiddlewareStack(inner: Any) -> Any:  # noqa: N802  (mirrors AuthMiddlewareStack)
    return AuthMiddlewareStack(QueryTokenAuthMiddleware(inner))


class BrowserOriginValidator(OriginValidator):
    """Browsers always send Origin, and only they attach a victim's session cookie, so an
    Origin must be one of ours (allowed hosts or CORS origins); clients that send none
    (mobile apps, scripts) must authenticate with a token instead."""

    def valid_origin(self, parsed_origin: Any) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)


def browser_origin_validator(inner: Any) -> BrowserOriginValidator:
    return BrowserOriginValidator(inner, [*settings.ALLOWED_HOSTS, *settings.CORS_ALLOWED_ORIGINS])
