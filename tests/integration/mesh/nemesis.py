"""A fault-injecting TCP proxy: one listener per directed link A->B of the mesh.

Node A's Peer row for B points at the A->B listener, so everything A's worker sends to B (and
B's answers) crosses it. Each link has a mode, changed at any time from the test thread:

- pass: forward bytes both ways;
- blackhole: accept connections but forward nothing, in either direction (a partition: the
  client waits for its timeout); connections that saw the blackhole are reset when healed, so
  a half-delivered HTTP exchange never resumes;
- reset: close every connection at once with RST, and every new one as it arrives;
- delay: forward after `delay_ms` (+ up to `jitter_ms`), keeping byte order.

The proxy runs its own asyncio loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

PASS, BLACKHOLE, RESET, DELAY = "pass", "blackhole", "reset", "delay"


@dataclass
class Link:
    source: str
    target: str
    target_port: int
    port: int = 0
    mode: str = PASS
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    connections: set[_Connection] = field(default_factory=set)
    bytes_forwarded: int = 0
    accepted: int = 0

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"


class _Connection:
    def __init__(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.link = link
        self.client_reader, self.client_writer = reader, writer
        self.server_writer: asyncio.StreamWriter | None = None
        self.doomed = False  # saw a blackhole: reset instead of resuming
        self.closed = False

    def abort(self) -> None:
        """Close both sides with RST (SO_LINGER 0), not a graceful FIN."""
        if self.closed:
            return
        self.closed = True
        for writer in (self.client_writer, self.server_writer):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self.link.connections.discard(self)

    async def run(self) -> None:
        link = self.link
        try:
            server_reader, self.server_writer = await asyncio.open_connection("127.0.0.1", link.target_port)
        except OSError:
            self.abort()
            return
        if self.closed:  # reset while connecting
            self.server_writer.transport.abort()
            return
        await asyncio.gather(
            self._pump(self.client_reader, self.server_writer),
            self._pump(server_reader, self.client_writer),
            return_exceptions=True,
        )
        self.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = self.link
        while not self.closed:
            try:
                chunk = await reader.read(65536)
            except (OSError, asyncio.IncompleteReadError):
                break
            if not chunk:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                break
            if link.mode == BLACKHOLE or self.doomed:
                self.doomed = True
                continue  # swallowed: the peer waits for an answer that never comes
            if link.mode == RESET:
                break
            if link.mode == DELAY and (link.delay_ms or link.jitter_ms):
                # Sleeping here keeps order: the next chunk is read only after this one went out.
                await asyncio.sleep((link.delay_ms + random.uniform(0, link.jitter_ms)) / 1000)
            try:
                writer.write(chunk)
                await writer.drain()
            except OSError:
                break
            link.bytes_forwarded += len(chunk)
        self.abort()


class Nemesis:
    """The proxy: `add_link(a, b, port_of_b)` returns the port a must use to reach b."""

    def __init__(self) -> None:
        self.links: dict[tuple[str, str], Link] = {}
        self.timeline: list[tuple[float, str]] = []
        self._loop = asyncio.new_event_loop()
        self._servers: dict[tuple[str, str], asyncio.Server] = {}
        self._thread = threading.Thread(target=self._loop.run_forever, name="nemesis", daemon=True)
        self._thread.start()

    def _call(self, coro_or_fn, *args):  # type: ignore[no-untyped-def]
        if asyncio.iscoroutinefunction(coro_or_fn):
            return asyncio.run_coroutine_threadsafe(coro_or_fn(*args), self._loop).result(10)

        async def wrapper():  # type: ignore[no-untyped-def]
            return coro_or_fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(10)

    def add_link(self, source: str, target: str, target_port: int) -> int:
        link = Link(source, target, target_port)

        async def start() -> int:
            async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                link.accepted += 1
                connection = _Connection(link, reader, writer)
                if link.mode == RESET:
                    connection.abort()
                    return
                link.connections.add(connection)
                await connection.run()

            server = await asyncio.start_server(accept, "127.0.0.1", 0)
            self._servers[(source, target)] = server
            return int(server.sockets[0].getsockname()[1])

        link.port = self._call(start)
        self.links[(source, target)] = link
        return link.port

    def retarget(self, source: str, target: str, target_port: int) -> None:
        """Point a link at a new port (the target restarted elsewhere)."""
        self.links[(source, target)].target_port = target_port

    def set_mode(
        self, links: Iterable[tuple[str, str]], mode: str, *, delay_ms: float = 0, jitter_ms: float = 0
    ) -> None:
        chosen = [self.links[key] for key in links]

        def apply() -> None:
            for link in chosen:
                was = link.mode
                link.mode, link.delay_ms, link.jitter_ms = mode, delay_ms, jitter_ms
                if mode == RESET or (mode == PASS and was == BLACKHOLE):
                    for connection in list(link.connections):
                        connection.abort()
                elif mode == BLACKHOLE:
                    for connection in link.connections:
                        connection.doomed = True

        self._call(apply)
        names = ",".join(link.name for link in chosen)
        extra = f" {delay_ms}ms+{jitter_ms}" if mode == DELAY else ""
        self.timeline.append((time.time(), f"{mode}{extra} {names}"))

    def links_of(self, node: str) -> list[tuple[str, str]]:
        """Every link into or out of a node."""
        return [key for key in self.links if node in key]

    def isolate(self, node: str) -> None:
        self.set_mode(self.links_of(node), BLACKHOLE)

    def heal(self, node: str | None = None) -> None:
        self.set_mode(self.links_of(node) if node else list(self.links), PASS)

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def stop() -> None:
            for server in self._servers.values():
                server.close()
            for link in self.links.values():
                for connection in list(link.connections):
                    connection.abort()

        with contextlib.suppress(Exception):
            self._call(stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
