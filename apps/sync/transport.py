"""The wire between nodes: zstd-compressed JSON bodies, and the
wake-up that lets a long-polling feed request answer as soon as the feed grows."""

from __future__ import annotations

import io
import logging
import threading
import time
from typing import Any

import orjson
import zstandard
from django.conf import settings
from django.core.cache import cache
from django.db import connections, transaction

from apps.sync import services as data_plane
from apps.sync.models import Peer, PeerAck, current_node_id

logger = logging.getLogger(__name__)

ZSTD = "zstd"
ZSTD_LEVEL = 3  # 6.4x on row JSON at ~500 MB/s (research/sync.md §3.5): level 3 is the sweet spot
FEED_CHANNEL = "haunt_sync_feed"


class PayloadInvalid(Exception):
    """A body that cannot be decoded (bad zstd, bad JSON, too large, unknown encoding)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def max_body_bytes() -> int:
    return int(getattr(settings, "HAUNT_SYNC_MAX_BODY_BYTES", 256 * 1024 * 1024))


def json_dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def body_encode(obj: Any) -> bytes:
    """JSON, then zstd level 3 (send with Content-Encoding: zstd)."""
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(json_dumps(obj))


def body_decode(data: bytes, *, content_encoding: str | None) -> Any:
    """The JSON value of a body sent with `content_encoding` (zstd or none)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == ZSTD:
        raw = _zstd_decompress(data)
    elif encoding in ("identity", ""):
        raw = data
    else:
        raise PayloadInvalid("unsupported_encoding", f"Content-Encoding {encoding!r} is not supported.")
    if len(raw) > max_body_bytes():
        raise PayloadInvalid("payload_too_large", "The body is larger than HAUNT_SYNC_MAX_BODY_BYTES.")
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise PayloadInvalid("bad_payload", "The body is not valid JSON.") from None


def _zstd_decompress(data: bytes) -> bytes:
    limit = max_body_bytes()
    try:
        # A stream reader bounded by the limit: a tiny frame cannot expand into gigabytes.
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            raw = reader.read(limit + 1)
    except zstandard.ZstdError:
        raise PayloadInvalid("bad_payload", "The body is not a valid zstd frame.") from None
    if len(raw) > limit:
        raise PayloadInvalid("payload_too_large", "The body is larger than HAUNT_SYNC_MAX_BODY_BYTES.")
    return raw


# --- Long-poll wake-ups ----------------------------------------------------------------------


class FeedNotifier:
    """Wakes waiting feed requests when this node's change feed grows, per lane.

    On PostgreSQL a daemon thread LISTENs on `haunt_sync_feed`; capture NOTIFYs in the writing
    transaction with the lane as payload, so the wake-up arrives at commit and only the waiters of
    that lane look at the feed (a write to one lane used to wake every lane's waiter, and each ran
    a feed read for nothing). A notification without a lane wakes them all. Without LISTEN,
    waiters fall back to polling every HAUNT_SYNC_FEED_POLL_MS.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._all = 0  # bumped by a notification that names no lane
        self._lanes: dict[int, int] = {}
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self.listening = False

    def generation(self, lane: int) -> tuple[int, int]:
        with self._cond:
            return (self._all, self._lanes.get(lane, 0))

    def notify(self, lane: int | None = None) -> None:
        with self._cond:
            if lane is None:
                self._all += 1
            else:
                self._lanes[lane] = self._lanes.get(lane, 0) + 1
            self._cond.notify_all()

    def wait(self, lane: int, generation: tuple[int, int], timeout: float) -> bool:
        """Block until a notify for `lane` (or all lanes) after `generation`, or timeout; True
        when woken."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (self._all, self._lanes.get(lane, 0)) != generation, timeout=max(0.0, timeout)
            )

    def poll_interval_s(self) -> float:
        if self.listening:
            return 1.0  # a safety net only: NOTIFY does the waking
        return int(getattr(settings, "HAUNT_SYNC_FEED_POLL_MS", 50)) / 1000

    def ensure_listening(self) -> None:
        """Start the LISTEN thread once per process (PostgreSQL only)."""
        if connections["default"].vendor != "postgresql":
            return
        with self._cond:
            if self._listener is not None and self._listener.is_alive():
                return
            self._stop.clear()
            self._listener = threading.Thread(
                target=self._listen_forever, name="sync-feed-listen", daemon=True
            )
            self._listener.start()

    def stop_listening(self) -> None:
        """Close the LISTEN connection (before a test database is dropped, at shutdown)."""
        self._stop.set()
        listener = self._listener
        if listener is not None:
            listener.join(timeout=5)
        self._listener = None
        self.listening = False

    def _listen_forever(self) -> None:
        import psycopg

        params = connections["default"].settings_dict
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    dbname=params["NAME"],
                    user=params.get("USER") or None,
                    password=params.get("PASSWORD") or None,
                    host=params.get("HOST") or None,
                    port=params.get("PORT") or None,
                    autocommit=True,
                ) as conn:
                    conn.execute(f"LISTEN {FEED_CHANNEL}")
                    self.listening = True
                    self.notify()  # anything written while we were not listening
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            self.notify(_lane_of(notice.payload))
            except Exception:
                self.listening = False
                logger.warning("Feed LISTEN connection lost; polling until it is back", exc_info=True)
                self._stop.wait(2.0)
        self.listening = False


