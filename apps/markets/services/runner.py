"""The feed runner: every WebSocket source (live or replayed) in one asyncio process.

Supervisors hand ticks to `FeedRunner.on_ticks`, which only buffers them; a flush loop ingests
the buffer every HAUNT_FEED_FLUSH_MS, so a burst of thousands of ticks becomes one store round
trip and one published batch. A health loop reports every source's state and marks prices whose
sources all went quiet as stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from channels.db import database_sync_to_async
from django.conf import settings

from apps.markets.feeds.adapters import ADAPTERS
from apps.markets.feeds.replay import FrameRecorder, ReplaySupervisor
from apps.markets.feeds.supervisor import BaseSupervisor, FeedSupervisor, OnTicks
from apps.markets.feeds.types import Tick
from apps.markets.models import Exchange
from apps.markets.services.prices import prices_sweep, ticks_ingest
from apps.markets.services.sources import source_health_report

logger = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 5.0
REPLAY_DIR = Path(__file__).resolve().parent.parent / "replay_data"


class FeedRunner:
    def __init__(self, *, flush_ms: int | None = None) -> None:
        self.supervisors: dict[str, BaseSupervisor] = {}
        self.flush_s = (flush_ms or settings.HAUNT_FEED_FLUSH_MS) / 1000
        self._buffer: list[Tick] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.flushes = 0
        self.ticks_ingested = 0

    async def on_ticks(self, ticks: list[Tick]) -> None:
        self._buffer.extend(ticks)

    def add(self, name: str, supervisor: BaseSupervisor) -> None:
        self.supervisors[name] = supervisor

    def start_now(self, name: str, supervisor: BaseSupervisor) -> None:
        """Add a supervisor to a runner that is already running."""
        self.add(name, supervisor)
        self._tasks.append(asyncio.create_task(supervisor.run(), name=name))

    async def flush(self) -> None:
        if not self._buffer:
            return
        ticks, self._buffer = self._buffer, []
        await database_sync_to_async(ticks_ingest)(ticks=ticks)
        self.flushes += 1
        self.ticks_ingested += len(ticks)

    async def report_health(self) -> None:
        reports: dict[str, dict[str, object]] = {}
        for name, supervisor in self.supervisors.items():
            slug = name.split(":", 1)[0]
            snapshot = supervisor.snapshot()
            # Several replays of one exchange: report the healthiest.
            if slug not in reports or snapshot["state"] == "healthy":
                reports[slug] = snapshot
        await database_sync_to_async(source_health_report)(reports=reports)
        await database_sync_to_async(prices_sweep)()

    async def _every(self, seconds: float, action: str, *, first: float | None = None) -> None:
        wait = first if first is not None else seconds
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=wait)
            wait = seconds
            try:
                await getattr(self, action)()
            except Exception:
                logger.exception("feed runner: %s failed", action)

    async def run(self) -> None:
        """Run every supervisor until stop(); then flush what is left and report once more."""
        self._tasks += [asyncio.create_task(s.run(), name=n) for n, s in self.supervisors.items()]
        loops = [
            asyncio.create_task(self._every(self.flush_s, "flush")),
            asyncio.create_task(self._every(HEALTH_INTERVAL_S, "report_health", first=1.0)),
        ]
        await self._stop.wait()
        await asyncio.gather(*(s.stop() for s in self.supervisors.values()))
        await asyncio.gather(*self._tasks, *loops, return_exceptions=True)
        await self.flush()
        await self.report_health()

    def stop(self) -> None:
        self._stop.set()


def live_supervisors(runner: FeedRunner, *, recorder: FrameRecorder | None = None) -> None:
    """A FeedSupervisor per enabled WebSocket exchange, with its symbol map from the admin."""
    for exchange in Exchange.objects.filter(enabled=True, kind=Exchange.Kind.WEBSOCKET):
        adapter_class = ADAPTERS.get(exchange.slug)
        instruments = sorted(set((exchange.symbol_map or {}).values()))
        if adapter_class is None or not instruments:
            logger.warning("%s: no adapter or no symbols mapped; not started", exchange.slug)
            continue
        adapter = adapter_class(url=exchange.ws_url or None)
        runner.add(exchange.slug, FeedSupervisor(adapter, instruments, runner.on_ticks, recorder=recorder))


def replay_supervisors(
    on_ticks: OnTicks, *, directory: Path = REPLAY_DIR, speed: float = 1.0
) -> dict[str, ReplaySupervisor]:
    """A looping ReplaySupervisor per capture file named <EXCHANGE>.ws.* in the directory."""
    supervisors = {}
    for path in sorted(directory.glob("*.ws.*")):
        slug = path.name.split(".")[0].lower()
        adapter_class = ADAPTERS.get(slug)
        if adapter_class is not None:
            supervisors[f"{slug}:{path.name}"] = ReplaySupervisor.from_file(
                adapter_class(), path, on_ticks, speed=speed
            )
    return supervisors


def runner_build(
    *, mode: str, replay_dir: Path | None = None, speed: float = 1.0, record: Path | None = None
) -> FeedRunner:
    """A runner for mode "live", "replay", or "auto" (live, plus replay if nothing live works)."""
    runner = FeedRunner()
    if mode in ("live", "auto"):
        live_supervisors(runner, recorder=FrameRecorder(record) if record else None)
    if mode == "replay":
        for name, supervisor in replay_supervisors(
            runner.on_ticks, directory=replay_dir or REPLAY_DIR, speed=speed
        ).items():
            runner.add(name, supervisor)
    return runner


async def replay_fallback(runner: FeedRunner, *, after_s: float, directory: Path, speed: float) -> None:
    """In auto mode: when no live source is healthy after `after_s`, add the replay sources."""
    await asyncio.sleep(after_s)
    if any(s.snapshot()["state"] == "healthy" for s in runner.supervisors.values()):
        return
    logger.warning(
        "No exchange reachable after %.0f s: replaying recorded traffic from %s", after_s, directory
    )
    for name, supervisor in replay_supervisors(runner.on_ticks, directory=directory, speed=speed).items():
        runner.start_now(name, supervisor)
