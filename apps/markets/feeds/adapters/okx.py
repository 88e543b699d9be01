"""OKX v5 public feed: tickers and trades channels, text "ping"/"pong" keepalive.

Only spot instruments (BASE-QUOTE) become ticks; futures (BTC-USD-220527), swaps
(UNI-USD-SWAP) and options are dropped (see apps.markets.feeds.symbols), so a frame that
only carries derivatives is "ignored".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    obj,
    price,
    side,
    size,
    text,
)
from apps.markets.feeds.symbols import split_dash
from apps.markets.feeds.types import ParseResult, Tick

CONTROL_EVENTS = {"subscribe", "unsubscribe", "login", "notice", "channel-conn-count"}
TRADE_CHANNELS = {"trades", "trades-all"}


class OkxAdapter(JsonAdapter):
    slug = "okx"
    default_url = "wss://ws.okx.com:8443/ws/v5/public"
    # OKX drops a connection that sent nothing for 30 s.
    ping_interval: float | None = 20.0

    def subscribe_frames(self, instruments: Sequence[str]) -> list[str]:
        args = [{"channel": channel, "instId": i} for i in instruments for channel in ("tickers", "trades")]
        return [dumps({"op": "subscribe", "args": args})]

    def ping_frame(self) -> str | None:
        return "ping"

    def parse(self, frame: str | bytes, received_ts: int) -> ParseResult:
        if frame in ("pong", b"pong"):
            return heartbeat()
        return super().parse(frame, received_ts)

    def interpret(self, message: Any, received_ts: int) -> ParseResult:
        message = obj(message)
        event = message.get("event")
        if event == "error":
            return error(f"okx: {message.get('code')} {message.get('msg')}")
        if event in CONTROL_EVENTS:
            return control()
        if event is not None:
            raise FrameError(f"unknown event {event!r}")
        channel = obj(message.get("arg"), "arg").get("channel")
        items = [obj(item, "data item") for item in arr(message.get("data"), "data")]
        if channel == "tickers":
            return data([t for item in items if (t := self._ticker(item, received_ts))])
        if channel in TRADE_CHANNELS:
            return data([t for item in items if (t := self._trade(item, received_ts))])
        if isinstance(channel, str) and channel.startswith(("books", "bbo", "candle", "mark-price")):
            return ignored()
        raise FrameError(f"unknown channel {channel!r}")

    def _ticker(self, item: dict[str, Any], received_ts: int) -> Tick | None:
        instrument = text(item.get("instId"), "instId")
        pair = split_dash(instrument)
        if pair is None:
            return None
        return make_tick(
            self.slug,
            instrument,
            pair,
            kind="ticker",
            price=price(item.get("last")),
            volume_24h=size(item.get("vol24h"), "vol24h"),  # base currency for spot
            exchange_ts=epoch_ms(item.get("ts")),
            received_ts=received_ts,
        )

    def _trade(self, item: dict[str, Any], received_ts: int) -> Tick | None:
        instrument = text(item.get("instId"), "instId")
        pair = split_dash(instrument)
        if pair is None:
            return None
        return make_tick(
            self.slug,
            instrument,
            pair,
            kind="trade",
            price=price(item.get("px")),
            size=size(item.get("sz")),
            side=side(item.get("side")),  # OKX reports the taker's side
            exchange_ts=epoch_ms(item.get("ts")),
            received_ts=received_ts,
        )
