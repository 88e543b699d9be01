"""HTX (Huobi) spot market feed: gzip frames, server {"ping": ts} answered with {"pong": ts}.

Trades come from market.$symbol.trade.detail; the ticker from market.$symbol.ticker (its
`lastPrice`) or market.$symbol.detail (its `close`, the latest trade price), with `amount`
as the 24 h base volume (`vol` is the quote turnover).
"""

from __future__ import annotations

import gzip
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
    ignored,
    integer,
    loads,
    make_tick,
    obj,
    price,
    side,
    size,
    text,
)
from apps.markets.feeds.symbols import HTX_QUOTES, Pair, split_concat
from apps.markets.feeds.types import ParseResult

IGNORED_TOPICS = ("depth", "bbo", "kline", "mbp")


class HuobiAdapter(JsonAdapter):
    slug = "huobi"
    default_url = "wss://api.huobi.pro/ws"

    def subscribe_frames(self, instruments: Sequence[str]) -> list[str]:
        topics = [f"market.{s.lower()}.{topic}" for s in instruments for topic in ("ticker", "trade.detail")]
        return [dumps({"sub": topic, "id": str(n)}) for n, topic in enumerate(topics, start=1)]

    def decode(self, frame: str | bytes) -> Any:
        return loads(gzip.decompress(frame) if isinstance(frame, bytes) else frame)

    def interpret(self, message: Any, received_ts: int) -> ParseResult:
        message = obj(message)
        if "ping" in message:
            # Unanswered pings make HTX close the connection after a few tries.
            return ParseResult("heartbeat", replies=[dumps({"pong": integer(message["ping"], "ping")})])
        if message.get("status") == "error":
            return error(f"huobi: {message.get('err-code')} {message.get('err-msg')}")
        if "subbed" in message or "unsubbed" in message:
            return control()
        if "ch" in message:
            return self._channel(message, received_ts)
        raise FrameError("unknown message shape")

    def _channel(self, message: dict[str, Any], received_ts: int) -> ParseResult:
        parts = text(message["ch"], "ch").split(".")
        if len(parts) < 3 or parts[0] != "market":
            raise FrameError(f"unknown channel {message['ch']!r}")
        instrument, topic = parts[1], ".".join(parts[2:])
        if topic == "trade.detail":
            return self._trades(instrument, message, received_ts)
        if topic in ("ticker", "detail"):
            return self._ticker(instrument, message, received_ts)
        if topic.startswith(IGNORED_TOPICS):
            return ignored()
        raise FrameError(f"unknown channel {message['ch']!r}")

    def _trades(self, instrument: str, message: dict[str, Any], received_ts: int) -> ParseResult:
        pair = _pair(instrument)
        tick = obj(message.get("tick"), "tick")
        ticks = []
        for item in arr(tick.get("data"), "tick.data"):
            item = obj(item, "trade")
            ticks.append(
                make_tick(
                    self.slug,
                    instrument,
                    pair,
                    kind="trade",
                    price=price(item.get("price")),
                    size=size(item.get("amount"), "amount"),
                    side=side(item.get("direction"), "direction"),  # HTX reports the taker's side
                    exchange_ts=epoch_ms(item.get("ts")),
                    received_ts=received_ts,
                )
            )
        return data(ticks)

    def _ticker(self, instrument: str, message: dict[str, Any], received_ts: int) -> ParseResult:
        tick = obj(message.get("tick"), "tick")
        last = tick["lastPrice"] if "lastPrice" in tick else tick.get("close")
        return data(
            [
                make_tick(
                    self.slug,
                    instrument,
                    _pair(instrument),
                    kind="ticker",
                    price=price(last),
                    volume_24h=size(tick.get("amount"), "amount"),
                    exchange_ts=epoch_ms(message.get("ts")),
                    received_ts=received_ts,
                )
            ]
        )


def _pair(instrument: str) -> Pair:
    pair = split_concat(instrument, HTX_QUOTES)
    if pair is None:
        raise FrameError(f"unknown quote asset in {instrument!r}")
    return pair
