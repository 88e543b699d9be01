"""A local fake exchange for feed tests: a real WebSocket server on 127.0.0.1, plus a toy protocol.

The toy protocol (`ToyAdapter`) speaks JSON: `{"op": "subscribe", "args": [...]}` to subscribe,
`{"type": "trade", ...}` for trades, `{"type": "ack"}` for control, `{"ping": n}` from the server
(answered with `{"pong": n}`), and the text "ping"/"pong" for client keepalives.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import TracebackType

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from apps.markets.feeds.types import FeedAdapter, ParseResult, Tick

Frame = str | bytes


@dataclass
class FakeConnection:
    """One client connection as the fake saw it."""

    received: list[Frame] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # first message, or the end
    closed: bool = False
    frames_sent: int = 0


class FakeExchange:
    """Replays `frames` to each client after its first (subscribe) message and records what it sent.

    Behaviour is read per connection, so a test can change it between connections:
    drop_after (close after N frames; 0 = right after subscribing), silent (send nothing, not even
    replies), replies (exact text -> answer, e.g. {"ping": "pong"}), ping_every (send
    {"ping": n} every so many seconds), frame_interval (pause between frames).
    """

    def __init__(
        self,
        frames: Sequence[Frame] = (),
        *,
        wait_for_subscribe: bool = True,
        drop_after: int | None = None,
        silent: bool = False,
        replies: Mapping[str, str] | None = None,
        ping_every: float | None = None,
        frame_interval: float = 0.0,
    ) -> None:
        self.frames = list(frames)
        self.wait_for_subscribe = wait_for_subscribe
        self.drop_after = drop_after
        self.silent = silent
        self.replies = dict(replies or {})
        self.ping_every = ping_every
        self.frame_interval = frame_interval
        self.connections: list[FakeConnection] = []
        self.pings_sent = 0
        self.port = 0
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def received(self) -> list[Frame]:
        """Everything every client sent, in connection order."""
        return [message for conn in self.connections for message in conn.received]

    async def start(self) -> None:
        """Listen (again) on 127.0.0.1; the first start picks a free port, restarts reuse it."""
        self._server = await serve(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection (1001 going away) and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeExchange:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _handle(self, ws: ServerConnection) -> None:
        conn = FakeConnection()
        self.connections.append(conn)
        reader = asyncio.create_task(self._read(ws, conn))
        pinger: asyncio.Task[None] | None = None
        try:
            if self.wait_for_subscribe:
                await conn.ready.wait()
            if not self.silent:
                if self.ping_every:
                    pinger = asyncio.create_task(self._ping(ws, self.ping_every))
                await self._send_frames(ws, conn)
            await ws.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            conn.closed = True
            for task in (reader, pinger):
                if task is not None:
                    task.cancel()
                    await asyncio.wait([task])

    async def _send_frames(self, ws: ServerConnection, conn: FakeConnection) -> None:
        for frame in self.frames:
            if self.drop_after is not None and conn.frames_sent >= self.drop_after:
                break
            await ws.send(frame)
            conn.frames_sent += 1
            if self.frame_interval:
                await asyncio.sleep(self.frame_interval)
        if self.drop_after is not None:
            await ws.close(1011, "fake exchange drops the connection")

    async def _read(self, ws: ServerConnection, conn: FakeConnection) -> None:
        try:
            async for message in ws:
                conn.received.append(message)
                conn.ready.set()
                reply = self.replies.get(message) if isinstance(message, str) else None
                if reply is not None and not self.silent:
                    await ws.send(reply)
        except ConnectionClosed:
            pass
        finally:
            conn.ready.set()

    async def _ping(self, ws: ServerConnection, every: float) -> None:
        try:
            while True:
                await asyncio.sleep(every)
                self.pings_sent += 1
                await ws.send(json.dumps({"ping": self.pings_sent}))
        except ConnectionClosed:
            pass


# --- the toy protocol ------------------------------------------------------------------------


def trade_frame(instrument: str = "BTC-USD", price: str = "100.5", size: str = "0.1", ts: int = 0) -> str:
    """A toy trade frame; ts defaults to now (ms)."""
    return json.dumps({"type": "trade", "s": instrument, "p": price, "q": size, "T": ts or now_ms()})


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ToyAdapter(FeedAdapter):
    """The fake exchange's protocol (see the module docstring)."""

    slug = "toy"
    default_url = "ws://127.0.0.1:9/ws"  # tests always pass url=

    def subscribe_frames(self, instruments: Sequence[str]) -> list[str]:
        return [json.dumps({"op": "subscribe", "args": list(instruments)})]

    def ping_frame(self) -> str | None:
        return "ping"

    def parse(self, frame: str | bytes, received_ts: int) -> ParseResult:
        if frame in ("pong", b"pong"):
            return ParseResult(status="heartbeat")
        try:
            message = json.loads(frame)
        except ValueError:
            return ParseResult(status="error", error="not JSON")
        if not isinstance(message, dict):
            return ParseResult(status="error", error="not an object")
        if "ping" in message:
            return ParseResult(status="heartbeat", replies=[json.dumps({"pong": message["ping"]})])
        if message.get("type") == "ack":
            return ParseResult(status="control")
        if message.get("type") == "trade":
            return self._trade(message, received_ts)
        return ParseResult(status="error", error="unknown message")

    def _trade(self, message: dict[str, object], received_ts: int) -> ParseResult:
        try:
            base, quote = str(message["s"]).lower().split("-")
            tick = Tick(
                source=self.slug,
                instrument=str(message["s"]),
                base=base,
                quote=quote,
                price=Decimal(str(message["p"])),
                size=Decimal(str(message["q"])),
                kind="trade",
                exchange_ts=int(str(message["T"])),
                received_ts=received_ts,
            )
        except (KeyError, ValueError, InvalidOperation) as exc:
            return ParseResult(status="error", error=f"bad trade: {exc!r}")
        return ParseResult(status="data", ticks=[tick])


class PingingToyAdapter(ToyAdapter):
    """Sends "ping" every 50 ms, like OKX's text keepalive."""

    ping_interval = 0.05


async def eventually(predicate: Callable[[], bool], timeout: float = 1.5, what: str = "condition") -> None:
    """Wait until predicate() holds, polling every 10 ms."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
