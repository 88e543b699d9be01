"""Peers of the mesh, sync sessions and node metrics."""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models
from django.utils import timezone

__all__ = [
    "NodeMetric",
    "Peer",
    "PeerAck",
    "PeerSecretUnreadable",
    "SyncSession",
    "secret_box",
]


class PeerSecretUnreadable(Exception):
    """The stored secret was encrypted with a key this node no longer has."""


def _fernet_key(material: str) -> bytes:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"haunt.sync.peers", info=b"peer-secret-v1"
    ).derive(material.encode())
    return base64.urlsafe_b64encode(derived)


@lru_cache(maxsize=4)
def _secret_box(explicit_key: str | None, secret_key: str) -> MultiFernet:
    # With HAUNT_SYNC_ENCRYPTION_KEY set it encrypts; secrets written earlier under the
    # SECRET_KEY-derived key still decrypt, so setting the variable needs no migration.
    keys = [Fernet(_fernet_key(explicit_key))] if explicit_key else []
    keys.append(Fernet(_fernet_key(secret_key)))
    return MultiFernet(keys)


def secret_box() -> MultiFernet:
    """The Fernet box peer secrets are encrypted with (key from settings, read at call time)."""
    return _secret_box(getattr(settings, "HAUNT_SYNC_ENCRYPTION_KEY", None) or None, settings.SECRET_KEY)


class Peer(models.Model):
    """Another node this node pulls from and serves its feed to.

    `key_id` and the secret belong to the link: both ends hold the same pair, the caller sends
    the key id and signs with the secret, so the receiver knows which peer is calling.
    """

    name = models.CharField(max_length=32, unique=True, help_text="The peer's HAUNT_NODE_ID.")
    url = models.URLField(max_length=300, help_text="Base URL, e.g. https://seoul.haunt.example")
    region = models.CharField(max_length=32, blank=True)
    is_primary = models.BooleanField(default=False, help_text="Primary node for PRIMARY_WINS entities.")
    key_id = models.CharField(max_length=64, unique=True)
    secret_encrypted = models.TextField(editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def secret(self) -> str:
        """The link's shared HMAC secret, decrypted."""
        try:
            return secret_box().decrypt(self.secret_encrypted.encode()).decode()
        except InvalidToken:
            raise PeerSecretUnreadable(f"Secret of peer {self.name} cannot be decrypted.") from None

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = secret_box().encrypt(value.encode()).decode()


class SyncSession(models.Model):
    """One stretch of pulling (or a reconciliation round) with one peer on one lane."""

    class Kind(models.TextChoices):
        PULL = "pull"
        BACKLOG = "backlog"
        RECONCILE = "reconcile"

    class Outcome(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        ERROR = "error"
        QUARANTINED = "quarantined"
        STOPPED = "stopped"

    peer = models.ForeignKey(Peer, on_delete=models.CASCADE, related_name="sessions")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PULL)
    lane = models.SmallIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    batches = models.PositiveIntegerField(default=0)
    rows = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0, help_text="Compressed bytes received.")
    cursor_start = models.BigIntegerField(null=True, blank=True)
    cursor_end = models.BigIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["peer", "lane", "-started_at"], name="sync_session_peer_lane")]

    def __str__(self) -> str:
        return f"{self.kind} {self.peer_id}/{self.lane} {self.outcome}"


class NodeMetric(models.Model):
    """A 10-second sample of one (peer, lane) link as seen from this node."""

    sampled_at = models.DateTimeField(default=timezone.now, db_index=True)
    peer = models.ForeignKey(Peer, on_delete=models.CASCADE, related_name="metrics")
    lane = models.SmallIntegerField()
    cursor = models.BigIntegerField(default=0)
    head = models.BigIntegerField(null=True, blank=True, help_text="The peer's safe feed head last seen.")
    lag_seconds = models.FloatField(default=0.0)
    rows_per_second = models.FloatField(default=0.0)
    batch_p99_ms = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    breaker_state = models.CharField(max_length=16, default="closed")
    clock_offset_ms = models.FloatField(null=True, blank=True)
    queue_depth = models.PositiveBigIntegerField(default=0, help_text="This node's feed rows on the lane.")
    backlog_percent = models.FloatField(null=True, blank=True)
    healthy = models.BooleanField(default=True)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-sampled_at"]
        indexes = [models.Index(fields=["peer", "lane", "-sampled_at"], name="sync_metric_peer_lane")]

    def __str__(self) -> str:
        return f"{self.peer_id}/{self.lane} @ {self.sampled_at:%H:%M:%S}"


class PeerAck(models.Model):
    """The highest seq of this node's feed a peer has applied on a lane (drives tombstone GC)."""

    peer = models.ForeignKey(Peer, on_delete=models.CASCADE, related_name="acks")
    lane = models.SmallIntegerField()
    seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["peer", "lane"], name="sync_peerack_peer_lane")]

    def __str__(self) -> str:
        return f"{self.peer_id}/{self.lane} = {self.seq}"
