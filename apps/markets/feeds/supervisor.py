"""Run one exchange WebSocket: connect, subscribe, keep alive, parse, reconnect.

`FeedSupervisor` owns the socket; the adapter only knows the protocol (see `types.py`).

Health rules (`FeedSupervisor.state()`):
- "down": not started or stopped; never connected yet; `down_after_failures` consecutive failed
  connects (a connection that closes or idles out before its first frame counts as failed); or
  disconnected for `down_after` seconds.
- "degraded": reconnecting after a connection that delivered frames (before the "down" limits), or
  connected while more than `max_error_ratio` of the last `error_window` frames were errors.
- "healthy": connected otherwise.

Backoff: exponential with full jitter, `uniform(0, min(cap, base * 2**attempt))`, at least `floor`.
The attempt count resets once a connection stayed open for `reset_after` seconds and delivered
frames, so a feed that flaps (opens, then drops within seconds) keeps backing off instead of
redialling in a tight loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from apps.markets.feeds.types import FeedAdapter, FrameStatus, ParseResult, Tick

if TYPE_CHECKING:
    from apps.markets.feeds.replay import FrameRecorder

logger = logging.getLogger(__name__)

HealthState = Literal["healthy", "degraded", "down"]
OnTicks = Callable[[list[Tick]], Awaitable[None]]


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (the unit of Tick timestamps)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: exponential growth, full jitter, a cap and a floor."""

    base: float = 1.0
    cap: float = 30.0
    floor: float = 0.25  # full jitter can draw ~0; never redial in a tight loop
    reset_after: float = 60.0  # a connection open this long, with frames, resets the attempts

    def ceiling(self, attempt: int) -> float:
        """The largest delay for this attempt (0-based)."""
        return min(self.cap, self.base * 2 ** min(attempt, 32))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A jittered delay for this attempt."""
        return max(self.floor, rng.uniform(0.0, self.ceiling(attempt)))


@dataclass(frozen=True, slots=True)
class HealthRules:
    """Thresholds for the health state; see the module docstring."""

    down_after_failures: int = 3
    down_after: float = 60.0
    error_window: int = 100
    max_error_ratio: float = 0.5
    min_error_samples: int = 20  # don't call a feed degraded on its first couple of frames


@dataclass(slots=True)
class FrameCounters:
    frames: int = 0
    ticks: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(get_args(FrameStatus), 0))
    callback_errors: int = 0


@dataclass(slots=True)
class LinkCounters:
    connects: int = 0
    reconnects: int = 0  # successful connects after the first
    disconnects: int = 0
    connect_failures: int = 0  # dials that never opened (refused, DNS, TLS, handshake, timeout)
    idle_timeouts: int = 0
    pings_sent: int = 0
    replies_sent: int = 0


class FrameHandler:
    """Parse, count and deliver frames; shared by the live and the replay supervisor."""

    def __init__(self, adapter: FeedAdapter, on_ticks: OnTicks) -> None:
        self.adapter = adapter
        self.on_ticks = on_ticks
        self.counters = FrameCounters()
        self.last_frame_error: str | None = None

    def parse(self, frame: str | bytes, received_ts: int) -> ParseResult:
        """adapter.parse, counted; an adapter that raises anyway yields an error result."""
        try:
            result = self.adapter.parse(frame, received_ts)
        except Exception as exc:  # the contract says never, but one bug must not end the feed
            logger.exception("%s: parse raised", self.adapter.slug)
            result = ParseResult(status="error", error=f"parse raised {type(exc).__name__}: {exc}")
        self.counters.frames += 1
        self.counters.by_status[result.status] = self.counters.by_status.get(result.status, 0) + 1
        if result.status == "error":
            self.last_frame_error = result.error
        return result

    async def deliver(self, ticks: list[Tick]) -> None:
        """Hand ticks to the callback; a failing callback is logged and counted, not raised."""
        if not ticks:
            return
        self.counters.ticks += len(ticks)
        try:
            await self.on_ticks(ticks)
        except Exception:
            self.counters.callback_errors += 1
            logger.exception("%s: on_ticks failed for %d tick(s)", self.adapter.slug, len(ticks))


class BaseSupervisor(ABC):
    """What a feed runner needs: run() until stop(), and a JSON-safe snapshot()."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def run(self) -> None:
        """Work until stop() is called; returns quietly after stop()."""
        if self._task is not None:
            raise RuntimeError("run() was already called")
        if self._stopping:
            return
        # An inner task lets stop() cancel our work without cancelling whoever awaits run().
        self._task = asyncio.create_task(self._main())
        try:
            await self._task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # our caller is being cancelled, not just stop()

    async def stop(self) -> None:
        """Cancel the work and wait for its cleanup (socket closed)."""
        self._stopping = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    @abstractmethod
    async def _main(self) -> None: ...

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """JSON-safe state for health endpoints and logs."""


