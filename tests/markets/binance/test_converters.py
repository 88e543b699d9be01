"""Pure converters of apps.markets.binance: Haunt values in Binance's formats."""

from decimal import Decimal

from apps.markets import binance
from apps.markets import candles as ohlc
from apps.markets.services.aggregation import AggregatedPrice

NOW = 1_704_067_200_000


def make_price(**overrides: object) -> AggregatedPrice:
    values: dict[str, object] = {
        "symbol": "btc",
        "price": Decimal("50500.5"),
        "previous_price": Decimal("50400"),
        "direction": "up",
        "source": "coinbase",
        "sources": ("coinbase",),
        "timestamp": NOW,
        "volume_24h": Decimal("100"),
        "change_24h": Decimal("500.5"),
        "change_percent_24h": Decimal("1.00"),
    }
    values.update(overrides)
    return AggregatedPrice(**values)  # type: ignore[arg-type]


def test_pairs_map_to_haunt_symbols_and_back():
    assert binance.pair_from_symbol("btc") == "BTCUSDT"
    assert binance.symbol_from_pair("BTCUSDT") == "btc"
    assert binance.symbol_from_pair("btcusdt") == "btc"
    assert binance.symbol_from_pair("BTCUSD") is None
    assert binance.symbol_from_pair("USDT") is None
    assert binance.symbol_from_pair("BTC-USDT") is None


def test_decimals_are_strings_with_at_least_eight_places():
    assert binance.dec(Decimal("67000.000000000000")) == "67000.00000000"
    assert binance.dec(Decimal("0.000000001234")) == "0.000000001234"
    assert binance.dec(Decimal("1E+2")) == "100.00000000"
    assert binance.dec(None) == "0.00000000"


def test_exchange_info_lists_spot_usdt_markets():
    info = binance.exchange_info(["eth", "btc", "btc"], server_time=NOW)

    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    market = info["symbols"][0]
    assert (market["baseAsset"], market["quoteAsset"], market["status"]) == ("BTC", "USDT", "TRADING")
    assert {f["filterType"] for f in market["filters"]} == {"PRICE_FILTER", "LOT_SIZE"}
    assert market["permissionSets"] == [["SPOT"]]
    assert market["isSpotTradingAllowed"] is True
    assert binance.futures_exchange_info(server_time=NOW)["symbols"] == []


def test_ticker_24hr_from_an_aggregated_price():
    stats = binance.ticker_stats(make_price(), high=Decimal("51000"), low=Decimal("49000"))

    ticker = binance.ticker_24hr(stats)

    assert ticker["symbol"] == "BTCUSDT"
    assert ticker["lastPrice"] == "50500.50000000"
    assert ticker["openPrice"] == ticker["prevClosePrice"] == "50000.00000000"
    assert ticker["priceChange"] == "500.50000000"
    assert ticker["priceChangePercent"] == "1.001"
    assert (ticker["highPrice"], ticker["lowPrice"]) == ("51000.00000000", "49000.00000000")
    assert ticker["volume"] == "100.00000000"
    assert (ticker["openTime"], ticker["closeTime"]) == (NOW - binance.DAY_MS, NOW)
    assert set(binance.ticker_mini(stats)) < set(ticker)


def test_ticker_without_24h_history_opens_at_the_last_price():
    stats = binance.ticker_stats(make_price(change_24h=None, volume_24h=None))

    assert stats.open == stats.high == stats.low == stats.last == Decimal("50500.5")
    assert stats.volume == 0
    assert stats.with_price(Decimal("50600"), NOW + 1).high == Decimal("50600")


def test_stream_events_carry_binance_event_types():
    stats = binance.ticker_stats(make_price())

    mini = binance.mini_ticker_event(stats, event_ms=NOW + 5)
    full = binance.ticker_event(stats, event_ms=NOW + 5)
    trade = binance.trade_event(
        symbol="btc", price=Decimal("1.5"), time_ms=NOW, direction="down", event_ms=NOW
    )

    assert (mini["e"], mini["s"], mini["c"], mini["E"]) == (
        "24hrMiniTicker",
        "BTCUSDT",
        "50500.50000000",
        NOW + 5,
    )
    assert (full["e"], full["c"], full["o"]) == ("24hrTicker", "50500.50000000", "50000.00000000")
    assert (trade["e"], trade["t"], trade["p"], trade["q"], trade["m"]) == (
        "trade",
        NOW,
        "1.50000000",
        "0.00000000",
        True,
    )


def test_kline_row_and_event():
    bar = ohlc.Bar(NOW, Decimal(1), Decimal(3), Decimal("0.5"), Decimal(2), Decimal(10), 4)

    row = binance.kline_row(bar, "5m")
    event = binance.kline_event("btc", bar, "5m", closed=True, event_ms=NOW)

    assert row[:9] == [
        NOW,
        "1.00000000",
        "3.00000000",
        "0.50000000",
        "2.00000000",
        "10.00000000",
        NOW + 300_000 - 1,
        "20.00000000",
        4,
    ]
    assert len(row) == 12
    assert (event["e"], event["k"]["i"], event["k"]["x"], event["k"]["c"]) == (
        "kline",
        "5m",
        True,
        "2.00000000",
    )


def test_bar_fold_replaces_a_resent_minute_instead_of_adding_it():
    stored = ohlc.Bar(NOW, Decimal(10), Decimal(12), Decimal(9), Decimal(11), Decimal(5), 3)
    volumes: dict[int, Decimal] = {}

    first = binance.bar_fold(
        stored,
        ohlc.Bar(NOW + 60_000, Decimal(11), Decimal(13), Decimal(11), Decimal(13), Decimal(1), 1),
        "5m",
        volumes,
    )
    again = binance.bar_fold(
        first,
        ohlc.Bar(NOW + 60_000, Decimal(11), Decimal(13), Decimal(8), Decimal(8), Decimal(2), 1),
        "5m",
        volumes,
    )
    next_bucket = binance.bar_fold(
        again,
        ohlc.Bar(NOW + 300_000, Decimal(8), Decimal(8), Decimal(8), Decimal(8), Decimal(1), 1),
        "5m",
        volumes,
    )

    assert (first.open, first.high, first.close, first.volume) == (
        Decimal(10),
        Decimal(13),
        Decimal(13),
        Decimal(6),
    )
    assert (again.low, again.close, again.volume) == (Decimal(8), Decimal(8), Decimal(7))
    assert (next_bucket.open_time, next_bucket.open, next_bucket.volume) == (
        NOW + 300_000,
        Decimal(8),
        Decimal(1),
    )
