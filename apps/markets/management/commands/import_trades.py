from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.markets.services.candles import trades_import
from haunt.errors import HauntError


class Command(BaseCommand):
    help = (
        "Import a Binance aggTrades CSV dump (plain or zipped, with or without a header) and build "
        "every candle interval from it. Importing the same file again changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--exchange", required=True, help="Exchange slug, e.g. binance.")
        parser.add_argument("--symbol", required=True, help="The exchange's symbol, e.g. XRPETH.")
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = trades_import(
                path=options["file"],
                exchange=options["exchange"],
                symbol=options["symbol"],
                batch_size=options["batch_size"],
            )
        except HauntError as exc:
            raise CommandError(exc.message) from exc
        candles = " ".join(f"{interval}={count}" for interval, count in result.candles.items()) or "none"
        self.stdout.write(
            f"Read {result.lines_read} lines: {result.trades_read} trades, {result.trades_new} new; "
            f"candles written: {candles}."
        )
