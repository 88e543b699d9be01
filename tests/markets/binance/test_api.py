"""The Binance facade's REST endpoints (/api/v3/...), through Django's test client."""

import time
from decimal import Decimal

import pytest

from apps.markets.models import AGGREGATE_SOURCE, Candle, Exchange, Trade
from apps.markets.services.prices import ticks_ingest
from apps.trading.models import Instrument
from haunt.seeding import seed_defaults
from tests.markets.factories import make_tick

pytestmark = pytest.mark.django_db

MINUTE_MS = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ingest(symbol: str = "btc", price: str = "50000.00") -> None:
    ticks_ingest(
        ticks=[
            make_tick(
                base=symbol,
                instrument=f"{symbol.upper()}-USD",
                price=Decimal(price),
                exchange_ts=now_ms(),
                volume_24h=Decimal("12.5"),
            )
        ]
    )


def candle(symbol: str, open_time: int, close: str, interval: str = "1m") -> Candle:
    return Candle.objects.create(
        source=AGGREGATE_SOURCE,
        symbol=symbol,
        interval=interval,
        open_time=open_time,
        open=Decimal(close),
        high=Decimal(close) + 1,
        low=Decimal(close) - 1,
        close=Decimal(close),
        volume=Decimal(2),
        trade_count=1,
    )


def trade(trade_id: int, time_ms: int, *, exchange: str = "binance", symbol: str = "BTCUSDT") -> Trade:
    return Trade.objects.create(
        exchange=exchange,
        symbol=symbol,
        agg_trade_id=trade_id,
        price=Decimal("100.5"),
        quantity=Decimal("0.1"),
        time_ms=time_ms,
        is_buyer_maker=False,
    )


@pytest.fixture(autouse=True)
def _seeded(db):
    seed_defaults()


def test_exchange_info_lists_live_and_candle_symbols(api_client):
    ingest("btc")
    candle("eth", 0, "3000")

    response = api_client.get("/api/v3/exchangeInfo")
    one = api_client.get("/api/v3/exchangeInfo", {"symbol": "ETHUSDT"})

    assert response.status_code == 200
    assert [s["symbol"] for s in response.json()["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    assert [s["symbol"] for s in one.json()["symbols"]] == ["ETHUSDT"]


@pytest.mark.parametrize("path", ["/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"])
def test_futures_exchange_info_is_empty(api_client, path):
    response = api_client.get(path)

    assert response.status_code == 200
    assert response.json()["symbols"] == []


def test_time_is_the_server_clock(api_client):
    assert abs(api_client.get("/api/v3/time").json()["serverTime"] - now_ms()) < 5000


def test_ticker_of_one_symbol_and_of_all(api_client):
    ingest("btc", "50000.00")
    ingest("eth", "3000.00")

    one = api_client.get("/api/v3/ticker/24hr", {"symbol": "BTCUSDT"})
    some = api_client.get("/api/v3/ticker/24hr", {"symbols": '["ETHUSDT"]'})
    every = api_client.get("/api/v3/ticker/24hr")
    mini = api_client.get("/api/v3/ticker/24hr", {"symbol": "BTCUSDT", "type": "MINI"})

    assert one.status_code == 200
    assert (one.json()["symbol"], one.json()["lastPrice"]) == ("BTCUSDT", "50000.00000000")
    assert one.json()["volume"] == "12.50000000"
    assert [t["symbol"] for t in some.json()] == ["ETHUSDT"]
    assert [t["symbol"] for t in every.json()] == ["BTCUSDT", "ETHUSDT"]
    assert "bidPrice" not in mini.json()


def test_ticker_of_a_symbol_known_only_from_candles_uses_the_last_close(api_client):
    candle("eth", 0, "3000")

    response = api_client.get("/api/v3/ticker/24hr", {"symbol": "ETHUSDT"})

    assert response.json()["lastPrice"] == "3000.00000000"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "NOPEUSDT"}, -1121),
        ({"symbol": "BTCEUR"}, -1121),
        ({"symbols": "not json"}, -1100),
        ({"symbols": '["BTCUSDT", "NOPEUSDT"]'}, -1121),
        ({"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}, -1128),
        ({"symbol": "BTCUSDT", "type": "HUGE"}, -1139),
    ],
)
def test_bad_ticker_params_get_binance_errors(api_client, params, code):
    ingest("btc")

    response = api_client.get("/api/v3/ticker/24hr", params)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert set(response.json()) == {"code", "msg"}


