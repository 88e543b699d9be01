"""Replay recorded exchange traffic as if it were live, and record live traffic for replay.

Capture format (cryptofeed's raw-data format, see tests/fixtures/feeds/README.md), one line each:
    URL <-> ts           a connection opened (skipped on replay)
    URL <- ts: frame     a frame the client sent (skipped on replay)
    ts: frame            a frame received; binary frames as a Python bytes literal (HTX gzip)
ts is epoch seconds. Other lines (`URL -> ts: body`, `configuration: ...`) are skipped.

Timestamps: a replayed frame is parsed with its recorded receive time, then every tick is shifted
by (now - recorded receive time): received_ts becomes now and exchange_ts keeps its recorded
distance to it. Aggregation's 30 s staleness rule is keyed on exchange_ts, so unshifted 2021
captures would all be dropped as stale. Frames that were already stale when recorded stay stale
(Coinbase's subscribe-time ticker carries the last trade's time, up to 107 s old in
COINBASE.ws.28.0), just as they would be live.
"""

from __future__ import annotations

import ast
import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from apps.markets.feeds.supervisor import BaseSupervisor, FrameHandler, OnTicks, now_ms
from apps.markets.feeds.types import FeedAdapter, Tick

_RECEIVED = re.compile(r"(\d+(?:\.\d+)?): (.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    ts: float  # recorded receive time, epoch seconds
    frame: str | bytes


def parse_capture_line(line: str) -> CapturedFrame | None:
    """A received frame from one capture line, or None for any other line."""
    match = _RECEIVED.fullmatch(line.rstrip("\r\n"))
    if match is None:
        return None
    ts, payload = match.groups()
    return CapturedFrame(ts=float(ts), frame=_decode_payload(payload))


def _decode_payload(payload: str) -> str | bytes:
    if payload.startswith(("b'", 'b"')):
        try:
            value = ast.literal_eval(payload)
        except (ValueError, SyntaxError):
            return payload
        if isinstance(value, bytes):
            return value
    return payload


def read_capture(path: Path | str) -> list[CapturedFrame]:
    """Every received frame of a capture file, in order."""
    with open(path, encoding="utf-8") as file:
        return [frame for line in file if (frame := parse_capture_line(line)) is not None]


def format_frame(frame: str | bytes) -> str:
    """A frame as it appears in a capture line.

    Text loses raw CR/LF (turned into spaces): a line holds one frame, and in JSON a raw newline
    can only be whitespace between tokens, so the meaning is kept.
    """
    if isinstance(frame, bytes):
        return repr(frame)
    return frame.replace("\r", " ").replace("\n", " ")


class FrameRecorder:
    """Append traffic to a capture file that read_capture() and ReplaySupervisor play back.

    Appends, so a restarted recording extends the file (replay caps the gap with max_gap).
    Line-buffered synchronous writes: small enough not to stall the event loop.
    """

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 -- closed in close()

    def connected(self, url: str) -> None:
        self._write(f"{url} <-> {self._clock()!r}")

    def sent(self, url: str, frame: str | bytes) -> None:
        self._write(f"{url} <- {self._clock()!r}: {format_frame(frame)}")

    def received(self, frame: str | bytes, ts: float | None = None) -> None:
        stamp = self._clock() if ts is None else ts
        self._write(f"{stamp!r}: {format_frame(frame)}")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FrameRecorder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write(self, line: str) -> None:
        self._file.write(line + "\n")


def shift_tick(tick: Tick, shift_ms: int) -> Tick:
    """The tick moved in time by shift_ms, both timestamps alike."""
    return replace(tick, exchange_ts=tick.exchange_ts + shift_ms, received_ts=tick.received_ts + shift_ms)


class ReplaySupervisor(BaseSupervisor):
    """Plays a capture through an adapter, delivering ticks as if live (see the module docstring).

    speed 1.0 follows the recorded timing, 2.0 twice as fast, 0 as fast as possible. Gaps longer
    than max_gap (recorded) seconds are shortened to it, e.g. between two appended recordings.
    """

    def __init__(
        self,
        adapter: FeedAdapter,
        frames: Sequence[CapturedFrame],
        on_ticks: OnTicks,
        *,
        speed: float = 1.0,
        loop: bool = True,
        max_gap: float = 5.0,
        instruments: Collection[str] | None = None,
        capture: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = now_ms,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__()
        self.adapter = adapter
        self.frames = list(frames)
        self.handler = FrameHandler(adapter, on_ticks)
        self.speed = speed
        self.loop = loop
        self.max_gap = max_gap
        self.instruments = set(instruments) if instruments is not None else None
        self.capture = capture
        self._clock = clock
        self._wall_ms = wall_ms
        self._sleep = sleep
        self.passes = 0
        self._position = 0
        self._running = False
        self._started_ms: int | None = None
        self._last_message_ms: int | None = None

    @classmethod
    def from_file(
        cls, adapter: FeedAdapter, path: Path | str, on_ticks: OnTicks, **options: Any
    ) -> ReplaySupervisor:
        """A replay of a capture file."""
        return cls(adapter, read_capture(path), on_ticks, capture=str(path), **options)

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe state, shaped like FeedSupervisor.snapshot()."""
        return {
            "source": self.adapter.slug,
            "mode": "replay",
            "capture": self.capture,
            "speed": self.speed,
            "instruments": sorted(self.instruments) if self.instruments is not None else None,
            "state": "healthy" if self._running else "down",
            "connected": self._running,
            "connected_since": self._started_ms,
            "last_message_at": self._last_message_ms,
            "last_error": None,
            "last_frame_error": self.handler.last_frame_error,
            "passes": self.passes,
            "position": self._position,
            "frames_in_capture": len(self.frames),
            "counters": asdict(self.handler.counters),
        }

    async def _main(self) -> None:
        self._running = bool(self.frames)
        self._started_ms = self._wall_ms()
        try:
            while self._running:
                await self._play_once()
                self.passes += 1
                self._running = self.loop
        finally:
            self._running = False

    async def _play_once(self) -> None:
        started = self._clock()
        elapsed = 0.0  # recorded seconds since the first frame, gaps capped at max_gap
        previous = self.frames[0].ts
        for position, captured in enumerate(self.frames):
            self._position = position
            elapsed += min(max(captured.ts - previous, 0.0), self.max_gap)
            previous = captured.ts
            await self._wait_until(started, elapsed)
            await self._replay(captured)

    async def _wait_until(self, started: float, elapsed: float) -> None:
        # Pace from the pass start, not frame to frame, so sleep overshoot doesn't accumulate.
        delay = 0.0 if self.speed <= 0 else started + elapsed / self.speed - self._clock()
        await self._sleep(max(delay, 0.0))  # sleep(0) still yields, so stop() gets through

    async def _replay(self, captured: CapturedFrame) -> None:
        recorded_ms = round(captured.ts * 1000)
        result = self.handler.parse(captured.frame, recorded_ms)
        now = self._wall_ms()
        self._last_message_ms = now
        ticks = [
            shift_tick(tick, now - recorded_ms)
            for tick in result.ticks
            if self.instruments is None or tick.instrument in self.instruments
        ]
        await self.handler.deliver(ticks)
