"""Haunt's market data in Binance's spot formats (the facade of api_binance and consumers_binance).

Haunt's aggregate symbols become pairs quoted in USDT: "btc" <-> "BTCUSDT". Decimals are
strings, as Binance sends them: at least 8 places, more when Haunt keeps more (meme coins).

The first half is pure converters; the second half ("Reads") gathers Haunt's data for them
(price store, Candle and Trade rows) and is sync: call it with sync_to_async from consumers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.db.models import Max, Min, Q

from apps.markets import candles as ohlc
from apps.markets.models import AGGREGATE_SOURCE, Candle, Exchange, Trade
from apps.markets.services.aggregation import AggregatedPrice
from apps.markets.services.store import Candle as StoredCandle
from apps.markets.services.store import price_store

QUOTE_ASSET = "USDT"
PAIR_RE = re.compile(r"^([A-Z0-9]{1,20})USDT$")
STREAM_RE = re.compile(r"^([a-z0-9]{1,20})usdt@(miniTicker|ticker|trade|kline_([0-9]+[smhdwM]))$")
DAY_MS = ohlc.DAY_MS
MIN_PLACES = 8


class BinanceError(Exception):
    """A request Binance would refuse: answered as {"code", "msg"} with HTTP 400."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def invalid_interval() -> BinanceError:
    return BinanceError(-1120, "Invalid interval.")


def mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'.")


# --- Symbols and numbers ------------------------------------------------------------------------


def pair_from_symbol(symbol: str) -> str:
    """ "btc" -> "BTCUSDT"."""
    return f"{symbol.upper()}{QUOTE_ASSET}"


def symbol_from_pair(pair: str) -> str | None:
    """ "BTCUSDT" (any case) -> "btc"; None for anything not quoted in USDT."""
    match = PAIR_RE.match(pair.upper())
    return match.group(1).lower() if match else None