class FeedSupervisor(BaseSupervisor):
    """One live WebSocket source for an adapter and its instruments.

    on_ticks is awaited inline, so a slow callback slows reading (the socket buffers meanwhile);
    the idle watchdog only times the wait for the next frame.
    """

    def __init__(
        self,
        adapter: FeedAdapter,
        instruments: Sequence[str],
        on_ticks: OnTicks,
        *,
        backoff: Backoff | None = None,
        health: HealthRules | None = None,
        idle_timeout: float | None = None,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        max_size: int = 2**24,
        recorder: FrameRecorder | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = now_ms,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__()
        self.adapter = adapter
        self.instruments = list(instruments)
        self.handler = FrameHandler(adapter, on_ticks)
        self.link = LinkCounters()
        self.backoff = backoff or Backoff()
        self.health = health or HealthRules()
        self.idle_timeout = idle_timeout if idle_timeout is not None else adapter.idle_timeout
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._max_size = max_size
        self._recorder = recorder
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not cryptography
        self._clock = clock
        self._wall_ms = wall_ms
        self._sleep = sleep

        self._connected = False
        self._url: str | None = None
        self._connected_since_ms: int | None = None
        self._disconnected_at: float | None = None
        self._frames_this_connection = 0
        self._consecutive_failures = 0
        self._backoff_attempt = 0
        self._last_backoff: float | None = None
        self._last_error: str | None = None
        self._last_message_ms: int | None = None
        self._recent_errors: deque[bool] = deque(maxlen=self.health.error_window)

    # --- state -------------------------------------------------------------------------------

    def state(self) -> HealthState:
        """The health state by the rules in the module docstring."""
        if self._stopping or self.link.connects == 0:
            return "down"
        if self._consecutive_failures >= self.health.down_after_failures:
            return "down"
        if not self._connected and self._disconnected_at is not None:
            disconnected_for = self._clock() - self._disconnected_at
            return "down" if disconnected_for >= self.health.down_after else "degraded"
        if self._error_ratio_exceeded():
            return "degraded"
        return "healthy"

    def _error_ratio_exceeded(self) -> bool:
        samples = len(self._recent_errors)
        if samples < self.health.min_error_samples:
            return False
        return sum(self._recent_errors) / samples > self.health.max_error_ratio

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe state: health, timestamps (epoch ms), last errors and counters."""
        return {
            "source": self.adapter.slug,
            "mode": "live",
            "url": self.adapter.url,  # not connect_url(): KuCoin's carries a token
            "instruments": list(self.instruments),
            "state": self.state(),
            "connected": self._connected,
            "connected_since": self._connected_since_ms,
            "last_message_at": self._last_message_ms,
            "last_error": self._last_error,
            "last_frame_error": self.handler.last_frame_error,
            "consecutive_failures": self._consecutive_failures,
            "backoff_attempt": self._backoff_attempt,
            "last_backoff": self._last_backoff,
            "counters": asdict(self.handler.counters) | asdict(self.link),
        }

    # --- connection loop ---------------------------------------------------------------------

    async def _main(self) -> None:
        while not self._stopping:
            opened_for = await self._session()
            if self._worked_for(opened_for):
                self._backoff_attempt = 0
            delay = self.backoff.delay(self._backoff_attempt, self._rng)
            self._backoff_attempt += 1
            self._last_backoff = delay
            logger.info("%s: reconnecting in %.2f s", self.adapter.slug, delay)
            await self._sleep(delay)

    def _worked_for(self, opened_for: float | None) -> bool:
        # Frames are required too: a silent connection is only cut by the idle watchdog.
        long_enough = opened_for is not None and opened_for >= self.backoff.reset_after
        return long_enough and self._frames_this_connection > 0

    async def _session(self) -> float | None:
        """One connection from dial to close; how long it was open (None: it never opened)."""
        try:
            async with asyncio.timeout(self._open_timeout):  # KuCoin fetches a token over HTTP first
                url = await self.adapter.connect_url()
            ws = await connect(
                url,
                open_timeout=self._open_timeout,
                close_timeout=self._close_timeout,
                max_size=self._max_size,
            )
        except Exception as exc:  # refused, DNS, TLS, handshake, token fetch: all retried alike
            self._on_connect_failed(exc)
            return None
        opened_at = self._clock()
        self._on_open(url)
        try:
            await self._subscribe(ws)
            await self._read_with_pings(ws)
        except ConnectionClosed as exc:
            self._set_error(f"connection closed: {exc}")
        except Exception as exc:  # an adapter bug; the reconnect (with backoff) retries it
            logger.exception("%s: session failed", self.adapter.slug)
            self._set_error(f"{type(exc).__name__}: {exc}")
        finally:
            await ws.close()
            self._on_close()
        return self._clock() - opened_at

    async def _subscribe(self, ws: ClientConnection) -> None:
        for frame in self.adapter.subscribe_frames(self.instruments):
            await self._send(ws, frame)

    async def _read_with_pings(self, ws: ClientConnection) -> None:
        interval = self.adapter.ping_interval
        pinger = asyncio.create_task(self._ping_loop(ws, interval)) if interval else None
        try:
            await self._read(ws)
        finally:
            if pinger is not None:
                pinger.cancel()
                await asyncio.wait([pinger])

    async def _read(self, ws: ClientConnection) -> None:
        """Handle frames until the socket closes or nothing arrives for idle_timeout."""
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    frame = await ws.recv()  # cancelling recv() loses no data
            except TimeoutError:
                self.link.idle_timeouts += 1
                self._set_error(f"no frame for {self.idle_timeout:g} s")
                return
            await self._handle(ws, frame)

    async def _ping_loop(self, ws: ClientConnection, interval: float) -> None:
        try:
            while True:
                await asyncio.sleep(interval)
                frame = self.adapter.ping_frame()
                if frame is None:
                    return
                await self._send(ws, frame)
                self.link.pings_sent += 1
        except ConnectionClosed:
            return  # the read loop sees the close too
        except Exception:
            logger.exception("%s: ping loop failed", self.adapter.slug)

    async def _handle(self, ws: ClientConnection, frame: str | bytes) -> None:
        received_ms = self._wall_ms()
        self._last_message_ms = received_ms
        self._frames_this_connection += 1
        self._consecutive_failures = 0
        if self._recorder is not None:
            self._recorder.received(frame)
        result = self.handler.parse(frame, received_ms)
        self._recent_errors.append(result.status == "error")
        for reply in result.replies:  # e.g. HTX pong: the server drops us if it is late
            await self._send(ws, reply)
            self.link.replies_sent += 1
        await self.handler.deliver(result.ticks)

    async def _send(self, ws: ClientConnection, frame: str) -> None:
        await ws.send(frame)
        if self._recorder is not None and self._url is not None:
            self._recorder.sent(self._url, frame)

    # --- bookkeeping -------------------------------------------------------------------------

    def _on_connect_failed(self, exc: Exception) -> None:
        self.link.connect_failures += 1
        self._consecutive_failures += 1
        self._set_error(f"connect failed: {type(exc).__name__}: {exc}")

    def _on_open(self, url: str) -> None:
        if self.link.connects:
            self.link.reconnects += 1
        self.link.connects += 1
        self._connected = True
        self._url = url
        self._connected_since_ms = self._wall_ms()
        self._frames_this_connection = 0
        self._recent_errors.clear()
        if self._recorder is not None:
            self._recorder.connected(url)
        logger.info("%s: connected to %s", self.adapter.slug, self.adapter.url)

    def _on_close(self) -> None:
        self.link.disconnects += 1
        if self._frames_this_connection == 0:
            self._consecutive_failures += 1  # opened but useless: as bad as a failed dial
        self._connected = False
        self._connected_since_ms = None
        self._disconnected_at = self._clock()

    def _set_error(self, message: str) -> None:
        self._last_error = message
        logger.warning("%s: %s", self.adapter.slug, message)
