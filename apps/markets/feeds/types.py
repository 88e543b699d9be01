"""The normalized tick every price source produces, and the adapter contract.

An adapter is pure protocol knowledge (URLs, subscribe frames, pings, parsing); it does no I/O.
The supervisor (`apps.markets.feeds.supervisor`) owns the socket, reconnects and counters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar, Literal

TickKind = Literal["trade", "ticker"]
FrameStatus = Literal["data", "control", "heartbeat", "ignored", "error"]


@dataclass(frozen=True, slots=True)
class Tick:
    source: str  # exchange slug, e.g. "coinbase"
    instrument: str  # the exchange's own id, e.g. "BTC-USD", "BTCUSDT", "XBT/USD"
    base: str  # lower-case Haunt asset, e.g. "btc" (Kraken's XBT becomes "btc")
    quote: str  # lower-case quote asset, e.g. "usd", "usdt", "eur"
    price: Decimal
    size: Decimal  # traded quantity for trades; Decimal(0) for tickers
    kind: TickKind
    exchange_ts: int  # ms since the epoch, the exchange's own event time
    received_ts: int  # ms since the epoch, when the frame reached us
    side: Literal["buy", "sell"] | None = None  # taker side, trades only
    volume_24h: Decimal | None = None  # base-asset volume over 24 h, tickers that carry it


@dataclass(slots=True)
class ParseResult:
    """What one received frame meant.

    status: "data" (ticks found), "control" (subscribe acks, welcome, system status),
    "heartbeat" (pings/heartbeats), "ignored" (valid but uninteresting, e.g. order book),
    "error" (garbage, truncated, unknown shape, or an error the exchange sent).
    """

    status: FrameStatus
    ticks: list[Tick] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # frames to send back now (e.g. pong)
    error: str | None = None


class FeedAdapter(ABC):
    """One exchange's WebSocket protocol."""

    slug: ClassVar[str]
    default_url: ClassVar[str]
    # Client-side keepalive: send ping_frame() every ping_interval seconds (None: the server pings).
    ping_interval: float | None = None
    # Reconnect when nothing at all arrived for this long.
    idle_timeout: ClassVar[float] = 30.0

    def __init__(self, *, url: str | None = None) -> None:
        self.url = url or self.default_url

    async def connect_url(self) -> str:
        """The URL to open; KuCoin overrides this to fetch its token first."""
        return self.url

    @abstractmethod
    def subscribe_frames(self, instruments: Sequence[str]) -> list[str]:
        """Frames that subscribe to ticker and trade channels for these instruments."""

    def ping_frame(self) -> str | None:
        return None

    @abstractmethod
    def parse(self, frame: str | bytes, received_ts: int) -> ParseResult:
        """Turn one frame into ticks; never raises (bad input is status="error")."""
