from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from uuid6 import uuid7

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


# Money, prices and quantities: up to 10^20 with 12 decimals (meme-coin quantities, 8-decimal prices).
DIGITS, PLACES = 32, 12


def _money(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=DIGITS, decimal_places=PLACES, **kwargs)  # type: ignore[arg-type]


class MarginMode(models.TextChoices):
    ISOLATED = "isolated"
    CROSS = "cross"


class Side(models.TextChoices):
    BUY = "buy"
    SELL = "sell"


class PositionSide(models.TextChoices):
    LONG = "long"
    SHORT = "short"


class EngineSettings(models.Model):
    """Operational parameters of the paper engine (one row, key "default", edited in the admin)."""

    class LeveragePolicy(models.TextChoices):
        RESET = "reset", "Reset isolated margin to notional / new leverage"
        BINANCE_STRICT = "binance_strict", "Reset, and refuse lowering leverage on open isolated positions"

    class FundingRateSource(models.TextChoices):
        TABLE = "table", "Recorded rates (FundingRate rows), else the default rate"
        FIXED = "fixed", "Always the default rate"

    key = models.CharField(max_length=32, unique=True, default="default")
    starting_cash = _money(default=Decimal("100000"))
    maker_fee_rate = models.DecimalField(max_digits=8, decimal_places=6, default=Decimal("0.0002"))
    taker_fee_rate = models.DecimalField(max_digits=8, decimal_places=6, default=Decimal("0.0005"))
    max_price_age_seconds = models.PositiveIntegerField(default=30)
    leverage_policy = models.CharField(
        max_length=16, choices=LeveragePolicy.choices, default=LeveragePolicy.RESET
    )
    leverage_cooldown_seconds = models.PositiveIntegerField(default=10)
    user_max_leverage = models.PositiveSmallIntegerField(default=125)
    volatility_guard_enabled = models.BooleanField(default=False)
    volatility_window_seconds = models.PositiveIntegerField(default=300)
    volatility_max_move = models.DecimalField(
        max_digits=8,
        decimal_places=6,
        default=Decimal("0.05"),
        help_text="Refuse raises above this |return|.",
    )
    maintenance_buffer = models.DecimalField(
        max_digits=8,
        decimal_places=6,
        default=Decimal("1"),
        help_text="A leverage change must leave the margin ratio below this (1 = not liquidatable).",
    )
    liquidation_fee_rate = models.DecimalField(
        max_digits=8, decimal_places=6, default=Decimal("0.005"), help_text="Clearance fee, of notional."
    )
    funding_rate_source = models.CharField(
        max_length=8, choices=FundingRateSource.choices, default=FundingRateSource.TABLE
    )
    default_funding_rate = models.DecimalField(max_digits=12, decimal_places=10, default=Decimal("0.0001"))
    funding_interval_hours = models.PositiveSmallIntegerField(default=8)
    option_volatility = models.DecimalField(max_digits=8, decimal_places=6, default=Decimal("0.6"))
    option_risk_free_rate = models.DecimalField(max_digits=8, decimal_places=6, default=Decimal("0.0"))

    class Meta:
        verbose_name_plural = "engine settings"

    def __str__(self) -> str:
        return f"engine settings ({self.key})"


class Instrument(models.Model):
    """A symbol users can trade: its price source symbol, precision and bracket table."""

    symbol = models.CharField(max_length=32, unique=True, help_text='Haunt symbol, e.g. "btc".')
    bracket_exchange = models.ForeignKey("markets.Exchange", on_delete=models.PROTECT, related_name="+")
    bracket_symbol = models.CharField(max_length=32, help_text='Symbol of the bracket table, e.g. "BTCUSDT".')
    price_decimals = models.PositiveSmallIntegerField(default=2)
    quantity_decimals = models.PositiveSmallIntegerField(default=3)
    min_quantity = _money(default=Decimal("0.001"))
    max_leverage = models.PositiveSmallIntegerField(default=125)
    options_enabled = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return self.symbol


class FundingRate(models.Model):
    """A recorded funding rate for one period (replayed by the engine when the source is "table")."""

    symbol = models.CharField(max_length=32)
    funding_time = models.DateTimeField()
    rate = models.DecimalField(max_digits=12, decimal_places=10)
    source = models.CharField(max_length=32, default="binance")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["symbol", "funding_time"], name="funding_rate_unique")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.funding_time:%Y-%m-%d %H:%M} {self.rate}"


