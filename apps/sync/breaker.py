"""A circuit breaker per peer, and exponential backoff with full jitter.

Closed: requests flow; `failure_threshold` consecutive failures open it. Open: requests are
refused until `reset_timeout_s` has passed, then one probe is let through (half-open). The
probe's success closes the breaker; its failure opens it again for twice as long (capped).
All lanes' pullers of one peer share its breaker, so a dead peer costs one probe, not one per lane.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from enum import StrEnum

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0


def backoff_delay(
    attempt: int,
    *,
    base: float = BACKOFF_BASE_S,
    cap: float = BACKOFF_CAP_S,
    rng: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before retry number `attempt` (0-based): uniform in [0, min(cap, base*2^n)].

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): spreads the retries of
    many pullers that failed together instead of having them retry in lock-step.
    """
    ceiling = min(cap, base * 2 ** min(attempt, 32))
    return rng(0.0, ceiling)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Thread-safe closed / open / half-open breaker."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 5.0,
        max_reset_timeout_s: float = BACKOFF_CAP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.max_reset_timeout_s = max_reset_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._open_for = reset_timeout_s
        self._probe_in_flight = False
        self.last_error = ""

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state is BreakerState.OPEN and self._clock() >= self._opened_at + self._open_for:
                return BreakerState.HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May a request go out now? In half-open, only one caller gets True until it reports."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if self._clock() < self._opened_at + self._open_for:
                    return False
                self._state = BreakerState.HALF_OPEN
                self._probe_in_flight = False
            if self._probe_in_flight:
                return False
            self._probe_in_flight = True
            return True

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self._open_for - self._clock())

    def record_success(self) -> None:
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._open_for = self.reset_timeout_s
            self._probe_in_flight = False
            self.last_error = ""

    def record_failure(self, error: str = "") -> None:
        with self._lock:
            self.last_error = error
            if self._state is BreakerState.HALF_OPEN:
                self._open(longer=True)
                return
            self._failures += 1
            if self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
                self._open(longer=False)

    def reset(self) -> None:
        """Close the breaker now (an operator forced a sync)."""
        self.record_success()

    def _open(self, *, longer: bool) -> None:
        if longer:
            self._open_for = min(self.max_reset_timeout_s, self._open_for * 2)
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._probe_in_flight = False
