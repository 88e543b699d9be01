"""KuCoin's token handshake against a bullet-public endpoint served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from apps.markets.feeds.adapters.kucoin import KucoinAdapter, KucoinHandshakeError

TOKEN = "2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64mdzUOPusi34M_wGoSf7iNyEWJ4aBZXpWhrmY9jKtqkdWoFa75w3istPvPtiYB9J6i9GjsxUuhPw3BlrzazF6ghq4L_ZvwHWkmQpIfqRg-9kqbGECuN8Qy8KjbMa20fj-JDUH.D6ddl-t-XrtuaJz4q-R0mQ=="
BULLET = {
    "code": "200000",
    "data": {
        "token": TOKEN,
        "instanceServers": [
            {
                "endpoint": "ws://127.0.0.1:9/endpoint",
                "encrypt": False,
                "protocol": "websocket",
                "pingInterval": 5000,
                "pingTimeout": 10000,
            }
        ],
    },
}


class FakeBullet:
    """What the next POST answers with, and what it was asked."""

    def __init__(self) -> None:
        self.status = 200
        self.body: Any = BULLET
        self.requests: list[tuple[str, str]] = []


@pytest.fixture
def bullet(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeBullet, str]]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # 127.0.0.1 must be reached directly
    fake = FakeBullet()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            fake.requests.append((self.command, self.path))
            payload = json.dumps(fake.body).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}/api/v1/bullet-public"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_connect_url_posts_for_a_token_and_adopts_the_ping_interval(bullet: tuple[FakeBullet, str]) -> None:
    fake, url = bullet
    adapter = KucoinAdapter(url=url)

    ws_url = asyncio.run(adapter.connect_url())

    assert fake.requests == [("POST", "/api/v1/bullet-public")]
    parts = urlsplit(ws_url)
    assert (parts.scheme, parts.netloc, parts.path) == ("ws", "127.0.0.1:9", "/endpoint")
    query = parse_qs(parts.query)
    assert query["token"] == [TOKEN]
    assert query["connectId"][0]
    assert adapter.ping_interval == 5.0
    assert KucoinAdapter.ping_interval == 18.0  # other connections keep their own


def test_each_connection_gets_a_fresh_connect_id(bullet: tuple[FakeBullet, str]) -> None:
    _, url = bullet
    adapter = KucoinAdapter(url=url)

    first, second = asyncio.run(adapter.connect_url()), asyncio.run(adapter.connect_url())

    assert parse_qs(urlsplit(first).query)["connectId"] != parse_qs(urlsplit(second).query)["connectId"]


@pytest.mark.parametrize(
    "body",
    [
        {"code": "400100", "msg": "this service is unavailable"},
        {"code": "200000", "data": {"token": "t", "instanceServers": []}},
        {
            "code": "200000",
            "data": {"token": "t", "instanceServers": [{"endpoint": "ws://x", "pingInterval": "x"}]},
        },
        ["not", "an", "object"],
    ],
)
def test_unusable_bullet_response_is_a_handshake_error(bullet: tuple[FakeBullet, str], body: Any) -> None:
    fake, url = bullet
    fake.body = body

    with pytest.raises(KucoinHandshakeError):
        asyncio.run(KucoinAdapter(url=url).connect_url())


def test_http_error_from_bullet_endpoint_raises(bullet: tuple[FakeBullet, str]) -> None:
    fake, url = bullet
    fake.status = 503

    with pytest.raises(httpx.HTTPStatusError):
        asyncio.run(KucoinAdapter(url=url).connect_url())


def test_a_websocket_url_skips_the_handshake() -> None:
    adapter = KucoinAdapter(url="ws://127.0.0.1:9/endpoint")

    assert asyncio.run(adapter.connect_url()) == "ws://127.0.0.1:9/endpoint"
