"""GET /api/market/listings and /api/market/assets/{symbol}: CoinMarketCap's shape, live prices."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.markets.models import Exchange
from apps.markets.services import overview as overview_service
from tests.markets.conftest import Reply
from tests.markets.overview.conftest import CMC_LISTINGS_PATH, GECKO_MARKETS_PATH, hits

LISTINGS = "/api/market/listings"


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def by_slug(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["slug"]: row for row in body["data"]}


def test_without_key_coingecko_rows_come_in_coinmarketcap_shape(client, overview):
    response = client.get(LISTINGS)

    assert response.status_code == 200
    body = response.json()
    assert body["status"]["error_code"] == 0
    assert body["status"]["total_count"] == 3
    assert body["haunt"]["provider"] == "coingecko"
    btc = body["data"][0]
    assert btc["id"] == 1  # the CoinMarketCap id, from the coinmarketcap exchange's symbol_map
    assert (btc["name"], btc["symbol"], btc["slug"], btc["cmc_rank"]) == ("Bitcoin", "BTC", "bitcoin", 1)
    assert (btc["circulating_supply"], btc["total_supply"], btc["max_supply"]) == (
        19675987,
        21000000,
        21000000,
    )
    assert btc["quote"]["USD"] == {
        "price": 70187,
        "volume_24h": 20154184933,
        "percent_change_1h": 0.1234,
        "percent_change_24h": 3.12502,
        "percent_change_7d": 5.6789,
        "market_cap": 1381651251183,
        "fully_diluted_market_cap": 1474623675796,
        "last_updated": "2024-04-07T16:49:31.736Z",
    }
    assert btc["haunt"] == {"symbol": "btc", "live": False, "sources": [], "price_timestamp": None}
    assert by_slug(body)["batcat"]["id"] is None
    assert response.headers["X-Haunt-Stale"] == "false"
    assert overview.requests[-1].query["vs_currency"] == "usd"
    assert hits(overview, CMC_LISTINGS_PATH) == 0


def test_with_key_rows_come_from_coinmarketcap_untouched(client, overview, settings):
    settings.HAUNT_COINMARKETCAP_API_KEY = "cmc-test-key"

    body = client.get(LISTINGS).json()

    assert body["haunt"]["provider"] == "coinmarketcap"
    btc = body["data"][0]
    assert btc["num_market_pairs"] == 500  # CoinMarketCap's own fields pass through
    assert btc["tags"] == ["mineable"]
    assert btc["quote"]["USD"]["market_cap_dominance"] == 51
    assert btc["haunt"]["symbol"] == "btc"
    cmc = [r for r in overview.requests if r.path == CMC_LISTINGS_PATH]
    assert cmc[0].headers["x-cmc_pro_api_key"] == "cmc-test-key"
    assert cmc[0].query["convert"] == "USD"
    assert hits(overview, GECKO_MARKETS_PATH) == 0


def test_coinmarketcap_failing_falls_back_to_coingecko(client, overview, settings):
    settings.HAUNT_COINMARKETCAP_API_KEY = "cmc-test-key"
    overview.routes[CMC_LISTINGS_PATH] = Reply(
        '{"status": {"error_code": 1001, "error_message": "This API Key is invalid."}}', status=401
    )

    body = client.get(LISTINGS).json()

    assert body["haunt"]["provider"] == "coingecko"
    assert body["data"][0]["slug"] == "bitcoin"


def test_fresh_live_price_replaces_the_usd_price_and_24h_change(client, overview, live_price):
    price = live_price("btc", "70500.5", change_percent="2.50")

    btc = client.get(LISTINGS).json()["data"][0]

    usd = btc["quote"]["USD"]
    assert usd["price"] == 70500.5
    assert usd["percent_change_24h"] == 2.5
    assert usd["percent_change_1h"] == 0.1234  # the provider's, Haunt has no 1 h change
    assert usd["volume_24h"] == 20154184933  # market-wide volume stays the provider's
    assert usd["market_cap"] == pytest.approx(1381651251183 * 70500.5 / 70187)
    assert btc["haunt"] == {
        "symbol": "btc",
        "live": True,
        "sources": ["coinbase", "binance"],
        "price_timestamp": price.timestamp,
    }


def test_namesake_token_does_not_get_the_live_price(client, overview, live_price):
    live_price("btc", "70500.5")

    batcat = by_slug(client.get(LISTINGS).json())["batcat"]

    assert batcat["quote"]["USD"]["price"] == 0.0001234
    assert batcat["haunt"]["symbol"] is None
    assert batcat["haunt"]["live"] is False


def test_stale_live_price_is_not_applied(client, overview, live_price):
    live_price("btc", "1.0", age_ms=60_000)

    btc = client.get(LISTINGS).json()["data"][0]

    assert btc["quote"]["USD"]["price"] == 70187
    assert btc["haunt"]["live"] is False


def test_second_call_is_served_from_the_cache_with_live_prices_of_the_moment(client, overview, live_price):
    client.get(LISTINGS)
    live_price("btc", "71000")

    body = client.get(LISTINGS).json()

    assert hits(overview, GECKO_MARKETS_PATH) == 1
    assert body["data"][0]["quote"]["USD"]["price"] == 71000


def test_start_and_limit_select_a_page(client, overview):
    body = client.get(LISTINGS, {"start": 2, "limit": 1}).json()

    assert [row["slug"] for row in body["data"]] == ["ethereum"]
    assert body["status"]["total_count"] == 3


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 201}, {"limit": "ten"}, {"start": 0}, {"start": 201}]
)
def test_bad_params_are_a_400_envelope(client, overview, params):
    response = client.get(LISTINGS, params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert hits(overview, GECKO_MARKETS_PATH) == 0


def test_outage_with_a_cached_answer_serves_it_marked_stale(client, overview, monkeypatch):
    client.get(LISTINGS)
    monkeypatch.setattr(overview_service, "FRESH_S", 0)  # the cached answer has expired
    overview.routes[GECKO_MARKETS_PATH] = Reply("upstream down", status=502)

    response = client.get(LISTINGS)

    assert response.status_code == 200
    assert response.headers["X-Haunt-Stale"] == "true"
    body = response.json()
    assert body["haunt"]["stale"] is True
    assert body["status"]["notice"].startswith("Provider unavailable")
    assert body["data"][0]["slug"] == "bitcoin"
    assert hits(overview, GECKO_MARKETS_PATH) == 2


def test_expired_cache_is_refreshed_from_the_provider(client, overview, monkeypatch):
    client.get(LISTINGS)
    monkeypatch.setattr(overview_service, "FRESH_S", 0)

    response = client.get(LISTINGS)

    assert response.headers["X-Haunt-Stale"] == "false"
    assert hits(overview, GECKO_MARKETS_PATH) == 2


def test_outage_without_a_cached_answer_is_a_503_envelope(client, overview):
    overview.routes[GECKO_MARKETS_PATH] = Reply("upstream down", status=502)

    response = client.get(LISTINGS)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"] == "60"


def test_unreadable_provider_body_is_an_outage(client, overview):
    overview.routes[GECKO_MARKETS_PATH] = Reply('{"status": {"error_code": 429}}')

    response = client.get(LISTINGS)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


def test_no_provider_configured_is_a_503_envelope(client, overview):
    Exchange.objects.filter(slug="coingecko").update(enabled=False)

    response = client.get(LISTINGS)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "source_not_configured"


# --- Asset detail -----------------------------------------------------------------------------


def test_asset_detail_has_the_row_the_live_price_and_its_sources(client, overview, live_price):
    live_price("btc", "70500.5", change_percent="2.50")

    response = client.get("/api/market/assets/BTC")

    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "btc"
    assert body["listing"]["slug"] == "bitcoin"
    assert body["listing"]["quote"]["USD"]["price"] == 70500.5
    assert body["livePrice"]["price"] == "70500.5"
    assert body["livePrice"]["changePercent24h"] == "2.50"
    assert body["sources"] == ["coinbase", "binance"]
    assert (body["provider"], body["stale"]) == ("coingecko", False)


def test_asset_detail_by_slug_without_a_live_price(client, overview):
    body = client.get("/api/market/assets/ethereum").json()

    assert body["symbol"] == "eth"
    assert body["livePrice"] is None
    assert body["sources"] == []
    assert body["listing"]["quote"]["USD"]["price"] == 3432.21


def test_asset_detail_shares_the_listings_cache(client, overview):
    client.get(LISTINGS)

    client.get("/api/market/assets/btc")
    client.get("/api/market/assets/eth")

    assert hits(overview, GECKO_MARKETS_PATH) == 1


def test_unknown_asset_is_a_404_envelope(client, overview):
    response = client.get("/api/market/assets/nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_symbol"


def test_asset_detail_during_an_outage_without_cache_is_a_503(client, overview):
    overview.routes[GECKO_MARKETS_PATH] = Reply("", status=500)

    response = client.get("/api/market/assets/btc")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
