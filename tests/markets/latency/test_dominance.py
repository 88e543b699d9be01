from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.markets.models import DominanceSnapshot, Exchange
from apps.markets.services.dominance import dominance_get, dominance_snapshot_take, shares_compute
from apps.markets.services.prices import ticks_ingest
from apps.markets.tasks import dominance_snapshot_take_task
from tests.markets.factories import make_tick

pytestmark = pytest.mark.django_db


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def venues(exchange) -> dict[str, Exchange]:
    return {slug: exchange(slug) for slug in ("binance", "coinbase", "okx", "cryptocompare")}


def tick(source: str, base: str, price: str, volume: str | None) -> object:
    ts = now_ms()
    return make_tick(
        source=source,
        base=base,
        price=Decimal(price),
        volume_24h=None if volume is None else Decimal(volume),
        exchange_ts=ts,
        received_ts=ts,
    )


@pytest.fixture
def quotes(venues) -> None:
    """btc at 50,000 everywhere, eth at 3,000: USD volumes btc binance 500k, coinbase 1.5M;
    eth binance 300k, okx 700k (okx's btc ticker carries no volume); CryptoCompare's volume is
    the whole market's and never counts."""
    ticks_ingest(
        ticks=[
            tick("binance", "btc", "50000", "10"),
            tick("coinbase", "btc", "50000", "30"),
            tick("okx", "btc", "50000", None),
            tick("cryptocompare", "btc", "50000", "99999"),
            tick("binance", "eth", "3000", "100"),
            tick("okx", "eth", "3000", "233.3333333333"),
        ]
    )


def shares(view) -> dict[str, tuple[str, str]]:
    return {s.exchange: (str(s.volume_24h_usd), str(s.share_percent)) for s in view.exchanges}


def test_per_symbol_shares_from_quote_volumes_times_price(quotes):
    view = dominance_get(symbol="btc")

    assert (view.symbol, view.basis) == ("btc", "live")
    assert shares(view) == {"binance": ("500000.00", "25.0000"), "coinbase": ("1500000.00", "75.0000")}
    assert view.total_volume_24h_usd == Decimal("2000000.00")


def test_global_shares_sum_volumes_over_symbols_to_100(quotes):
    view = dominance_get(symbol=None)

    assert shares(view) == {
        "coinbase": ("1500000.00", "50.0000"),
        "binance": ("800000.00", "26.6667"),
        "okx": ("700000.00", "23.3333"),
    }
    assert [s.exchange for s in view.exchanges] == ["coinbase", "binance", "okx"]  # largest first
    assert sum(s.share_percent for s in view.exchanges) == Decimal("100")


def test_rounded_shares_always_sum_to_exactly_100(venues):
    volumes = {"binance": Decimal(1), "coinbase": Decimal(1), "okx": Decimal(1)}

    rows = shares_compute(volumes=volumes, exchanges=venues)

    assert sorted(str(r.share_percent) for r in rows) == ["33.3333", "33.3333", "33.3334"]
    assert sum(r.share_percent for r in rows) == Decimal("100")


def test_quiet_and_disabled_exchanges_do_not_count(venues):
    old = now_ms() - 11 * 60_000
    Exchange.objects.filter(slug="okx").update(enabled=False)
    ticks_ingest(
        ticks=[
            tick("binance", "btc", "50000", "10"),
            make_tick(source="coinbase", volume_24h=Decimal(30), exchange_ts=old, received_ts=old),
        ]
    )

    view = dominance_get(symbol="btc")

    assert shares(view) == {"binance": ("500000.00", "100.0000")}


def test_snapshot_stores_global_and_per_symbol_rows_once_per_minute(quotes):
    now = timezone.now().replace(second=10, microsecond=0)

    written = dominance_snapshot_take(now=now)
    again = dominance_snapshot_take(now=now + timedelta(seconds=30))  # a redelivered task

    rows = {(r.symbol, r.exchange.slug): str(r.share_percent) for r in DominanceSnapshot.objects.all()}
    assert written == again == 7  # global 3 + btc 2 + eth 2
    assert DominanceSnapshot.objects.count() == 7
    assert rows[("", "okx")] == "23.3333"
    assert rows[("btc", "coinbase")] == "75.0000"
    assert rows[("eth", "okx")] == "70.0000"
    assert {r.taken_at for r in DominanceSnapshot.objects.all()} == {now.replace(second=0, microsecond=0)}


def test_snapshot_task_drops_snapshots_past_retention(venues, quotes):
    DominanceSnapshot.objects.create(
        taken_at=timezone.now() - timedelta(days=31),
        exchange=venues["binance"],
        volume_24h_usd=Decimal(1),
        share_percent=Decimal(100),
    )

    dominance_snapshot_take_task.delay()

    assert DominanceSnapshot.objects.filter(taken_at__lt=timezone.now() - timedelta(days=30)).count() == 0
    assert DominanceSnapshot.objects.count() == 7


def snapshot(venues, minutes_ago: int, symbol: str = "", **shares: str) -> None:
    taken_at = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    for slug, share in shares.items():
        DominanceSnapshot.objects.create(
            taken_at=taken_at,
            exchange=venues[slug],
            symbol=symbol,
            volume_24h_usd=Decimal(share) * 1000,
            share_percent=Decimal(share),
        )


def test_history_lists_snapshots_in_the_span_oldest_first(venues):
    snapshot(venues, 25 * 60, binance="90", coinbase="10")  # older than 24 h
    snapshot(venues, 60, binance="60", coinbase="40")
    snapshot(venues, 5, binance="55", coinbase="45")
    snapshot(venues, 5, symbol="btc", binance="100")

    view = dominance_get(symbol=None, history="24h")

    assert [[(s.exchange, str(s.share_percent)) for s in p.exchanges] for p in view.history] == [
        [("binance", "60.0000"), ("coinbase", "40.0000")],
        [("binance", "55.0000"), ("coinbase", "45.0000")],
    ]
    assert view.history[0].taken_at < view.history[1].taken_at


def test_current_shares_fall_back_to_the_latest_snapshot(venues):
    snapshot(venues, 60, symbol="btc", binance="60", coinbase="40")
    snapshot(venues, 5, symbol="btc", binance="55", coinbase="45")

    view = dominance_get(symbol="btc")

    assert view.basis == "snapshot"
    assert view.at == timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5)
    assert [str(s.share_percent) for s in view.exchanges] == ["55.0000", "45.0000"]
    assert view.history == []


def test_long_history_is_thinned_but_ends_on_the_newest_snapshot(venues):
    newest = timezone.now().replace(second=0, microsecond=0)
    DominanceSnapshot.objects.bulk_create(
        DominanceSnapshot(
            taken_at=newest - timedelta(minutes=5 * i),
            exchange=venues["binance"],
            volume_24h_usd=Decimal(1),
            share_percent=Decimal(100),
        )
        for i in range(400)
    )

    view = dominance_get(symbol=None, history="7d")

    assert len(view.history) == 200
    assert view.history[-1].taken_at == newest
    assert view.history[0].taken_at == newest - timedelta(minutes=5 * 399)
