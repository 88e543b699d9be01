from decimal import Decimal

import pytest

from apps.markets.models import Exchange
from apps.markets.services.prices import ticks_ingest
from apps.markets.services.sources import source_health_report
from haunt.seeding import seed_defaults
from tests.markets.factories import make_tick

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _seeded(db):
    seed_defaults()


def now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


def test_prices_list_and_detail_keep_decimal_precision(api_client):
    ticks_ingest(
        ticks=[make_tick(price=Decimal("50000.12345678"), exchange_ts=now_ms(), volume_24h=Decimal("12"))]
    )

    listing = api_client.get("/api/market/prices")
    detail = api_client.get("/api/market/prices/BTC")

    assert listing.status_code == detail.status_code == 200
    body = detail.json()
    assert body["price"] == "50000.12345678"
    assert (body["id"], body["tradeDirection"], body["sources"], body["stale"]) == (
        "btc",
        "up",
        ["coinbase"],
        False,
    )
    assert body["volume24h"] == "12"
    assert [p["symbol"] for p in listing.json()] == ["btc"]


def test_old_price_is_served_marked_stale(api_client):
    ticks_ingest(ticks=[make_tick(exchange_ts=now_ms() - 40_000)], now_ms=now_ms() - 40_000)

    body = api_client.get("/api/market/prices/btc").json()

    assert body["stale"] is True


def test_unknown_symbol_is_a_404_envelope(api_client):
    response = api_client.get("/api/market/prices/nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_symbol"


def test_sources_show_weights_and_health(api_client):
    Exchange.objects.filter(slug="kraken").update(enabled=False)
    source_health_report(reports={"coinbase": {"state": "healthy", "last_error": None}})

    rows = {row["slug"]: row for row in api_client.get("/api/market/sources").json()}

    assert rows["coinbase"]["state"] == "healthy"
    assert rows["coinbase"]["weight"] == "1.00"
    assert rows["binance"]["state"] == "down"  # never reported
    assert rows["kraken"]["state"] == "disabled"
    assert len(rows) == 9


def test_a_source_that_stopped_reporting_is_down(api_client):
    from apps.markets.services.store import price_store

    old = now_ms() - 601_000
    price_store().health_put({"coingecko": {"state": "healthy", "reported_at": old}})

    rows = {row["slug"]: row for row in api_client.get("/api/market/sources").json()}

    assert rows["coingecko"]["state"] == "down"
    assert "no recent report" in rows["coingecko"]["detail"]["last_error"]
