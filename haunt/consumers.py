"""WebSocket consumers shared by every app."""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from haunt import events
from haunt.authentication import user_for_token

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401


class HauntConsumer(AsyncJsonWebsocketConsumer):
    """Base consumer: authentication (query token, session, or a first `auth` message),
    JSON error frames for bad input, and group events relayed as they arrive."""

    requires_auth = True

    async def connect(self) -> None:
        await self.accept()
        self.joined: list[str] = []
        if self._user_is_authenticated():
            await self.on_authenticated()

    def _user_is_authenticated(self) -> bool:
        user = self.scope.get("user")
        return bool(user is not None and user.is_authenticated)

    async def on_authenticated(self) -> None:
        """Join this user's groups; subclasses add theirs."""
        for group in self.groups_for_user():
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)
        await self.send_json({"type": "authenticated", "data": {"userId": self.scope["user"].pk}})

    def groups_for_user(self) -> list[str]:
        return []

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data is None:
            await self.send_json(events.error_frame("invalid_frame", "Send JSON text frames."))
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            await self.send_json(events.error_frame("parse_error", "Malformed JSON."))
            return
        if not isinstance(content, dict):
            await self.send_json(events.error_frame("invalid", "A message must be a JSON object."))
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        kind = content.get("type")
        if kind == "auth":
            await self._authenticate(content)
        elif kind == "ping":
            await self.send_json({"type": "pong"})
        elif self.requires_auth and not self._user_is_authenticated():
            await self.send_json(events.error_frame("not_authenticated", "Authenticate first."))
        else:
            await self.handle_command(content)

    async def handle_command(self, content: dict[str, Any]) -> None:
        await self.send_json(
            events.error_frame("unknown_type", f"Unknown message type {content.get('type')!r}.")
        )

    async def _authenticate(self, content: dict[str, Any]) -> None:
        command = events.AuthCommand(data=content)
        if not command.is_valid():
            await self.send_json(events.error_frame("invalid", "Invalid auth message.", command.errors))
            return
        if self._user_is_authenticated():
            await self.send_json(events.error_frame("already_authenticated", "Already authenticated."))
            return
        user = await database_sync_to_async(user_for_token)(key=command.validated_data["token"])
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.scope["user"] = user
        await self.on_authenticated()

    async def event_forward(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])


class UserEventsConsumer(HauntConsumer):
    """`/ws/events`: the signed-in user's notifications (and later fills, conflicts...)."""

    def groups_for_user(self) -> list[str]:
        return [events.user_group(self.scope["user"].pk)]