class Portfolio(ReplicatedModel):
    """A paper account. Cash is the wallet balance; isolated margin sits on positions."""

    class CostBasis(models.TextChoices):
        AVERAGE = "average"
        FIFO = "fifo"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portfolios")
    name = models.CharField(max_length=64)
    cash = _money()
    initial_cash = _money()
    realized_pnl = _money(default=Decimal(0))
    fees_paid = _money(default=Decimal(0))
    funding_paid = _money(default=Decimal(0))
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices, default=MarginMode.CROSS)
    cost_basis = models.CharField(max_length=8, choices=CostBasis.choices, default=CostBasis.AVERAGE)
    is_active = models.BooleanField(default=False)
    is_public = models.BooleanField(default=True, help_text="Shown on the leaderboard.")
    home_node = models.CharField(max_length=32, help_text="The node that owns this portfolio's money.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="portfolio_name_unique"),
            models.UniqueConstraint(
                fields=["user"], condition=Q(is_active=True), name="portfolio_one_active_per_user"
            ),
            models.CheckConstraint(condition=Q(cash__gte=0), name="portfolio_cash_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.user_id})"


class Order(ReplicatedModel):
    class Type(models.TextChoices):
        MARKET = "market"
        LIMIT = "limit"
        STOP = "stop", "Stop (market)"
        STOP_LIMIT = "stop_limit"
        TAKE_PROFIT = "take_profit", "Take profit (market)"
        TAKE_PROFIT_LIMIT = "take_profit_limit"

    class TimeInForce(models.TextChoices):
        GTC = "GTC"
        IOC = "IOC"
        FOK = "FOK"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for its trigger"
        OPEN = "open", "Resting on the book"
        FILLED = "filled"
        CANCELLED = "cancelled"
        REJECTED = "rejected"
        EXPIRED = "expired"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="orders")
    client_order_id = models.CharField(max_length=64)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=20, choices=Type.choices)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.GTC)
    quantity = _money()
    price = _money(null=True, blank=True, help_text="Limit price.")
    stop_price = _money(null=True, blank=True, help_text="Trigger price of stop and take-profit orders.")
    reduce_only = models.BooleanField(default=False)
    leverage = models.PositiveSmallIntegerField(default=1)
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices, default=MarginMode.CROSS)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    filled_quantity = _money(default=Decimal(0))
    average_price = _money(null=True, blank=True)
    fee = _money(default=Decimal(0))
    reserved_margin = _money(default=Decimal(0), help_text="Cash held for a resting order's margin and fee.")
    reject_reason = models.CharField(max_length=64, blank=True)
    placed_by = models.CharField(max_length=64, default="user", help_text='"user" or "bot:<strategy>".')
    created_at = models.DateTimeField(default=timezone.now)
    triggered_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["symbol", "status"], name="order_symbol_status"),
            # The trigger evaluation's queries: resting limits and pending stops crossed by a price.
            models.Index(
                fields=["symbol", "side", "price"], condition=Q(status="open"), name="order_open_limit_price"
            ),
            models.Index(
                fields=["symbol", "side", "type", "stop_price"],
                condition=Q(status="pending"),
                name="order_pending_trigger",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "client_order_id"], name="order_client_id_unique"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(filled_quantity__lte=F("quantity")),
                name="order_filled_within_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} {self.type} ({self.status})"


