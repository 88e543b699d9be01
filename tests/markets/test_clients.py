"""REST price clients against a fake provider on 127.0.0.1: requests sent, ticks parsed, failures."""

from __future__ import annotations

import socket
from decimal import Decimal

import httpx
import pytest

from apps.markets import clients
from apps.markets.clients import kraken_prices_fetch
from apps.markets.exceptions import SourceNotConfigured, SourceUnavailable


@pytest.fixture(autouse=True)
def _no_api_keys(settings):
    settings.HAUNT_COINMARKETCAP_API_KEY = None
    settings.HAUNT_CRYPTOCOMPARE_API_KEY = None


def usd_prices(ticks) -> dict[str, Decimal]:
    assert all(t.quote == "usd" for t in ticks)
    return {t.base: t.price for t in ticks}


def test_coingecko_asks_for_the_mapped_coin_ids_and_maps_them_back(provider, fetch):
    ticks = fetch("coingecko")

    assert usd_prices(ticks) == {"btc": Decimal("67187.3358936566"), "eth": Decimal("3432.21")}
    (request,) = provider.requests_for("coingecko")  # under the rest_url's /api/v3 prefix
    assert request.query == {
        "ids": "bitcoin,ethereum",
        "vs_currencies": "usd",
        "include_last_updated_at": "true",
    }


def test_coinmarketcap_asks_by_id_with_the_key_in_a_header(provider, fetch, settings):
    settings.HAUNT_COINMARKETCAP_API_KEY = "cmc-test-key"

    ticks = fetch("coinmarketcap")

    assert usd_prices(ticks) == {"btc": Decimal("67190.12"), "eth": Decimal("3432.2100123")}
    (request,) = provider.requests_for("coinmarketcap")
    assert request.query == {"id": "1,1027", "convert": "USD"}
    assert request.headers["x-cmc_pro_api_key"] == "cmc-test-key"


def test_coinmarketcap_without_a_key_makes_no_request(provider, fetch):
    with pytest.raises(SourceNotConfigured, match="no API key"):
        fetch("coinmarketcap")

    assert provider.requests == []


def test_coinmarketcap_refuses_tickers_where_ids_belong(provider, settings):
    settings.HAUNT_COINMARKETCAP_API_KEY = "cmc-test-key"

    with pytest.raises(SourceNotConfigured):
        clients.coinmarketcap_prices_fetch(base_url=provider.url, symbol_map={"btc": "BTC"})

    assert provider.requests == []


@pytest.mark.parametrize(("key", "authorization"), [(None, None), ("cc-key", "Apikey cc-key")])
def test_cryptocompare_asks_for_usd_with_an_optional_key(provider, fetch, settings, key, authorization):
    settings.HAUNT_CRYPTOCOMPARE_API_KEY = key

    ticks = fetch("cryptocompare")

    assert usd_prices(ticks) == {"btc": Decimal("69000.12"), "eth": Decimal("3431.5")}
    (request,) = provider.requests_for("cryptocompare")
    assert request.query == {"fsyms": "BTC,ETH", "tsyms": "USD"}
    assert request.headers.get("authorization") == authorization


def test_kraken_asks_for_rest_pair_names(provider, fetch):
    ticks = fetch("kraken")

    assert usd_prices(ticks) == {"btc": Decimal("30303.20000"), "doge": Decimal("0.07115")}
    (request,) = provider.requests_for("kraken")
    assert request.query == {"pair": "XBTUSD,XDGUSD"}


@pytest.mark.parametrize("slug", ["coingecko", "coinmarketcap", "cryptocompare", "kraken"])
@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ({"body": '{"error": "boom"}', "status": 500}, "HTTP 500"),
        (
            {"body": '{"status": {"error_code": 1008}}', "status": 429, "headers": {"Retry-After": "30"}},
            "HTTP 429",
        ),
        ({"body": '{"error": "unauthorized"}', "status": 401}, "HTTP 401"),
        ({"body": "<html>502 Bad Gateway</html>"}, "bad response"),
        ({"body": '{"bitcoin": {"usd": 1'}, "bad response"),
    ],
    ids=["500", "429", "401", "html", "truncated-json"],
)
def test_failures_raise_source_unavailable_with_the_reason(provider, fetch, settings, slug, reply, reason):
    settings.HAUNT_COINMARKETCAP_API_KEY = "cmc-test-key"
    provider.answer(slug, **reply)

    with pytest.raises(SourceUnavailable, match=reason) as caught:
        fetch(slug)

    assert caught.value.code == "source_unavailable"
    assert len(provider.requests) == 1  # no retry inside the client


def test_rate_limit_keeps_retry_after(provider, fetch):
    provider.answer("kraken", "{}", status=429, headers={"Retry-After": "30"})

    with pytest.raises(SourceUnavailable) as caught:
        fetch("kraken")

    assert caught.value.detail["retry_after"] == "30"


def test_provider_error_in_a_200_body_is_unavailable(provider, fetch):
    provider.answer("kraken", '{"error": ["EGeneral:Too many requests"]}')

    with pytest.raises(SourceUnavailable, match="Too many requests"):
        fetch("kraken")


def test_slow_provider_times_out(provider, fetch, monkeypatch):
    monkeypatch.setattr(clients, "TIMEOUT", httpx.Timeout(0.2))
    provider.answer("kraken", "{}", delay=5)

    with pytest.raises(SourceUnavailable, match="timed out"):
        fetch("kraken")


def test_refused_connection_is_unavailable():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"

        with pytest.raises(SourceUnavailable, match="ConnectError"):
            kraken_prices_fetch(base_url=url, symbol_map={"btc": "XBT/USD"})
