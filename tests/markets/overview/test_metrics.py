"""GET /api/market/global, /api/market/fear-greed and /api/market/movers."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.markets.services import overview as overview_service
from tests.markets.conftest import Reply
from tests.markets.overview.conftest import FNG_PATH, GECKO_GLOBAL_PATH, hits


@pytest.fixture
def client() -> APIClient:
    return APIClient()


# --- Global metrics ---------------------------------------------------------------------------


def test_global_metrics_are_camelcase_with_exact_decimal_strings(client, overview):
    response = client.get("/api/market/global")

    assert response.status_code == 200
    body = response.json()
    assert body["totalMarketCapUsd"] == "2721226850772.63"
    assert body["totalVolume24hUsd"] == "69327091133.5476"
    assert body["btcDominance"] == "50.4465263233584"
    assert body["ethDominance"] == "14.9228066918211"
    assert body["marketCapChangePercent24hUsd"] == "1.72179506060272"
    assert body["activeCryptocurrencies"] == 13690
    assert body["markets"] == 1046
    assert body["updatedAt"] == "2024-04-07T18:00:55Z"
    assert (body["provider"], body["stale"]) == ("coingecko", False)
    assert response.headers["X-Haunt-Stale"] == "false"


def test_global_metrics_are_cached(client, overview):
    client.get("/api/market/global")

    client.get("/api/market/global")

    assert hits(overview, GECKO_GLOBAL_PATH) == 1


def test_global_outage_with_cache_serves_it_stale(client, overview, monkeypatch):
    client.get("/api/market/global")
    monkeypatch.setattr(overview_service, "FRESH_S", 0)
    overview.routes[GECKO_GLOBAL_PATH] = Reply("", status=503)

    response = client.get("/api/market/global")

    assert response.status_code == 200
    assert response.json()["stale"] is True
    assert response.headers["X-Haunt-Stale"] == "true"


def test_global_outage_without_cache_is_a_503_envelope(client, overview):
    overview.routes[GECKO_GLOBAL_PATH] = Reply('{"data": {}}')  # not the shape: no market cap

    response = client.get("/api/market/global")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


# --- Fear & Greed -----------------------------------------------------------------------------


def test_fear_greed_keeps_alternative_me_shape(client, overview):
    response = client.get("/api/market/fear-greed", {"limit": 2})

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Fear and Greed Index"
    assert body["metadata"] == {"error": None}
    assert body["data"][0]["value"] == "40"
    assert body["data"][0]["value_classification"] == "Fear"
    assert body["data"][0]["timestamp"] == "1551157200"
    assert body["data"][0]["time_until_update"] == "68499"
    assert body["data"][1] == {"value": "47", "value_classification": "Neutral", "timestamp": "1551070800"}
    assert body["haunt"]["provider"] == "alternative.me"
    assert overview.requests[-1].query["limit"] == "2"


def test_fear_greed_is_cached_per_limit(client, overview):
    client.get("/api/market/fear-greed")
    client.get("/api/market/fear-greed", {"limit": 1})

    client.get("/api/market/fear-greed", {"limit": 2})

    assert hits(overview, FNG_PATH) == 2


def test_fear_greed_countdown_counts_down_while_cached(client, overview, monkeypatch):
    client.get("/api/market/fear-greed")
    monkeypatch.setattr(overview_service.Cached, "age_s", property(lambda self: 499))  # 499 s later

    body = client.get("/api/market/fear-greed").json()

    assert body["data"][0]["time_until_update"] == "68000"


def test_fear_greed_error_in_body_with_cache_serves_it_stale(client, overview, monkeypatch):
    client.get("/api/market/fear-greed")
    monkeypatch.setattr(overview_service, "FRESH_S", 0)
    overview.routes[FNG_PATH] = Reply(
        '{"name": "Fear and Greed Index", "data": [], "metadata": {"error": "x"}}'
    )

    response = client.get("/api/market/fear-greed")

    assert response.status_code == 200
    assert response.headers["X-Haunt-Stale"] == "true"
    assert response.json()["data"][0]["value"] == "40"


def test_fear_greed_outage_without_cache_is_a_503_envelope(client, overview):
    overview.routes[FNG_PATH] = Reply("", status=500)

    response = client.get("/api/market/fear-greed")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


@pytest.mark.parametrize("limit", [0, 1001, "all"])
def test_fear_greed_bad_limit_is_a_400_envelope(client, overview, limit):
    response = client.get("/api/market/fear-greed", {"limit": limit})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


# --- Movers -----------------------------------------------------------------------------------


def test_movers_order_gainers_and_losers_and_leave_out_stale_prices(client, db, live_price):
    live_price("btc", "70000", change_percent="2.50")
    live_price("eth", "3400", change_percent="7.10")
    live_price("sol", "150", change_percent="-4.00")
    live_price("doge", "0.1", change_percent="-9.25")
    live_price("ada", "0.5", change_percent="0.00")
    live_price("xrp", "0.6", change_percent="50.00", age_ms=60_000)  # stale: left out
    live_price("ltc", "80")  # no 24 h history yet: left out

    response = client.get("/api/market/movers")

    assert response.status_code == 200
    body = response.json()
    assert [p["symbol"] for p in body["gainers"]] == ["eth", "btc"]
    assert [p["symbol"] for p in body["losers"]] == ["doge", "sol"]
    assert body["gainers"][0]["changePercent24h"] == "7.10"
    assert body["gainers"][0]["price"] == "3400"
    assert body["gainers"][0]["stale"] is False


def test_movers_limit_caps_each_side(client, db, live_price):
    for n, symbol in enumerate(["aaa", "bbb", "ccc"], start=1):
        live_price(symbol, "1", change_percent=str(n))
        live_price(symbol + "x", "1", change_percent=str(-n))

    body = client.get("/api/market/movers", {"limit": 2}).json()

    assert [p["symbol"] for p in body["gainers"]] == ["ccc", "bbb"]
    assert [p["symbol"] for p in body["losers"]] == ["cccx", "bbbx"]


def test_movers_without_prices_are_empty(client, db):
    assert client.get("/api/market/movers").json() == {"gainers": [], "losers": []}


@pytest.mark.parametrize("limit", [0, 101, "x"])
def test_movers_bad_limit_is_a_400_envelope(client, db, limit):
    response = client.get("/api/market/movers", {"limit": limit})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
