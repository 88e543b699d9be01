"""Market data in third-party formats: Binance klines and the TradingView UDF datafeed."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from apps.markets import candles as ohlc
from apps.markets.exceptions import CandleQueryInvalid, CandleSymbolUnknown
from apps.markets.models import AGGREGATE_SOURCE
from apps.markets.selectors_candles import (
    SOURCE_RE,
    SYMBOL_RE,
    CandleSymbol,
    bars_select,
    candle_symbol_known,
    candle_symbols,
    haunt_symbol_known,
    price_decimals,
)

# --- Binance klines --------------------------------------------------------------------------

KLINES_LIMIT_DEFAULT, KLINES_LIMIT_MAX = 500, 1000


def binance_decimal(value: Decimal) -> str:
    """Binance's decimal strings: fixed point, at least 8 places ("0.01634790")."""
    exponent = value.normalize().as_tuple().exponent
    places = max(8, -exponent) if isinstance(exponent, int) else 8
    return format(value, f".{places}f")


def candle_source_resolve(*, source: str, symbol: str) -> tuple[str, str]:
    """(source, symbol) as stored: Haunt symbols are lower-case, exchange symbols as imported
    (tried as given, then upper-case). Raises CandleSymbolUnknown when nothing is stored."""
    source = source.lower()
    if source == AGGREGATE_SOURCE:
        symbol = symbol.lower()
        if SYMBOL_RE.match(symbol) and haunt_symbol_known(symbol=symbol):
            return source, symbol
    elif SOURCE_RE.match(source) and SYMBOL_RE.match(symbol):
        for candidate in dict.fromkeys((symbol, symbol.upper())):
            if candle_symbol_known(source=source, symbol=candidate):
                return source, candidate
    raise CandleSymbolUnknown(
        f"Invalid symbol {symbol!r} for source {source!r}.", symbol=symbol, source=source
    )


def klines_get(
    *,
    symbol: str,
    interval: str,
    source: str = AGGREGATE_SOURCE,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int = KLINES_LIMIT_DEFAULT,
    now_ms: int | None = None,
) -> list[list[Any]]:
    """Candles in Binance's kline array format, with Binance's parameter semantics.

    With startTime the oldest `limit` candles from it (up to endTime), otherwise the newest
    `limit` up to endTime (or now); open times are inclusive at both ends; limit is clamped to
    1..1000. Rows: [openTime, "open", "high", "low", "close", "volume", closeTime,
    "quoteVolume", trades, "takerBuyBase", "takerBuyQuote", "0"]. Haunt keeps neither quote
    nor taker volumes ("0"); trades is the stored trade count (0 for the Haunt aggregate,
    which is built from prices, not trades). The current bucket is included, still forming.
    """
    step = ohlc.interval_ms(interval)  # the view validated it
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise CandleQueryInvalid("startTime must not be after endTime.", startTime=start_ms, endTime=end_ms)
    source, symbol = candle_source_resolve(source=source, symbol=symbol)
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    limit = min(max(limit, 1), KLINES_LIMIT_MAX)
    bars = bars_select(
        source=source,
        symbol=symbol,
        interval=interval,
        start_ms=start_ms,
        end_ms=end_ms if end_ms is not None else now_ms,
        limit=limit,
        newest=start_ms is None,
        now_ms=now_ms,
    )
    zero = "0"
    trades_known = source != AGGREGATE_SOURCE
    return [
        [
            bar.open_time,
            binance_decimal(bar.open),
            binance_decimal(bar.high),
            binance_decimal(bar.low),
            binance_decimal(bar.close),
            binance_decimal(bar.volume),
            bar.open_time + step - 1,
            binance_decimal(Decimal(0)),
            bar.trade_count if trades_known else 0,
            binance_decimal(Decimal(0)),
            binance_decimal(Decimal(0)),
            zero,
        ]
        for bar in bars
    ]


# --- TradingView UDF -------------------------------------------------------------------------

UDF_RESOLUTIONS: dict[str, str] = {"1": "1m", "5": "5m", "15": "15m", "60": "1h", "240": "4h", "1D": "1d"}
UDF_ALIASES = {"D": "1D", "1440": "1D"}
UDF_HISTORY_MAX = 5000  # bars per answer; the library asks for visible ranges, far fewer
UDF_SEARCH_MAX = 100


def udf_resolution(resolution: str) -> str:
    """The candle interval of a UDF resolution; CandleQueryInvalid for one Haunt does not serve."""
    interval = UDF_RESOLUTIONS.get(UDF_ALIASES.get(resolution, resolution))
    if interval is None:
        raise CandleQueryInvalid(
            f"Unsupported resolution {resolution!r}; expected one of {', '.join(UDF_RESOLUTIONS)}.",
            resolution=resolution,
        )
    return interval


def _udf_exchange(source: str) -> str:
    return source.upper()


def udf_ticker(entry: CandleSymbol) -> str:
    """UDF ticker of a symbol: "HAUNT:BTC" for the aggregate, "BINANCE:XRPETH" for exchange candles."""
    return f"{_udf_exchange(entry.source)}:{entry.symbol.upper()}"


def udf_symbol_resolve(*, name: str) -> CandleSymbol:
    """A UDF symbol ("BTC", "btc", "HAUNT:BTC", "BINANCE:XRPETH", "XRPETH") to a stored (source, symbol)."""
    if ":" in name:
        exchange, _, symbol = name.partition(":")
        source, stored = candle_source_resolve(source=exchange, symbol=symbol)
        return CandleSymbol(source, stored)
    lowered = name.lower()
    if SYMBOL_RE.match(lowered) and haunt_symbol_known(symbol=lowered):
        return CandleSymbol(AGGREGATE_SOURCE, lowered)
    for entry in candle_symbols():
        if entry.source != AGGREGATE_SOURCE and entry.symbol.upper() == name.upper():
            return entry
    raise CandleSymbolUnknown(f"Unknown symbol {name!r}.", symbol=name)