class Position(ReplicatedModel):
    """A one-way perpetual position. `isolated_margin` is the isolated wallet (0 in cross mode)."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"
        LIQUIDATED = "liquidated"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=5, choices=PositionSide.choices)
    quantity = _money()
    entry_price = _money()
    leverage = models.PositiveSmallIntegerField()
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices)
    isolated_margin = _money(default=Decimal(0))
    liquidation_price = _money(
        null=True, blank=True, help_text="None when the position cannot be liquidated."
    )
    realized_pnl = _money(default=Decimal(0))
    fees_paid = _money(default=Decimal(0))
    funding_paid = _money(default=Decimal(0))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    leverage_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [
            models.Index(fields=["symbol", "status"], name="position_symbol_status"),
            # The liquidation sweep's candidate query: open positions of a side past a price.
            models.Index(
                fields=["symbol", "side", "liquidation_price"],
                condition=Q(status="open"),
                name="position_open_liquidation",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["portfolio", "symbol"],
                condition=Q(status="open"),
                name="position_one_open_per_symbol",
            ),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="position_quantity_not_negative"),
            models.CheckConstraint(condition=Q(isolated_margin__gte=0), name="position_margin_not_negative"),
            models.CheckConstraint(condition=Q(leverage__gte=1), name="position_leverage_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} {self.leverage}x ({self.status})"


class Fill(ReplicatedModel):
    """A trade (execution) of an order or a liquidation. Append-only."""

    class Kind(models.TextChoices):
        ORDER = "order"
        LIQUIDATION = "liquidation"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="fills")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, null=True, blank=True, related_name="fills")
    position = models.ForeignKey(
        Position, on_delete=models.CASCADE, null=True, blank=True, related_name="fills"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.ORDER)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = _money()
    price = _money()
    fee = _money(default=Decimal(0))
    fee_rate = models.DecimalField(max_digits=8, decimal_places=6, default=Decimal(0))
    is_maker = models.BooleanField(default=False)
    realized_pnl = _money(default=Decimal(0))
    executed_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "trading_trade"
        verbose_name = "trade"
        ordering = ["-executed_at"]
        constraints = [models.CheckConstraint(condition=Q(quantity__gt=0), name="fill_quantity_positive")]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} @ {self.price}"


class OptionPosition(ReplicatedModel):
    """A European call or put bought or written on a listed asset, cash-settled at expiry."""

    class OptionType(models.TextChoices):
        CALL = "call"
        PUT = "put"

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"
        SETTLED = "settled"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="option_positions")
    underlying = models.CharField(max_length=32)
    option_type = models.CharField(max_length=4, choices=OptionType.choices)
    side = models.CharField(max_length=5, choices=PositionSide.choices)
    strike = _money()
    expiry = models.DateTimeField(db_index=True)
    quantity = _money()
    premium = _money(help_text="Premium per unit paid (long) or received (short) at opening.")
    volatility = models.DecimalField(max_digits=8, decimal_places=6)
    collateral = _money(default=Decimal(0), help_text="Cash held against a written option.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN, db_index=True)
    settlement_price = _money(null=True, blank=True)
    settlement_amount = _money(null=True, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "trading_options_position"
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="option_quantity_positive"),
            models.CheckConstraint(condition=Q(strike__gt=0), name="option_strike_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.underlying} {self.strike} {self.option_type}"


class Strategy(ReplicatedModel):
    """A bot: a persona with parameters and a schedule, trading one portfolio through the services."""

    class Persona(models.TextChoices):
        GRANDMA = "grandma", "Cautious grandma"
        CRYPTO_BRO = "crypto_bro", "Momentum crypto-bro"
        QUANT = "quant", "Quant"
        SCALPER = "scalper", "Scalper"

    name = models.CharField(max_length=64, unique=True)
    persona = models.CharField(max_length=16, choices=Persona.choices)
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="strategies")
    parameters = models.JSONField(default=dict, blank=True)
    symbols = models.JSONField(default=list, blank=True)
    interval_seconds = models.PositiveIntegerField(default=300, help_text="How often the bot runs.")
    enabled = models.BooleanField(default=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name_plural = "strategies"

    def __str__(self) -> str:
        return self.name


class FundingPayment(ReplicatedModel):
    """Funding exchanged by one position at one funding time. Positive amount = received."""

    position = models.ForeignKey(Position, on_delete=models.CASCADE, related_name="funding_payments")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="funding_payments")
    symbol = models.CharField(max_length=32)
    funding_time = models.DateTimeField()
    rate = models.DecimalField(max_digits=12, decimal_places=10)
    rate_source = models.CharField(max_length=32)
    mark_price = _money()
    quantity = _money()
    amount = _money()

    class Meta:
        ordering = ["-funding_time"]
        constraints = [
            models.UniqueConstraint(fields=["position", "funding_time"], name="funding_once_per_period")
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.funding_time:%Y-%m-%d %H:%M} {self.amount}"


class Liquidation(ReplicatedModel):
    position = models.OneToOneField(Position, on_delete=models.CASCADE, related_name="liquidation")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="liquidations")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=5, choices=PositionSide.choices)
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices)
    quantity = _money()
    entry_price = _money()
    mark_price = _money()
    liquidation_price = _money(null=True, blank=True)
    bankruptcy_price = _money()
    margin_lost = _money()
    fee = _money(default=Decimal(0))
    insurance_fund_delta = _money(help_text="Positive: the fund gained; negative: it covered a deficit.")
    liquidated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-liquidated_at"]

    def __str__(self) -> str:
        return f"liquidation {self.symbol} {self.quantity} @ {self.mark_price}"


class MarginHistory(ReplicatedModel):
    """Every change to a position's margin (Binance positionMargin/history shape). Append-only."""

    class DeltaType(models.TextChoices):
        OPEN = "open"
        INCREASE = "increase", "Position increased"
        REDUCE = "reduce", "Position reduced or closed"
        ADD = "add", "Margin added"
        REMOVE = "remove", "Margin removed"
        LEVERAGE_CHANGE = "leverage_change"
        LIQUIDATION = "liquidation"

    position = models.ForeignKey(Position, on_delete=models.CASCADE, related_name="margin_history")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="margin_history")
    delta_type = models.CharField(max_length=16, choices=DeltaType.choices)
    amount = _money(help_text="Change of the position's margin (signed).")
    margin_after = _money()
    leverage = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "margin history"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.delta_type} {self.amount}"