def dec(value: Decimal | None) -> str:
    """A Binance decimal string: fixed point, at least 8 places ("0.00000000" for None)."""
    value = Decimal(0) if value is None else value.normalize()
    exponent = value.as_tuple().exponent
    places = max(MIN_PLACES, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    return f"{value:.{places}f}"


def percent(value: Decimal | None) -> str:
    return f"{(value or Decimal(0)):.3f}"


# --- exchangeInfo -------------------------------------------------------------------------------


def symbol_info(symbol: str) -> dict[str, Any]:
    """One spot market as ccxt's binance.parse_market reads it."""
    return {
        "symbol": pair_from_symbol(symbol),
        "status": "TRADING",
        "baseAsset": symbol.upper(),
        "baseAssetPrecision": MIN_PLACES,
        "quoteAsset": QUOTE_ASSET,
        "quotePrecision": MIN_PLACES,
        "quoteAssetPrecision": MIN_PLACES,
        "baseCommissionPrecision": MIN_PLACES,
        "quoteCommissionPrecision": MIN_PLACES,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": False,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.00000001",
                "maxPrice": "10000000000.00000000",
                "tickSize": "0.00000001",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00000001",
                "maxQty": "90000000000.00000000",
                "stepSize": "0.00000001",
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def exchange_info(symbols: Iterable[str], *, server_time: int) -> dict[str, Any]:
    """GET /api/v3/exchangeInfo for these Haunt symbols (sorted)."""
    return {
        "timezone": "UTC",
        "serverTime": server_time,
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": [symbol_info(s) for s in sorted(set(symbols))],
    }


def futures_exchange_info(*, server_time: int) -> dict[str, Any]:
    """/fapi/v1 and /dapi/v1 exchangeInfo: Haunt has no futures, so no symbols."""
    return {
        "timezone": "UTC",
        "serverTime": server_time,
        "rateLimits": [],
        "exchangeFilters": [],
        "assets": [],
        "symbols": [],
    }


# --- Tickers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TickerStats:
    """What a 24 h ticker says about one symbol, from Haunt's aggregate."""

    symbol: str
    last: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal  # base asset, summed over the sources that report a 24 h volume
    close_time: int  # ms of the last price

    def with_price(self, price: Decimal, time_ms: int) -> TickerStats:
        """The stats after a newer price (high/low widen, the window's open stays)."""
        return replace(
            self,
            last=price,
            high=max(self.high, price),
            low=min(self.low, price),
            close_time=max(self.close_time, time_ms),
        )


def ticker_stats(
    price: AggregatedPrice, *, high: Decimal | None = None, low: Decimal | None = None
) -> TickerStats:
    """Stats from an aggregated price and the 24 h high/low of Haunt's candles (if any)."""
    last = price.price
    open_ = last - price.change_24h if price.change_24h is not None else last
    return TickerStats(
        symbol=price.symbol,
        last=last,
        open=open_,
        high=max(v for v in (high, open_, last) if v is not None),
        low=min(v for v in (low, open_, last) if v is not None),
        volume=price.volume_24h or Decimal(0),
        close_time=price.timestamp,
    )


def _change(stats: TickerStats) -> tuple[Decimal, Decimal]:
    change = stats.last - stats.open
    pct = change / stats.open * 100 if stats.open else Decimal(0)
    return change, pct


def ticker_24hr(stats: TickerStats) -> dict[str, Any]:
    """GET /api/v3/ticker/24hr (FULL). Haunt has no order book or trade count: bid/ask are the
    last price with no quantity, count 0, trade ids -1 (Binance's "no trade")."""
    change, pct = _change(stats)
    return {
        "symbol": pair_from_symbol(stats.symbol),
        "priceChange": dec(change),
        "priceChangePercent": percent(pct),
        "weightedAvgPrice": dec(stats.last),
        "prevClosePrice": dec(stats.open),
        "lastPrice": dec(stats.last),
        "lastQty": dec(None),
        "bidPrice": dec(stats.last),
        "bidQty": dec(None),
        "askPrice": dec(stats.last),
        "askQty": dec(None),
        "openPrice": dec(stats.open),
        "highPrice": dec(stats.high),
        "lowPrice": dec(stats.low),
        "volume": dec(stats.volume),
        # Estimated: base volume at the last price (Haunt does not sum price x quantity).
        "quoteVolume": dec(stats.volume * stats.last),
        "openTime": stats.close_time - DAY_MS,
        "closeTime": stats.close_time,
        "firstId": -1,
        "lastId": -1,
        "count": 0,
    }


def ticker_mini(stats: TickerStats) -> dict[str, Any]:
    """GET /api/v3/ticker/24hr?type=MINI."""
    full = ticker_24hr(stats)
    keys = ("symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume")
    return {k: full[k] for k in (*keys, "openTime", "closeTime", "firstId", "lastId", "count")}


def mini_ticker_event(stats: TickerStats, *, event_ms: int) -> dict[str, Any]:
    """The <symbol>@miniTicker stream event."""
    return {
        "e": "24hrMiniTicker",
        "E": event_ms,
        "s": pair_from_symbol(stats.symbol),
        "c": dec(stats.last),
        "o": dec(stats.open),
        "h": dec(stats.high),
        "l": dec(stats.low),
        "v": dec(stats.volume),
        "q": dec(stats.volume * stats.last),
    }


def ticker_event(stats: TickerStats, *, event_ms: int) -> dict[str, Any]:
    """The <symbol>@ticker stream event (same caveats as ticker_24hr)."""
    change, pct = _change(stats)
    return {
        "e": "24hrTicker",
        "E": event_ms,
        "s": pair_from_symbol(stats.symbol),
        "p": dec(change),
        "P": percent(pct),
        "w": dec(stats.last),
        "x": dec(stats.open),
        "c": dec(stats.last),
        "Q": dec(None),
        "b": dec(stats.last),
        "B": dec(None),
        "a": dec(stats.last),
        "A": dec(None),
        "o": dec(stats.open),
        "h": dec(stats.high),
        "l": dec(stats.low),
        "v": dec(stats.volume),
        "q": dec(stats.volume * stats.last),
        "O": stats.close_time - DAY_MS,
        "C": stats.close_time,
        "F": -1,
        "L": -1,
        "n": 0,
    }


def trade_event(
    *, symbol: str, price: Decimal, time_ms: int, direction: str, event_ms: int
) -> dict[str, Any]:
    """The <symbol>@trade stream event for one aggregated price tick.

    Haunt has no trade tape of its own: each aggregate price is reported as a trade of quantity
    0 (a price, not a fill), its id the price's time in ms, a fall as a sell (buyer is maker).
    """
    return {
        "e": "trade",
        "E": event_ms,
        "s": pair_from_symbol(symbol),
        "t": time_ms,
        "p": dec(price),
        "q": dec(None),
        "T": time_ms,
        "m": direction == "down",
        "M": True,
    }


# --- Klines -------------------------------------------------------------------------------------


def kline_row(bar: ohlc.Bar, interval: str) -> list[Any]:
    """One GET /api/v3/klines row. Haunt keeps no quote volume or taker split: estimated/zero."""
    return [
        bar.open_time,
        dec(bar.open),
        dec(bar.high),
        dec(bar.low),
        dec(bar.close),
        dec(bar.volume),
        bar.open_time + ohlc.interval_ms(interval) - 1,
        dec(bar.volume * bar.close),
        bar.trade_count,
        dec(None),
        dec(None),
        "0",
    ]


def kline_event(symbol: str, bar: ohlc.Bar, interval: str, *, closed: bool, event_ms: int) -> dict[str, Any]:
    """The <symbol>@kline_<interval> stream event."""
    return {
        "e": "kline",
        "E": event_ms,
        "s": pair_from_symbol(symbol),
        "k": {
            "t": bar.open_time,
            "T": bar.open_time + ohlc.interval_ms(interval) - 1,
            "s": pair_from_symbol(symbol),
            "i": interval,
            "f": -1,
            "L": -1,
            "o": dec(bar.open),
            "c": dec(bar.close),
            "h": dec(bar.high),
            "l": dec(bar.low),
            "v": dec(bar.volume),
            "n": bar.trade_count,
            "x": closed,
            "q": dec(bar.volume * bar.close),
            "V": dec(None),
            "Q": dec(None),
            "B": "0",
        },
    }


def bar_fold(
    bar: ohlc.Bar | None, minute: ohlc.Bar, interval: str, minute_volumes: dict[int, Decimal]
) -> ohlc.Bar:
    """The interval's forming candle after one (re)sent 1m candle.

    The live 1m candle is sent again and again as it forms, so its volume replaces its own
    earlier volume (minute_volumes, per minute open time, kept by the caller per bucket) instead
    of adding up. `bar` is the bucket as known before (from the database), or None.
    """
    open_time = ohlc.bucket_start(minute.open_time, interval)
    if bar is None or bar.open_time != open_time:
        minute_volumes.clear()
        bar = None
    previous = minute_volumes.get(minute.open_time, Decimal(0))
    minute_volumes[minute.open_time] = minute.volume
    if bar is None or bar.is_filled:
        return replace(minute, open_time=open_time, trade_count=max(minute.trade_count, 1))
    return replace(
        bar,
        high=max(bar.high, minute.high),
        low=min(bar.low, minute.low),
        close=minute.close,
        volume=bar.volume - previous + minute.volume,
    )


# --- Reads (sync: ORM and price store) ----------------------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def known_symbols() -> list[str]:
    """Haunt symbols the facade lists: those with a live price, plus those with aggregate candles."""
    live = set(price_store().symbols())
    stored = Candle.objects.filter(source=AGGREGATE_SOURCE).values_list("symbol", flat=True).distinct()
    return sorted(live | {s for s in stored if re.fullmatch(r"[a-z0-9]{1,20}", s)})


def symbol_resolve(pair: str | None, *, name: str = "symbol") -> str:
    """The Haunt symbol of a Binance pair parameter; BinanceError when absent or not listed."""
    if not pair:
        raise mandatory(name)
    symbol = symbol_from_pair(pair)
    if symbol is None or symbol not in known_symbols():
        raise invalid_symbol()
    return symbol


def _highs_lows(symbols: Sequence[str], since_ms: int) -> dict[str, tuple[Decimal, Decimal]]:
    rows = (
        Candle.objects.filter(
            source=AGGREGATE_SOURCE, interval="1h", symbol__in=symbols, open_time__gte=since_ms
        )
        .values("symbol")
        .annotate(high=Max("high"), low=Min("low"))
    )
    return {row["symbol"]: (row["high"], row["low"]) for row in rows}


def tickers_stats(symbols: Sequence[str]) -> dict[str, TickerStats]:
    """24 h stats per symbol: the live price (high/low widened by the day's candles and the forming
    minute), else the newest aggregate candle's close with no change."""
    store = price_store()
    now = now_ms()
    prices = store.prices_get(symbols)
    forming = store.candles_get(symbols)
    extremes = _highs_lows(symbols, now - DAY_MS)
    stats: dict[str, TickerStats] = {}
    for symbol in symbols:
        high, low = extremes.get(symbol, (None, None))
        minute = forming.get(symbol)
        if minute is not None and minute.open_time >= now - DAY_MS:
            high = max(high, minute.high) if high is not None else minute.high
            low = min(low, minute.low) if low is not None else minute.low
        price = prices.get(symbol)
        if price is not None:
            stats[symbol] = ticker_stats(price, high=high, low=low)
            continue
        candle = Candle.objects.filter(source=AGGREGATE_SOURCE, symbol=symbol).order_by("-open_time").first()
        if candle is not None:
            close_time = candle.open_time + ohlc.interval_ms(candle.interval) - 1
            stats[symbol] = TickerStats(
                symbol, candle.close, candle.close, candle.close, candle.close, Decimal(0), close_time
            )
    return stats


def klines(
    *, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int
) -> list[ohlc.Bar]:
    """Haunt's aggregate candles, oldest first, with the forming minute folded into the last bucket.

    With start_ms, the first `limit` from it; otherwise the newest `limit` (up to end_ms).
    """
    rows = Candle.objects.filter(source=AGGREGATE_SOURCE, symbol=symbol, interval=interval)
    if start_ms is not None:
        rows = rows.filter(open_time__gte=ohlc.bucket_start(start_ms, interval))
    if end_ms is not None:
        rows = rows.filter(open_time__lte=end_ms)
    if start_ms is not None:
        bars = [c.as_bar() for c in rows.order_by("open_time")[:limit]]
    else:
        bars = [c.as_bar() for c in rows.order_by("-open_time")[:limit]][::-1]
    minute = price_store().candles_get([symbol]).get(symbol)
    if minute is None or (start_ms is not None and len(bars) == limit):
        return bars
    live = live_bar(minute)
    bucket = ohlc.bucket_start(live.open_time, interval)
    if (start_ms is not None and bucket + ohlc.interval_ms(interval) <= start_ms) or (
        end_ms is not None and bucket > end_ms
    ):
        return bars
    if bars and bars[-1].open_time > bucket:
        return bars  # the database is ahead of the forming minute (a backfill)
    last = bars.pop() if bars and bars[-1].open_time == bucket else None
    if last is not None and interval == "1m":
        last = None  # the forming minute is newer than its own stored copy
    bars.append(bar_fold(last, live, interval, {}))
    return bars[-limit:]


def live_bar(minute: StoredCandle) -> ohlc.Bar:
    """The price store's forming (or just closed) 1m candle as a Bar."""
    return ohlc.Bar(minute.open_time, minute.open, minute.high, minute.low, minute.close, minute.volume, 1)


def kline_forming(*, symbol: str, interval: str) -> tuple[ohlc.Bar | None, dict[int, Decimal]]:
    """The interval's newest bucket with the forming minute folded in, and the minute volumes
    folded so far: the state bar_fold continues from as live 1m candles arrive."""
    volumes: dict[int, Decimal] = {}
    row = Candle.objects.filter(source=AGGREGATE_SOURCE, symbol=symbol, interval=interval).order_by(
        "-open_time"
    )
    stored = row.first()
    bar = stored.as_bar() if stored is not None and interval != "1m" else None
    minute = price_store().candles_get([symbol]).get(symbol)
    if minute is not None:
        bar = bar_fold(bar, live_bar(minute), interval, volumes)
    return bar, volumes


def agg_trades_source(symbol: str) -> tuple[str, str] | None:
    """(exchange, exchange symbol) whose imported trades stand for the pair, or None.

    One exchange only, so the ids stay one sequence: binance first, then the heaviest exchange
    that maps the symbol, then any import filed under the Binance pair name.
    """
    exchanges = Exchange.objects.filter(enabled=True).order_by("-weight", "slug")
    candidates = [
        (exchange.slug, str(exchange.symbol_map[symbol]))
        for exchange in sorted(exchanges, key=lambda e: e.slug != "binance")
        if isinstance(exchange.symbol_map, dict) and symbol in exchange.symbol_map
    ]
    for slug, instrument in candidates:
        if Trade.objects.filter(exchange=slug, symbol=instrument).exists():
            return slug, instrument
    pair = pair_from_symbol(symbol)
    row = (
        Trade.objects.filter(Q(symbol=pair) | Q(symbol=pair.lower()))
        .order_by("exchange")
        .values_list("exchange", "symbol")
        .first()
    )
    return (row[0], row[1]) if row else None


def agg_trades(
    *, symbol: str, from_id: int | None, start_ms: int | None, end_ms: int | None, limit: int
) -> list[dict[str, Any]]:
    """GET /api/v3/aggTrades rows from the imported trades of agg_trades_source (oldest first)."""
    source = agg_trades_source(symbol)
    if source is None:
        return []
    rows = Trade.objects.filter(exchange=source[0], symbol=source[1])
    if from_id is not None:
        rows = rows.filter(agg_trade_id__gte=from_id).order_by("agg_trade_id")
    elif start_ms is not None or end_ms is not None:
        if start_ms is not None:
            rows = rows.filter(time_ms__gte=start_ms)
        if end_ms is not None:
            rows = rows.filter(time_ms__lte=end_ms)
        rows = rows.order_by("time_ms", "agg_trade_id")
    else:
        newest = list(rows.order_by("-time_ms", "-agg_trade_id")[:limit])
        return [agg_trade(t) for t in reversed(newest)]
    return [agg_trade(t) for t in rows[:limit]]


def agg_trade(trade: Trade) -> dict[str, Any]:
    """One aggTrades row; an imported aggregate trade is its own first and last trade."""
    return {
        "a": trade.agg_trade_id,
        "p": dec(trade.price),
        "q": dec(trade.quantity),
        "f": trade.agg_trade_id,
        "l": trade.agg_trade_id,
        "T": trade.time_ms,
        "m": trade.is_buyer_maker,
        "M": True,
    }
