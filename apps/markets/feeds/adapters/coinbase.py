"""Coinbase Exchange feed (the former Coinbase Pro feed): ticker and matches channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apps.markets.feeds.adapters.base import (
    FrameError,
    JsonAdapter,
    control,
    data,
    dumps,
    error,
    heartbeat,
    ignored,
    make_tick,
    ms_from_iso,
    obj,
    price,
    side,
    size,
    text,
)
from apps.markets.feeds.symbols import split_dash
from apps.markets.feeds.types import ParseResult

# A match's `side` is the maker order's side; the taker, who moved the price, did the opposite.
TAKER_SIDE = {"buy": "sell", "sell": "buy"}
IGNORED_TYPES = {"l2update", "snapshot", "received", "open", "done", "change", "activate", "status"}


class CoinbaseAdapter(JsonAdapter):
    slug = "coinbase"
    default_url = "wss://ws-feed.exchange.coinbase.com"

    def subscribe_frames(self, instruments: Sequence[str]) -> list[str]:
        # The heartbeat channel sends 1/s per product, so a quiet market never looks idle.
        channels = ["ticker", "matches", "heartbeat"]
        return [dumps({"type": "subscribe", "product_ids": list(instruments), "channels": channels})]

    def interpret(self, message: Any, received_ts: int) -> ParseResult:
        message = obj(message)
        kind = message.get("type")
        if kind == "ticker":
            return self._ticker(message, received_ts)
        if kind in ("match", "last_match"):
            return self._match(message, received_ts)
        if kind == "subscriptions":
            return control()
        if kind == "heartbeat":
            return heartbeat()
        if kind in IGNORED_TYPES:
            return ignored()
        if kind == "error":
            return error(f"coinbase: {message.get('message')} {message.get('reason', '')}".strip())
        raise FrameError(f"unknown message type {kind!r}")

    def _ticker(self, message: dict[str, Any], received_ts: int) -> ParseResult:
        instrument = text(message.get("product_id"), "product_id")
        pair = split_dash(instrument)
        if pair is None:
            raise FrameError(f"not a spot product: {instrument!r}")
        tick = make_tick(
            self.slug,
            instrument,
            pair,
            kind="ticker",
            price=price(message.get("price")),
            volume_24h=size(message.get("volume_24h"), "volume_24h"),
            exchange_ts=ms_from_iso(message.get("time")),
            received_ts=received_ts,
        )
        return data([tick])

    def _match(self, message: dict[str, Any], received_ts: int) -> ParseResult:
        instrument = text(message.get("product_id"), "product_id")
        pair = split_dash(instrument)
        if pair is None:
            raise FrameError(f"not a spot product: {instrument!r}")
        maker_side = side(message.get("side"))
        tick = make_tick(
            self.slug,
            instrument,
            pair,
            kind="trade",
            price=price(message.get("price")),
            size=size(message.get("size")),
            side=side(TAKER_SIDE[maker_side]),
            exchange_ts=ms_from_iso(message.get("time")),
            received_ts=received_ts,
        )
        return data([tick])
