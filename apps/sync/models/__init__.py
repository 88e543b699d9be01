"""Sync models: the replicated base (base.py), the change feed and conflicts (feed.py), and the
peers, sessions and metrics of the mesh (peers.py)."""

from apps.sync.models.base import (
    STAMP_FIELDS,
    ReplicatedModel,
    ReplicatedQuerySet,
    ReplicationPathForbidden,
    current_node_id,
)
from apps.sync.models.feed import *  # noqa: F403
from apps.sync.models.peers import *  # noqa: F403

__all__ = [
    "STAMP_FIELDS",
    "ReplicatedModel",
    "ReplicatedQuerySet",
    "ReplicationPathForbidden",
    "current_node_id",
]
