"""Per-account WebSocket events (order, fill, position, margin call, liquidation, leverage).

They go to the owner's `user.{id}` group, which every /ws/events socket of that user joins, and
only after the writing transaction commits.
"""

from __future__ import annotations

from typing import Any

from haunt.events import user_group
from haunt.realtime import publish_on_commit

ORDER = "order"  # order placed / triggered / cancelled / filled (data carries its status)
FILL = "fill"
POSITION = "position"
MARGIN_CALL = "margin_call"
LIQUIDATION = "liquidation"
ACCOUNT_CONFIG = "account_config_update"  # leverage change (Binance ACCOUNT_CONFIG_UPDATE)
OPTION = "option"


def account_event_publish(*, user_id: int, event_type: str, data: dict[str, Any]) -> None:
    """Queue `{"type": event_type, "data": data}` for the user's sockets once the transaction commits.
    Decimals and datetimes in `data` must already be strings."""
    publish_on_commit(user_group(user_id), {"type": event_type, "data": data})
