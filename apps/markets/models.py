from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Exchange(models.Model):
    """A price source and how much its prices count in the aggregate (edited in the admin)."""

    class Kind(models.TextChoices):
        WEBSOCKET = "websocket", "WebSocket stream"
        REST = "rest", "REST polling"

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    weight = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("10"))],
        help_text="Reliability weight in the aggregated price.",
    )
    ws_url = models.CharField(max_length=255, blank=True)
    rest_url = models.CharField(max_length=255, blank=True)
    symbol_map = models.JSONField(
        default=dict, blank=True, help_text='Haunt symbol to exchange symbol, e.g. {"btc": "BTC-USD"}.'
    )

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weight__gte=0) & models.Q(weight__lte=10),
                name="exchange_weight_range",
            )
        ]

    def __str__(self) -> str:
        return self.name
