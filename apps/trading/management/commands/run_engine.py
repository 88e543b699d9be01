import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.trading.services.engine import SWEEP_SECONDS, PriceEngine


class Command(BaseCommand):
    help = (
        "Run the trading engine until SIGINT/SIGTERM: fill and trigger resting orders and check "
        "liquidations as price batches arrive from the feed runner."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sweep-seconds",
            type=float,
            default=SWEEP_SECONDS,
            help="Re-evaluate every current mark after this long without a batch (missed batches).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        engine = PriceEngine(redis_url=settings.REDIS_URL or None, sweep_seconds=options["sweep_seconds"])
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: engine.stop())
        source = "Redis pub/sub" if engine.redis_url else "the channel layer"
        self.stdout.write(f"Trading engine: listening for price batches on {source}")
        self.stdout.flush()
        engine.run()
        totals = engine.totals
        self.stdout.write(
            f"Trading engine stopped after {engine.batches} batches: {totals.filled} fills, "
            f"{totals.triggered} triggers, {totals.liquidations} liquidations."
        )
