"""rest_source_poll: prices from a fake provider reach the price store, and health is recorded."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from apps.markets import clients
from apps.markets.exceptions import PriceUnavailable, SourceNotConfigured, SourceUnavailable
from apps.markets.models import Exchange
from apps.markets.selectors import price_latest, sources_status
from apps.markets.services.polling import rest_source_poll

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cmc_key(settings):
    settings.HAUNT_COINMARKETCAP_API_KEY = "cmc-test-key"


def status_of(slug: str) -> dict:
    return next(row for row in sources_status() if row["slug"] == slug)


@pytest.mark.parametrize(
    ("slug", "btc"),
    [
        ("coingecko", Decimal("67187.3358936566")),
        ("coinmarketcap", Decimal("67190.12")),
        ("cryptocompare", Decimal("69000.12")),
        ("kraken", Decimal("30303.20000")),
    ],
)
def test_poll_ingests_prices_and_records_healthy(rest_exchange, slug, btc):
    rest_exchange(slug)

    count = rest_source_poll(slug=slug)

    assert count == 2
    price = price_latest(symbol="btc")
    assert (price.price, price.sources, price.stale) == (btc, (slug,), False)
    status = status_of(slug)
    assert status["state"] == "healthy"
    assert (status["detail"]["ticks"], status["detail"]["last_error"]) == (2, None)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ({"body": "{}", "status": 500}, "HTTP 500"),
        ({"body": "{}", "status": 429, "headers": {"Retry-After": "60"}}, "rate limited"),
        ({"body": '{"bitcoin": '}, "bad response"),
        ({"body": "{}", "delay": 5}, "timed out"),
    ],
    ids=["500", "429", "malformed-json", "timeout"],
)
def test_failed_poll_records_down_with_the_reason_and_raises(
    provider, rest_exchange, monkeypatch, reply, reason
):
    monkeypatch.setattr(clients, "TIMEOUT", httpx.Timeout(0.2))
    rest_exchange("coingecko")
    provider.answer("coingecko", **reply)

    with pytest.raises(SourceUnavailable):
        rest_source_poll(slug="coingecko")

    status = status_of("coingecko")
    assert status["state"] == "down"
    assert reason in status["detail"]["last_error"]
    with pytest.raises(PriceUnavailable):
        price_latest(symbol="btc")


def test_failed_poll_keeps_the_last_price(provider, rest_exchange):
    rest_exchange("kraken")
    rest_source_poll(slug="kraken")
    provider.answer("kraken", "{}", status=503)

    with pytest.raises(SourceUnavailable):
        rest_source_poll(slug="kraken")

    assert price_latest(symbol="btc").price == Decimal("30303.20000")
    assert status_of("kraken")["state"] == "down"


def test_coinmarketcap_without_a_key_reports_down_and_sends_nothing(provider, rest_exchange, settings):
    settings.HAUNT_COINMARKETCAP_API_KEY = None
    rest_exchange("coinmarketcap")

    with pytest.raises(SourceNotConfigured):
        rest_source_poll(slug="coinmarketcap")

    status = status_of("coinmarketcap")
    assert status["state"] == "down"
    assert "no API key" in status["detail"]["last_error"]
    assert provider.requests == []


def test_source_without_symbols_reports_down(provider, rest_exchange):
    rest_exchange("cryptocompare", symbol_map={})

    with pytest.raises(SourceNotConfigured):
        rest_source_poll(slug="cryptocompare")

    assert status_of("cryptocompare")["state"] == "down"
    assert provider.requests == []


def test_answer_without_prices_is_down_but_not_an_error(provider, rest_exchange):
    rest_exchange("coingecko")
    provider.answer("coingecko", "{}")

    count = rest_source_poll(slug="coingecko")

    assert count == 0
    status = status_of("coingecko")
    assert (status["state"], status["detail"]["last_error"]) == ("down", "no prices in the response")


@pytest.mark.parametrize("case", ["disabled", "websocket", "unknown"])
def test_disabled_websocket_or_unknown_source_is_a_no_op(provider, rest_exchange, case):
    if case == "disabled":
        rest_exchange("kraken", enabled=False)
    elif case == "websocket":
        rest_exchange("kraken", kind=Exchange.Kind.WEBSOCKET)

    count = rest_source_poll(slug="kraken")

    assert count == 0
    assert provider.requests == []
    assert all(row["detail"].get("reported_at") is None for row in sources_status())
