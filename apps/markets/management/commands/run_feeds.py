import asyncio
import signal
from pathlib import Path
from typing import Any

from channels.db import database_sync_to_async
from django.core.management.base import BaseCommand, CommandParser

from apps.markets.services.runner import REPLAY_DIR, replay_fallback, runner_build


class Command(BaseCommand):
    help = (
        "Run the exchange WebSocket feeds until SIGINT/SIGTERM. --mode auto (default) runs the "
        "live sources and falls back to replaying recorded traffic when none is reachable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mode", choices=["auto", "live", "replay"], default="auto")
        parser.add_argument("--replay-dir", type=Path, default=REPLAY_DIR)
        parser.add_argument("--speed", type=float, default=1.0, help="Replay speed; 0 = as fast as possible.")
        parser.add_argument(
            "--fallback-after", type=float, default=10.0, help="Seconds before auto mode replays."
        )
        parser.add_argument("--record", type=Path, help="Append every live frame to this file (replayable).")

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._run(options))

    async def _run(self, options: dict[str, Any]) -> None:
        runner = await database_sync_to_async(runner_build)(
            mode=options["mode"],
            replay_dir=options["replay_dir"],
            speed=options["speed"],
            record=options["record"],
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.stop)
        fallback = None
        if options["mode"] == "auto":
            fallback = loop.create_task(
                replay_fallback(
                    runner,
                    after_s=options["fallback_after"],
                    directory=options["replay_dir"],
                    speed=options["speed"],
                )
            )
        self.stdout.write(f"Feed runner: {len(runner.supervisors)} source(s) ({options['mode']} mode)")
        self.stdout.flush()
        await runner.run()
        if fallback is not None:
            fallback.cancel()
        self.stdout.write(
            f"Feed runner stopped after {runner.flushes} flushes, {runner.ticks_ingested} ticks."
        )
