from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.markets.models import Exchange, LatencySample
from apps.markets.services.latency import latency_stats_get

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _node(settings):
    settings.HAUNT_NODE_ID = "osaka"


def sample(exchange: Exchange, node: str, age_s: float, ms: str | None, now, error: str = "") -> None:
    LatencySample.objects.create(
        exchange=exchange,
        node=node,
        method="rest",
        latency_ms=None if ms is None else Decimal(ms),
        ok=ms is not None,
        error=error,
        measured_at=now - timedelta(seconds=age_s),
    )


def test_min_avg_max_cover_only_the_window_and_count_failures(exchange):
    binance = exchange("binance", name="Binance")
    now = timezone.now()
    sample(binance, "osaka", 5, None, now, error="timed out")  # the latest probe failed
    sample(binance, "osaka", 15, "12.1", now)
    sample(binance, "osaka", 25, "20.3", now)
    sample(binance, "osaka", 35, "12.6", now)
    sample(binance, "osaka", 61, "1.0", now)  # outside the 60 s window

    view = latency_stats_get(now=now)

    [row] = view.exchanges
    assert (row.exchange, row.name, row.method, row.samples, row.failures) == (
        "binance",
        "Binance",
        "rest",
        4,
        1,
    )
    assert (row.min_ms, row.avg_ms, row.max_ms) == (Decimal("12.1"), Decimal("15.0"), Decimal("20.3"))
    assert (row.last_ms, row.last_error) == (None, "timed out")
    assert row.last_at == now - timedelta(seconds=5)


def test_enabled_exchanges_without_samples_are_listed_for_this_node(exchange):
    exchange("binance")
    exchange("kraken", enabled=False)

    view = latency_stats_get()

    assert [(r.exchange, r.samples, r.avg_ms) for r in view.exchanges] == [("binance", 0, None)]
    assert view.nodes == {"osaka": view.exchanges}
    assert view.best == {}


def test_best_node_has_the_lowest_average_per_exchange(exchange):
    binance, kraken = exchange("binance"), exchange("kraken")
    now = timezone.now()
    for age, ms in ((10, "30"), (20, "40")):
        sample(binance, "osaka", age, ms, now)  # avg 35
        sample(binance, "tokyo", age, "20", now)  # avg 20
        sample(kraken, "osaka", age, "50", now)  # avg 50
        sample(kraken, "tokyo", age, None, now)  # no successful probe: not a candidate

    view = latency_stats_get(now=now)

    assert view.node == "osaka"
    assert sorted(view.nodes) == ["osaka", "tokyo"]
    tokyo = {r.exchange: r for r in view.nodes["tokyo"]}
    assert (tokyo["binance"].avg_ms, tokyo["kraken"].failures, tokyo["kraken"].avg_ms) == (
        Decimal("20.0"),
        2,
        None,
    )
    assert {slug: (b.node, b.avg_ms) for slug, b in view.best.items()} == {
        "binance": ("tokyo", Decimal("20.0")),
        "kraken": ("osaka", Decimal("50.0")),
    }
