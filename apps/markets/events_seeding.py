"""Seeding WebSocket frames (/ws/prices): the per-symbol group and the progress frame.

Clients subscribed to a symbol on /ws/prices are also in its seeding group, so they see a
backfill of that symbol's chart history progress.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from apps.markets.models import SeedingJob


def seeding_group(symbol: str) -> str:
    """The channel-layer group of a symbol's seeding progress (symbols match events.SYMBOL_PATTERN)."""
    return f"markets.seeding.{symbol}"


class SeedingProgressData(TypedDict):
    symbol: str
    status: Literal["pending", "in_progress", "completed", "failed"]
    progress: int
    message: str


class SeedingProgressFrame(TypedDict):
    type: Literal["seeding_progress"]
    data: SeedingProgressData


def seeding_progress(job: SeedingJob) -> SeedingProgressFrame:
    """The spec's frame: {"type": "seeding_progress", "data": {symbol, status, progress, message}}."""
    status: Literal["pending", "in_progress", "completed", "failed"] = job.status  # type: ignore[assignment]
    return {
        "type": "seeding_progress",
        "data": {"symbol": job.symbol, "status": status, "progress": job.progress, "message": job.message},
    }
