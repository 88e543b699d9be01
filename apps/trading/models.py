from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from apps.sync.models import ReplicatedModel


class Profile(ReplicatedModel):
    """A trader's public name and preferences."""

    class Theme(models.TextChoices):
        DARK = "dark"
        LIGHT = "light"
        SYSTEM = "system"

    class Timeframe(models.TextChoices):
        ONE_HOUR = "1h"
        FOUR_HOURS = "4h"
        ONE_DAY = "1d"
        ONE_WEEK = "1w"
        ONE_MONTH = "1m"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    username = models.CharField(max_length=64, blank=True)
    # The name's matching form (confusables folded), so look-alikes of a taken name are refused.
    username_skeleton = models.CharField(max_length=128, blank=True, db_index=True)
    username_changed_at = models.DateTimeField(null=True, blank=True)
    theme = models.CharField(max_length=8, choices=Theme.choices, default=Theme.SYSTEM)
    default_timeframe = models.CharField(max_length=4, choices=Timeframe.choices, default=Timeframe.ONE_DAY)
    indicators = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["username_skeleton"],
                condition=~Q(username_skeleton=""),
                name="profile_username_skeleton_unique",
            )
        ]

    def __str__(self) -> str:
        return self.username or f"profile {self.pk}"


class LeverageBracket(models.Model):
    """One notional bracket of an exchange's leverage and maintenance-margin table.

    Brackets change over time, so each row has the date it takes effect; `cum` (the
    maintenance amount) must agree with the MMRs below it, which seeding checks.
    """

    exchange = models.ForeignKey(
        "markets.Exchange", on_delete=models.CASCADE, related_name="leverage_brackets"
    )
    symbol = models.CharField(max_length=32)
    effective_from = models.DateField()
    bracket = models.PositiveSmallIntegerField()
    initial_leverage = models.PositiveSmallIntegerField()
    notional_floor = models.DecimalField(max_digits=24, decimal_places=2)
    notional_cap = models.DecimalField(max_digits=24, decimal_places=2)
    maint_margin_ratio = models.DecimalField(max_digits=7, decimal_places=6)
    cum = models.DecimalField(max_digits=24, decimal_places=2)

    class Meta:
        ordering = ["exchange", "symbol", "-effective_from", "bracket"]
        constraints = [
            models.UniqueConstraint(
                fields=["exchange", "symbol", "effective_from", "bracket"], name="leverage_bracket_unique"
            ),
            models.CheckConstraint(
                condition=Q(notional_cap__gt=F("notional_floor")), name="bracket_cap_above_floor"
            ),
            models.CheckConstraint(
                condition=Q(maint_margin_ratio__gt=0) & Q(maint_margin_ratio__lt=1), name="bracket_mmr_range"
            ),
            models.CheckConstraint(condition=Q(initial_leverage__gte=1), name="bracket_leverage_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.exchange_id} {self.symbol} #{self.bracket} ({self.initial_leverage}x)"

    def clean(self) -> None:
        """The table must be continuous: this bracket starts where the one below ends, and its
        maintenance amount is cum_prev + floor * (mmr - mmr_prev), so MM has no jump."""
        if self.bracket <= 1:
            if self.cum != 0 or self.notional_floor != 0:
                raise ValidationError("The first bracket starts at notional 0 with cum 0.")
            return
        below = LeverageBracket.objects.filter(
            exchange_id=self.exchange_id,
            symbol=self.symbol,
            effective_from=self.effective_from,
            bracket=self.bracket - 1,
        ).first()
        if below is None:
            raise ValidationError(f"Bracket {self.bracket - 1} must exist before bracket {self.bracket}.")
        if below.notional_cap != self.notional_floor:
            raise ValidationError({"notional_floor": f"Must equal the cap of bracket {below.bracket}."})
        expected = below.cum + self.notional_floor * (self.maint_margin_ratio - below.maint_margin_ratio)
        if expected != self.cum:
            raise ValidationError({"cum": f"Must be {expected} given the brackets below."})
