"""Hybrid logical clock properties, with a fake wall clock."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.sync.hlc import HybridLogicalClock, hlc_ms, hlc_pack
from apps.trading.exceptions import ClockDrift

DRIFT_MS = 30_000


class FakeWall:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_stamp_layout_is_milliseconds_then_a_16_bit_counter():
    assert hlc_pack(1_700_000_000_000, 3) == (1_700_000_000_000 << 16) | 3
    assert hlc_ms(hlc_pack(1_700_000_000_000, 3)) == 1_700_000_000_000


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.integers(min_value=-5_000, max_value=5_000), min_size=1, max_size=60))
def test_local_stamps_strictly_increase_even_when_the_wall_clock_steps_back(steps: list[int]):
    wall = FakeWall(1_700_000_000_000)
    hlc = HybridLogicalClock(wall_ms=wall, max_drift=DRIFT_MS)
    previous = hlc.now()

    for step in steps:
        wall.ms += step  # negative steps: NTP stepping the clock back
        stamp = hlc.now()
        assert stamp > previous
        previous = stamp


@settings(max_examples=200, deadline=None)
@given(
    local_ms=st.integers(min_value=0, max_value=10**6),
    remote_offset=st.integers(min_value=-(10**6), max_value=DRIFT_MS),
    counter=st.integers(min_value=0, max_value=0xFFFF),
    local_writes=st.integers(min_value=0, max_value=5),
)
def test_recv_is_above_both_the_remote_stamp_and_every_local_one(
    local_ms: int, remote_offset: int, counter: int, local_writes: int
):
    base = 1_700_000_000_000
    wall = FakeWall(base + local_ms)
    hlc = HybridLogicalClock(wall_ms=wall, max_drift=DRIFT_MS)
    issued = [hlc.now() for _ in range(local_writes)]
    remote = hlc_pack(max(0, wall.ms + remote_offset), counter)

    merged = hlc.recv(remote)

    assert merged > remote
    assert all(merged > stamp for stamp in issued)
    assert hlc.now() > merged


def test_a_stamp_beyond_the_drift_limit_is_refused_without_moving_the_clock():
    wall = FakeWall(1_700_000_000_000)
    hlc = HybridLogicalClock(wall_ms=wall, max_drift=DRIFT_MS)
    before = hlc.now()
    poisoned = hlc_pack(wall.ms + DRIFT_MS + 1)

    with pytest.raises(ClockDrift) as caught:
        hlc.recv(poisoned)

    assert caught.value.detail["ahead_ms"] == DRIFT_MS + 1
    assert hlc.last == before
    assert hlc.now() < poisoned
    assert hlc.recv(hlc_pack(wall.ms + DRIFT_MS)) > hlc_pack(wall.ms + DRIFT_MS)  # at the limit: accepted


def test_after_orders_a_rewrite_above_the_row_it_overwrites():
    wall = FakeWall(1_000)
    hlc = HybridLogicalClock(wall_ms=wall, max_drift=DRIFT_MS)
    row_stamp = hlc_pack(5_000, 7)  # written by another process whose clock is ahead

    assert hlc.after(row_stamp) == row_stamp + 1


def test_floor_from_a_previous_run_is_never_undercut():
    wall = FakeWall(1_000)  # the clock stepped back across the restart
    persisted = hlc_pack(9_000, 2)

    hlc = HybridLogicalClock(wall_ms=wall, max_drift=DRIFT_MS, floor=persisted)

    assert hlc.now() > persisted


def test_stamps_are_unique_across_threads():
    hlc = HybridLogicalClock(wall_ms=FakeWall(1_000), max_drift=DRIFT_MS)
    stamps: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [hlc.now() for _ in range(2_000)]
        with lock:
            stamps.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(stamps)) == 8_000


@pytest.mark.django_db
def test_the_process_clock_starts_above_the_persisted_feed(settings):
    from django.db import connection

    from apps.sync import hlc as hlc_module

    far = hlc_pack(hlc_ms(hlc_module.clock().now()) + 10_000)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sync_synctombstone (entity, entity_id, hlc, origin, version, version_vector, deleted_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            ["profiles", "0" * 32, far, "x", 1, "{}", "2024-01-01 00:00:00"],
        )
    fresh = HybridLogicalClock(floor=hlc_module._persisted_high_water("default"))

    assert fresh.now() > far
