"""Kraken WebSocket v1: trade and ticker channels as arrays keyed by channel id.

`subscriptionStatus` tells which channel id carries which (channel name, pair); the adapter
keeps that map for the life of the connection, and falls back to the name and pair v1
repeats at the end of each array.
The v1 ticker has no timestamp, so ticker ticks are stamped with the receive time; Kraken
pushes it on every change, so that is within network latency of the event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from apps.markets.feeds.adapters.base import (
    FrameError,
    JsonAdapter,
    arr,
    control,
    data,
    dumps,
    error,
    heartbeat,
    ignored,
    integer,
    make_tick,
    ms_from_seconds,
    obj,
    price,
    size,
    text,
)
from apps.markets.feeds.symbols import Pair, split_kraken_ws
from apps.markets.feeds.types import ParseResult

SIDES: dict[str, Literal["buy", "sell"]] = {"b": "buy", "s": "sell"}
IGNORED_CHANNELS = ("book", "spread", "ohlc")


class KrakenAdapter(JsonAdapter):
    slug = "kraken"
    default_url = "wss://ws.kraken.com"

    def __init__(self, *, url: str | None = None) -> None:
        super().__init__(url=url)
        self.channels: dict[int, tuple[str, str]] = {}  # channel id → (channel name, pair)

    def subscribe_frames(self, instruments: Sequence[str]) -> list[str]:
        # Called once per (re)connection, and a new connection numbers its channels afresh.
        self.channels.clear()
        return [
            dumps({"event": "subscribe", "pair": list(instruments), "subscription": {"name": name}})
            for name in ("ticker", "trade")
        ]

    def interpret(self, message: Any, received_ts: int) -> ParseResult:
        if isinstance(message, list):
            return self._channel_message(message, received_ts)
        message = obj(message)
        event = message.get("event")
        if event == "heartbeat" or event == "pong":
            return heartbeat()
        if event == "systemStatus":
            return control()
        if event == "subscriptionStatus":
            return self._subscription_status(message)
        if event == "error":
            return error(f"kraken: {message.get('errorMessage')}")
        raise FrameError(f"unknown event {event!r}")

    def _subscription_status(self, message: dict[str, Any]) -> ParseResult:
        status = message.get("status")
        if status == "error":
            return error(f"kraken: {message.get('pair')} {message.get('errorMessage')}")
        channel_id = integer(message.get("channelID"), "channelID")
        if status == "subscribed":
            name = text(message.get("channelName"), "channelName")
            self.channels[channel_id] = (name, text(message.get("pair"), "pair"))
        elif status == "unsubscribed":
            self.channels.pop(channel_id, None)
        else:
            raise FrameError(f"unknown subscription status {status!r}")
        return control()

    def _channel_message(self, message: list[Any], received_ts: int) -> ParseResult:
        if len(message) < 2:
            raise FrameError("channel message too short")
        channel_id = integer(message[0], "channel id")
        known = self.channels.get(channel_id)
        if known is None and len(message) >= 4:
            known = (text(message[-2], "channel name"), text(message[-1], "pair"))
        if known is None:
            raise FrameError(f"unknown channel id {channel_id}")
        name, instrument = known
        if name == "trade":
            return self._trades(instrument, arr(message[1], "trades"), received_ts)
        if name == "ticker":
            return self._ticker(instrument, obj(message[1], "ticker"), received_ts)
        if name.startswith(IGNORED_CHANNELS):
            return ignored()
        raise FrameError(f"unknown channel {name!r}")

    def _trades(self, instrument: str, trades: list[Any], received_ts: int) -> ParseResult:
        pair = _pair(instrument)
        ticks = []
        for trade in trades:
            # [price, volume, time (epoch seconds), side "b"/"s", order type, misc]
            trade_price, volume, when, trade_side = arr(trade, "trade")[:4]
            if trade_side not in SIDES:
                raise FrameError(f"side is not b/s: {trade_side!r}")
            ticks.append(
                make_tick(
                    self.slug,
                    instrument,
                    pair,
                    kind="trade",
                    price=price(trade_price),
                    size=size(volume, "volume"),
                    side=SIDES[trade_side],
                    exchange_ts=ms_from_seconds(when, "time"),
                    received_ts=received_ts,
                )
            )
        return data(ticks)

    def _ticker(self, instrument: str, ticker: dict[str, Any], received_ts: int) -> ParseResult:
        tick = make_tick(
            self.slug,
            instrument,
            _pair(instrument),
            kind="ticker",
            price=price(arr(ticker.get("c"), "c")[0]),  # c = [last trade price, its volume]
            volume_24h=size(arr(ticker.get("v"), "v")[1], "volume"),  # v = [today, last 24 h]
            exchange_ts=received_ts,
            received_ts=received_ts,
        )
        return data([tick])


def _pair(instrument: str) -> Pair:
    pair = split_kraken_ws(instrument)
    if pair is None:
        raise FrameError(f"not a spot pair: {instrument!r}")
    return pair
