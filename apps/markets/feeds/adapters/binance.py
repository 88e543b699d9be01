"""Binance spot combined stream (`/stream`, frames wrapped as {"stream", "data"}).

We subscribe to `@aggTrade` (trades) and `@miniTicker` (ticker: `c` is the last trade price,
`v` the 24 h base volume, `E` the event time). `@ticker` carries the same fields and parses
the same way. `@bookTicker` (what the recorded capture has) carries no last price, so its
ticker price is the bid/ask mid; spot bookTicker has no event time either, so it is stamped
with the receive time. That is honest for a stream Binance pushes in real time on every
best-quote change. Binance pings at the WebSocket level; the client library answers, so
there is no ping_frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from apps.markets.feeds.adapters.base import (
    FrameError,
    JsonAdapter,
    control,
    data,
    dumps,
    epoch_ms,
    error,
    ignored,
    make_tick,
    obj,
    price,
    size,
    text,
)
from apps.markets.feeds.symbols import BINANCE_QUOTES, Pair, split_concat
from apps.markets.feeds.types import ParseResult

TRADE_EVENTS = {"aggTrade", "trade"}
TICKER_EVENTS = {"24hrTicker", "24hrMiniTicker"}
IGNORED_EVENTS = {"depthUpdate", "kline"}


class BinanceAdapter(JsonAdapter):
    slug = "binance"
    default_url = "wss://stream.binance.com:9443/stream"
    # No app-level heartbeat, and the server's WebSocket pings are not frames: a quiet symbol
    # can go half a minute without one, which is not a dead connection.
    idle_timeout: ClassVar[float] = 60.0

    def subscribe_frames(self, instruments: Sequence[str]) -> list[str]:
        streams = [f"{s.lower()}@{channel}" for s in instruments for channel in ("aggTrade", "miniTicker")]
        return [dumps({"method": "SUBSCRIBE", "params": streams, "id": 1})]

    def interpret(self, message: Any, received_ts: int) -> ParseResult:
        message = obj(message)
        if "stream" in message:
            stream = text(message["stream"], "stream")
            return self._payload(stream, obj(message.get("data"), "data"), received_ts)
        if "error" in message:
            return error(f"binance: {message['error']}")
        if "result" in message and "id" in message:
            return control()  # the reply to SUBSCRIBE
        if "e" in message:  # a raw (/ws) endpoint sends payloads unwrapped
            return self._payload("", message, received_ts)
        raise FrameError("unknown message shape")

    def _payload(self, stream: str, payload: dict[str, Any], received_ts: int) -> ParseResult:
        event = payload.get("e")
        if event in TRADE_EVENTS:
            return self._trade(payload, received_ts)
        if event in TICKER_EVENTS:
            return self._ticker(payload, received_ts)
        if event in IGNORED_EVENTS or (event is None and "@depth" in stream):
            return ignored()
        if event is None and (stream.endswith("@bookTicker") or {"u", "s", "b", "a"} <= payload.keys()):
            return self._book_ticker(payload, received_ts)
        raise FrameError(f"unknown event {event!r} on stream {stream!r}")

    def _pair(self, payload: dict[str, Any]) -> tuple[str, Pair]:
        instrument = text(payload.get("s"), "symbol")
        pair = split_concat(instrument, BINANCE_QUOTES)
        if pair is None:
            raise FrameError(f"unknown quote asset in {instrument!r}")
        return instrument, pair

    def _trade(self, payload: dict[str, Any], received_ts: int) -> ParseResult:
        instrument, pair = self._pair(payload)
        buyer_is_maker = payload.get("m")
        if not isinstance(buyer_is_maker, bool):
            raise FrameError("m is not a boolean")
        tick = make_tick(
            self.slug,
            instrument,
            pair,
            kind="trade",
            price=price(payload.get("p")),
            size=size(payload.get("q")),
            side="sell" if buyer_is_maker else "buy",  # the buyer made, so the seller took
            exchange_ts=epoch_ms(payload.get("T")),
            received_ts=received_ts,
        )
        return data([tick])

    def _ticker(self, payload: dict[str, Any], received_ts: int) -> ParseResult:
        instrument, pair = self._pair(payload)
        tick = make_tick(
            self.slug,
            instrument,
            pair,
            kind="ticker",
            price=price(payload.get("c")),
            volume_24h=size(payload.get("v"), "volume"),
            exchange_ts=epoch_ms(payload.get("E")),
            received_ts=received_ts,
        )
        return data([tick])

    def _book_ticker(self, payload: dict[str, Any], received_ts: int) -> ParseResult:
        instrument, pair = self._pair(payload)
        bid, ask = price(payload.get("b"), "bid"), price(payload.get("a"), "ask")
        if bid > ask:
            raise FrameError("crossed book: bid above ask")
        event_ts = payload.get("E")  # futures bookTicker has one; spot does not
        tick = make_tick(
            self.slug,
            instrument,
            pair,
            kind="ticker",
            price=(bid + ask) / 2,
            exchange_ts=received_ts if event_ts is None else epoch_ms(event_ts),
            received_ts=received_ts,
        )
        return data([tick])