class PortfolioSnapshot(ReplicatedModel):
    """A point of the equity curve."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField(db_index=True)
    equity = _money()
    cash = _money()
    unrealized_pnl = _money()
    realized_pnl = _money()
    used_margin = _money()

    class Meta:
        ordering = ["-taken_at"]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "taken_at"], name="snapshot_once_per_time")
        ]

    def __str__(self) -> str:
        return f"{self.portfolio_id} {self.taken_at:%Y-%m-%d %H:%M} {self.equity}"


class InsuranceFundEntry(ReplicatedModel):
    """The insurance fund as an append-only ledger: its balance is the sum of its entries, so no
    node ever overwrites another's contribution."""

    class Reason(models.TextChoices):
        SEED = "seed"
        LIQUIDATION_SURPLUS = "liquidation_surplus"
        LIQUIDATION_DEFICIT = "liquidation_deficit"
        LIQUIDATION_FEE = "liquidation_fee"

    symbol = models.CharField(max_length=32, blank=True)
    liquidation = models.ForeignKey(
        Liquidation, on_delete=models.SET_NULL, null=True, blank=True, related_name="insurance_entries"
    )
    reason = models.CharField(max_length=24, choices=Reason.choices)
    amount = _money()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "trading_insurance_fund"
        verbose_name = "insurance fund entry"
        verbose_name_plural = "insurance fund"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.reason} {self.amount}"


class PredictionHistory(ReplicatedModel):
    """A quant bot's call on a symbol, and later its outcome."""

    class Direction(models.TextChoices):
        UP = "up"
        DOWN = "down"

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="predictions")
    symbol = models.CharField(max_length=32)
    predicted_at = models.DateTimeField(default=timezone.now, db_index=True)
    horizon_seconds = models.PositiveIntegerField()
    direction = models.CharField(max_length=4, choices=Direction.choices)
    confidence = models.DecimalField(max_digits=5, decimal_places=4)
    price_at_prediction = _money()
    target_price = _money(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    actual_price = _money(null=True, blank=True)
    correct = models.BooleanField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "prediction history"
        ordering = ["-predicted_at"]

    def __str__(self) -> str:
        return f"{self.symbol} {self.direction} @ {self.price_at_prediction}"


class LeverageChange(models.Model):
    """Audit of every modify-leverage request, accepted or refused (node-local, never edited)."""

    class Outcome(models.TextChoices):
        APPLIED = "applied"
        UNCHANGED = "unchanged"
        REJECTED = "rejected"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    position = models.ForeignKey(Position, on_delete=models.CASCADE, related_name="leverage_changes")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="leverage_changes")
    actor = models.CharField(max_length=128, help_text='"user:<id>", "bot:<strategy>" or "admin:<id>".')
    old_leverage = models.PositiveSmallIntegerField()
    requested_leverage = models.IntegerField()
    new_leverage = models.PositiveSmallIntegerField()
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices)
    policy = models.CharField(max_length=16)
    mark_price = _money(null=True, blank=True)
    margin_delta = _money(default=Decimal(0))
    initial_margin_before = _money(null=True, blank=True)
    initial_margin_after = _money(null=True, blank=True)
    maintenance_margin_before = _money(null=True, blank=True)
    maintenance_margin_after = _money(null=True, blank=True)
    liquidation_price_before = _money(null=True, blank=True)
    liquidation_price_after = _money(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    error_code = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.old_leverage}x -> {self.requested_leverage}x ({self.outcome})"
