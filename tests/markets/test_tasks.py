"""REST polling tasks, run eagerly (CELERY_TASK_ALWAYS_EAGER in the test settings)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.markets.models import Exchange
from apps.markets.selectors import price_latest, sources_status
from apps.markets.tasks import rest_source_poll_task, rest_sources_poll_task

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cmc_key(settings):
    settings.HAUNT_COINMARKETCAP_API_KEY = "cmc-test-key"


def states() -> dict[str, str]:
    return {row["slug"]: row["state"] for row in sources_status()}


def test_fan_out_polls_each_enabled_rest_source_once(provider, rest_exchange):
    for slug in ("coingecko", "coinmarketcap", "cryptocompare"):
        rest_exchange(slug)
    rest_exchange("kraken", enabled=False)
    Exchange.objects.create(slug="coinbase", name="Coinbase", kind=Exchange.Kind.WEBSOCKET)

    queued = rest_sources_poll_task.delay().get()

    assert queued == 3
    assert {
        slug: len(provider.requests_for(slug))
        for slug in ("coingecko", "coinmarketcap", "cryptocompare", "kraken")
    } == {
        "coingecko": 1,
        "coinmarketcap": 1,
        "cryptocompare": 1,
        "kraken": 0,
    }
    assert states() == {
        "coinbase": "down",  # no feed runner report
        "coingecko": "healthy",
        "coinmarketcap": "healthy",
        "cryptocompare": "healthy",
        "kraken": "disabled",
    }
    assert price_latest(symbol="btc").sources == ("coingecko", "coinmarketcap", "cryptocompare")


def test_fan_out_leaves_out_excluded_sources(provider, rest_exchange):
    rest_exchange("coingecko")
    rest_exchange("coinmarketcap")

    queued = rest_sources_poll_task.delay(exclude=["coinmarketcap"]).get()

    assert queued == 1
    assert provider.requests_for("coinmarketcap") == []


def test_failed_poll_is_recorded_and_not_retried(provider, rest_exchange):
    rest_exchange("kraken")
    provider.answer("kraken", "{}", status=500)

    ticks = rest_source_poll_task.delay("kraken").get()

    assert ticks == 0
    assert len(provider.requests) == 1
    assert states()["kraken"] == "down"


def test_unconfigured_source_is_recorded_and_dropped(provider, rest_exchange, settings):
    settings.HAUNT_COINMARKETCAP_API_KEY = None
    rest_exchange("coinmarketcap")

    ticks = rest_source_poll_task.delay("coinmarketcap").get()

    assert ticks == 0
    assert provider.requests == []
    assert states()["coinmarketcap"] == "down"


def test_poll_task_returns_the_tick_count(rest_exchange):
    rest_exchange("kraken")

    ticks = rest_source_poll_task.delay("kraken").get()

    assert ticks == 2
    assert price_latest(symbol="doge").price == Decimal("0.07115")
