"""Hybrid logical clock: every replicated write is stamped with one, and (hlc, node id) is the total
order conflicts are decided by.

A stamp is a 64-bit integer `(wall milliseconds << 16) | counter`. Stamps from one process never
go backwards, even when the wall clock steps back (the counter carries on), a stamp taken after
seeing a remote stamp is greater than it, and a remote stamp further ahead of our wall clock than
HAUNT_SYNC_MAX_DRIFT_MS is refused without moving the clock (a single node with a broken clock
must not drag every other node into the future).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.conf import settings

from apps.trading.exceptions import ClockDrift

COUNTER_BITS = 16
DEFAULT_MAX_DRIFT_MS = 30_000

__all__ = ["ClockDrift", "HybridLogicalClock", "clock", "hlc_ms", "hlc_pack", "max_drift_ms"]


def hlc_pack(ms: int, counter: int = 0) -> int:
    return (ms << COUNTER_BITS) | counter


def hlc_ms(stamp: int) -> int:
    """The wall-clock milliseconds part of a stamp."""
    return stamp >> COUNTER_BITS


def max_drift_ms() -> int:
    return int(getattr(settings, "HAUNT_SYNC_MAX_DRIFT_MS", DEFAULT_MAX_DRIFT_MS))


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HybridLogicalClock:
    """A thread-safe HLC. `floor` is a stamp the clock must stay above (the persisted high-water
    mark of a previous run)."""

    def __init__(
        self,
        *,
        wall_ms: Callable[[], int] = _wall_ms,
        max_drift: Callable[[], int] | int = max_drift_ms,
        floor: int = 0,
    ) -> None:
        self._wall_ms = wall_ms
        self._max_drift = max_drift
        self._last = floor
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        return self._last

    def raise_floor(self, stamp: int) -> None:
        """Never issue a stamp at or below `stamp` from now on."""
        with self._lock:
            self._last = max(self._last, stamp)

    def now(self) -> int:
        """A stamp for a local write."""
        with self._lock:
            self._last = max(self._last + 1, hlc_pack(self._wall_ms()))
            return self._last

    def after(self, stamp: int) -> int:
        """A stamp for a local write that overwrites a row stamped `stamp` (greater than it)."""
        with self._lock:
            self._last = max(self._last + 1, hlc_pack(self._wall_ms()), stamp + 1)
            return self._last

    def check_drift(self, remote: int) -> None:
        """Raise ClockDrift when `remote` is further ahead of our wall clock than the allowed drift."""
        limit = self._max_drift() if callable(self._max_drift) else self._max_drift
        ahead_ms = hlc_ms(remote) - self._wall_ms()
        if ahead_ms > limit:
            raise ClockDrift(
                f"A remote stamp is {ahead_ms} ms ahead of this node's clock (limit {limit} ms).",
                ahead_ms=ahead_ms,
                max_drift_ms=limit,
            )

    def recv(self, remote: int) -> int:
        """Merge a stamp received from a peer; returns a stamp greater than it and than any issued.

        Raises ClockDrift, leaving the clock unchanged, when `remote` is beyond the drift limit.
        """
        self.check_drift(remote)
        with self._lock:
            self._last = max(self._last + 1, hlc_pack(self._wall_ms()), remote + 1)
            return self._last


_clock = HybridLogicalClock()
_loaded_aliases: set[str] = set()
_load_lock = threading.Lock()


def clock(using: str = "default") -> HybridLogicalClock:
    """The process-wide clock, raised above the highest stamp already written to `using`'s change
    feed and tombstones the first time it is used with that database (so a restart with a clock
    that stepped back never issues a stamp below one already given out)."""
    if using not in _loaded_aliases:
        with _load_lock:
            if using not in _loaded_aliases:
                _clock.raise_floor(_persisted_high_water(using))
                _loaded_aliases.add(using)
    return _clock


def _persisted_high_water(using: str) -> int:
    from django.db import connections

    connection = connections[using]
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        if "sync_syncfeed" not in tables:  # before the sync app's migrations ran
            return 0
        cursor.execute(
            "SELECT COALESCE(MAX(hlc), 0) FROM sync_syncfeed UNION ALL "
            "SELECT COALESCE(MAX(hlc), 0) FROM sync_synctombstone"
        )
        return max(int(row[0]) for row in cursor.fetchall())


def forget_high_water() -> None:
    """Re-read the persisted high-water mark on next use (tests that swap databases)."""
    with _load_lock:
        _loaded_aliases.clear()
