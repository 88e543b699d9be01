"""REST parsers on the providers' documented response shapes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.markets.feeds.rest import (
    RestFormatError,
    coingecko_coins_markets,
    coingecko_simple_price,
    coinmarketcap_listings_latest,
    coinmarketcap_quotes_latest,
    cryptocompare_pricemultifull,
    kraken_ticker,
)

RECEIVED = 1_711_356_330_000

COINGECKO_SIMPLE = """{
  "bitcoin": {"usd": 67187.3358936566, "usd_24h_vol": 31260929299.5248, "eur": 62005.12, "last_updated_at": 1711356300},
  "ethereum": {"usd": 3432.21, "usd_market_cap": 412000000000.1, "last_updated_at": 1711356290},
  "some-new-coin": {"usd": 0.0012, "last_updated_at": 1711356300}
}"""

COINGECKO_MARKETS = """[
  {"id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "current_price": 70187, "market_cap": 1381651251183,
   "total_volume": 20154184933, "last_updated": "2024-04-07T16:49:31.736Z"},
  {"id": "fresh", "symbol": "frsh", "name": "Fresh", "current_price": null, "last_updated": null}
]"""

CMC_QUOTES_V1 = """{
  "status": {"timestamp": "2018-08-09T21:56:28.209Z", "error_code": 0, "error_message": null, "elapsed": 10, "credit_count": 1},
  "data": {
    "BTC": {"id": 1, "name": "Bitcoin", "symbol": "BTC", "slug": "bitcoin", "last_updated": "2018-08-09T21:56:28.000Z",
      "quote": {"USD": {"price": 6602.60701122, "volume_24h": 4314444687.5194, "percent_change_1h": 0.988615,
        "market_cap": 113563929433.21645, "last_updated": "2018-08-09T21:56:28.000Z"}}}
  }
}"""

CMC_QUOTES_V2 = """{
  "status": {"timestamp": "2024-03-25T08:45:00.000Z", "error_code": 0, "error_message": null},
  "data": {"ETH": [{"id": 1027, "symbol": "ETH", "quote": {
    "USD": {"price": 3432.2100123, "volume_24h": 1.2e10, "last_updated": "2024-03-25T08:44:00.000Z"},
    "EUR": {"price": 3170.5, "volume_24h": 1.1e10, "last_updated": "2024-03-25T08:44:00.000Z"}}}]}
}"""

CMC_LISTINGS = """{
  "status": {"timestamp": "2020-10-24T06:32:03.858Z", "error_code": 0, "error_message": null, "total_count": 2},
  "data": [
    {"id": 1, "name": "Bitcoin", "symbol": "BTC", "cmc_rank": 1, "last_updated": "2020-10-24T06:30:02.000Z",
     "quote": {"USD": {"price": 12957.520086190707, "volume_24h": 27538857814.122215, "last_updated": "2020-10-24T06:30:02.000Z"}}},
    {"id": 99999, "name": "Unpriced", "symbol": "NEW", "quote": {"USD": {"price": null, "last_updated": "2020-10-24T06:30:02.000Z"}}}
  ]
}"""

CRYPTOCOMPARE = """{
  "RAW": {"BTC": {
    "USD": {"TYPE": "5", "MARKET": "CCCAGG", "FROMSYMBOL": "BTC", "TOSYMBOL": "USD", "FLAGS": "2049",
            "PRICE": 69000.12, "LASTUPDATE": 1711356300, "VOLUME24HOUR": 21234.5678, "VOLUME24HOURTO": 1465000000.1},
    "EUR": {"TYPE": "5", "MARKET": "CCCAGG", "FROMSYMBOL": "BTC", "TOSYMBOL": "EUR", "FLAGS": "2050",
            "PRICE": 63800.5, "LASTUPDATE": 1711356298, "VOLUME24HOUR": 1200.5, "VOLUME24HOURTO": 76590000.25}}},
  "DISPLAY": {"BTC": {"USD": {"PRICE": "$ 69,000.1"}}}
}"""

KRAKEN_TICKER = """{"error": [], "result": {
  "XXBTZUSD": {"a": ["30300.10000", "1", "1.000"], "b": ["30300.00000", "1", "1.000"], "c": ["30303.20000", "0.00067643"],
               "v": ["4083.67001100", "4412.73601799"], "p": ["30706.77771", "30689.13205"], "t": [34619, 38907],
               "l": ["29868.30000", "29868.30000"], "h": ["31631.00000", "31631.00000"], "o": "30502.80000"},
  "XDGUSD": {"a": ["0.0712", "1", "1.000"], "b": ["0.0711", "1", "1.000"], "c": ["0.07115", "500"],
             "v": ["1000", "2500000.5"], "p": ["0.07", "0.07"], "t": [1, 2], "l": ["0.07", "0.07"], "h": ["0.08", "0.08"], "o": "0.07"}
}}"""


def by_instrument(ticks: list) -> dict:
    return {t.instrument: t for t in ticks}


def test_coingecko_simple_price_gives_one_tick_per_known_coin_and_currency() -> None:
    ticks = by_instrument(coingecko_simple_price(COINGECKO_SIMPLE, received_ts=RECEIVED))

    assert sorted(ticks) == ["bitcoin/eur", "bitcoin/usd", "ethereum/usd"]
    btc = ticks["bitcoin/usd"]
    assert (btc.source, btc.kind, btc.base, btc.quote) == ("coingecko", "ticker", "btc", "usd")
    assert btc.price == Decimal("67187.3358936566")  # exact, not a float's rounding
    assert btc.exchange_ts == 1711356300000
    assert btc.received_ts == RECEIVED
    assert btc.volume_24h is None  # usd_24h_vol is quote volume


def test_coingecko_simple_price_takes_a_custom_id_map() -> None:
    ticks = coingecko_simple_price(COINGECKO_SIMPLE, received_ts=RECEIVED, symbols={"some-new-coin": "snc"})

    assert [(t.base, t.price) for t in ticks] == [("snc", Decimal("0.0012"))]


def test_coingecko_simple_price_without_update_time_is_refused() -> None:
    with pytest.raises(RestFormatError):
        coingecko_simple_price('{"bitcoin": {"usd": 67187.3}}', received_ts=RECEIVED)


def test_coingecko_coins_markets_skips_unpriced_coins() -> None:
    (tick,) = coingecko_coins_markets(COINGECKO_MARKETS, received_ts=RECEIVED, vs_currency="USD")

    assert (tick.base, tick.quote, tick.price) == ("btc", "usd", Decimal("70187"))
    assert tick.exchange_ts == 1712508571736


def test_coinmarketcap_quotes_v1_objects() -> None:
    (tick,) = coinmarketcap_quotes_latest(CMC_QUOTES_V1, received_ts=RECEIVED)

    assert (tick.source, tick.instrument, tick.base, tick.quote) == ("coinmarketcap", "BTC/USD", "btc", "usd")
    assert tick.price == Decimal("6602.60701122")
    assert tick.exchange_ts == 1533851788000  # 2018-08-09T21:56:28.000Z


def test_coinmarketcap_quotes_v2_lists_and_several_currencies() -> None:
    ticks = by_instrument(coinmarketcap_quotes_latest(CMC_QUOTES_V2, received_ts=RECEIVED))

    assert sorted(ticks) == ["ETH/EUR", "ETH/USD"]
    assert ticks["ETH/USD"].price == Decimal("3432.2100123")


def test_coinmarketcap_listings_skip_null_prices() -> None:
    ticks = coinmarketcap_listings_latest(CMC_LISTINGS, received_ts=RECEIVED)

    assert [(t.base, t.price) for t in ticks] == [("btc", Decimal("12957.520086190707"))]


def test_coinmarketcap_error_status_is_refused() -> None:
    body = '{"status": {"timestamp": "2018-06-02T22:51:28.209Z", "error_code": 1001, "error_message": "This API Key is invalid."}}'

    with pytest.raises(RestFormatError, match="1001"):
        coinmarketcap_quotes_latest(body, received_ts=RECEIVED)


def test_cryptocompare_pricemultifull_uses_raw_with_base_volume() -> None:
    ticks = by_instrument(cryptocompare_pricemultifull(CRYPTOCOMPARE, received_ts=RECEIVED))

    assert sorted(ticks) == ["BTC/EUR", "BTC/USD"]
    usd = ticks["BTC/USD"]
    assert (usd.source, usd.base, usd.quote, usd.price) == (
        "cryptocompare",
        "btc",
        "usd",
        Decimal("69000.12"),
    )
    assert usd.volume_24h == Decimal("21234.5678")
    assert usd.exchange_ts == 1711356300000


def test_cryptocompare_error_response_is_refused() -> None:
    body = '{"Response": "Error", "Message": "fsyms param is empty or null.", "HasWarning": false, "Type": 2, "Data": {}}'

    with pytest.raises(RestFormatError, match="fsyms"):
        cryptocompare_pricemultifull(body, received_ts=RECEIVED)


def test_kraken_ticker_maps_legacy_asset_codes() -> None:
    ticks = by_instrument(kraken_ticker(KRAKEN_TICKER, received_ts=RECEIVED))

    btc, doge = ticks["XXBTZUSD"], ticks["XDGUSD"]
    assert (btc.source, btc.base, btc.quote, btc.price) == ("kraken", "btc", "usd", Decimal("30303.20000"))
    assert btc.volume_24h == Decimal("4412.73601799")
    assert btc.exchange_ts == RECEIVED  # the response has no time
    assert (doge.base, doge.quote, doge.price) == ("doge", "usd", Decimal("0.07115"))


def test_kraken_error_list_is_refused() -> None:
    with pytest.raises(RestFormatError, match="Unknown asset pair"):
        kraken_ticker('{"error": ["EQuery:Unknown asset pair"]}', received_ts=RECEIVED)


@pytest.mark.parametrize(
    "parse",
    [
        lambda body: coingecko_simple_price(body, received_ts=RECEIVED),
        lambda body: coingecko_coins_markets(body, received_ts=RECEIVED, vs_currency="usd"),
        lambda body: coinmarketcap_quotes_latest(body, received_ts=RECEIVED),
        lambda body: coinmarketcap_listings_latest(body, received_ts=RECEIVED),
        lambda body: cryptocompare_pricemultifull(body, received_ts=RECEIVED),
        lambda body: kraken_ticker(body, received_ts=RECEIVED),
    ],
    ids=["cg-simple", "cg-markets", "cmc-quotes", "cmc-listings", "cryptocompare", "kraken"],
)
@pytest.mark.parametrize("body", ["", "<html>502</html>", "{", "null", "[1, 2]", '{"x": 1}', b"\xff"])
def test_malformed_bodies_raise_rest_format_error(parse, body: str | bytes) -> None:
    with pytest.raises(RestFormatError):
        parse(body)
