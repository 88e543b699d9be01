"""The change feed, cursors, conflicts, tombstones, dead letters and the per-entity sync settings."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.sync.models.base import ReplicatedModel

__all__ = [
    "EntitySyncConfig",
    "Strategy",
    "SyncConflict",
    "SyncCursor",
    "SyncDeadLetter",
    "SyncFeed",
    "SyncTombstone",
]


class Strategy(models.TextChoices):
    PRIMARY_WINS = "PRIMARY_WINS", "Primary (or the portfolio's home node) wins"
    LAST_WRITE_WINS = "LAST_WRITE_WINS", "Last write wins (HLC, then node id)"
    MERGE = "MERGE", "Field-level merge"
    REJECT = "REJECT", "Reject the later concurrent write"


class EntitySyncConfig(models.Model):
    """How one replicated entity is carried: its lane (0 = most urgent), its share of a puller's
    budget, and how concurrent writes are decided. Every node must hold the same strategies."""

    class Owner(models.TextChoices):
        NONE = "", "No owner (configured primary only)"
        SELF = "self", "The row's own home_node"
        PORTFOLIO = "portfolio", "The home_node of the row's portfolio"

    entity = models.SlugField(max_length=32, unique=True)
    model = models.CharField(max_length=64, unique=True, help_text='Model label, e.g. "trading.order".')
    lane = models.PositiveSmallIntegerField(help_text="Priority lane; 0 is the most urgent.")
    priority_weight = models.PositiveIntegerField(
        default=1, help_text="Relative share of pull capacity given to this entity's lane."
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.LAST_WRITE_WINS)
    append_only = models.BooleanField(default=False, help_text="Rows are inserted once, never overwritten.")
    primary_node = models.CharField(max_length=32, blank=True, help_text="PRIMARY_WINS: the primary node.")
    owner = models.CharField(max_length=16, choices=Owner.choices, blank=True, default=Owner.NONE)
    record_conflicts = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["lane", "entity"]
        verbose_name = "entity sync setting"

    def __str__(self) -> str:
        return f"{self.entity} (lane {self.lane}, {self.strategy})"


class SyncFeed(models.Model):
    """This node's change feed: one row per changed replicated row, moved to a new `seq` on every
    change, so the feed is bounded by the number of distinct rows, not writes.

    On PostgreSQL a `seq` taken at insert is not commit order: a transaction that inserts seq 5
    and commits after seq 6 would be skipped by a reader already past 6 (and bounding reads by the
    oldest running transaction's xid is not enough either: xids are taken at a transaction's first
    write, not its feed insert). So writers insert `sequenced = False`, and readers first run
    feed_sequence() (as does a bulk writer once it has committed), which, serialised per lane by
    an advisory lock, gives every committed unsequenced entry of the lane a fresh seq: each run's
    numbers are above every earlier run's of that lane, and a reader (of one lane) only sees
    entries of committed runs.
    """

    class Op(models.TextChoices):
        INSERT = "insert"
        UPDATE = "update"
        DELETE = "delete"

    seq = models.BigAutoField(primary_key=True)
    lane = models.PositiveSmallIntegerField()
    entity = models.CharField(max_length=32)
    entity_id = models.UUIDField()
    op = models.CharField(max_length=6, choices=Op.choices)
    origin = models.CharField(max_length=32, help_text="Node whose exact version this is (never sent back).")
    hlc = models.BigIntegerField()
    changed_at = models.DateTimeField()
    # PostgreSQL: a writer's entry waits (False) until feed_sequence() renumbers it after its commit,
    # so `seq` order is commit order for readers. SQLite serialises writers: always True there.
    sequenced = models.BooleanField(db_default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entity", "entity_id"], name="sync_feed_one_per_row")]
        indexes = [
            models.Index(fields=["lane", "seq"], name="sync_feed_lane_seq"),
            # The sequencer's per-lane scan; with only `seq` PostgreSQL walked the whole lane
            # (every dead version included) through sync_feed_lane_seq: 8 ms a read after a burst.
            models.Index(
                fields=["lane", "seq"], condition=models.Q(sequenced=False), name="sync_feed_lane_unsequenced"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.op} {self.entity}/{self.entity_id}"


class SyncCursor(models.Model):
    """How far this node has applied a peer's feed in one lane. Written in the same transaction as
    the rows it covers, so a crash repeats at most one batch and never skips one."""

    peer = models.CharField(max_length=32)
    lane = models.PositiveSmallIntegerField()
    seq = models.BigIntegerField(default=0)
    backlog_start = models.BigIntegerField(default=0, help_text="Cursor when this backlog began.")
    head = models.BigIntegerField(default=0, help_text="The peer's safe head at the last page.")
    rows_applied = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["peer", "lane"], name="sync_cursor_one_per_lane")]
        ordering = ["peer", "lane"]

    def __str__(self) -> str:
        return f"{self.peer} lane {self.lane} @ {self.seq}"

    @property
    def progress_percent(self) -> float:
        span = self.head - self.backlog_start
        if span <= 0 or self.seq >= self.head:
            return 100.0
        return round(100.0 * max(0, self.seq - self.backlog_start) / span, 2)


class SyncTombstone(models.Model):
    """A deleted replicated row: its stamps at deletion, so a late concurrent update is decided
    against the delete instead of resurrecting the row. Purged only once every peer acknowledged
    the delete."""

    entity = models.CharField(max_length=32)
    entity_id = models.UUIDField()
    hlc = models.BigIntegerField()
    origin = models.CharField(max_length=32)
    version = models.PositiveBigIntegerField()
    version_vector = models.JSONField(default=dict)
    deleted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entity", "entity_id"], name="sync_tombstone_one_per_row")
        ]

    def __str__(self) -> str:
        return f"tombstone {self.entity}/{self.entity_id}"


class SyncConflict(ReplicatedModel):
    """Two concurrent versions of one row and what the entity's strategy made of them.

    Its id is derived from the entity, the row id and both versions' stamps, and its content from
    those versions only (`a` is the lower in (hlc, node) order, `b` the higher), so any node that
    meets the same pair writes the same row; the rows also replicate, so every node ends up with
    every conflict exactly once. Manual resolution is a normal replicated write.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Needs a decision"
        AUTO = "auto", "Resolved by the strategy"
        REJECTED = "rejected", "Later write rejected"
        RESOLVED = "resolved", "Resolved by hand"

    class Winner(models.TextChoices):
        A = "a"
        B = "b"
        MERGED = "merged"

    entity = models.CharField(max_length=32)
    row_id = models.UUIDField()
    strategy = models.CharField(max_length=16, choices=Strategy.choices)
    winner = models.CharField(max_length=8, choices=Winner.choices)
    status = models.CharField(max_length=10, choices=Status.choices, db_index=True)
    a_node = models.CharField(max_length=32)
    a_hlc = models.BigIntegerField()
    a_vv = models.JSONField(default=dict)
    a_deleted = models.BooleanField(default=False)
    a_data = models.JSONField(default=dict)
    b_node = models.CharField(max_length=32)
    b_hlc = models.BigIntegerField()
    b_vv = models.JSONField(default=dict)
    b_deleted = models.BooleanField(default=False)
    b_data = models.JSONField(default=dict)
    result_data = models.JSONField(default=dict, help_text="The row as the strategy left it.")
    created_at = models.DateTimeField(help_text="Wall time of the later version (same on every node).")
    resolution = models.CharField(max_length=8, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["entity", "row_id"], name="sync_conflict_row")]

    def __str__(self) -> str:
        return f"conflict {self.entity}/{self.row_id} ({self.status})"


class SyncDeadLetter(models.Model):
    """A row that could not be applied (missing parent after retries, bad data). The lane moves
    on without it; `parked` rows are retried as later batches arrive, `dead` ones need a fix and
    are repaired by reconciliation afterwards."""

    class Status(models.TextChoices):
        PARKED = "parked", "Waiting (retried)"
        DEAD = "dead", "Gave up"
        RESOLVED = "resolved"

    peer = models.CharField(max_length=32)
    lane = models.PositiveSmallIntegerField()
    seq = models.BigIntegerField(default=0)
    entity = models.CharField(max_length=32)
    entity_id = models.UUIDField()
    row = models.JSONField(help_text="The feed row as received.")
    reason = models.CharField(max_length=32)
    detail = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PARKED, db_index=True)
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["entity", "entity_id"],
                condition=~Q(status="resolved"),
                name="sync_dead_letter_one_open_per_row",
            )
        ]

    def __str__(self) -> str:
        return f"dead letter {self.entity}/{self.entity_id} ({self.reason})"
