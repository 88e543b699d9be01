"""The per-peer circuit breaker's states and the full-jitter backoff's bounds."""

from __future__ import annotations

import random

import pytest

from apps.sync.breaker import BreakerState, CircuitBreaker, backoff_delay


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, reset_timeout_s=5.0, max_reset_timeout_s=30.0, clock=clock)


def test_closed_breaker_opens_after_threshold_consecutive_failures():
    clock = FakeClock()
    breaker = make_breaker(clock)

    breaker.record_failure("e1")
    breaker.record_failure("e2")
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure("e3")

    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(5.0)
    assert breaker.last_error == "e3"


def test_a_success_resets_the_failure_count():
    breaker = make_breaker(FakeClock())

    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()

    assert breaker.state is BreakerState.CLOSED


def test_after_the_timeout_exactly_one_probe_goes_through():
    clock = FakeClock()
    breaker = make_breaker(clock)
    for _ in range(3):
        breaker.record_failure()

    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2

    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() is True  # the probe
    assert breaker.allow() is False  # everyone else waits for its outcome


def test_a_successful_probe_closes_the_breaker():
    clock = FakeClock()
    breaker = make_breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5
    assert breaker.allow()

    breaker.record_success()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_cap():
    clock = FakeClock()
    breaker = make_breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    open_for = []
    for _ in range(5):
        clock.now += breaker.retry_in()
        assert breaker.allow()
        breaker.record_failure()
        open_for.append(breaker.retry_in())

    assert open_for == [10.0, 20.0, 30.0, 30.0, 30.0]


def test_reset_closes_an_open_breaker():
    breaker = make_breaker(FakeClock())
    for _ in range(3):
        breaker.record_failure()

    breaker.reset()

    assert breaker.state is BreakerState.CLOSED and breaker.allow()


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(0, 0.5), (1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (20, 30.0), (10_000, 30.0)]
)
def test_backoff_ceiling_is_base_times_two_to_the_n_capped_at_30s(attempt: int, ceiling: float):
    highest = backoff_delay(attempt, rng=lambda low, high: high)
    lowest = backoff_delay(attempt, rng=lambda low, high: low)

    assert highest == pytest.approx(ceiling)  # 0.5 * 2**attempt, capped
    assert lowest == 0.0


def test_backoff_is_full_jitter_across_the_whole_range():
    rng = random.Random(42)
    draws = [backoff_delay(4, rng=rng.uniform) for _ in range(2000)]

    assert all(0.0 <= d <= 8.0 for d in draws)
    # Full jitter spreads over [0, 8]: both ends of the range are used, the mean is near 4.
    assert min(draws) < 0.5 and max(draws) > 7.5
    assert 3.5 < sum(draws) / len(draws) < 4.5
