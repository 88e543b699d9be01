from __future__ import annotations

import socket
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.markets.models import LatencySample
from apps.markets.services.latency import ProbeFailed, latency_probe_run, latency_samples_prune, ws_probe
from apps.markets.tasks import latency_probe_task
from tests.markets.conftest import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _node(settings):
    settings.HAUNT_NODE_ID = "osaka"


def test_every_enabled_exchange_is_probed_at_its_time_endpoint(exchange, time_endpoints):
    exchange("binance", rest_url=time_endpoints.url)
    exchange("kraken", kind="rest", rest_url=time_endpoints.url + "/")
    exchange("coinbase", rest_url=time_endpoints.url, enabled=False)
    exchange("coinmarketcap", kind="rest", rest_url=time_endpoints.url)  # no probe path, no ws_url

    samples = latency_probe_run(timeout=2)

    rows = {s.exchange.slug: s for s in LatencySample.objects.select_related("exchange")}
    assert len(samples) == 2
    assert set(rows) == {"binance", "kraken"}
    for row in rows.values():
        assert (row.node, row.method, row.ok, row.error) == ("osaka", "rest", True, "")
        assert Decimal(0) <= row.latency_ms < Decimal(2000)
    assert sorted(r.path for r in time_endpoints.requests) == ["/0/public/Time", "/api/v3/time"]


def test_slow_and_broken_exchanges_are_stored_as_failures(exchange, time_endpoints):
    time_endpoints.routes["/time"] = Reply("{}", delay=5)
    time_endpoints.routes["/api/v3/time"] = Reply('{"code": -1}', status=500)
    exchange("coinbase", rest_url=time_endpoints.url)
    exchange("binance", rest_url=time_endpoints.url)
    exchange("kraken", kind="rest", rest_url=time_endpoints.url)

    latency_probe_run(timeout=0.3)

    rows = {s.exchange.slug: s for s in LatencySample.objects.select_related("exchange")}
    assert (rows["coinbase"].ok, rows["coinbase"].latency_ms, rows["coinbase"].error) == (
        False,
        None,
        "timed out",
    )
    assert (rows["binance"].ok, rows["binance"].error) == (False, "HTTP 500 Internal Server Error")
    assert rows["kraken"].ok


def test_unreachable_exchange_is_a_failure_not_an_exception(exchange):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exchange("binance", rest_url=f"http://127.0.0.1:{port}")

    latency_probe_run(timeout=1)

    sample = LatencySample.objects.get()
    assert not sample.ok
    assert sample.error.startswith("ConnectError")


def test_exchange_with_only_a_websocket_is_probed_by_ping(exchange, ws_url):
    exchange("bitstamp", ws_url=ws_url)  # no REST probe path for it

    latency_probe_run(timeout=2)

    sample = LatencySample.objects.get()
    assert (sample.method, sample.ok, sample.node) == ("ws", True, "osaka")
    assert sample.latency_ms is not None


async def test_ws_probe_to_a_closed_port_fails():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(ProbeFailed):
        await ws_probe(f"ws://127.0.0.1:{port}", timeout=1)


def test_probe_run_drops_samples_past_retention_of_every_node(exchange, time_endpoints):
    binance = exchange("binance", rest_url=time_endpoints.url)
    now = timezone.now()
    for node, age in (("osaka", 11), ("tokyo", 11), ("tokyo", 9)):
        LatencySample.objects.create(
            exchange=binance,
            node=node,
            method="rest",
            latency_ms=Decimal(5),
            measured_at=now - timedelta(minutes=age),
        )

    latency_probe_task.delay()

    kept = sorted((s.node, s.measured_at > now - timedelta(minutes=10)) for s in LatencySample.objects.all())
    assert kept == [("osaka", True), ("tokyo", True)]


def test_prune_keeps_samples_inside_retention(exchange):
    binance = exchange("binance")
    now = timezone.now()
    LatencySample.objects.create(
        exchange=binance,
        node="osaka",
        method="rest",
        latency_ms=Decimal(5),
        measured_at=now - timedelta(minutes=10, seconds=1),
    )
    LatencySample.objects.create(
        exchange=binance,
        node="osaka",
        method="rest",
        latency_ms=Decimal(5),
        measured_at=now - timedelta(minutes=9),
    )

    deleted = latency_samples_prune(now=now)

    assert deleted == 1
    assert LatencySample.objects.count() == 1
