from __future__ import annotations

from django.db import models
from django.db.models import F, Q


class RetentionPolicy(models.Model):
    """How long one kind of data is kept before scheduled cleanup removes it."""

    entity = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    retention_days = models.PositiveIntegerField()
    min_days = models.PositiveIntegerField(default=1, help_text="Lowest value a user may choose.")
    max_days = models.PositiveIntegerField(default=3650, help_text="Highest value a user may choose.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["entity"]
        verbose_name_plural = "retention policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(min_days__lte=F("retention_days")) & Q(retention_days__lte=F("max_days")),
                name="retention_days_within_limits",
            )
        ]

    def __str__(self) -> str:
        return f"{self.entity}: {self.retention_days} days"
