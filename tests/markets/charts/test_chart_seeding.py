"""A chart without enough history queues one seeding job and says so."""

import pytest

from apps.markets.models import Exchange, SeedingJob
from haunt.seeding import seed_defaults

pytestmark = pytest.mark.django_db


def test_inadequate_chart_queues_one_seeding_job(api_client):
    seed_defaults()

    first = api_client.get("/api/crypto/btc/chart?range=1h").json()
    second = api_client.get("/api/crypto/btc/chart?range=1h").json()

    assert SeedingJob.objects.filter(symbol="btc").count() == 1
    assert first["seeding"]["status"] == "pending"
    assert first["needsSeeding"] is False
    assert second["seeding"]["jobId"] == first["seeding"]["jobId"]


def test_symbol_without_history_sources_is_served_without_seeding(api_client):
    seed_defaults()
    Exchange.objects.filter(slug__in=["coingecko", "cryptocompare"]).update(enabled=False)

    response = api_client.get("/api/crypto/btc/chart?range=1h")

    assert response.status_code == 200
    assert not SeedingJob.objects.exists()
