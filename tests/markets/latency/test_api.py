from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.markets.models import DominanceSnapshot, LatencySample
from apps.markets.services.prices import ticks_ingest
from tests.markets.factories import make_tick

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _node(settings):
    settings.HAUNT_NODE_ID = "osaka"


def test_exchange_latency_is_public_and_camel_case(api_client, exchange):
    binance = exchange("binance", name="Binance")
    now = timezone.now()
    for node, ms in (("osaka", "15.04"), ("tokyo", "9.5")):
        LatencySample.objects.create(
            exchange=binance,
            node=node,
            method="ws",
            latency_ms=Decimal(ms),
            measured_at=now - timedelta(seconds=3),
        )

    response = api_client.get("/api/market/exchange-latency")

    assert response.status_code == 200
    body = response.json()
    assert (body["node"], body["windowSeconds"]) == ("osaka", 60)
    [row] = body["exchanges"]
    assert row == {
        "exchange": "binance",
        "name": "Binance",
        "method": "ws",
        "samples": 1,
        "failures": 0,
        "minMs": "15.0",
        "avgMs": "15.0",
        "maxMs": "15.0",
        "lastMs": "15.0",
        "lastAt": row["lastAt"],
        "lastError": "",
    }
    assert sorted(body["nodes"]) == ["osaka", "tokyo"]
    assert body["nodes"]["tokyo"][0]["avgMs"] == "9.5"
    assert body["best"] == {"binance": {"node": "tokyo", "avgMs": "9.5"}}


def test_exchange_latency_window_is_adjustable(api_client, exchange):
    binance = exchange("binance")
    LatencySample.objects.create(
        exchange=binance,
        node="osaka",
        method="rest",
        latency_ms=Decimal(7),
        measured_at=timezone.now() - timedelta(seconds=90),
    )

    narrow = api_client.get("/api/market/exchange-latency").json()
    wide = api_client.get("/api/market/exchange-latency?window=120").json()

    assert narrow["exchanges"][0]["samples"] == 0
    assert (wide["windowSeconds"], wide["exchanges"][0]["samples"]) == (120, 1)


@pytest.mark.parametrize("window", ["5", "601", "abc"])
def test_exchange_latency_refuses_a_bad_window(api_client, window):
    response = api_client.get(f"/api/market/exchange-latency?window={window}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "window" in response.json()["error"]["detail"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_exchange_dominance_shows_live_shares_and_history(api_client, exchange):
    binance, coinbase = exchange("binance", name="Binance"), exchange("coinbase", name="Coinbase")
    ts = now_ms()
    ticks_ingest(
        ticks=[
            make_tick(source="binance", volume_24h=Decimal(10), exchange_ts=ts, received_ts=ts),
            make_tick(source="coinbase", volume_24h=Decimal(30), exchange_ts=ts, received_ts=ts),
        ]
    )  # btc at 50,000
    taken_at = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    for venue, share in ((binance, "20"), (coinbase, "80")):
        DominanceSnapshot.objects.create(
            taken_at=taken_at,
            exchange=venue,
            symbol="btc",
            volume_24h_usd=Decimal(1),
            share_percent=Decimal(share),
        )

    response = api_client.get("/api/market/exchange-dominance?symbol=BTC&history=24h")

    assert response.status_code == 200
    body = response.json()
    assert (body["symbol"], body["basis"], body["totalVolume24hUsd"]) == ("btc", "live", "2000000.00")
    assert body["exchanges"] == [
        {"exchange": "coinbase", "name": "Coinbase", "volume24hUsd": "1500000.00", "sharePercent": "75.0000"},
        {"exchange": "binance", "name": "Binance", "volume24hUsd": "500000.00", "sharePercent": "25.0000"},
    ]
    [point] = body["history"]
    assert [e["sharePercent"] for e in point["exchanges"]] == ["80.0000", "20.0000"]
    assert point["takenAt"].startswith(taken_at.strftime("%Y-%m-%dT%H:%M"))


def test_exchange_dominance_global_without_data_is_empty(api_client):
    response = api_client.get("/api/market/exchange-dominance")

    assert response.status_code == 200
    assert response.json() == {
        "symbol": None,
        "basis": "none",
        "at": None,
        "totalVolume24hUsd": "0.00",
        "exchanges": [],
        "history": [],
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [("symbol=btc-usd", "symbol"), ("symbol=" + "x" * 33, "symbol"), ("history=2y", "history")],
)
def test_exchange_dominance_refuses_bad_parameters(api_client, query, field):
    response = api_client.get(f"/api/market/exchange-dominance?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert field in response.json()["error"]["detail"]


def test_exchange_dominance_of_an_unknown_symbol_is_404(api_client):
    response = api_client.get("/api/market/exchange-dominance?symbol=nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_symbol"
