"""Split each exchange's instrument id into lower-case Haunt base/quote assets.

Every splitter returns None for anything that is not a plain spot pair. Derivatives (OKX
futures `BTC-USD-220527`, swaps `UNI-USD-SWAP`, options) price the contract, not the coin:
a dated future carries basis and a perpetual carries funding, so adapters drop them and
aggregation only ever sees spot prices.
"""

from __future__ import annotations

from typing import NamedTuple


class Pair(NamedTuple):
    base: str
    quote: str


def _longest_first(*quotes: str) -> tuple[str, ...]:
    return tuple(sorted(quotes, key=lambda q: (-len(q), q)))


# Quote assets per exchange, for the ones whose symbols are concatenated (BTCUSDT, btcusdt).
# Matched longest first, so BTCFDUSD is fdusd and yfihusd is husd. The lists are per exchange
# because one shared list is ambiguous: with both usd and tusd, Kraken's DOTUSD reads as do/tusd.
BINANCE_QUOTES = _longest_first(
    "usdt", "usdc", "fdusd", "busd", "tusd", "usdp", "dai", "btc", "eth", "bnb", "xrp", "trx",
    "doge", "dot", "eur", "gbp", "try", "aud", "brl", "rub", "uah", "ngn", "zar", "pln", "ron",
    "ars", "jpy", "mxn", "idrt", "bidr", "bvnd", "bkrw", "gyen", "pax", "usds", "vai",
)  # fmt: skip
HTX_QUOTES = _longest_first("usdt", "usdc", "usdd", "husd", "tusd", "btc", "eth", "ht", "trx", "eur", "gbp")
KRAKEN_QUOTES = _longest_first(
    "usd", "eur", "gbp", "cad", "jpy", "chf", "aud", "aed", "usdt", "usdc", "pyusd", "dai", "btc", "eth", "dot",
)  # fmt: skip

# KuCoin kept the old codes in symbols of renamed coins: BCHSV-USDT trades BSV (its /symbols
# listing says baseCurrency "BSV"), so other exchanges' bsv prices and these line up.
KUCOIN_ASSETS = {"bchsv": "bsv", "wax": "waxp", "loki": "oxen", "r": "rev"}
# Kraken's own asset codes for the same coins everyone else names differently.
KRAKEN_ASSETS = {"xbt": "btc", "xdg": "doge"}
# Kraken REST names its oldest assets with an X (crypto) or Z (fiat) prefix: XXBTZUSD, USDTZUSD.
KRAKEN_LEGACY = {
    "xetc", "xeth", "xltc", "xmln", "xrep", "xxbt", "xxdg", "xxlm", "xxmr", "xxrp", "xzec",
    "zusd", "zeur", "zgbp", "zcad", "zjpy", "zaud", "zchf",
}  # fmt: skip
KRAKEN_REST_QUOTES = _longest_first(*KRAKEN_QUOTES, "xbt", *KRAKEN_LEGACY)


def split_dash(instrument: str) -> Pair | None:
    """BTC-USD (Coinbase, KuCoin, OKX spot) → btc/usd; derivatives with more parts → None."""
    parts = instrument.split("-")
    if len(parts) != 2 or not all(parts):
        return None
    return Pair(parts[0].lower(), parts[1].lower())


def split_kucoin(symbol: str) -> Pair | None:
    """BCHSV-USDT (KuCoin) → bsv/usdt: a dash split with KuCoin's renamed-coin codes mapped."""
    pair = split_dash(symbol)
    if pair is None:
        return None
    return Pair(KUCOIN_ASSETS.get(pair.base, pair.base), KUCOIN_ASSETS.get(pair.quote, pair.quote))


def split_concat(symbol: str, quotes: tuple[str, ...]) -> Pair | None:
    """BTCUSDT (Binance) or btcusdt (HTX) → btc/usdt, by suffix match against that exchange's quotes."""
    lowered = symbol.lower()
    for quote in quotes:
        if lowered.endswith(quote) and len(lowered) > len(quote):
            return Pair(lowered[: -len(quote)], quote)
    return None


def kraken_asset(code: str) -> str:
    """Kraken asset code → Haunt asset (XBT → btc, XDG → doge)."""
    lowered = code.lower()
    return KRAKEN_ASSETS.get(lowered, lowered)


def split_kraken_ws(pair: str) -> Pair | None:
    """XBT/USD (Kraken WS) → btc/usd."""
    parts = pair.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return Pair(kraken_asset(parts[0]), kraken_asset(parts[1]))


def split_kraken_rest(key: str) -> Pair | None:
    """XXBTZUSD, USDTZUSD, DOTUSD (Kraken REST result keys) → btc/usd, usdt/usd, dot/usd.

    A prefixed quote only follows a base of four or more letters (XXBT, USDT): XTZUSD is
    xtz/usd, not xt/zusd.
    """
    lowered = key.lower()
    for quote in KRAKEN_REST_QUOTES:
        base = lowered.removesuffix(quote)
        if base == lowered or not base or (quote in KRAKEN_LEGACY and len(base) < 4):
            continue
        return Pair(_kraken_rest_asset(base), _kraken_rest_asset(quote))
    return None


def _kraken_rest_asset(code: str) -> str:
    return kraken_asset(code[1:] if code in KRAKEN_LEGACY else code)
