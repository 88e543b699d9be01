"""Liveness of the parts a node depends on, for GET /api/health."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from haunt.celery import app as celery_app


@dataclass
class ComponentStatus:
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    healthy: bool
    components: dict[str, ComponentStatus]

    @property
    def down(self) -> list[str]:
        return [name for name, status in self.components.items() if not status.ok]


def _timed(check: Callable[[], dict[str, Any]]) -> ComponentStatus:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # any failure of a dependency is "down", with its reason
        detail, ok = {"error": f"{type(exc).__name__}: {exc}"}, False
    detail["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return ComponentStatus(ok=ok, detail=detail)


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _check_redis() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"configured": False}
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {"configured": True}


def _check_channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def round_trip() -> None:
        # Default prefix: channels-redis serves all of a process's channels from one Redis key
        # per prefix, and a second prefix would wait on the receive lock of the first.
        channel = await layer.new_channel()
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "health.ping", "token": token})
        message = await layer.receive(channel)
        if message.get("token") != token:
            raise RuntimeError("channel layer returned the wrong message")

    async def bounded() -> None:
        await asyncio.wait_for(round_trip(), timeout=2)

    async_to_sync(bounded)()
    return {"backend": type(layer).__name__}


def _check_celery() -> dict[str, Any]:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"mode": "eager", "workers": 0}  # tasks run in-process; no worker needed
    # limit=1 returns on the first reply instead of always waiting out the timeout.
    replies = celery_app.control.ping(timeout=settings.HAUNT_CELERY_PING_TIMEOUT, limit=1)
    if not replies:
        raise RuntimeError("no Celery worker answered")
    return {"mode": "worker", "workers": len(replies)}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "database": _check_database,
    "redis": _check_redis,
    "channel_layer": _check_channel_layer,
    "celery": _check_celery,
}


def _uses_redis(name: str) -> bool:
    if name == "channel_layer":
        return "Redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    if name == "celery":
        return not settings.CELERY_TASK_ALWAYS_EAGER and settings.CELERY_BROKER_URL == settings.REDIS_URL
    return False


def health_report() -> HealthReport:
    """Check every dependency; healthy only when all of them answer.

    When Redis is down, the parts that run on it are reported down without being tried:
    their clients would retry the connection for far longer than a health probe may take.
    """
    components: dict[str, ComponentStatus] = {}
    for name, check in CHECKS.items():
        redis_down = "redis" in components and not components["redis"].ok
        if redis_down and _uses_redis(name):
            components[name] = ComponentStatus(ok=False, detail={"error": "Redis is unreachable"})
        else:
            components[name] = _timed(check)
    return HealthReport(healthy=all(c.ok for c in components.values()), components=components)
