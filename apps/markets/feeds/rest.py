"""Parsers for price-aggregator and exchange REST responses: body text in, ticker Ticks out.

Pure functions, no I/O: the caller fetches, notes the receive time, and hands over the raw
body (text, so JSON floats become exact Decimals). A body that is not the documented shape,
or that reports an API error, raises RestFormatError; an entry with no price (CoinMarketCap
lists new coins with a null price) is skipped.

Aggregators report their volumes in the quote currency (CoinGecko, CoinMarketCap), which is
not Tick.volume_24h's base volume, so those ticks carry none. Their prices are 20 to 60 s old
by design, which is why exchange_ts is always the provider's own update time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from apps.markets.feeds.adapters.base import (
    FrameError,
    arr,
    loads,
    make_tick,
    ms_from_iso,
    ms_from_seconds,
    obj,
    price,
    size,
    text,
)
from apps.markets.feeds.symbols import Pair, split_kraken_rest
from apps.markets.feeds.types import Tick

# CoinGecko answers by coin id; these are the ids of the coins Haunt is likely to ask about.
COINGECKO_SYMBOLS: dict[str, str] = {
    "bitcoin": "btc",
    "ethereum": "eth",
    "tether": "usdt",
    "binancecoin": "bnb",
    "solana": "sol",
    "ripple": "xrp",
    "usd-coin": "usdc",
    "cardano": "ada",
    "dogecoin": "doge",
    "polkadot": "dot",
    "litecoin": "ltc",
    "chainlink": "link",
    "tron": "trx",
    "avalanche-2": "avax",
    "uniswap": "uni",
    "monero": "xmr",
}


class RestFormatError(ValueError):
    """A REST body is not the shape the provider documents, or reports an error."""


def _decode(body: str | bytes) -> Any:
    try:
        return loads(body)
    except ValueError as exc:  # JSONDecodeError and FrameError are ValueErrors
        raise RestFormatError(f"not JSON: {exc}") from None


def _guard(provider: str, fn: Callable[..., list[Tick]], *args: Any) -> list[Tick]:
    try:
        result = fn(*args)
    except RestFormatError:
        raise
    except (FrameError, LookupError, TypeError, ArithmeticError) as exc:
        raise RestFormatError(f"{provider}: {exc}") from exc
    return result


def coingecko_simple_price(
    body: str | bytes, *, received_ts: int, symbols: Mapping[str, str] = COINGECKO_SYMBOLS
) -> list[Tick]:
    """`/simple/price?ids=…&vs_currencies=…&include_last_updated_at=true` → one tick per coin and currency.

    `symbols` maps CoinGecko coin ids to Haunt assets; ids it does not know are skipped.
    Without include_last_updated_at there is no source time, so the body is refused.
    """
    return _guard("coingecko", _coingecko_simple_price, _decode(body), received_ts, symbols)


def _coingecko_simple_price(body: Any, received_ts: int, symbols: Mapping[str, str]) -> list[Tick]:
    ticks = []
    for coin_id, fields in obj(body, "body").items():
        fields = obj(fields, coin_id)
        base = symbols.get(coin_id)
        if base is None:
            continue
        updated = ms_from_seconds(fields["last_updated_at"], "last_updated_at")
        for currency, value in fields.items():
            if "_" in currency or value is None:  # usd_24h_vol, usd_market_cap, last_updated_at
                continue
            ticks.append(
                make_tick(
                    "coingecko",
                    f"{coin_id}/{currency}",
                    Pair(base, currency.lower()),
                    kind="ticker",
                    price=price(value, f"{coin_id}.{currency}"),
                    exchange_ts=updated,
                    received_ts=received_ts,
                )
            )
    return ticks


def coingecko_coins_markets(body: str | bytes, *, received_ts: int, vs_currency: str) -> list[Tick]:
    """`/coins/markets?vs_currency=…` → one tick per coin (the query's vs_currency is the quote)."""
    return _guard("coingecko", _coingecko_coins_markets, _decode(body), received_ts, vs_currency)


def _coingecko_coins_markets(body: Any, received_ts: int, vs_currency: str) -> list[Tick]:
    ticks = []
    for coin in arr(body, "body"):
        coin = obj(coin, "coin")
        if coin.get("current_price") is None:
            continue
        coin_id = text(coin["id"], "id")
        ticks.append(
            make_tick(
                "coingecko",
                f"{coin_id}/{vs_currency.lower()}",
                Pair(text(coin["symbol"], "symbol").lower(), vs_currency.lower()),
                kind="ticker",
                price=price(coin["current_price"], "current_price"),
                exchange_ts=ms_from_iso(coin["last_updated"], "last_updated"),
                received_ts=received_ts,
            )
        )
    return ticks


def coinmarketcap_quotes_latest(body: str | bytes, *, received_ts: int) -> list[Tick]:
    """`/v1/cryptocurrency/quotes/latest` (v1 objects or v2+ arrays per key) → one tick per coin and convert currency."""
    return _guard("coinmarketcap", _coinmarketcap, _decode(body), received_ts, False)


def coinmarketcap_listings_latest(body: str | bytes, *, received_ts: int) -> list[Tick]:
    """`/v1/cryptocurrency/listings/latest` → one tick per coin and convert currency."""
    return _guard("coinmarketcap", _coinmarketcap, _decode(body), received_ts, True)


def _coinmarketcap(body: Any, received_ts: int, listing: bool) -> list[Tick]:
    body = obj(body, "body")
    status = obj(body["status"], "status")
    if status.get("error_code") not in (0, "0"):
        raise RestFormatError(f"coinmarketcap: {status.get('error_code')} {status.get('error_message')}")
    if listing:
        coins = arr(body["data"], "data")
    else:
        # Keyed by the id/symbol asked for; v2+ give a list per key, since symbols can clash.
        coins = []
        for entry in obj(body["data"], "data").values():
            coins.extend(entry if isinstance(entry, list) else [entry])
    return [tick for coin in coins for tick in _coinmarketcap_coin(obj(coin, "coin"), received_ts)]


def _coinmarketcap_coin(coin: dict[str, Any], received_ts: int) -> list[Tick]:
    symbol = text(coin["symbol"], "symbol")
    ticks = []
    for currency, quote in obj(coin["quote"], "quote").items():
        quote = obj(quote, f"quote.{currency}")
        if quote.get("price") is None:
            continue
        ticks.append(
            make_tick(
                "coinmarketcap",
                f"{symbol}/{currency}",
                Pair(symbol.lower(), currency.lower()),
                kind="ticker",
                price=price(quote["price"]),
                exchange_ts=ms_from_iso(quote["last_updated"], "last_updated"),
                received_ts=received_ts,
            )
        )
    return ticks


def cryptocompare_pricemultifull(body: str | bytes, *, received_ts: int) -> list[Tick]:
    """`/data/pricemultifull?fsyms=…&tsyms=…` → one tick per RAW pair (CCCAGG index)."""
    return _guard("cryptocompare", _cryptocompare, _decode(body), received_ts)


def _cryptocompare(body: Any, received_ts: int) -> list[Tick]:
    body = obj(body, "body")
    if body.get("Response") == "Error":
        raise RestFormatError(f"cryptocompare: {body.get('Message')}")
    ticks = []
    for base, quotes in obj(body["RAW"], "RAW").items():
        for quote, fields in obj(quotes, base).items():
            fields = obj(fields, f"{base}/{quote}")
            ticks.append(
                make_tick(
                    "cryptocompare",
                    f"{base}/{quote}",
                    Pair(base.lower(), quote.lower()),
                    kind="ticker",
                    price=price(fields["PRICE"], "PRICE"),
                    volume_24h=size(fields["VOLUME24HOUR"], "VOLUME24HOUR"),  # in FROMSYMBOL units
                    exchange_ts=ms_from_seconds(fields["LASTUPDATE"], "LASTUPDATE"),
                    received_ts=received_ts,
                )
            )
    return ticks


def kraken_ticker(body: str | bytes, *, received_ts: int) -> list[Tick]:
    """Kraken `/0/public/Ticker` → one tick per pair (last trade `c[0]`, 24 h volume `v[1]`).

    The response has no timestamp, so exchange_ts is the receive time.
    """
    return _guard("kraken", _kraken_ticker, _decode(body), received_ts)


def _kraken_ticker(body: Any, received_ts: int) -> list[Tick]:
    body = obj(body, "body")
    if arr(body.get("error", []), "error"):
        raise RestFormatError(f"kraken: {body['error']}")
    ticks = []
    for key, fields in obj(body["result"], "result").items():
        pair = split_kraken_rest(key)
        if pair is None:
            raise RestFormatError(f"kraken: unknown pair {key!r}")
        fields = obj(fields, key)
        ticks.append(
            make_tick(
                "kraken",
                key,
                pair,
                kind="ticker",
                price=price(arr(fields["c"], "c")[0]),
                volume_24h=size(arr(fields["v"], "v")[1], "volume"),
                exchange_ts=received_ts,
                received_ts=received_ts,
            )
        )
    return ticks
