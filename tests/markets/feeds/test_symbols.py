from __future__ import annotations

import pytest

from apps.markets.feeds.symbols import (
    BINANCE_QUOTES,
    HTX_QUOTES,
    Pair,
    split_concat,
    split_dash,
    split_kraken_rest,
    split_kraken_ws,
    split_kucoin,
)
from tests.markets.feeds.captures import http_body


@pytest.mark.parametrize(
    ("instrument", "expected"),
    [
        ("BTC-USD", Pair("btc", "usd")),
        ("BCHSV-USDT", Pair("bchsv", "usdt")),
        ("BTC-USD-220527", None),  # OKX dated future
        ("UNI-USD-SWAP", None),  # OKX perpetual swap
        ("BTC-USD-220527-30000-C", None),  # OKX option
        ("BTC", None),
        ("-USD", None),
    ],
)
def test_split_dash(instrument: str, expected: Pair | None) -> None:
    assert split_dash(instrument) == expected


@pytest.mark.parametrize(
    ("symbol", "quotes", "expected"),
    [
        ("BTCUSDT", BINANCE_QUOTES, Pair("btc", "usdt")),
        ("NKNUSDT", BINANCE_QUOTES, Pair("nkn", "usdt")),
        ("BLZETH", BINANCE_QUOTES, Pair("blz", "eth")),
        ("RUNEEUR", BINANCE_QUOTES, Pair("rune", "eur")),
        ("BNBBUSD", BINANCE_QUOTES, Pair("bnb", "busd")),
        ("BTCFDUSD", BINANCE_QUOTES, Pair("btc", "fdusd")),
        ("BTCTUSD", BINANCE_QUOTES, Pair("btc", "tusd")),
        ("USDT", BINANCE_QUOTES, None),
        ("BTCXYZ", BINANCE_QUOTES, None),
        ("btcusdt", HTX_QUOTES, Pair("btc", "usdt")),
        ("yfihusd", HTX_QUOTES, Pair("yfi", "husd")),
        ("fil3susdt", HTX_QUOTES, Pair("fil3s", "usdt")),
        ("htusdt", HTX_QUOTES, Pair("ht", "usdt")),
        ("ethht", HTX_QUOTES, Pair("eth", "ht")),
    ],
)
def test_split_concat(symbol: str, quotes: tuple[str, ...], expected: Pair | None) -> None:
    assert split_concat(symbol, quotes) == expected


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("XBT/USD", Pair("btc", "usd")),
        ("XDG/EUR", Pair("doge", "eur")),
        ("KSM/XBT", Pair("ksm", "btc")),
        ("WAVES/EUR", Pair("waves", "eur")),
        ("XBTUSD", None),
    ],
)
def test_split_kraken_ws(pair: str, expected: Pair | None) -> None:
    assert split_kraken_ws(pair) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("XXBTZUSD", Pair("btc", "usd")),
        ("XETHZEUR", Pair("eth", "eur")),
        ("XETHXXBT", Pair("eth", "btc")),
        ("XDGUSD", Pair("doge", "usd")),
        ("DOTUSD", Pair("dot", "usd")),  # not do/tusd
        ("DOTUSDT", Pair("dot", "usdt")),
        ("XBTUSDT", Pair("btc", "usdt")),
        ("SOLEUR", Pair("sol", "eur")),
        ("USDTZUSD", Pair("usdt", "usd")),
        ("XXRPZUSD", Pair("xrp", "usd")),
        ("XTZUSD", Pair("xtz", "usd")),
        ("DOTXBT", Pair("dot", "btc")),
        ("NOQUOTE", None),
    ],
)
def test_split_kraken_rest(key: str, expected: Pair | None) -> None:
    assert split_kraken_rest(key) == expected


# The exchanges' own instrument listings, recorded with the captures, say what each symbol is.


def test_every_binance_symbol_splits_as_exchange_info_says() -> None:
    symbols = http_body("BINANCE.0", "exchangeInfo")["symbols"]

    wrong = [
        s["symbol"]
        for s in symbols
        if split_concat(s["symbol"], BINANCE_QUOTES) != Pair(s["baseAsset"].lower(), s["quoteAsset"].lower())
    ]
    assert len(symbols) > 1000
    assert wrong == []


def test_every_htx_symbol_splits_as_its_listing_says() -> None:
    symbols = http_body("HUOBI.0", "/v1/common/symbols")["data"]

    wrong = [
        s["symbol"]
        for s in symbols
        if split_concat(s["symbol"], HTX_QUOTES) != Pair(s["base-currency"], s["quote-currency"])
    ]
    assert len(symbols) > 900
    assert wrong == []


def test_every_kraken_rest_key_and_altname_split_like_its_ws_name() -> None:
    pairs = http_body("KRAKEN.0", "AssetPairs")["result"]

    listed = [(key, info) for key, info in pairs.items() if "wsname" in info]
    wrong = [
        key
        for key, info in listed
        if not split_kraken_rest(key) == split_kraken_rest(info["altname"]) == split_kraken_ws(info["wsname"])
    ]
    assert len(listed) > 250
    assert wrong == []
    assert split_kraken_ws(pairs["XXBTZUSD"]["wsname"]) == Pair("btc", "usd")


def test_every_coinbase_product_splits_on_the_dash() -> None:
    products = http_body("COINBASE.0", "/products")

    assert all(
        split_dash(p["id"]) == Pair(p["base_currency"].lower(), p["quote_currency"].lower()) for p in products
    )


def test_every_kucoin_symbol_splits_to_its_listed_currencies() -> None:
    symbols = http_body("KUCOIN.0", "/symbols")["data"]

    wrong = [
        s["symbol"]
        for s in symbols
        if split_kucoin(s["symbol"]) != Pair(s["baseCurrency"].lower(), s["quoteCurrency"].lower())
    ]
    assert len(symbols) > 500
    assert wrong == []
    assert split_kucoin("BCHSV-USDT") == Pair("bsv", "usdt")


def test_okx_spot_splits_and_every_derivative_is_dropped() -> None:
    spot = http_body("OKX.0", "instType=SPOT")["data"]
    derivatives = [
        instrument
        for kind in ("SWAP", "FUTURES", "OPTION&uly=BTC-USD")
        for instrument in http_body("OKX.0", f"instType={kind}")["data"]
    ]

    assert all(split_dash(i["instId"]) == Pair(i["baseCcy"].lower(), i["quoteCcy"].lower()) for i in spot)
    assert len(derivatives) > 100
    assert [i["instId"] for i in derivatives if split_dash(i["instId"]) is not None] == []
