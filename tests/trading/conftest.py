"""Trading fixtures: the seeded instruments and bracket tables, live prices set in the price store,
and a funded portfolio."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management.color import no_style
from django.db import connection
from django.db.models import Model

from apps.markets.services.aggregation import AggregatedPrice
from apps.markets.services.store import _memory_store, price_store, redis_client
from apps.trading.models import Portfolio
from haunt.seeding import seed_defaults

TEST_REDIS_DB = 11


@pytest.fixture(autouse=True)
def _clean_price_store(settings: Any) -> Iterator[None]:
    _memory_store.cache_clear()
    if settings.REDIS_URL:
        # Db 0 is a developer's live data: the suite uses db 11 then (any other db as given).
        url = urlsplit(settings.REDIS_URL)
        if url.path in ("", "/", "/0"):
            settings.REDIS_URL = url._replace(path=f"/{TEST_REDIS_DB}").geturl()
        redis_client(settings.REDIS_URL).flushdb()
    yield
    _memory_store.cache_clear()


_seeded_rows: list[tuple[type[Model], list[dict[str, Any]]]] = []


@pytest.fixture
def seeded(db: None) -> None:
    """Exchanges, instruments, bracket tables and engine settings from apps/*/seed.

    The first test loads the seed files (validating every row); later tests bulk-insert the
    same rows, which saves about a second of validation queries per test.
    """
    if _seeded_rows:
        for model, rows in _seeded_rows:
            model._default_manager.bulk_create([model(**row) for row in rows], ignore_conflicts=True)
        # Rows came with their ids: move PostgreSQL's sequences past them.
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [m for m, _ in _seeded_rows]):
                cursor.execute(sql)
        return
    results = seed_defaults()
    for result in results:
        model = apps.get_model(result.model)
        rows = [
            {field.attname: getattr(obj, field.attname) for field in model._meta.concrete_fields}
            for obj in model._default_manager.all()
        ]
        _seeded_rows.append((model, rows))


SetPrice = Callable[..., None]


@pytest.fixture
def set_price() -> SetPrice:
    """Put a fresh aggregated price for a symbol in the store the engine reads marks from."""

    def _set(symbol: str, price: Decimal | str | int, *, age_ms: int = 0) -> None:
        value = Decimal(price)
        price_store().prices_put(
            [
                AggregatedPrice(
                    symbol=symbol,
                    price=value,
                    previous_price=None,
                    direction="up",
                    source="test",
                    sources=("test",),
                    timestamp=int(time.time() * 1000) - age_ms,
                )
            ]
        )

    return _set


@pytest.fixture
def portfolio(seeded: None, user: User) -> Portfolio:
    """A cross-margin portfolio with 100,000 of cash, created directly (not through a service)."""
    return Portfolio.objects.create(
        user=user,
        name="main",
        cash=Decimal("100000"),
        initial_cash=Decimal("100000"),
        is_active=True,
        home_node="local",
    )
