"""Publishing events to WebSocket groups, only after the writing transaction commits."""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def publish(group: str, event: dict[str, Any]) -> None:
    """Send an event to every consumer in `group` now; a broken layer is logged, not raised."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "event.forward", "event": event})
    except Exception:
        logger.exception("Could not publish %s to group %s", event.get("type"), group)


def publish_on_commit(group: str, event: dict[str, Any]) -> None:
    """Publish once the current transaction commits (immediately outside one).

    The JSON round trip makes a payload that cannot be serialised fail here, at the call site,
    rather than later inside the channel layer.
    """
    event = json.loads(json.dumps(event))
    transaction.on_commit(lambda: publish(group, event), robust=True)