def _udf_description(entry: CandleSymbol) -> str:
    if entry.source == AGGREGATE_SOURCE:
        return f"{entry.symbol.upper()} / USD (Haunt aggregate)"
    return f"{entry.symbol} ({entry.source} candles)"


def udf_config() -> dict[str, Any]:
    """The datafeed configuration (`onReady`)."""
    sources = sorted({entry.source for entry in candle_symbols()} | {AGGREGATE_SOURCE})
    return {
        "supported_resolutions": list(UDF_RESOLUTIONS),
        "supports_search": True,
        "supports_group_request": False,
        "supports_marks": False,
        "supports_timescale_marks": False,
        "supports_time": True,
        "exchanges": [
            {"value": "", "name": "All Exchanges", "desc": ""},
            *(
                {
                    "value": _udf_exchange(source),
                    "name": _udf_exchange(source),
                    "desc": "Haunt aggregate" if source == AGGREGATE_SOURCE else f"{source} candles",
                }
                for source in sources
            ),
        ],
        "symbols_types": [{"name": "All types", "value": ""}, {"name": "Crypto", "value": "crypto"}],
    }


def udf_symbol_info(*, name: str) -> dict[str, Any]:
    """A LibrarySymbolInfo for `/symbols?symbol=`."""
    entry = udf_symbol_resolve(name=name)
    exchange = _udf_exchange(entry.source)
    live = entry.source == AGGREGATE_SOURCE
    return {
        "name": entry.symbol.upper(),
        "ticker": udf_ticker(entry),
        "description": _udf_description(entry),
        "type": "crypto",
        "session": "24x7",
        "timezone": "Etc/UTC",
        "exchange": exchange,
        "listed_exchange": exchange,
        "minmov": 1,
        "pricescale": 10 ** price_decimals(source=entry.source, symbol=entry.symbol),
        "has_intraday": True,
        "has_daily": True,
        "has_weekly_and_monthly": False,
        "intraday_multipliers": [r for r in UDF_RESOLUTIONS if r != "1D"],
        "daily_multipliers": ["1"],
        "supported_resolutions": list(UDF_RESOLUTIONS),
        "volume_precision": 8,
        "data_status": "streaming" if live else "endofday",
        "format": "price",
    }


def udf_search(*, query: str, type_: str = "", exchange: str = "", limit: int = 30) -> list[dict[str, Any]]:
    """`/search`: symbols whose name or ticker contains the query (case-insensitive)."""
    needle = query.strip().upper()
    limit = min(max(limit, 1), UDF_SEARCH_MAX)
    if type_ and type_ != "crypto":
        return []
    results = []
    for entry in candle_symbols():
        ticker = udf_ticker(entry)
        if exchange and _udf_exchange(entry.source) != exchange.upper():
            continue
        if needle and needle not in ticker:
            continue
        results.append(
            {
                "symbol": entry.symbol.upper(),
                "full_name": ticker,
                "description": _udf_description(entry),
                "exchange": _udf_exchange(entry.source),
                "ticker": ticker,
                "type": "crypto",
            }
        )
        if len(results) >= limit:
            break
    return results


def udf_history(
    *,
    symbol: str,
    resolution: str,
    to_s: int,
    from_s: int | None = None,
    countback: int | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """`/history`: bars with from <= t < to (seconds), or the `countback` bars before `to`
    (countback wins over from). Times in seconds, prices and volumes as numbers; no bars gives
    {"s": "no_data"} with nextTime (seconds) of the closest earlier bar when there is one."""
    interval = udf_resolution(resolution)
    if countback is None and from_s is None:
        raise CandleQueryInvalid("Either from or countback is required.")
    if countback is None and from_s is not None and from_s >= to_s:
        raise CandleQueryInvalid("from must be before to.", **{"from": from_s, "to": to_s})
    entry = udf_symbol_resolve(name=symbol)
    end_ms = to_s * 1000 - 1  # `to` is exclusive
    start_ms = None if countback is not None else (from_s or 0) * 1000
    limit = min(countback, UDF_HISTORY_MAX) if countback is not None else UDF_HISTORY_MAX
    bars = bars_select(
        source=entry.source,
        symbol=entry.symbol,
        interval=interval,
        start_ms=start_ms,
        end_ms=end_ms,
        limit=limit,
        newest=True,
        now_ms=now_ms,
    )
    if not bars:
        before = (start_ms if start_ms is not None else end_ms + 1) - 1
        earlier = bars_select(
            source=entry.source,
            symbol=entry.symbol,
            interval=interval,
            start_ms=None,
            end_ms=before,
            limit=1,
            newest=True,
            now_ms=now_ms,
        )
        body: dict[str, Any] = {"s": "no_data"}
        if earlier:
            body["nextTime"] = earlier[-1].open_time // 1000
        return body
    return {
        "s": "ok",
        "t": [bar.open_time // 1000 for bar in bars],
        "o": [float(bar.open) for bar in bars],
        "h": [float(bar.high) for bar in bars],
        "l": [float(bar.low) for bar in bars],
        "c": [float(bar.close) for bar in bars],
        "v": [float(bar.volume) for bar in bars],
    }
