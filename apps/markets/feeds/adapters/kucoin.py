"""KuCoin spot public feed: token handshake, JSON ping, /market/ticker and /market/match.

`url` is the REST bullet-public endpoint: connect_url() POSTs there for a token and a
WebSocket server, and adopts the server's pingInterval. A ws:// or wss:// url is used as is
(a local fake exchange needs no token).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx

from apps.markets.feeds.adapters.base import (
    FrameError,
    JsonAdapter,
    arr,
    control,
    data,
    dumps,
    epoch_ms,
    error,
    heartbeat,
    ignored,
    make_tick,
    ms_from_ns,
    number,
    obj,
    price,
    side,
    size,
    text,
)
from apps.markets.feeds.symbols import Pair, split_kucoin
from apps.markets.feeds.types import ParseResult

TOPICS_PER_FRAME = 100  # KuCoin's limit of symbols in one subscribe topic
IGNORED_TOPICS = ("/market/candles", "/market/level2", "/market/level1", "/market/snapshot")


class KucoinHandshakeError(Exception):
    """The bullet-public endpoint did not hand out a usable token."""


class KucoinAdapter(JsonAdapter):
    slug = "kucoin"
    default_url = "https://api.kucoin.com/api/v1/bullet-public"
    ping_interval: float | None = 18.0  # KuCoin's usual value, until a token says otherwise
    http_timeout: ClassVar[float] = 10.0

    def __init__(self, *, url: str | None = None) -> None:
        super().__init__(url=url)
        self._ids = itertools.count(1)

    async def connect_url(self) -> str:
        """POST for a token; return `<endpoint>?token=…&connectId=…` and adopt its pingInterval."""
        if self.url.startswith(("ws://", "wss://")):
            return self.url
        async with httpx.AsyncClient(timeout=self.http_timeout) as client:
            response = await client.post(self.url)
        response.raise_for_status()
        try:
            endpoint, token, interval = _bullet(response.json())
        except (ValueError, LookupError, TypeError, FrameError) as exc:
            raise KucoinHandshakeError(f"unusable bullet-public response: {exc}") from exc
        # The server decides the interval per connection, so it is per instance, not per class.
        self.ping_interval = interval
        return str(httpx.URL(endpoint, params={"token": token, "connectId": uuid.uuid4().hex}))

    def subscribe_frames(self, instruments: Sequence[str]) -> list[str]:
        frames = []
        for channel in ("/market/ticker", "/market/match"):
            for start in range(0, len(instruments), TOPICS_PER_FRAME):
                symbols = ",".join(instruments[start : start + TOPICS_PER_FRAME])
                frames.append(
                    dumps(
                        {
                            "id": str(next(self._ids)),
                            "type": "subscribe",
                            "topic": f"{channel}:{symbols}",
                            "privateChannel": False,
                            "response": True,
                        }
                    )
                )
        return frames

    def ping_frame(self) -> str | None:
        return dumps({"id": str(next(self._ids)), "type": "ping"})

    def interpret(self, message: Any, received_ts: int) -> ParseResult:
        message = obj(message)
        kind = message.get("type")
        if kind == "message":
            return self._message(message, received_ts)
        if kind in ("welcome", "ack", "notice"):
            return control()
        if kind == "pong":
            return heartbeat()
        if kind == "error":
            return error(f"kucoin: {message.get('code')} {message.get('data')}")
        raise FrameError(f"unknown message type {kind!r}")

    def _message(self, message: dict[str, Any], received_ts: int) -> ParseResult:
        topic = text(message.get("topic"), "topic")
        channel, _, symbol = topic.partition(":")
        if channel == "/market/ticker":
            # A "/market/ticker:all" subscription names the symbol in `subject` instead.
            instrument = text(message.get("subject"), "subject") if symbol == "all" else symbol
            return self._ticker(instrument, obj(message.get("data"), "data"), received_ts)
        if channel == "/market/match":
            return self._match(obj(message.get("data"), "data"), received_ts)
        if channel in IGNORED_TOPICS:
            return ignored()
        raise FrameError(f"unknown topic {topic!r}")

    def _ticker(self, instrument: str, payload: dict[str, Any], received_ts: int) -> ParseResult:
        tick = make_tick(
            self.slug,
            instrument,
            _pair(instrument),
            kind="ticker",
            price=price(payload.get("price")),
            exchange_ts=epoch_ms(payload.get("time")),
            received_ts=received_ts,
        )
        return data([tick])

    def _match(self, payload: dict[str, Any], received_ts: int) -> ParseResult:
        instrument = text(payload.get("symbol"), "symbol")
        tick = make_tick(
            self.slug,
            instrument,
            _pair(instrument),
            kind="trade",
            price=price(payload.get("price")),
            size=size(payload.get("size")),
            side=side(payload.get("side")),  # KuCoin reports the taker's side
            exchange_ts=ms_from_ns(payload.get("time")),  # match times are nanoseconds
            received_ts=received_ts,
        )
        return data([tick])


def _pair(instrument: str) -> Pair:
    pair = split_kucoin(instrument)
    if pair is None:
        raise FrameError(f"not a spot symbol: {instrument!r}")
    return pair


def _bullet(body: Any) -> tuple[str, str, float]:
    """(endpoint, token, ping interval in seconds) from a bullet-public response body."""
    body = obj(body, "body")
    if body.get("code") != "200000":
        raise FrameError(f"code {body.get('code')!r}: {body.get('msg')!r}")
    payload = obj(body["data"], "data")
    server = obj(arr(payload["instanceServers"], "instanceServers")[0], "instance server")
    interval_ms = number(server["pingInterval"], "pingInterval")
    if interval_ms <= 0:
        raise FrameError("pingInterval is not positive")
    return text(server["endpoint"], "endpoint"), text(payload["token"], "token"), float(interval_ms) / 1000