def _lane_of(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None


feed_notifier = FeedNotifier()


# --- Worker state and force flag, shared through the cache ---------------------------------


def worker_state_key(node: str | None = None) -> str:
    return f"sync:worker:{node or current_node_id()}"


def force_key(node: str | None = None) -> str:
    return f"sync:force:{node or current_node_id()}"


def sync_force_request() -> int:
    """Ask this node's worker for an immediate pull cycle (breakers reset, sleeps cut short)."""
    key = force_key()
    cache.add(key, 0, timeout=None)
    try:
        return int(cache.incr(key))
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=None)
        return 1


# --- Serving the feed ------------------------------------------------------------------------

MAX_WAIT_S = 20.0
FAST_POLL_S = 0.02
FAST_POLL_WINDOW_S = 2.0
ECHO_SKIP_MAX_S = 1.0  # answer an echoes-only page after this, so the caller's cursor still moves


def feed_page_wait(*, lane: int, since: int, limit: int, wait: float, exclude_origin: str | None) -> dict:
    """feed_page(), long-polled: answers at once with rows for the caller, else waits for the
    lane to grow (up to `wait` seconds, at most 20) and answers with what is there then.

    Entries the caller wrote itself (echoes of what it sent) are stepped over while waiting
    rather than answered as an empty page: in a two-node mesh every write comes back that way, and
    answering each would cost the caller a round trip and an empty apply. The page then covers
    `since` to its `next` as usual. Between polls the database connection goes back to the pool:
    a waiting request holds a thread, not one of the pool's connections.
    """
    started = time.monotonic()
    deadline = started + min(max(wait, 0.0), MAX_WAIT_S)
    if wait > 0:
        feed_notifier.ensure_listening()
    fast_until = 0.0
    scan_from = since
    while True:
        generation = feed_notifier.generation(lane)
        page: dict = data_plane.feed_page(
            lane=lane, since=scan_from, limit=limit, exclude_origin=exclude_origin
        )
        now = time.monotonic()
        remaining = deadline - now
        moved = int(page.get("next", scan_from)) != scan_from
        if page.get("rows") or remaining <= 0 or (moved and now - started >= ECHO_SKIP_MAX_S):
            return page if scan_from == since else data_plane.page_rebase(page, since=since)
        if moved:
            scan_from = int(page["next"])
            continue  # only echoes so far: look further at once
        connection = connections["default"]
        if not connection.in_atomic_block:
            connection.close()
        # Woken for this lane, yet nothing readable: the entry is still locked by its writer
        # (a coalescing update). Look again soon rather than in a second.
        interval = FAST_POLL_S if now < fast_until else feed_notifier.poll_interval_s()
        if feed_notifier.wait(lane, generation, min(remaining, interval)):
            fast_until = time.monotonic() + FAST_POLL_WINDOW_S


def peer_ack_record(*, peer: Peer, acks: list[dict[str, int]]) -> int:
    """Remember the highest seq per lane the peer has applied; acks never move backwards.

    Returns how many lanes moved forward.
    """
    moved = 0
    with transaction.atomic():
        for ack in acks:
            lane, seq = int(ack["lane"]), int(ack["seq"])
            row, created = PeerAck.objects.select_for_update().get_or_create(
                peer=peer, lane=lane, defaults={"seq": seq}
            )
            if created:
                moved += 1
            elif seq > row.seq:
                row.seq = seq
                row.save(update_fields=["seq", "updated_at"])
                moved += 1
    return moved
