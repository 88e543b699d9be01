"""The nemesis proxy itself, against a tiny echo server (no database, milliseconds)."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration.mesh.nemesis import BLACKHOLE, DELAY, PASS, RESET, Nemesis


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def proxied_port() -> Iterator[tuple[Nemesis, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    nemesis = Nemesis()
    port = nemesis.add_link("a", "b", server.server_address[1])
    yield nemesis, port
    nemesis.close()
    server.shutdown()
    server.server_close()


def _is_dead(sock: socket.socket) -> bool:
    """The connection was closed or reset by the proxy."""
    try:
        sock.sendall(b"?")
        return sock.recv(16) == b""
    except OSError:
        return True


def _roundtrip(port: int, payload: bytes = b"ping", timeout: float = 1.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(4096)


def test_pass_forwards_both_ways(proxied_port):
    nemesis, port = proxied_port
    assert _roundtrip(port, b"hello") == b"hello"
    time.sleep(0.05)
    assert nemesis.links[("a", "b")].bytes_forwarded == 10


def test_blackhole_swallows_until_healed_then_resets_the_stale_connection(proxied_port):
    nemesis, port = proxied_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    sock.sendall(b"one")
    assert sock.recv(16) == b"one"
    nemesis.set_mode([("a", "b")], BLACKHOLE)
    sock.sendall(b"two")
    with pytest.raises(TimeoutError):
        sock.recv(16)
    nemesis.set_mode([("a", "b")], PASS)
    time.sleep(0.1)
    assert _is_dead(sock)  # never a late "two"
    sock.close()
    assert _roundtrip(port) == b"ping"  # a new connection works again


def test_reset_refuses_new_connections_and_closes_open_ones(proxied_port):
    nemesis, port = proxied_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=1)
    sock.sendall(b"x")
    assert sock.recv(4) == b"x"
    nemesis.set_mode([("a", "b")], RESET)
    time.sleep(0.05)
    assert _is_dead(sock)
    sock.close()
    with socket.create_connection(("127.0.0.1", port), timeout=1) as fresh:
        assert _is_dead(fresh)
    assert nemesis.timeline[-1][1] == "reset a->b"


def test_delay_adds_latency_each_way(proxied_port):
    nemesis, port = proxied_port
    nemesis.set_mode([("a", "b")], DELAY, delay_ms=100)
    started = time.perf_counter()
    assert _roundtrip(port, timeout=2) == b"ping"
    elapsed = time.perf_counter() - started
    assert 0.2 <= elapsed < 1.0  # 100 ms out + 100 ms back
