"""Shared pieces of the exchange adapters: the never-raising parse shell and field readers.

The readers raise FrameError on anything that is not the shape an exchange documents, so
each adapter reads fields straight through and `JsonAdapter.parse` turns any failure into
ParseResult(status="error").
"""

from __future__ import annotations

import json
from abc import abstractmethod
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from apps.markets.feeds.symbols import Pair
from apps.markets.feeds.types import FeedAdapter, ParseResult, Tick, TickKind

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
# 2001-09-09 and 2286-11-20 in ms: anything outside is seconds, µs or garbage, not ms.
MIN_MS, MAX_MS = 10**12, 10**13


class FrameError(ValueError):
    """A frame, or a field inside it, is not what the exchange documents."""


def _reject_constant(name: str) -> Any:
    raise FrameError(f"non-finite number {name}")


def loads(text: str | bytes) -> Any:
    """JSON with every non-integer number as an exact Decimal (HTX and the aggregators send floats)."""
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def dumps(value: Any) -> str:
    """Compact JSON for frames we send."""
    return json.dumps(value, separators=(",", ":"))


def obj(value: Any, what: str = "message") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FrameError(f"{what} is not an object")
    return value


def arr(value: Any, what: str = "message") -> list[Any]:
    if not isinstance(value, list):
        raise FrameError(f"{what} is not an array")
    return value


def text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise FrameError(f"{what} is not a string")
    return value


def number(value: Any, what: str) -> Decimal:
    """A finite Decimal from a JSON string, integer or (already Decimal) float; never from float."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise FrameError(f"{what} is not a number")
    try:
        result = Decimal(value)
    except ArithmeticError:
        raise FrameError(f"{what} is not a number: {value!r}") from None
    if not result.is_finite():
        raise FrameError(f"{what} is not finite")
    # Far beyond any real price or volume (and any column that stores one): a corrupt field.
    if result and not -30 <= result.adjusted() <= 20:
        raise FrameError(f"{what} is out of range: {value!r}")
    return result


def price(value: Any, what: str = "price") -> Decimal:
    result = number(value, what)
    if result <= 0:
        raise FrameError(f"{what} is not positive")
    return result


def size(value: Any, what: str = "size") -> Decimal:
    result = number(value, what)
    if result < 0:
        raise FrameError(f"{what} is negative")
    return result


def integer(value: Any, what: str) -> int:
    """An int from a JSON integer or a string of digits (OKX and KuCoin quote their times)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise FrameError(f"{what} is not an integer")


def epoch_ms(value: Any, what: str = "timestamp") -> int:
    """An epoch-milliseconds field, range-checked so a seconds or nanoseconds value is caught."""
    result = integer(value, what)
    if not MIN_MS <= result < MAX_MS:
        raise FrameError(f"{what} is not epoch milliseconds: {result}")
    return result


def ms_from_seconds(value: Any, what: str = "timestamp") -> int:
    """Epoch seconds (int, Decimal or "1618678142.557535") → ms, exactly."""
    return epoch_ms(int(number(value, what) * 1000), what)


def ms_from_ns(value: Any, what: str = "timestamp") -> int:
    return epoch_ms(integer(value, what) // 1_000_000, what)


def ms_from_iso(value: Any, what: str = "time") -> int:
    """ISO 8601 with a zone (Coinbase, CoinMarketCap) → epoch ms."""
    try:
        moment = datetime.fromisoformat(text(value, what))
    except ValueError:
        raise FrameError(f"{what} is not an ISO time: {value!r}") from None
    if moment.tzinfo is None:
        raise FrameError(f"{what} has no time zone")
    return epoch_ms((moment - EPOCH) // MS, what)


def side(value: Any, what: str = "side") -> Literal["buy", "sell"]:
    if value == "buy":
        return "buy"
    if value == "sell":
        return "sell"
    raise FrameError(f"{what} is not buy/sell: {value!r}")


def make_tick(
    source: str,
    instrument: str,
    pair: Pair,
    *,
    kind: TickKind,
    price: Decimal,
    exchange_ts: int,
    received_ts: int,
    size: Decimal = Decimal(0),
    side: Literal["buy", "sell"] | None = None,
    volume_24h: Decimal | None = None,
) -> Tick:
    return Tick(
        source=source,
        instrument=instrument,
        base=pair.base,
        quote=pair.quote,
        price=price,
        size=size,
        kind=kind,
        exchange_ts=exchange_ts,
        received_ts=received_ts,
        side=side,
        volume_24h=volume_24h,
    )


# Fresh results every time: ParseResult holds lists, so a shared instance could be mutated.
def control() -> ParseResult:
    return ParseResult("control")


def heartbeat() -> ParseResult:
    return ParseResult("heartbeat")


def ignored() -> ParseResult:
    return ParseResult("ignored")


def data(ticks: list[Tick]) -> ParseResult:
    """Ticks found, or "ignored" when every item was skipped (e.g. a derivative)."""
    return ParseResult("data", ticks=ticks) if ticks else ignored()


def error(reason: str) -> ParseResult:
    return ParseResult("error", error=reason)


class JsonAdapter(FeedAdapter):
    """An adapter whose frames are JSON; subclasses interpret the decoded message."""

    def decode(self, frame: str | bytes) -> Any:
        return loads(frame)

    def parse(self, frame: str | bytes, received_ts: int) -> ParseResult:
        try:
            message = self.decode(frame)
            return self.interpret(message, received_ts)
        except FrameError as exc:
            return error(str(exc))
        except Exception as exc:  # the contract: a frame never takes the feed down
            return error(f"{type(exc).__name__}: {exc}"[:200])

    @abstractmethod
    def interpret(self, message: Any, received_ts: int) -> ParseResult:
        """Turn one decoded message into a ParseResult; may raise FrameError."""
