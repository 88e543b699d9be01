"""The sync worker: one puller thread per (peer, lane), in one process (`manage.py sync_worker`).

Each puller long-polls the peer's feed from its cursor, verifies the page, applies it with the
cursor in the same transaction (batch_apply), and acknowledges now and then so the peer can
collect tombstones; the next page is fetched and verified while the current one is applied.
Lanes have their own pullers, and lower lanes yield to more urgent ones (LaneGate), so the orders
lane does not queue behind an analytics backlog. Failures back off with full jitter behind a per-peer circuit breaker; a page
stamped too far in the future (ClockDrift) is quarantined: the link is marked unhealthy and the
puller keeps trying, it never crashes the process.

The supervisor (SyncWorker.run, main thread) starts and stops pullers as peers are edited,
publishes the links' live state to the cache every second (mesh status and the 10 s metrics
read it), and watches the force flag set by POST /api/sync/force.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from apps.sync import services as data_plane
from apps.sync.breaker import CircuitBreaker, backoff_delay
from apps.sync.clients import PeerClient, PeerEndpoint, PeerError, PeerResponse, PeerUnavailable
from apps.sync.gcpause import gc_held
from apps.sync.hlc import clock
from apps.sync.models import Peer, PeerSecretUnreadable, SyncSession, current_node_id
from apps.sync.transport import force_key, worker_state_key
from apps.trading.exceptions import ChecksumMismatch, ClockDrift

logger = logging.getLogger(__name__)

SESSION_FLUSH_S = 5.0
ACK_INTERVAL_S = 1.0
QUARANTINE_RETRY_S = 5.0
SHUTDOWN_GRACE_S = 2.0  # pullers between requests stop within this
SHUTDOWN_APPLY_S = 60.0  # a batch being applied gets this long to commit


@dataclass
class PullConfig:
    limit: int = 5000
    wait_s: float = 20.0
    yield_limit: int = 50  # page size of a lane while a more urgent lane has work
    yield_wait_s: float = 0.25  # longest a page waits for a more urgent lane's apply to finish
    yield_pause_s: float = 0.02  # pause between pages while a more urgent lane has work


class LaneGate:
    """Makes lanes yield to more urgent ones (lower numbers) on this node: while a more urgent lane
    applies, a lower lane waits before applying (up to `yield_wait_s`, so it is never starved),
    and while one has had work in the last second, a lower lane pulls small pages. On two cores a
    backlog otherwise takes the CPU the orders lane needs."""

    ACTIVE_S = 1.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._applying: dict[int, int] = {}
        self._worked_at: dict[int, float] = {}

    @contextmanager
    def applying(self, lane: int) -> Iterator[None]:
        with self._cond:
            self._applying[lane] = self._applying.get(lane, 0) + 1
            self._worked_at[lane] = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                self._applying[lane] -= 1
                self._worked_at[lane] = time.monotonic()
                self._cond.notify_all()

    def noted(self, lane: int) -> None:
        """`lane` has rows to apply: lower lanes yield from now, not from when it applies them
        (it may wait for the CPU a lower lane's page holds)."""
        with self._cond:
            self._worked_at[lane] = time.monotonic()

    def urgent_active(self, lane: int) -> bool:
        """Has a more urgent lane applied anything in the last second?"""
        cutoff = time.monotonic() - self.ACTIVE_S
        with self._cond:
            return any(other < lane and at >= cutoff for other, at in self._worked_at.items())

    def wait_turn(self, lane: int, timeout: float) -> None:
        """Wait while a more urgent lane is applying, at most `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(
                lambda: not any(count for other, count in self._applying.items() if other < lane),
                timeout=timeout,
            )


@dataclass(frozen=True)
class _Fetched:
    response: PeerResponse
    problem: str | None  # why the page cannot be applied: not a page, a checksum mismatch


class _Prefetch:
    """The next page requested while the current one is applied (reading on the peer and applying
    here overlap); used only if the cursor ends up where it was asked from."""

    def __init__(self, fetch: Callable[[], _Fetched], *, since: int, name: str) -> None:
        self.since = since
        self._done = threading.Event()
        self._response: _Fetched | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fetch,), name=name, daemon=True)
        self.thread.start()

    def _run(self, fetch: Callable[[], _Fetched]) -> None:
        try:
            self._response = fetch()
        except BaseException as exc:  # handed to the puller, which handles PeerError
            self._error = exc
        finally:
            self._done.set()

    def result(self, stop: threading.Event) -> _Fetched:
        while not self._done.wait(0.2):
            if stop.is_set():
                raise PeerUnavailable("closed", "the worker is stopping")
        if self._error is not None:
            raise self._error
        assert self._response is not None
        return self._response


@dataclass
class LinkStats:
    """Live numbers of one (peer, lane) link, read by the supervisor thread."""

    peer: str
    lane: int
    cursor: int = 0
    head: int | None = None
    rows_total: int = 0
    batches: int = 0
    bytes_total: int = 0
    conflicts_total: int = 0
    behind_since: float | None = None
    last_ok_at: float | None = None
    last_apply_at: float | None = None
    last_error: str = ""
    last_error_at: float | None = None
    quarantined: bool = False
    quarantine_reason: str = ""
    latency_ms: float | None = None
    clock_offset_ms: float | None = None
    apply_lag_ms: float | None = None
    batch_ms: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=4096))

    def observe_response(self, response: PeerResponse) -> None:
        self.last_ok_at = time.time()
        self.latency_ms = response.latency_ms
        if response.clock_offset_ms is not None:
            self.clock_offset_ms = response.clock_offset_ms

    def observe_page(self, page: dict[str, Any]) -> None:
        head = page.get("head")
        self.head = int(head) if head is not None else self.head
        next_seq = int(page.get("next", self.cursor))
        # Lag: how long this link has been behind the peer's head (0 while caught up).
        behind = self.head is not None and next_seq < self.head
        if not behind:
            self.behind_since = None
        elif self.behind_since is None:
            self.behind_since = time.time()

    def observe_apply(self, *, page: dict[str, Any], rows: int, wire_bytes: int, seconds: float) -> None:
        now = time.time()
        self.cursor = int(page.get("next", self.cursor))
        self.rows_total += rows
        self.batches += 1
        self.bytes_total += wire_bytes
        self.batch_ms.append(seconds * 1000)
        self.window.append((now, rows))
        self.last_apply_at = now
        self.quarantined = False
        self.quarantine_reason = ""
        stamps = [int(row.get("hlc") or 0) for row in page.get("rows", [])]
        if stamps and max(stamps) > 0:
            self.apply_lag_ms = max(0.0, now * 1000 - (max(stamps) >> 16))

    def observe_error(self, message: str) -> None:
        self.last_error = message[:500]
        self.last_error_at = time.time()

    def rows_per_second(self, span_s: float = 10.0) -> float:
        cutoff = time.time() - span_s
        return sum(rows for at, rows in list(self.window) if at >= cutoff) / span_s

    def batch_p99_ms(self) -> float | None:
        samples = sorted(self.batch_ms)
        if not samples:
            return None
        return samples[min(len(samples) - 1, int(0.99 * len(samples)))]

    def lag_seconds(self) -> float:
        return 0.0 if self.behind_since is None else max(0.0, time.time() - self.behind_since)

    def snapshot(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "lane": self.lane,
            "cursor": self.cursor,
            "head": self.head,
            "lagSeconds": round(self.lag_seconds(), 3),
            "rowsPerSecond": round(self.rows_per_second(), 1),
            "batchP99Ms": self.batch_p99_ms(),
            "applyLagMs": self.apply_lag_ms,
            "latencyMs": self.latency_ms,
            "clockOffsetMs": self.clock_offset_ms,
            "rowsTotal": self.rows_total,
            "batches": self.batches,
            "bytesTotal": self.bytes_total,
            "lastOkAt": self.last_ok_at,
            "lastApplyAt": self.last_apply_at,
            "lastError": self.last_error,
            "lastErrorAt": self.last_error_at,
            "quarantined": self.quarantined,
            "quarantineReason": self.quarantine_reason,
        }


class LanePuller(threading.Thread):
    """Pulls one lane of one peer's feed until stopped."""

    def __init__(
        self,
        *,
        peer_id: int,
        endpoint: PeerEndpoint,
        lane: int,
        client: PeerClient,
        breaker: CircuitBreaker,
        config: PullConfig,
        stop: threading.Event,
        gate: LaneGate | None = None,
    ) -> None:
        super().__init__(name=f"sync-pull-{endpoint.name}-{lane}", daemon=True)
        self.peer_id = peer_id
        self.endpoint = endpoint
        self.lane = lane
        self.client = client
        self.breaker = breaker
        self.config = config
        self.stop_event = stop
        self.gate = gate or LaneGate()
        self._prefetch: _Prefetch | None = None
        self._prefetch_threads: list[threading.Thread] = []  # in flight, used or dropped
        self._page_limit = min(config.limit, config.yield_limit)
        self.wake = threading.Event()
        self.stats = LinkStats(peer=endpoint.name, lane=lane)
        self._attempt = 0
        self._session: SyncSession | None = None
        self._session_flushed_at = 0.0
        self._failure_recorded = False
        self._last_ack_at = 0.0
        self._acked = -1
        self._cursor_before = 0
        self.applying = False

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():  # the database may be busy (pool timeout) at start
                try:
                    self.load_cursor()
                    break
                except Exception as exc:
                    logger.exception(
                        "Sync puller %s/%s could not read its cursor", self.endpoint.name, self.lane
                    )
                    self.stats.observe_error(f"{type(exc).__name__}: {exc}")
                    close_old_connections()
                    self.sleep(backoff_delay(self._attempt))
                    self._attempt += 1
            while not self.stop_event.is_set():
                try:
                    self.step()
                except Exception as exc:  # one bad cycle must not end the lane
                    if self.stop_event.is_set():
                        break  # e.g. the client was closed under a request by shutdown
                    logger.exception("Sync puller %s/%s failed a cycle", self.endpoint.name, self.lane)
                    self._fail(f"{type(exc).__name__}: {exc}")
                    close_old_connections()
        finally:
            try:
                self._session_close(SyncSession.Outcome.STOPPED)
            except Exception:
                logger.exception("Could not close the sync session of %s/%s", self.endpoint.name, self.lane)
            connections.close_all()  # this thread's connections only

    def load_cursor(self) -> None:
        """Resume from the cursor committed with the last applied batch (and load the clock's
        high-water mark, a scan of the feed, now rather than in the first apply)."""
        self.stats.cursor = int(data_plane.cursor_get(peer=self.endpoint.name, lane=self.lane))
        clock()

    def abandon(self) -> None:
        """Close this puller's session from the supervisor: the thread is stuck in a long-poll."""
        self._session_close(SyncSession.Outcome.STOPPED)

    def nudge(self) -> None:
        """Cut a backoff sleep short."""
        self.wake.set()

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and not self.stop_event.is_set():
            self.wake.wait(seconds)
        self.wake.clear()

    # -- one cycle ------------------------------------------------------------------------

    def step(self) -> None:
        """Fetch one page (long-polling), ask for the next one, and apply this one."""
        if not self.breaker.allow():
            self.sleep(max(self.breaker.retry_in(), 0.05))
            return
        try:
            fetched = self._fetch(self.stats.cursor)
        except PeerError as exc:
            self.breaker.record_failure(exc.message)
            self._fail(exc.message)
            return
        self.breaker.record_success()
        response = fetched.response
        self.stats.observe_response(response)
        if self.stop_event.is_set():
            return  # stopping: the page is pulled again from the cursor next time
        if fetched.problem:
            self._fail(fetched.problem)
            return
        page = response.body
        self.stats.observe_page(page)
        if not page.get("rows") and int(page.get("next", self.stats.cursor)) == self.stats.cursor:
            self._attempt = 0
            self._ack_maybe(idle=True)
            return  # the long-poll timed out with nothing new
        if page.get("rows"):
            self.gate.noted(self.lane)
        self._prefetch_from(int(page["next"]))
        self._apply(page, response)
        if self.gate.urgent_active(self.lane):
            # Leave the CPU to the urgent lane between pages: on two cores this lane's applies
            # here and page reads on the peer otherwise take the time its rows need.
            self.sleep(self.config.yield_pause_s)

    def _limit(self) -> int:
        """Rows to ask for: small while a more urgent lane has work; otherwise doubling from small
        after each applied page up to the configured size (slow start), so a backlog that starts
        draining begins with pages an urgent lane can get between."""
        if self.gate.urgent_active(self.lane):
            self._page_limit = min(self.config.limit, self.config.yield_limit)
        return min(self.config.limit, self._page_limit)

    def _request(self, since: int) -> _Fetched:
        """A page, decoded and verified (in the prefetching thread, while the page before it is
        applied)."""
        if self.stop_event.is_set():  # shutting down: no new connection to a closed client
            raise PeerUnavailable("closed", "the worker is stopping")
        response = self.client.feed(lane=self.lane, since=since, limit=self._limit(), wait=self.config.wait_s)
        page = response.body
        if not isinstance(page, dict):
            return _Fetched(response, "The feed answer is not a page object.")
        try:
            with gc_held():
                data_plane.page_verify(page)
        except ChecksumMismatch as exc:
            return _Fetched(response, f"Checksum mismatch: {exc}")
        return _Fetched(response, None)

    def _fetch(self, since: int) -> _Fetched:
        pending, self._prefetch = self._prefetch, None
        if pending is not None and pending.since == since:
            return pending.result(self.stop_event)
        return self._request(since)  # no prefetch, or the last apply failed: ask again

    def _prefetch_from(self, since: int) -> None:
        self._prefetch = _Prefetch(
            lambda: self._request(since), since=since, name=f"sync-prefetch-{self.endpoint.name}-{self.lane}"
        )
        self._prefetch_threads = [t for t in self._prefetch_threads if t.is_alive()]
        self._prefetch_threads.append(self._prefetch.thread)

    def prefetching(self) -> bool:
        return any(thread.is_alive() for thread in self._prefetch_threads)

    def prefetches_join(self, timeout: float) -> None:
        """Wait for this lane's page requests still in flight (the client is closed: they end
        at once, or after opening a connection the next close then ends)."""
        deadline = time.monotonic() + timeout
        for thread in self._prefetch_threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _apply(self, page: dict[str, Any], response: PeerResponse) -> None:
        cursor_before = self.stats.cursor
        conflicts = 0
        started = time.perf_counter()
        self.applying = True
        try:
            for chunk in self._chunks(page):
                if chunk["rows"]:
                    self.gate.wait_turn(self.lane, self.config.yield_wait_s)
                with self.gate.applying(self.lane) if chunk["rows"] else nullcontext():
                    result = data_plane.batch_apply(
                        peer=self.endpoint.name, lane=self.lane, page=chunk, verified=True
                    )
                conflicts += int(getattr(result, "conflicts", 0) or 0)
                self.stats.cursor = int(chunk["next"])  # committed with the chunk
        except ClockDrift as exc:
            self._quarantine(str(exc))
            return
        except DatabaseError as exc:
            close_old_connections()
            self._fail(f"Database error while applying: {exc}")
            return
        finally:
            self.applying = False
        seconds = time.perf_counter() - started
        rows = len(page.get("rows", []))
        self._cursor_before = cursor_before
        self._attempt = 0
        self._failure_recorded = False
        self.stats.observe_apply(page=page, rows=rows, wire_bytes=response.wire_bytes, seconds=seconds)
        self.stats.conflicts_total += conflicts
        if rows:
            self._page_limit = min(self.config.limit, self._page_limit * 2)
        self._session_track(rows=rows, wire_bytes=response.wire_bytes)
        self._ack_maybe(idle=False)

    def _chunks(self, page: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The page as consecutive sub-pages, each applied in its own transaction: the whole page
        at once, or `yield_limit` rows at a time while a more urgent lane has work (a big page
        fetched before it started does not hold it up). A sub-page ends at its last row's seq;
        the last one at the page's `next`. The page was verified as a whole."""
        rows = page.get("rows") or []
        since, start = int(page["since"]), 0
        while True:
            size = self.config.yield_limit if self.gate.urgent_active(self.lane) else len(rows)
            end = min(len(rows), start + max(1, size))
            last = end >= len(rows)
            next_seq = int(page["next"]) if last else int(rows[end - 1]["seq"])
            yield {**page, "since": since, "next": next_seq, "rows": rows[start:end]}
            if last:
                return
            since, start = next_seq, end

    # -- failure paths --------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        self.stats.observe_error(message)
        self._record_failure(SyncSession.Outcome.ERROR, message)
        delay = backoff_delay(self._attempt)
        self._attempt += 1
        self.sleep(delay)

    def _quarantine(self, reason: str) -> None:
        logger.warning("Quarantined a page from %s lane %s: %s", self.endpoint.name, self.lane, reason)
        self.stats.quarantined = True
        self.stats.quarantine_reason = reason[:500]
        self.stats.observe_error(reason)
        self._record_failure(SyncSession.Outcome.QUARANTINED, reason)
        self._attempt += 1
        self.sleep(max(QUARANTINE_RETRY_S, backoff_delay(self._attempt)))

    def _record_failure(self, outcome: str, message: str) -> None:
        # One history row per outage, not one per retry.
        if self._session is not None:
            self._session_close(outcome, message)
        elif not self._failure_recorded:
            try:
                now = timezone.now()
                SyncSession.objects.create(
                    peer_id=self.peer_id,
                    lane=self.lane,
                    kind=SyncSession.Kind.PULL,
                    started_at=now,
                    finished_at=now,
                    cursor_start=self.stats.cursor,
                    cursor_end=self.stats.cursor,
                    outcome=outcome,
                    error=message[:2000],
                )
            except DatabaseError:
                close_old_connections()
        self._failure_recorded = True

    # -- sessions and acks ----------------------------------------------------------------

    def _session_track(self, *, rows: int, wire_bytes: int) -> None:
        session = self._session
        if session is None:
            backlog = self.stats.batches <= 1 and rows >= self.config.limit
            self._session = SyncSession.objects.create(
                peer_id=self.peer_id,
                lane=self.lane,
                kind=SyncSession.Kind.BACKLOG if backlog else SyncSession.Kind.PULL,
                batches=1,
                rows=rows,
                bytes=wire_bytes,
                cursor_start=self._cursor_before,
                cursor_end=self.stats.cursor,
            )
            self._session_flushed_at = time.monotonic()
            return
        session.batches += 1
        session.rows += rows
        session.bytes += wire_bytes
        session.cursor_end = self.stats.cursor
        if time.monotonic() - self._session_flushed_at >= SESSION_FLUSH_S:
            session.save(update_fields=["batches", "rows", "bytes", "cursor_end"])
            self._session_flushed_at = time.monotonic()

    def _session_close(self, outcome: str, error: str = "") -> None:
        session, self._session = self._session, None
        if session is None:
            return
        session.outcome = outcome
        session.error = error[:2000]
        session.finished_at = timezone.now()
        session.cursor_end = self.stats.cursor
        try:
            session.save(
                update_fields=["batches", "rows", "bytes", "cursor_end", "outcome", "error", "finished_at"]
            )
        except DatabaseError:
            close_old_connections()

    def _ack_maybe(self, *, idle: bool) -> None:
        """Acknowledge the cursor to the peer at most once a second while pages flow, and when the
        lane goes idle. Acks only drive the peer's tombstone GC, so they stay off the hot path."""
        cursor = self.stats.cursor
        if cursor <= self._acked:
            return
        if not idle and time.monotonic() - self._last_ack_at < ACK_INTERVAL_S:
            return
        try:
            response = self.client.ack(acks=[{"lane": self.lane, "seq": cursor}])
        except PeerError as exc:
            logger.info("Ack to %s lane %s failed: %s", self.endpoint.name, self.lane, exc.message)
            return
        self.stats.latency_ms = response.latency_ms
        self._acked = cursor
        self._last_ack_at = time.monotonic()


@dataclass
class PeerLink:
    """A peer's client, breaker and lane pullers."""

    peer_id: int
    endpoint: PeerEndpoint
    client: PeerClient
    breaker: CircuitBreaker
    stop: threading.Event
    pullers: dict[int, LanePuller] = field(default_factory=dict)

    def shutdown(self) -> None:
        self.stop.set()
        for puller in self.pullers.values():
            puller.nudge()
        self.client.close()  # interrupts the long-polls in flight


def peer_endpoints(*, names: list[str] | None = None) -> dict[int, PeerEndpoint]:
    """The enabled peers, by Peer.pk, with their secrets decrypted."""
    queryset = Peer.objects.filter(enabled=True).order_by("name")
    if names:
        queryset = queryset.filter(name__in=names)
    endpoints: dict[int, PeerEndpoint] = {}
    for peer in queryset:
        try:
            endpoints[peer.pk] = PeerEndpoint(
                name=peer.name, url=peer.url, key_id=peer.key_id, secret=peer.secret
            )
        except PeerSecretUnreadable:
            logger.error("Skipping peer %s: its secret cannot be decrypted on this node", peer.name)
    return endpoints


class SyncWorker:
    """Runs and supervises every puller of this node."""

    def __init__(
        self,
        *,
        config: PullConfig | None = None,
        peers: list[str] | None = None,
        lanes: list[int] | None = None,
        refresh_s: float = 10.0,
        publish_s: float = 1.0,
        breaker_threshold: int = 5,
    ) -> None:
        self.config = config or PullConfig()
        self.peer_names = peers
        self.lanes = lanes
        self.refresh_s = refresh_s
        self.publish_s = publish_s
        self.breaker_threshold = breaker_threshold
        self.stop_event = threading.Event()
        self.links: dict[int, PeerLink] = {}
        self.retired: list[PeerLink] = []  # shut down on a peer edit; closed again once idle
        self.started_at = time.time()
        self._force_seen: Any = None
        self._refreshed_at = 0.0
        self.gate = LaneGate()

    def run(self) -> None:
        """Block until stop(): supervise pullers, publish state, honour force requests."""
        self._force_seen = cache.get(force_key())
        try:
            while not self.stop_event.is_set():
                if time.monotonic() - self._refreshed_at >= self.refresh_s:
                    self.refresh()
                self.publish()
                self._force_check()
                self.stop_event.wait(self.publish_s)
        finally:
            self.shutdown()

    def stop(self) -> None:
        self.stop_event.set()

    def refresh(self) -> None:
        """Start pullers for new peers or lanes; restart those whose peer was edited or disabled."""
        self._refreshed_at = time.monotonic()
        try:
            endpoints = peer_endpoints(names=self.peer_names)
            lanes = self.lanes if self.lanes is not None else list(data_plane.lanes())
        finally:
            connections.close_all()
        for peer_id, link in list(self.links.items()):
            if endpoints.get(peer_id) != link.endpoint:
                logger.info("Peer %s changed or was disabled: stopping its pullers", link.endpoint.name)
                link.shutdown()
                self.retired.append(self.links.pop(peer_id))
        self._reap_retired()
        for peer_id, endpoint in endpoints.items():
            existing = self.links.get(peer_id)
            if existing is not None:
                link = existing
            else:
                link = self.links[peer_id] = PeerLink(
                    peer_id=peer_id,
                    endpoint=endpoint,
                    client=PeerClient(endpoint, max_connections=2 * len(lanes) + 4),
                    breaker=CircuitBreaker(failure_threshold=self.breaker_threshold),
                    stop=threading.Event(),
                )
            for lane in lanes:
                puller = link.pullers.get(lane)
                if puller is None or not puller.is_alive():
                    puller = LanePuller(
                        peer_id=peer_id,
                        endpoint=endpoint,
                        lane=lane,
                        client=link.client,
                        breaker=link.breaker,
                        config=self.config,
                        stop=_either(self.stop_event, link.stop),
                        gate=self.gate,
                    )
                    link.pullers[lane] = puller
                    puller.start()

    def state(self) -> dict[str, Any]:
        links = {}
        for link in self.links.values():
            for lane, puller in link.pullers.items():
                snapshot = puller.stats.snapshot()
                snapshot["breaker"] = link.breaker.state.value
                snapshot["alive"] = puller.is_alive()
                links[f"{link.endpoint.name}/{lane}"] = snapshot
        return {
            "node": current_node_id(),
            "pid": os.getpid(),
            "startedAt": self.started_at,
            "updatedAt": time.time(),
            "links": links,
        }

    def publish(self) -> None:
        try:
            cache.set(worker_state_key(), self.state(), timeout=max(30, int(self.publish_s * 10)))
        except Exception:
            logger.warning("Could not publish the sync worker state", exc_info=True)

    def shutdown(self) -> None:
        """Stop every puller. A batch being applied is finished (its transaction commits or rolls
        back); a puller waiting on a long-poll is not waited for: its session is closed here and
        the page it may still receive is pulled again from the cursor by the next run."""
        self.stop_event.set()
        links = [*self.links.values(), *self.retired]
        for link in links:
            link.shutdown()
        pullers = [p for link in links for p in link.pullers.values()]
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for puller in pullers:
            puller.join(timeout=max(0.05, deadline - time.monotonic()))
        apply_deadline = time.monotonic() + SHUTDOWN_APPLY_S
        for puller in pullers:
            while puller.is_alive() and puller.applying and time.monotonic() < apply_deadline:
                puller.join(timeout=0.1)
            if puller.is_alive():
                puller.abandon()
        for link in links:
            link.client.close()
        # A prefetch that passed the client's closed check just before a close has its connection
        # closed by the next one: wait for them, then close once more.
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for puller in pullers:
            puller.prefetches_join(timeout=max(0.0, deadline - time.monotonic()))
        for link in links:
            link.client.close()
        connections.close_all()
        try:
            cache.delete(worker_state_key())
        except Exception:
            logger.warning("Could not clear the sync worker state", exc_info=True)

    def _reap_retired(self) -> None:
        for link in list(self.retired):
            if not any(puller.is_alive() or puller.prefetching() for puller in link.pullers.values()):
                link.client.close()
                self.retired.remove(link)

    def _force_check(self) -> None:
        try:
            value = cache.get(force_key())
        except Exception:
            return
        if value == self._force_seen:
            return
        self._force_seen = value
        logger.info("Forced sync cycle requested")
        for link in self.links.values():
            link.breaker.reset()
            for puller in link.pullers.values():
                puller.nudge()


class _EitherEvent(threading.Event):
    """Set when either of two events is set (a puller stops with its peer or with the worker)."""

    def __init__(self, first: threading.Event, second: threading.Event) -> None:
        super().__init__()
        self._events = (first, second)

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._events)


def _either(first: threading.Event, second: threading.Event) -> threading.Event:
    return _EitherEvent(first, second)


def sync_worker_settings() -> PullConfig:
    """Batch size and long-poll wait from settings."""
    return PullConfig(
        limit=int(getattr(settings, "HAUNT_SYNC_BATCH_ROWS", 5000)),
        wait_s=float(getattr(settings, "HAUNT_SYNC_LONG_POLL_S", 20.0)),
    )


# --- Periodic jobs (Celery beat: apps.sync.tasks) --------------------------------------------

RECONCILE_BUCKETS = 256
RECONCILE_MAX_IDS = 20_000  # per entity and round; more differences wait for the next round
RECONCILE_CHUNK = 500


def _backlog_percent(progress: Any, lane: int) -> float | None:
    if not isinstance(progress, dict):
        return None
    per_lane = progress.get("lanes", progress)
    value = per_lane.get(str(lane), per_lane.get(lane)) if isinstance(per_lane, dict) else None
    if isinstance(value, dict):
        value = value.get("percent")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def metrics_collect(*, now: Any = None) -> int:
    """Store a NodeMetric sample per (peer, lane) from the worker's live state; returns samples."""
    from apps.sync.models import NodeMetric
    from apps.sync.selectors import link_states, queue_summary

    now = now or timezone.now()
    peers = list(Peer.objects.filter(enabled=True))
    depth = {lane["lane"]: lane["depth"] for lane in queue_summary(limit=0)["lanes"]}
    progress: dict[str, Any] = {}
    samples = []
    for link in link_states(peers=peers):
        peer = next(p for p in peers if p.name == link["peer"])
        if peer.name not in progress:
            try:
                progress[peer.name] = data_plane.backlog_progress(peer=peer.name)
            except NotImplementedError:
                progress[peer.name] = None
        reasons = [
            reason
            for flag, reason in (
                (link["quarantined"], "clock drift quarantine"),
                (link["breaker"] in ("open", "half_open"), f"breaker {link['breaker']}"),
                (not link["running"], "not pulling"),
                (link["stale"] and link["running"], "stale"),
            )
            if flag
        ]
        samples.append(
            NodeMetric(
                sampled_at=now,
                peer=peer,
                lane=link["lane"],
                cursor=link["cursor"],
                head=link["head"],
                lag_seconds=link["lagSeconds"],
                rows_per_second=link["rowsPerSecond"] or 0.0,
                batch_p99_ms=link["batchP99Ms"],
                latency_ms=link["latencyMs"],
                breaker_state=link["breaker"],
                clock_offset_ms=link["clockOffsetMs"],
                queue_depth=depth.get(link["lane"], 0),
                backlog_percent=_backlog_percent(progress[peer.name], link["lane"]),
                healthy=not reasons,
                reason=", ".join(reasons)[:200],
            )
        )
    NodeMetric.objects.bulk_create(samples)
    return len(samples)


@dataclass
class ReconcileResult:
    peer: str
    entities: int = 0
    buckets_differing: int = 0
    rows_repaired: int = 0
    error: str = ""


def reconcile_peer(
    *, peer: Peer, entities: list[str] | None = None, client: PeerClient | None = None
) -> ReconcileResult:
    """Compare bucket checksums of every entity with one peer and pull the rows that differ.

    Repairs go through repair_apply (the entity's strategy decides; cursors do not move). Rows
    this node has and the peer lacks are repaired by the peer's own round against this node.
    """
    from apps.sync.selectors import replicated_models

    result = ReconcileResult(peer=peer.name)
    session = SyncSession.objects.create(peer=peer, kind=SyncSession.Kind.RECONCILE)
    own_client = client is None
    endpoint = PeerEndpoint(name=peer.name, url=peer.url, key_id=peer.key_id, secret=peer.secret)
    client = client or PeerClient(endpoint)
    try:
        for entity in entities or sorted(replicated_models()):
            result.entities += 1
            local = list(data_plane.bucket_checksums(entity=entity, buckets=RECONCILE_BUCKETS))
            remote = list(client.buckets(entity=entity, buckets=RECONCILE_BUCKETS).body["buckets"])
            differing = [i for i, (a, b) in enumerate(zip(local, remote, strict=False)) if a != b]
            result.buckets_differing += len(differing)
            ids: list[str] = []
            for bucket in differing:
                local_rows = data_plane.bucket_rows(entity=entity, bucket=bucket, buckets=RECONCILE_BUCKETS)
                mine = {str(r[0]): list(r[1:]) for r in local_rows}
                body = client.bucket_rows(entity=entity, bucket=bucket, buckets=RECONCILE_BUCKETS).body
                ids.extend(str(r[0]) for r in body["rows"] if mine.get(str(r[0])) != list(r[1:]))
                if len(ids) >= RECONCILE_MAX_IDS:
                    break
            for start in range(0, min(len(ids), RECONCILE_MAX_IDS), RECONCILE_CHUNK):
                page = client.rows_export(entity=entity, ids=ids[start : start + RECONCILE_CHUNK]).body
                data_plane.page_verify(page)
                data_plane.repair_apply(peer=peer.name, page=page)
                result.rows_repaired += len(page.get("rows", []))
    except (PeerError, NotImplementedError) as exc:
        result.error = str(getattr(exc, "message", exc))
    except ChecksumMismatch as exc:
        result.error = f"Checksum mismatch: {exc}"
    finally:
        if own_client:
            client.close()
        session.rows = result.rows_repaired
        session.batches = result.buckets_differing
        session.finished_at = timezone.now()
        session.outcome = SyncSession.Outcome.ERROR if result.error else SyncSession.Outcome.OK
        session.error = result.error[:2000]
        session.save()
    return result


def reconcile_run(*, peers: list[str] | None = None) -> list[ReconcileResult]:
    """One anti-entropy round with every enabled peer (or the named ones)."""
    queryset = Peer.objects.filter(enabled=True).order_by("name")
    if peers:
        queryset = queryset.filter(name__in=peers)
    return [reconcile_peer(peer=peer) for peer in queryset]


def sync_cleanup(*, now: Any = None) -> dict[str, int]:
    """Tombstones every enabled peer acknowledged; settled conflicts and dead letters past retention
    (queue_cleanup); this node's old sessions and metric samples."""
    from apps.sync.models import NodeMetric, PeerAck
    from apps.sync.selectors import lanes_known

    now = now or timezone.now()
    peers = list(Peer.objects.filter(enabled=True))
    acked: dict[str, dict[int, int]] = {peer.name: dict.fromkeys(lanes_known(), 0) for peer in peers}
    for ack in PeerAck.objects.filter(peer__in=peers).select_related("peer"):
        acked[ack.peer.name][ack.lane] = ack.seq
    counts = {"tombstones": 0, "queue": 0}
    try:
        counts["tombstones"] = int(data_plane.tombstones_purge(acked=acked))
        counts["queue"] = int(data_plane.queue_cleanup(now=now))
    except NotImplementedError as exc:
        logger.info("Sync cleanup skipped a data-plane step: %s", exc)
    session_days = int(getattr(settings, "HAUNT_SYNC_SESSION_RETENTION_DAYS", 30))
    metric_hours = int(getattr(settings, "HAUNT_SYNC_METRIC_RETENTION_HOURS", 48))
    counts["sessions"] = SyncSession.objects.filter(
        finished_at__lt=now - timedelta(days=session_days)
    ).delete()[0]
    counts["metrics"] = NodeMetric.objects.filter(
        sampled_at__lt=now - timedelta(hours=metric_hours)
    ).delete()[0]
    return counts
