from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.markets import candles as ohlc


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


# Prices up to 10^16 with 12 decimals (Binance quotes 8); volumes up to 10^20 (meme-coin quantities).
PRICE_DIGITS, VOLUME_DIGITS, DECIMALS = 28, 32, 12
AGGREGATE_SOURCE = "haunt"


class Trade(models.Model):
    """An exchange's aggregated trade (Binance aggTrades), the raw material of the candles.

    Unique per (exchange, symbol, agg_trade_id), which makes importing a dump twice a no-op.
    """

    exchange = models.SlugField(max_length=32, db_index=False)
    symbol = models.CharField(max_length=32)
    agg_trade_id = models.BigIntegerField()
    price = models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=DECIMALS)
    quantity = models.DecimalField(max_digits=VOLUME_DIGITS, decimal_places=DECIMALS)
    time_ms = models.BigIntegerField(help_text="Trade time, ms since the epoch (UTC).")
    is_buyer_maker = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["exchange", "symbol", "agg_trade_id"], name="trade_unique_exchange_symbol_id"
            ),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="trade_price_positive"),
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="trade_quantity_not_negative"),
        ]
        indexes = [models.Index(fields=["exchange", "symbol", "time_ms"], name="trade_exchange_symbol_time")]

    def __str__(self) -> str:
        return f"{self.exchange} {self.symbol} #{self.agg_trade_id}"


class Candle(models.Model):
    """A closed OHLC candle of one source (an exchange slug, or "haunt" for the aggregate).

    Buckets are [open_time, open_time + interval) by Binance's conventions (apps.markets.candles):
    a filled candle had no trade and repeats the previous close with zero volume.
    """

    class Interval(models.TextChoices):
        M1 = "1m", "1 minute"
        M5 = "5m", "5 minutes"
        M15 = "15m", "15 minutes"
        H1 = "1h", "1 hour"
        H4 = "4h", "4 hours"
        D1 = "1d", "1 day"

    source = models.SlugField(max_length=32, db_index=False)
    symbol = models.CharField(max_length=32)
    interval = models.CharField(max_length=4, choices=Interval.choices)
    open_time = models.BigIntegerField(help_text="Bucket start, ms since the epoch (UTC).")
    open = models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=DECIMALS)
    high = models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=DECIMALS)
    low = models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=DECIMALS)
    close = models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=DECIMALS)
    volume = models.DecimalField(max_digits=VOLUME_DIGITS, decimal_places=DECIMALS)
    trade_count = models.PositiveIntegerField(default=0)
    is_filled = models.BooleanField(
        default=False, help_text="No trade in the bucket: previous close, no volume."
    )
    # Times of the bucket's first and last trade, so a late trade can be merged without the trades.
    first_trade_ms = models.BigIntegerField(null=True, blank=True)
    last_trade_ms = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            # Its index also serves the range reads (source, symbol, interval, open_time between).
            models.UniqueConstraint(
                fields=["source", "symbol", "interval", "open_time"], name="candle_unique_bucket"
            ),
            models.CheckConstraint(condition=models.Q(low__lte=models.F("high")), name="candle_low_le_high"),
            models.CheckConstraint(condition=models.Q(volume__gte=0), name="candle_volume_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.symbol} {self.interval} @{self.open_time}"

    def as_bar(self) -> ohlc.Bar:
        """The candle for the pure OHLC functions. Seeded candles store no trade count but are
        real prices, so only `is_filled` makes a bar filled."""
        return ohlc.Bar(
            self.open_time,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.trade_count if self.trade_count or self.is_filled else 1,
            self.first_trade_ms,
            self.last_trade_ms,
        )


class SeedingJob(models.Model):
    """One history backfill of a symbol's chart data; at most one runs per symbol at a time."""

    class Status(models.TextChoices):
        PENDING = "pending"
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        FAILED = "failed"

    symbol = models.CharField(max_length=32)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=255, blank=True)
    failed_sources = models.JSONField(default=list, blank=True)
    candles_written = models.PositiveIntegerField(default=0)
    requested_by = models.CharField(max_length=32, blank=True, help_text="api, chart, batch")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["symbol"],
                condition=models.Q(status__in=["pending", "in_progress"]),
                name="one_active_seeding_job_per_symbol",
            ),
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="seeding_progress_max_100"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.status} {self.progress}%"


class LatencySample(models.Model):
    """One probe of an exchange from one node (WebSocket ping/pong or REST time endpoint)."""

    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="latency_samples")
    node = models.CharField(max_length=32)
    method = models.CharField(max_length=8, help_text="ws or rest")
    latency_ms = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    ok = models.BooleanField(default=True)
    error = models.CharField(max_length=255, blank=True)
    measured_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-measured_at"]
        indexes = [models.Index(fields=["exchange", "node", "-measured_at"])]

    def __str__(self) -> str:
        return f"{self.exchange_id}@{self.node}: {self.latency_ms} ms"


class DominanceSnapshot(models.Model):
    """24 h volume share of one exchange, globally (symbol "") or for one symbol, at a moment."""

    taken_at = models.DateTimeField(db_index=True)
    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="dominance_snapshots")
    symbol = models.CharField(max_length=32, blank=True)
    volume_24h_usd = models.DecimalField(max_digits=32, decimal_places=2)
    share_percent = models.DecimalField(max_digits=7, decimal_places=4)

    class Meta:
        ordering = ["-taken_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["taken_at", "exchange", "symbol"], name="dominance_unique_snapshot"
            ),
            models.CheckConstraint(
                condition=models.Q(share_percent__gte=0) & models.Q(share_percent__lte=100),
                name="dominance_share_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exchange_id} {self.symbol or 'all'} {self.share_percent}%"
