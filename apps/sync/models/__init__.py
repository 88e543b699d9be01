"""Sync models: the replicated base (base.py), the change feed and conflicts (feed.py), the
peers, sessions and metrics of the mesh (peers.py), and the replicated user accounts (accounts.py)."""

from apps.sync.models.accounts import Account
from apps.sync.models.base import (
    STAMP_FIELDS,
    SYNC_STAMP_FIELDS,
    ReplicatedModel,
    ReplicatedQuerySet,
    ReplicationPathForbidden,
    capture_disabled,
    current_node_id,
    vector_bump,
)
from apps.sync.models.feed import *  # noqa: F403
from apps.sync.models.peers import *  # noqa: F403

__all__ = [
    "STAMP_FIELDS",
    "SYNC_STAMP_FIELDS",
    "Account",
    "ReplicatedModel",
    "ReplicatedQuerySet",
    "ReplicationPathForbidden",
    "capture_disabled",
    "current_node_id",
    "vector_bump",
]
