"""GET /api/market/klines: Binance's kline arrays, parameters and errors."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from apps.markets.models import Candle, Exchange
from apps.markets.services.store import Candle as StoredCandle
from apps.markets.services.store import price_store

from .conftest import MINUTE, make_candle

pytestmark = pytest.mark.django_db

T0 = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE  # a minute boundary in Nov 2023


def klines(**params: object) -> list[list[object]]:
    response = APIClient().get("/api/market/klines", params)
    assert response.status_code == 200, response.json()
    return response.json()


def error_code(**params: object) -> str:
    response = APIClient().get("/api/market/klines", params)
    assert response.status_code == 400
    return str(response.json()["error"]["code"])


@pytest.fixture
def xrpeth(db: None) -> None:
    """1,200 imported binance XRPETH 1m candles from T0, closes 0.0001 .. 0.1200."""
    Candle.objects.bulk_create(
        Candle(
            source="binance",
            symbol="XRPETH",
            interval="1m",
            open_time=T0 + i * MINUTE,
            open=Decimal(i + 1) / 10000,
            high=Decimal("0.5"),
            low=Decimal("0.00001"),
            close=Decimal(i + 1) / 10000,
            volume=Decimal("1234.5"),
            trade_count=7,
        )
        for i in range(1200)
    )


def test_rows_follow_binance_kline_format(xrpeth: None) -> None:
    rows = klines(symbol="XRPETH", source="binance", interval="1m", startTime=T0, limit=2)

    assert rows[0] == [
        T0,
        "0.00010000",
        "0.50000000",
        "0.00001000",
        "0.00010000",
        "1234.50000000",
        T0 + MINUTE - 1,
        "0.00000000",
        7,
        "0.00000000",
        "0.00000000",
        "0",
    ]
    assert rows[1][0] == T0 + MINUTE


def test_default_limit_is_500_newest(xrpeth: None) -> None:
    rows = klines(symbol="XRPETH", source="binance", interval="1m")

    assert len(rows) == 500
    assert rows[-1][0] == T0 + 1199 * MINUTE
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_limit_is_capped_at_1000(xrpeth: None) -> None:
    rows = klines(symbol="XRPETH", source="binance", interval="1m", limit=5000)

    assert len(rows) == 1000


def test_start_time_gives_the_oldest_from_it_and_end_time_is_inclusive(xrpeth: None) -> None:
    from_start = klines(symbol="XRPETH", source="binance", interval="1m", startTime=T0 + 10 * MINUTE, limit=3)
    window = klines(
        symbol="XRPETH", source="binance", interval="1m", startTime=T0 + 1, endTime=T0 + 3 * MINUTE
    )
    until = klines(symbol="XRPETH", source="binance", interval="1m", endTime=T0 + 4 * MINUTE, limit=2)

    assert [r[0] for r in from_start] == [T0 + i * MINUTE for i in (10, 11, 12)]
    assert [r[0] for r in window] == [T0 + i * MINUTE for i in (1, 2, 3)]
    assert [r[0] for r in until] == [T0 + 3 * MINUTE, T0 + 4 * MINUTE]


def test_exchange_symbol_is_matched_case_insensitively_upwards(xrpeth: None) -> None:
    assert len(klines(symbol="xrpeth", source="binance", interval="1m", limit=1)) == 1


def test_empty_range_of_a_known_symbol_is_an_empty_list(xrpeth: None) -> None:
    assert klines(symbol="XRPETH", source="binance", interval="1m", startTime=T0 + 10**9) == []


def test_haunt_is_the_default_source_and_includes_the_forming_bucket(db: None) -> None:
    Exchange.objects.create(slug="coinbase", name="Coinbase", kind="websocket", symbol_map={"btc": "BTC-USD"})
    now = time.time_ns() // 1_000_000
    minute = now - now % MINUTE
    make_candle(open_time=minute - 2 * MINUTE, close="50000.12")
    price = Decimal("50001")
    price_store().candles_put(
        [StoredCandle("btc", "1m", minute, price, price, price, price, Decimal("0.5"))], []
    )

    rows = klines(symbol="BTC", interval="1m")

    assert [r[0] for r in rows] == [minute - 2 * MINUTE, minute]
    assert rows[0][4] == "50000.12000000"
    assert rows[0][8] == 0  # the aggregate has no trade count
    assert rows[1][4] == "50001.00000000"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "XRPETH", "source": "binance", "interval": "3m"}, "invalid"),
        ({"symbol": "XRPETH", "source": "binance", "interval": "1w"}, "invalid"),
        ({"symbol": "XRPETH", "source": "binance"}, "invalid"),
        ({"interval": "1m"}, "invalid"),
        ({"symbol": "NOPE", "source": "binance", "interval": "1m"}, "unknown_symbol"),
        ({"symbol": "XRPETH", "source": "kraken", "interval": "1m"}, "unknown_symbol"),
        ({"symbol": "XRPETH", "interval": "1m"}, "unknown_symbol"),  # not a Haunt symbol
        ({"symbol": "XRPETH", "source": "Bad Source!", "interval": "1m"}, "invalid"),
        ({"symbol": "XRPETH", "source": "binance", "interval": "1m", "limit": 0}, "invalid"),
        ({"symbol": "XRPETH", "source": "binance", "interval": "1m", "limit": "ten"}, "invalid"),
        ({"symbol": "XRPETH", "source": "binance", "interval": "1m", "startTime": -1}, "invalid"),
        ({"symbol": "XRPETH", "source": "binance", "interval": "1m", "startTime": 10**30}, "invalid"),
        (
            {"symbol": "XRPETH", "source": "binance", "interval": "1m", "startTime": 2000, "endTime": 1000},
            "invalid",
        ),
        ({"symbol": "x" * 33, "source": "binance", "interval": "1m"}, "invalid"),
        ({"symbol": "../etc", "source": "binance", "interval": "1m"}, "unknown_symbol"),
    ],
)
def test_bad_parameters_are_400_envelopes(xrpeth: None, params: dict[str, object], code: str) -> None:
    assert error_code(**params) == code
