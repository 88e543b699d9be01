"""Health of price sources, reported by whoever runs them (feed runner, REST pollers)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from apps.markets.services.store import PriceStore, price_store


def source_health_report(*, reports: Mapping[str, dict[str, Any]], store: PriceStore | None = None) -> None:
    """Publish sources' health snapshots (JSON-safe dicts with at least "state"), stamped now."""
    now_ms = time.time_ns() // 1_000_000
    (store or price_store()).health_put(
        {slug: {**snap, "reported_at": now_ms} for slug, snap in reports.items()}
    )


def rest_poll_outcome(*, slug: str, ok: bool, ticks: int, error: str | None = None) -> None:
    """Record one REST poll: healthy when it returned prices, down with the error otherwise."""
    source_health_report(
        reports={slug: {"state": "healthy" if ok else "down", "ticks": ticks, "last_error": error}}
    )
