"""Pullers: verify, apply, ack; checksum and clock-drift failures; breaker; lanes; shutdown."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.core.cache import cache

from apps.sync.breaker import BreakerState, CircuitBreaker
from apps.sync.clients import PeerEndpoint, PeerResponse, PeerUnavailable
from apps.sync.models import Peer, SyncSession
from apps.sync.transport import worker_state_key
from apps.sync.worker import LaneGate, LanePuller, PullConfig, SyncWorker
from apps.trading.exceptions import ClockDrift
from tests.sync.transport.conftest import SECRET, PlaneDouble, make_peer
from tests.sync.transport.fakes import FakeApplier, FakeFeed, fake_page_verify


class FakePeerClient:
    """Serves a FakeFeed as the peer would (the edge: no HTTP)."""

    def __init__(self, feed: FakeFeed, *, caller: str = "local") -> None:
        self.feed_source = feed
        self.caller = caller
        self.acks: list[dict[str, int]] = []
        self.down = False
        self.tamper = False
        self.feed_calls = 0

    def _response(self, body: Any) -> PeerResponse:
        return PeerResponse(
            body=body, status=200, wire_bytes=100, rtt_ms=2.0, server_elapsed_ms=1.0, clock_offset_ms=3.0
        )

    def feed(self, *, lane: int, since: int, limit: int, wait: float) -> PeerResponse:
        self.feed_calls += 1
        if self.down:
            raise PeerUnavailable("unreachable", "peer down")
        deadline = time.monotonic() + min(wait, 0.05)
        while True:
            page = self.feed_source.feed_page(lane=lane, since=since, limit=limit, exclude_origin=self.caller)
            if page["rows"] or page["next"] != since or time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        if self.tamper and page["rows"]:
            page["rows"][0]["data"] = {"qty": "tampered"}
        return self._response(page)

    def ack(self, *, acks: list[dict[str, int]]) -> PeerResponse:
        self.acks.extend(acks)
        return self._response({"moved": len(acks)})

    def close(self) -> None:
        pass


@pytest.fixture
def applier(plane_double: PlaneDouble) -> FakeApplier:
    fake = FakeApplier()
    plane_double("batch_apply", fake.batch_apply)
    plane_double("cursor_get", fake.cursor_get)
    plane_double("page_verify", fake_page_verify)
    return fake


def make_puller(
    peer: Peer,
    client: FakePeerClient,
    *,
    lane: int = 0,
    breaker: CircuitBreaker | None = None,
    config: PullConfig | None = None,
) -> LanePuller:
    endpoint = PeerEndpoint(name=peer.name, url=peer.url, key_id=peer.key_id, secret=SECRET)
    puller = LanePuller(
        peer_id=peer.pk,
        endpoint=endpoint,
        lane=lane,
        client=client,  # type: ignore[arg-type]
        breaker=breaker or CircuitBreaker(failure_threshold=3),
        config=config or PullConfig(limit=100, wait_s=0.05),
        stop=threading.Event(),
    )
    puller.sleep = lambda seconds: None  # type: ignore[method-assign]  # no real backoff in unit tests
    return puller


@pytest.mark.django_db
def test_a_step_verifies_applies_and_acknowledges_a_page(peer: Peer, applier: FakeApplier):
    feed = FakeFeed(node=peer.name)
    for _ in range(3):
        feed.write()
    client = FakePeerClient(feed)
    puller = make_puller(peer, client)

    puller.step()

    assert [row["seq"] for row in applier.applied] == [1, 2, 3]
    assert applier.cursors[(peer.name, 0)] == 3 == puller.stats.cursor
    assert client.acks == [{"lane": 0, "seq": 3}]  # caught up: ack at once
    session = SyncSession.objects.get(peer=peer)
    assert (session.rows, session.batches, session.outcome) == (3, 1, "running")


@pytest.mark.django_db
def test_a_page_with_a_bad_checksum_is_not_applied(peer: Peer, applier: FakeApplier):
    feed = FakeFeed(node=peer.name)
    feed.write()
    client = FakePeerClient(feed)
    client.tamper = True
    puller = make_puller(peer, client)

    puller.step()

    assert applier.applied == [] and puller.stats.cursor == 0
    assert "checksum" in puller.stats.last_error.lower()
    failure = SyncSession.objects.get(peer=peer)
    assert failure.outcome == "error" and "checksum" in failure.error.lower()


@pytest.mark.django_db
def test_clock_drift_quarantines_the_link_without_stopping_it(peer: Peer, applier: FakeApplier):
    feed = FakeFeed(node=peer.name)
    feed.write()
    applier.drift = True
    puller = make_puller(peer, FakePeerClient(feed))

    puller.step()
    puller.step()  # still pulling: the page is retried, never adopted

    assert puller.stats.quarantined and "future" in puller.stats.quarantine_reason
    assert applier.applied == [] and puller.stats.cursor == 0
    # One history row for the quarantine, not one per retry.
    assert list(SyncSession.objects.values_list("outcome", flat=True)) == ["quarantined"]

    applier.drift = False
    puller.step()

    assert not puller.stats.quarantined
    assert puller.stats.cursor == 1


@pytest.mark.django_db
def test_repeated_failures_open_the_breaker_and_stop_requests(peer: Peer, applier: FakeApplier):
    client = FakePeerClient(FakeFeed())
    client.down = True
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=60)
    puller = make_puller(peer, client, breaker=breaker)

    for _ in range(6):
        puller.step()

    assert breaker.state is BreakerState.OPEN
    assert client.feed_calls == 3  # the breaker held back the other three
    assert puller.stats.last_error == "peer down"


@pytest.mark.django_db
def test_the_cursor_is_read_from_the_data_plane_at_start(peer: Peer, applier: FakeApplier):
    feed = FakeFeed(node=peer.name)
    for _ in range(5):
        feed.write()
    applier.cursors[(peer.name, 0)] = 3  # a previous run applied 1..3, then was killed
    puller = make_puller(peer, FakePeerClient(feed))

    puller.load_cursor()
    puller.step()

    assert [row["seq"] for row in applier.applied] == [4, 5]


@pytest.mark.django_db(transaction=True)
def test_the_orders_lane_is_not_held_up_by_an_analytics_backlog(plane_double: PlaneDouble, monkeypatch):
    peer = make_peer("seoul")
    feed = FakeFeed(node="seoul")
    for _ in range(3000):
        feed.write(lane=9)
    applier = FakeApplier()
    applied_at: dict[int, float] = {}

    def slow_apply(*, peer: str, lane: int, page: dict[str, Any], verified: bool = False) -> Any:
        if lane == 9:
            time.sleep(0.1)  # a heavy analytics batch
        for row in page["rows"]:
            applied_at[row["seq"]] = time.monotonic()
        return applier.batch_apply(peer=peer, lane=lane, page=page)

    plane_double("batch_apply", slow_apply)
    plane_double("cursor_get", applier.cursor_get)
    plane_double("page_verify", fake_page_verify)
    plane_double("lanes", lambda: [0, 9])
    client = FakePeerClient(feed)
    monkeypatch.setattr("apps.sync.worker.PeerClient", lambda endpoint, **kwargs: client)
    worker = SyncWorker(config=PullConfig(limit=100, wait_s=0.05), publish_s=0.05)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        time.sleep(0.3)  # the backlog is draining
        order = feed.write(lane=0)
        written = time.monotonic()
        deadline = written + 5
        while order["seq"] not in applied_at and time.monotonic() < deadline:
            time.sleep(0.01)
        backlog_left = 3000 - len([s for s in applied_at if s <= 3000])
    finally:
        worker.stop()
        runner.join(timeout=10)

    assert order["seq"] in applied_at
    # Not queued behind the lane-9 backlog (~3 s of batches); loose bound for a loaded 2-core box.
    assert applied_at[order["seq"]] - written < 1.5
    assert backlog_left > 0  # the backlog was indeed still draining
    assert not runner.is_alive()
    assert all(not p.is_alive() for link in worker.links.values() for p in link.pullers.values())
    assert set(SyncSession.objects.filter(peer=peer).values_list("outcome", flat=True)) == {"stopped"}


@pytest.mark.django_db(transaction=True)
def test_the_worker_publishes_link_state_for_mesh_status(plane_double: PlaneDouble, monkeypatch):
    make_peer("seoul")
    feed = FakeFeed(node="seoul")
    feed.write(lane=0)
    applier = FakeApplier()
    plane_double("batch_apply", applier.batch_apply)
    plane_double("cursor_get", applier.cursor_get)
    plane_double("page_verify", fake_page_verify)
    plane_double("lanes", lambda: [0])
    client = FakePeerClient(feed)
    monkeypatch.setattr("apps.sync.worker.PeerClient", lambda endpoint, **kwargs: client)
    worker = SyncWorker(config=PullConfig(limit=100, wait_s=0.05), publish_s=0.05)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        deadline = time.monotonic() + 5
        state = None
        while time.monotonic() < deadline:
            state = cache.get(worker_state_key())
            if state and state["links"].get("seoul/0", {}).get("cursor") == 1:
                break
            time.sleep(0.02)
    finally:
        worker.stop()
        runner.join(timeout=10)

    assert state is not None
    link = state["links"]["seoul/0"]
    assert link["cursor"] == 1 and link["breaker"] == "closed" and link["alive"]
    assert link["clockOffsetMs"] == 3.0
    assert cache.get(worker_state_key()) is None  # cleared on shutdown


@pytest.mark.django_db
def test_force_resets_open_breakers_and_wakes_sleeping_pullers(peer: Peer, applier: FakeApplier):
    from apps.sync.transport import sync_force_request
    from apps.sync.worker import PeerLink

    worker = SyncWorker()
    worker._force_seen = cache.get("sync:force:local")
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=60)
    breaker.record_failure("down")
    client = FakePeerClient(FakeFeed())
    puller = make_puller(peer, client, breaker=breaker)
    worker.links[peer.pk] = PeerLink(
        peer_id=peer.pk,
        endpoint=puller.endpoint,
        client=client,  # type: ignore[arg-type]
        breaker=breaker,
        stop=threading.Event(),
        pullers={0: puller},
    )
    assert breaker.state is BreakerState.OPEN

    sync_force_request()
    worker._force_check()

    assert breaker.state is BreakerState.CLOSED
    assert puller.wake.is_set()


class SlowApplier(FakeApplier):
    """Applies like FakeApplier, noting whether the next page was already asked for meanwhile;
    fails the first apply when `fail_first`."""

    def __init__(self, client: FakePeerClient, *, fail_first: bool = False) -> None:
        super().__init__()
        self.client = client
        self.fail_first = fail_first
        self.next_asked_during_apply: list[bool] = []

    def batch_apply(self, *, peer: str, lane: int, page: dict[str, Any], verified: bool = False) -> Any:
        if self.fail_first:
            self.fail_first = False
            raise ClockDrift("hlc 120 s in the future")
        deadline = time.monotonic() + 1.0
        while int(page["next"]) not in self.client.asked and time.monotonic() < deadline:
            time.sleep(0.005)
        self.next_asked_during_apply.append(int(page["next"]) in self.client.asked)
        return super().batch_apply(peer=peer, lane=lane, page=page)


class RecordingClient(FakePeerClient):
    def __init__(self, feed: FakeFeed) -> None:
        super().__init__(feed)
        self.asked: list[int] = []
        self.limits: list[int] = []

    def feed(self, *, lane: int, since: int, limit: int, wait: float) -> PeerResponse:
        self.asked.append(since)
        self.limits.append(limit)
        return super().feed(lane=lane, since=since, limit=limit, wait=wait)


@pytest.mark.django_db
def test_the_next_page_is_requested_while_this_one_is_applied(peer: Peer, plane_double: PlaneDouble):
    feed = FakeFeed(node=peer.name)
    for _ in range(3):
        feed.write()
    client = RecordingClient(feed)
    applier = SlowApplier(client)
    plane_double("batch_apply", applier.batch_apply)
    plane_double("page_verify", fake_page_verify)
    puller = make_puller(peer, client)

    puller.step()
    feed.write()
    puller.step()
    while puller.stats.cursor < 4:
        puller.step()

    assert applier.next_asked_during_apply[0] is True  # since=3 was in flight during the apply
    assert [row["seq"] for row in applier.applied] == [1, 2, 3, 4]


@pytest.mark.django_db
def test_a_prefetched_page_is_dropped_when_the_apply_before_it_fails(peer: Peer, plane_double: PlaneDouble):
    feed = FakeFeed(node=peer.name)
    for _ in range(3):
        feed.write()
    client = RecordingClient(feed)
    applier = SlowApplier(client, fail_first=True)
    plane_double("batch_apply", applier.batch_apply)
    plane_double("page_verify", fake_page_verify)
    puller = make_puller(peer, client)

    puller.step()  # the apply fails (quarantine): the cursor stays at 0, the page asked from 3 must not be used
    feed.write()
    while puller.stats.cursor < 4:
        puller.step()

    assert [row["seq"] for row in applier.applied][:3] == [1, 2, 3]  # nothing skipped
    assert sorted({row["seq"] for row in applier.applied}) == [1, 2, 3, 4]


def test_a_lower_lane_waits_while_a_more_urgent_one_applies_but_not_forever():
    gate = LaneGate()
    assert not gate.urgent_active(9)
    released = threading.Event()

    def urgent() -> None:
        with gate.applying(0):
            released.wait(2)

    holder = threading.Thread(target=urgent)
    holder.start()
    time.sleep(0.05)
    started = time.monotonic()
    gate.wait_turn(9, timeout=0.2)  # gives up after the timeout: never starved
    assert 0.15 <= time.monotonic() - started < 1.0
    threading.Timer(0.1, released.set).start()
    started = time.monotonic()
    gate.wait_turn(9, timeout=5)  # returns as soon as lane 0 is done
    assert time.monotonic() - started < 2.0
    holder.join()

    gate.wait_turn(0, timeout=5)  # nothing is more urgent than lane 0
    assert gate.urgent_active(9) and not gate.urgent_active(0)


@pytest.mark.django_db
def test_a_lane_starts_with_small_pages_and_keeps_them_small_while_a_more_urgent_one_has_work(
    peer: Peer, applier: FakeApplier
):
    feed = FakeFeed(node=peer.name)
    for _ in range(40):
        feed.write(lane=9)
    calm, busy = RecordingClient(feed), RecordingClient(feed)
    config = PullConfig(limit=100, wait_s=0.05, yield_limit=2)
    first = make_puller(peer, calm, lane=9, config=config)
    while first.stats.cursor < 40:
        first.step()
    assert calm.limits[0] == 2 and max(calm.limits) >= 8  # slow start: doubles after each page

    second = make_puller(peer, busy, lane=9, config=config)
    second._page_limit = 100  # as if ramped up already
    with second.gate.applying(0):
        pass  # the orders lane just applied a page
    while second.stats.cursor < 40:
        second.step()

    assert set(busy.limits) == {2}
    assert [row["seq"] for row in applier.applied] == list(range(1, 41)) * 2


@pytest.mark.django_db
def test_a_big_page_is_applied_in_small_chunks_once_a_more_urgent_lane_gets_work(
    peer: Peer, plane_double: PlaneDouble
):
    feed = FakeFeed(node=peer.name)
    for _ in range(5):
        feed.write(lane=9)
    applier = FakeApplier()
    chunks: list[tuple[int, int, list[int]]] = []

    def apply(*, peer: str, lane: int, page: dict[str, Any], verified: bool = False) -> Any:
        assert verified  # the worker verified the whole page; the chunks carry its checked rows
        assert page["since"] == applier.cursors.get((peer, lane), 0)  # each chunk starts at the cursor
        chunks.append((page["since"], page["next"], [row["seq"] for row in page["rows"]]))
        return applier.batch_apply(peer=peer, lane=lane, page=page)

    plane_double("batch_apply", apply)
    plane_double("page_verify", fake_page_verify)
    client = RecordingClient(feed)
    puller = make_puller(peer, client, lane=9, config=PullConfig(limit=100, wait_s=0.05, yield_limit=2))
    puller._page_limit = 100  # ramped up: the page comes whole
    original_feed = client.feed

    def feed_then_orders_start(**kwargs: Any) -> PeerResponse:
        response = original_feed(**kwargs)
        with puller.gate.applying(0):
            pass  # the orders lane got work while this page was on its way
        return response

    client.feed = feed_then_orders_start  # type: ignore[method-assign]

    puller.step()

    assert client.limits[0] == 100  # fetched as one page before the orders lane was busy
    assert chunks == [(0, 2, [1, 2]), (2, 4, [3, 4]), (4, 5, [5])]
    assert puller.stats.cursor == 5 and applier.cursors[(peer.name, 9)] == 5


@pytest.mark.django_db
def test_a_lower_lane_pauses_between_pages_only_while_a_more_urgent_one_has_work(
    peer: Peer, applier: FakeApplier
):
    feed = FakeFeed(node=peer.name)
    for _ in range(4):
        feed.write(lane=9)
    config = PullConfig(limit=1, wait_s=0.05, yield_limit=1, yield_pause_s=0.03)
    puller = make_puller(peer, RecordingClient(feed), lane=9, config=config)
    slept: list[float] = []
    puller.sleep = slept.append  # type: ignore[method-assign]

    puller.step()
    assert slept == []  # nothing more urgent: straight on to the next page

    with puller.gate.applying(0):
        pass  # the orders lane just applied a page
    puller.step()
    assert slept == [0.03]
    assert applier.cursors[(peer.name, 9)] == 2


@pytest.mark.django_db
def test_an_urgent_lane_makes_lower_lanes_yield_as_soon_as_it_fetched_rows(peer: Peer, applier: FakeApplier):
    feed = FakeFeed(node=peer.name)
    feed.write(lane=0)
    puller = make_puller(peer, RecordingClient(feed), lane=0)
    seen: list[bool] = []
    puller.gate.wait_turn = lambda lane, timeout: seen.append(puller.gate.urgent_active(9))  # type: ignore[method-assign]

    puller.step()

    assert seen == [True]  # before its own apply began: lane 9 already yields
    assert applier.cursors[(peer.name, 0)] == 1


@pytest.mark.django_db
def test_no_page_is_requested_once_stopping_and_requests_in_flight_can_be_waited_for(
    peer: Peer, plane_double: PlaneDouble
):
    plane_double("page_verify", fake_page_verify)
    release = threading.Event()

    class Slow(RecordingClient):
        def feed(self, *, lane: int, since: int, limit: int, wait: float) -> PeerResponse:
            release.wait(5)
            return super().feed(lane=lane, since=since, limit=limit, wait=wait)

    client = Slow(FakeFeed(node=peer.name))
    puller = make_puller(peer, client)
    puller._prefetch_from(0)
    assert puller.prefetching()

    threading.Timer(0.1, release.set).start()
    puller.prefetches_join(timeout=5)  # shutdown waits for it before its last close of the client
    assert not puller.prefetching()

    puller.stop_event.set()
    with pytest.raises(PeerUnavailable):
        puller._request(0)  # a prefetch starting after the stop opens no connection
    assert client.asked == [0]
