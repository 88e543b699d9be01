"""The TradingView UDF datafeed under /api/udf/."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.markets.models import Exchange

from .conftest import HOUR, MINUTE, make_candle

pytestmark = pytest.mark.django_db

T0 = 1_700_002_800_000  # 2023-11-14T23:00:00Z, an hour boundary
T0_S = T0 // 1000


def get(path: str, status: int = 200, **params: Any) -> Any:
    response = APIClient().get(f"/api/udf/{path}", params)
    assert response.status_code == status, response.content
    return response.json()


@pytest.fixture
def data(db: None) -> None:
    Exchange.objects.create(
        slug="coinbase", name="Coinbase", kind="websocket", symbol_map={"btc": "BTC-USD", "eth": "ETH-USD"}
    )
    for i in range(10):
        make_candle(open_time=T0 + i * MINUTE, close=str(100 + i), volume=Decimal("2.25"))
    make_candle(open_time=T0, close="1.23456", interval="1h")
    make_candle(open_time=T0, close="0.0716", symbol="XRPETH", source="binance")


def test_config_declares_resolutions_and_search(data: None) -> None:
    config = get("config")

    assert config["supported_resolutions"] == ["1", "5", "15", "60", "240", "1D"]
    assert config["supports_search"] is True
    assert config["supports_group_request"] is False
    assert config["supports_time"] is True
    assert {"value": "HAUNT", "name": "HAUNT", "desc": "Haunt aggregate"} in config["exchanges"]
    assert "BINANCE" in [e["value"] for e in config["exchanges"]]


def test_time_is_a_bare_number_of_seconds(db: None) -> None:
    value = get("time")

    assert isinstance(value, int)
    assert abs(value - time.time()) < 5


@pytest.mark.parametrize("name", ["BTC", "btc", "HAUNT:BTC", "haunt:btc"])
def test_symbols_resolves_haunt_symbols(data: None, name: str) -> None:
    info = get("symbols", symbol=name)

    assert info["name"] == "BTC"
    assert info["ticker"] == "HAUNT:BTC"
    assert (info["type"], info["session"], info["timezone"]) == ("crypto", "24x7", "Etc/UTC")
    assert info["exchange"] == info["listed_exchange"] == "HAUNT"
    assert info["has_intraday"] is True
    assert info["supported_resolutions"] == ["1", "5", "15", "60", "240", "1D"]
    assert info["minmov"] == 1
    assert info["pricescale"] == 100  # newest stored close has at most 2 decimals
    assert info["data_status"] == "streaming"


def test_symbols_resolves_exchange_candles(data: None) -> None:
    for name in ("BINANCE:XRPETH", "XRPETH"):
        info = get("symbols", symbol=name)

        assert info["ticker"] == "BINANCE:XRPETH"
        assert info["exchange"] == "BINANCE"
        assert info["pricescale"] == 10_000


@pytest.mark.parametrize("params", [{"symbol": "NOPE"}, {"symbol": "KRAKEN:XRPETH"}, {}])
def test_symbols_errors_are_400_with_udf_and_haunt_shapes(data: None, params: dict[str, str]) -> None:
    body = get("symbols", status=400, **params)

    assert body["s"] == "error"
    assert body["errmsg"]
    assert body["error"]["code"] in {"unknown_symbol", "invalid"}


def test_search_matches_tickers_with_limit_and_exchange(data: None) -> None:
    everything = get("search", query="")
    btc = get("search", query="bt")
    limited = get("search", query="", limit=1)
    binance = get("search", query="", exchange="BINANCE")

    assert [r["ticker"] for r in everything] == ["HAUNT:BTC", "HAUNT:ETH", "BINANCE:XRPETH"]
    assert btc == [
        {
            "symbol": "BTC",
            "full_name": "HAUNT:BTC",
            "description": "BTC / USD (Haunt aggregate)",
            "exchange": "HAUNT",
            "ticker": "HAUNT:BTC",
            "type": "crypto",
        }
    ]
    assert len(limited) == 1
    assert [r["ticker"] for r in binance] == ["BINANCE:XRPETH"]
    assert get("search", query="", type="stock") == []


def test_history_from_to_is_half_open_in_seconds(data: None) -> None:
    body = get("history", symbol="BTC", resolution="1", **{"from": T0_S + 60, "to": T0_S + 240})

    assert body == {
        "s": "ok",
        "t": [T0_S + 60, T0_S + 120, T0_S + 180],
        "o": [101.0, 102.0, 103.0],
        "h": [101.0, 102.0, 103.0],
        "l": [101.0, 102.0, 103.0],
        "c": [101.0, 102.0, 103.0],
        "v": [2.25, 2.25, 2.25],
    }


def test_history_countback_wins_over_from(data: None) -> None:
    body = get(
        "history", symbol="HAUNT:BTC", resolution="1", countback=2, **{"from": T0_S + 500, "to": T0_S + 300}
    )

    assert body["s"] == "ok"
    assert body["t"] == [T0_S + 180, T0_S + 240]


def test_history_other_resolutions_read_their_interval(data: None) -> None:
    body = get("history", symbol="BTC", resolution="60", **{"from": T0_S, "to": T0_S + 3600})

    assert body["t"] == [T0_S]
    assert body["c"] == [1.23456]


def test_history_without_bars_gives_no_data_and_the_previous_bar_time(data: None) -> None:
    later = get("history", symbol="BTC", resolution="1", **{"from": T0_S + 3 * 3600, "to": T0_S + 4 * 3600})
    earlier = get("history", symbol="BTC", resolution="1", **{"from": T0_S - 3600, "to": T0_S})

    assert later == {"s": "no_data", "nextTime": T0_S + 9 * 60}
    assert earlier == {"s": "no_data"}


def test_history_of_exchange_candles(data: None) -> None:
    body = get(
        "history", symbol="BINANCE:XRPETH", resolution="1", **{"from": T0_S, "to": T0_S + HOUR // 1000}
    )

    assert body["c"] == [0.0716]


@pytest.mark.parametrize(
    "params",
    [
        {"symbol": "BTC", "resolution": "2", "from": T0_S, "to": T0_S + 60},
        {"symbol": "BTC", "resolution": "1W", "from": T0_S, "to": T0_S + 60},
        {"symbol": "BTC", "resolution": "1", "to": T0_S + 60},
        {"symbol": "BTC", "resolution": "1", "from": T0_S + 60, "to": T0_S},
        {"symbol": "BTC", "resolution": "1", "from": "yesterday", "to": T0_S},
        {"symbol": "BTC", "resolution": "1", "from": T0_S, "to": 10**20},
        {"symbol": "BTC", "resolution": "1", "countback": 0, "to": T0_S},
        {"symbol": "NOPE", "resolution": "1", "from": T0_S, "to": T0_S + 60},
        {"resolution": "1", "from": T0_S, "to": T0_S + 60},
    ],
)
def test_history_bad_parameters_are_400(data: None, params: dict[str, Any]) -> None:
    body = get("history", status=400, **params)

    assert body["s"] == "error"
    assert "error" in body
