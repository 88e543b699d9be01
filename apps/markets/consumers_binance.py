"""/ws and /ws/<n>: Binance's raw market streams (SUBSCRIBE protocol) fed by Haunt's PriceHub.

Streams: <pair>@miniTicker, <pair>@ticker, <pair>@trade and <pair>@kline_<interval> for
<pair> = <symbol>usdt (e.g. btcusdt). Payloads are raw events (not {"stream", "data"}), as on
Binance's /ws endpoint; /ws/btcusdt@trade subscribes from the path as Binance does.

Each aggregated price update becomes ticker, miniTicker and trade events (apps.markets.binance
explains what a Haunt "trade" is); each 1m candle frame becomes kline events, folded into the
larger intervals.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apps.markets import binance
from apps.markets import candles as ohlc
from apps.markets.fanout import Mailbox, Subscriber, hub

MAX_STREAMS = 1024  # Binance's own limit per connection
STATS_REFRESH_S = 10.0  # how stale the 24 h open/volume/high/low may get between price updates


def _error(code: int, msg: str, request_id: Any) -> str:
    return json.dumps({"error": {"code": code, "msg": msg}, "id": request_id})


def _stream_parts(stream: str) -> tuple[str, str] | None:
    """(Haunt symbol, kind) of a valid stream name, kind being miniTicker/ticker/trade/kline_<i>."""
    match = binance.STREAM_RE.match(stream)
    if match is None:
        return None
    symbol, kind, interval = match.group(1), match.group(2), match.group(3)
    if interval is not None and interval not in ohlc.INTERVALS:
        return None
    return symbol, kind


class BinanceStreamConsumer(AsyncWebsocketConsumer):
    """One Binance raw-stream connection: its own hub Subscriber, its own converted events."""

    async def connect(self) -> None:
        self.streams: dict[str, set[str]] = {}  # Haunt symbol -> stream kinds
        self.stats: dict[str, tuple[float, binance.TickerStats | None]] = {}
        self.forming: dict[tuple[str, str], tuple[ohlc.Bar | None, dict[int, Decimal]]] = {}
        self.mailbox = Mailbox(self._relay)
        self.subscriber = Subscriber(self.mailbox)
        self.subscriber.channels = set()
        await hub.ensure_started(self.channel_layer, settings.REDIS_URL)
        path_streams = self.scope.get("url_route", {}).get("kwargs", {}).get("streams") or ""
        if "@" in path_streams:
            await self._subscribe(path_streams.split("/"), None, reply=False)
        # Accept last: once the client sees the socket open, its path streams are already live.
        await self.accept()
        self.mailbox.start()

    async def disconnect(self, code: int) -> None:
        hub.remove(self.subscriber)
        await self.mailbox.close()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "")
        except ValueError:
            await self.send(text_data=_error(3, "Invalid JSON: expected a JSON object", None))
            return
        if not isinstance(message, dict):
            await self.send(text_data=_error(3, "Invalid JSON: expected a JSON object", None))
            return
        request_id, method, params = message.get("id"), message.get("method"), message.get("params", [])
        if not isinstance(request_id, int | str | None) or isinstance(request_id, bool):
            await self.send(text_data=_error(1, "Invalid value type: expected Integer or String", None))
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                await self.send(text_data=_error(2, "Invalid request: params must be a list", request_id))
                return
            if method == "SUBSCRIBE":
                await self._subscribe(params, request_id, reply=True)
            else:
                await self._unsubscribe(params, request_id)
        elif method == "LIST_SUBSCRIPTIONS":
            await self._reply(self._stream_names(), request_id)
        elif method == "GET_PROPERTY":
            await self._reply(False, request_id)  # "combined": payloads are never wrapped here
        elif method == "SET_PROPERTY":
            await self._reply(None, request_id)
        else:
            await self.send(text_data=_error(2, "Invalid request: unknown method", request_id))

    async def _reply(self, result: Any, request_id: Any) -> None:
        await self.send(text_data=json.dumps({"result": result, "id": request_id}))

    def _stream_names(self) -> list[str]:
        return sorted(f"{s}usdt@{kind}" for s, kinds in self.streams.items() for kind in kinds)

    async def _subscribe(self, names: list[str], request_id: Any, *, reply: bool) -> None:
        parsed = [_stream_parts(name) for name in names]
        bad = [name for name, parts in zip(names, parsed, strict=True) if parts is None]
        if bad:
            await self.send(
                text_data=_error(2, f"Invalid request: invalid stream name {bad[0]!r}", request_id)
            )
            return
        wanted = {parts for parts in parsed if parts is not None}
        current = {(s, kind) for s, kinds in self.streams.items() for kind in kinds}
        if len(current | wanted) > MAX_STREAMS:
            await self.send(
                text_data=_error(2, f"Invalid request: at most {MAX_STREAMS} streams", request_id)
            )
            return
        for symbol, kind in sorted(wanted - current):
            if kind.startswith("kline_"):
                interval = kind.removeprefix("kline_")
                state = await database_sync_to_async(binance.kline_forming)(symbol=symbol, interval=interval)
                self.forming[(symbol, interval)] = state
            self.streams.setdefault(symbol, set()).add(kind)
        self._channels_update()
        hub.subscribe(self.subscriber, sorted({symbol for symbol, _ in wanted}))
        if reply:
            await self._reply(None, request_id)

    async def _unsubscribe(self, names: list[str], request_id: Any) -> None:
        gone: list[str] = []
        for parts in filter(None, (_stream_parts(name) for name in names)):
            symbol, kind = parts
            kinds = self.streams.get(symbol, set())
            kinds.discard(kind)
            if kind.startswith("kline_"):
                self.forming.pop((symbol, kind.removeprefix("kline_")), None)
            if not kinds and symbol in self.streams:
                del self.streams[symbol]
                self.stats.pop(symbol, None)
                gone.append(symbol)
        hub.unsubscribe(self.subscriber, gone)
        self._channels_update()
        await self._reply(None, request_id)

    def _channels_update(self) -> None:
        kinds = {kind for kinds in self.streams.values() for kind in kinds}
        channels = set()
        if kinds & {"miniTicker", "ticker", "trade"}:
            channels.add("prices")
        if any(kind.startswith("kline_") for kind in kinds):
            channels.add("candles")
        self.subscriber.channels = channels

    # --- hub frames -> Binance events ---------------------------------------------------------

    async def _relay(self, text: str) -> None:
        """The mailbox's send: one Haunt frame becomes this connection's Binance events."""
        frame = json.loads(text)
        data = frame.get("data", {})
        kinds = self.streams.get(data.get("symbol", ""), set())
        if not kinds:
            return
        if frame.get("type") == "price_update":
            events = await self._price_events(data, kinds)
        elif frame.get("type") in ("candle_update", "candle_closed"):
            events = self._kline_events(data, kinds, closed=frame["type"] == "candle_closed")
        else:
            return
        for event in events:
            await self.send(text_data=json.dumps(event))

    async def _price_events(self, data: dict[str, Any], kinds: set[str]) -> list[dict[str, Any]]:
        symbol, event_ms = data["symbol"], binance.now_ms()
        price, time_ms = Decimal(str(data["price"])), int(data["timestamp"])
        events: list[dict[str, Any]] = []
        if "trade" in kinds:
            events.append(
                binance.trade_event(
                    symbol=symbol,
                    price=price,
                    time_ms=time_ms,
                    direction=data.get("tradeDirection", "up"),
                    event_ms=event_ms,
                )
            )
        if kinds & {"miniTicker", "ticker"}:
            stats = await self._stats(symbol)
            stats = (
                stats.with_price(price, time_ms)
                if stats is not None
                else binance.TickerStats(symbol, price, price, price, price, Decimal(0), time_ms)
            )
            self.stats[symbol] = (self.stats[symbol][0], stats)
            if "miniTicker" in kinds:
                events.append(binance.mini_ticker_event(stats, event_ms=event_ms))
            if "ticker" in kinds:
                events.append(binance.ticker_event(stats, event_ms=event_ms))
        return events

    async def _stats(self, symbol: str) -> binance.TickerStats | None:
        loaded_at, stats = self.stats.get(symbol, (0.0, None))
        if time.monotonic() - loaded_at > STATS_REFRESH_S:
            fresh = await database_sync_to_async(binance.tickers_stats)([symbol])
            stats, loaded_at = fresh.get(symbol), time.monotonic()
        self.stats[symbol] = (loaded_at, stats)
        return stats

    def _kline_events(self, data: dict[str, Any], kinds: set[str], *, closed: bool) -> list[dict[str, Any]]:
        symbol, event_ms = data["symbol"], binance.now_ms()
        o, h, lo, c, v = (Decimal(str(data[name])) for name in ("open", "high", "low", "close", "volume"))
        minute = ohlc.Bar(int(data["openTime"]), o, h, lo, c, v, trade_count=1)
        events = []
        for kind in sorted(kinds):
            if not kind.startswith("kline_"):
                continue
            interval = kind.removeprefix("kline_")
            bar, volumes = self.forming.get((symbol, interval), (None, {}))
            bar = binance.bar_fold(bar, minute, interval, volumes)
            self.forming[(symbol, interval)] = (bar, volumes)
            # A bucket closes with its last minute.
            step = ohlc.interval_ms(interval)
            is_closed = closed and minute.open_time + ohlc.MINUTE_MS == bar.open_time + step
            events.append(binance.kline_event(symbol, bar, interval, closed=is_closed, event_ms=event_ms))
        return events
