import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.sync.worker import PullConfig, SyncWorker, sync_worker_settings

SWITCH_INTERVAL_S = 0.001


class Command(BaseCommand):
    help = (
        "Pull every enabled peer's change feed, one thread per (peer, lane), until SIGTERM or "
        "SIGINT; the batch in flight is finished or rolled back, never half applied."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--peer", action="append", dest="peers", help="Only this peer (repeatable).")
        parser.add_argument(
            "--lane", action="append", type=int, dest="lanes", help="Only this lane (repeatable)."
        )
        parser.add_argument("--batch-rows", type=int, help="Rows per page (HAUNT_SYNC_BATCH_ROWS, 5000).")
        parser.add_argument("--wait", type=float, help="Long-poll seconds (HAUNT_SYNC_LONG_POLL_S, 20).")

    def handle(self, *args: Any, **options: Any) -> None:
        defaults = sync_worker_settings()
        config = PullConfig(
            limit=options["batch_rows"] or defaults.limit,
            wait_s=options["wait"] if options["wait"] is not None else defaults.wait_s,
        )
        worker = SyncWorker(config=config, peers=options["peers"], lanes=options["lanes"])
        # Lane pullers (and the threads fetching their next pages) share one interpreter: a
        # thread back from the database waits for the GIL up to the switch interval each time a
        # backlog page is being worked on. Measured (bench/sync_mesh.py --only lag --only
        # priority, same session): at the default 5 ms lag p99 49 ms and orders p99 78-98 ms
        # during a backlog; at 1 ms 35 and 40 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_S)

        def _stop(signum: int, frame: Any) -> None:
            worker.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.stdout.write(f"Sync worker started (batch {config.limit} rows, long-poll {config.wait_s:g} s).")
        worker.run()
        pulled = sum(p.stats.rows_total for link in worker.links.values() for p in link.pullers.values())
        self.stdout.write(f"Sync worker stopped after applying {pulled} rows.")
