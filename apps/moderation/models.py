"""Username moderation: the blocklist, its exceptions, appeals, the review queue and the log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.moderation.engine.types import Category, MatchMode, Severity


class BlockedTerm(models.Model):
    """A term names must not contain. Loaded from a file outside the repository or edited here."""

    term = models.CharField(max_length=64, unique=True, help_text="Plain lower-case; variants are derived.")
    category = models.CharField(
        max_length=32, choices=[(c.value, c.name.replace("_", " ").title()) for c in Category]
    )
    severity = models.CharField(
        max_length=8, choices=[(s.value, s.value) for s in Severity], default=Severity.REJECT
    )
    match_mode = models.CharField(
        max_length=12, choices=[(m.value, m.value) for m in MatchMode], default=MatchMode.SUBSTRING
    )
    is_active = models.BooleanField(default=True)
    notes = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["category", "term"]

    def __str__(self) -> str:
        return f"{self.category}: {self.term}"


class AllowedWord(models.Model):
    """A benign word that excuses a substring hit inside it (globally, or for one term)."""

    word = models.CharField(max_length=64)
    blocked_term = models.ForeignKey(
        BlockedTerm,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="allowed_words",
        help_text="Empty: excuses every term.",
    )
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["word"]
        constraints = [
            models.UniqueConstraint(
                fields=["word"], condition=Q(blocked_term=None), name="allowed_word_global_unique"
            ),
            models.UniqueConstraint(fields=["word", "blocked_term"], name="allowed_word_term_unique"),
        ]

    def __str__(self) -> str:
        return self.word


class UsernameWhitelist(models.Model):
    """One exact name a moderator approved for one user (after an appeal)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="username_whitelist"
    )
    display_name = models.CharField(max_length=64)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(auto_now_add=True)
    appeal = models.OneToOneField("UsernameAppeal", null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "display_name"], name="whitelist_user_name_unique")
        ]

    def __str__(self) -> str:
        return f"{self.display_name} for {self.user_id}"


class UsernameAppeal(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        DENIED = "denied"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="username_appeals"
    )
    requested_name = models.CharField(max_length=64)
    message = models.TextField(max_length=1000)
    category = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    moderator_note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "requested_name"],
                condition=Q(status="pending"),
                name="one_pending_appeal_per_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.requested_name} ({self.status})"


class UsernameReview(models.Model):
    """A name in use that needs a moderator's look: accepted with a warning, or flagged by a
    re-check after the list changed. Pending reject-level reviews keep the name off leaderboards."""

    class Status(models.TextChoices):
        PENDING = "pending"
        KEPT = "kept"
        RESET = "reset"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="username_reviews"
    )
    display_name = models.CharField(max_length=64)
    category = models.CharField(max_length=32)
    severity = models.CharField(max_length=8)
    source = models.CharField(max_length=16, help_text="change or recheck")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "display_name"],
                condition=Q(status="pending"),
                name="one_pending_review_per_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.category}, {self.status})"


class UsernameModerationEvent(models.Model):
    """Every refused (or flagged) name, for improving the list. The matched term stays here."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    attempted_name = models.CharField(max_length=128)
    code = models.CharField(max_length=32)
    category = models.CharField(max_length=32, blank=True)
    severity = models.CharField(max_length=8, blank=True)
    term = models.ForeignKey(BlockedTerm, null=True, blank=True, on_delete=models.SET_NULL)
    source = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.attempted_name}: {self.code}"
