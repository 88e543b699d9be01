"""WebSocket frames for the per-user event stream (/ws/events)."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from rest_framework import serializers


def user_group(user_id: int) -> str:
    """Group of every open socket of one user."""
    return f"user.{user_id}"


class NotificationFrame(TypedDict):
    type: Literal["notification"]
    data: dict[str, Any]


class ErrorFrame(TypedDict):
    type: Literal["error"]
    data: dict[str, Any]


def notification_frame(
    *, id: int, kind: str, title: str, body: str, data: dict[str, Any], created_at: str
) -> NotificationFrame:
    return {
        "type": "notification",
        "data": {"id": id, "kind": kind, "title": title, "body": body, "data": data, "createdAt": created_at},
    }


def error_frame(code: str, message: str, detail: Any = None) -> ErrorFrame:
    return {"type": "error", "data": {"code": code, "message": message, "detail": detail or {}}}


class AuthCommand(serializers.Serializer):
    """First-message authentication: {"type": "auth", "token": "<api token>"}."""

    type = serializers.ChoiceField(choices=["auth"])
    token = serializers.CharField(max_length=128)


class PingCommand(serializers.Serializer):
    type = serializers.ChoiceField(choices=["ping"])