def test_klines_are_the_aggregate_candles_then_the_forming_minute(api_client):
    minute = now_ms() - now_ms() % MINUTE_MS
    for i, close in enumerate(["100", "101", "102"]):
        candle("btc", minute - (5 - i) * MINUTE_MS, close)
    ingest("btc", "103.50")

    rows = api_client.get("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"}).json()
    limited = api_client.get("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 2}).json()
    since = api_client.get(
        "/api/v3/klines",
        {"symbol": "BTCUSDT", "interval": "1m", "startTime": minute - 4 * MINUTE_MS, "limit": 1},
    ).json()

    assert [row[4] for row in rows] == ["100.00000000", "101.00000000", "102.00000000", "103.50000000"]
    assert rows[-1][0] == minute
    assert rows[0][6] == rows[0][0] + MINUTE_MS - 1
    assert [row[4] for row in limited] == ["102.00000000", "103.50000000"]
    assert [row[4] for row in since] == ["101.00000000"]


def test_klines_fold_the_forming_minute_into_a_larger_bucket(api_client):
    minute = now_ms() - now_ms() % MINUTE_MS
    hour = minute - minute % (60 * MINUTE_MS)
    candle("btc", hour, "100", interval="1h")
    ingest("btc", "250")

    rows = api_client.get("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1h"}).json()

    assert len(rows) == 1
    assert (rows[0][0], rows[0][1], rows[0][2], rows[0][4]) == (
        hour,
        "100.00000000",
        "250.00000000",
        "250.00000000",
    )


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"interval": "1m"}, 400, -1102),
        ({"symbol": "BTCUSDT"}, 400, -1102),
        ({"symbol": "BTCUSDT", "interval": "3m"}, 400, -1120),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "x"}, 400, -1100),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, 400, -1130),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "5", "endTime": "1"}, 400, -1128),
    ],
)
def test_bad_kline_params_get_binance_errors(api_client, params, status, code):
    ingest("btc")

    response = api_client.get("/api/v3/klines", params)

    assert response.status_code == status
    assert response.json()["code"] == code


def test_agg_trades_serve_the_imported_binance_trades(api_client):
    ingest("btc")
    for i in range(5):
        trade(10 + i, 1_000 * i)
    trade(99, 0, exchange="kraken", symbol="XBT/USD")  # another exchange's ids never mix in

    newest = api_client.get("/api/v3/aggTrades", {"symbol": "BTCUSDT", "limit": 2}).json()
    from_id = api_client.get("/api/v3/aggTrades", {"symbol": "BTCUSDT", "fromId": 11, "limit": 2}).json()
    window = api_client.get(
        "/api/v3/aggTrades", {"symbol": "BTCUSDT", "startTime": 1000, "endTime": 2000}
    ).json()

    assert [t["a"] for t in newest] == [13, 14]
    assert newest[0] == {
        "a": 13,
        "p": "100.50000000",
        "q": "0.10000000",
        "f": 13,
        "l": 13,
        "T": 3000,
        "m": False,
        "M": True,
    }
    assert [t["a"] for t in from_id] == [11, 12]
    assert [t["a"] for t in window] == [11, 12]


def test_agg_trades_follow_the_exchange_symbol_map(api_client):
    ingest("btc")
    Instrument.objects.all().delete()  # trading's bracket tables point at Binance (protected)
    Exchange.objects.filter(slug="binance").delete()
    Exchange.objects.filter(slug="coinbase").update(symbol_map={"btc": "BTC-USD"})
    trade(7, 0, exchange="coinbase", symbol="BTC-USD")

    rows = api_client.get("/api/v3/aggTrades", {"symbol": "BTCUSDT"}).json()

    assert [t["a"] for t in rows] == [7]


def test_agg_trades_are_empty_without_an_import(api_client):
    ingest("btc")

    response = api_client.get("/api/v3/aggTrades", {"symbol": "BTCUSDT"})

    assert (response.status_code, response.json()) == (200, [])


def test_agg_trades_window_longer_than_an_hour_is_refused(api_client):
    ingest("btc")

    response = api_client.get(
        "/api/v3/aggTrades", {"symbol": "BTCUSDT", "startTime": 0, "endTime": 3_600_001}
    )

    assert (response.status_code, response.json()["code"]) == (400, -1127)
