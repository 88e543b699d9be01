"""Accounts fixtures: positions and orders made directly with the ORM, and a fake market-data
provider so the bootstrap never reaches the network."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.markets.models import Exchange
from apps.trading.models import Order, Portfolio, Position
from tests.markets.conftest import FakeProvider, Reply
from tests.markets.overview.conftest import FEAR_GREED, FNG_PATH, GECKO_GLOBAL, GECKO_GLOBAL_PATH

MakePosition = Callable[..., Position]
MakeOrder = Callable[..., Order]


def make_position(
    portfolio: Portfolio,
    *,
    symbol: str = "btc",
    side: str = "long",
    quantity: str | Decimal = "1",
    entry: str | Decimal = "50000",
    leverage: int = 10,
    margin_mode: str = "cross",
    isolated_margin: str | Decimal = "0",
    opened_at: Any = None,
) -> Position:
    return Position.objects.create(
        portfolio=portfolio,
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        entry_price=Decimal(entry),
        leverage=leverage,
        margin_mode=margin_mode,
        isolated_margin=Decimal(isolated_margin),
        opened_at=opened_at or timezone.now() - timedelta(days=1),
    )


_order_ids = iter(range(1, 1_000_000))


def make_order(
    portfolio: Portfolio,
    *,
    symbol: str = "sol",
    side: str = "buy",
    type: str = "limit",
    quantity: str | Decimal = "1",
    price: str | Decimal | None = "100",
    stop_price: str | Decimal | None = None,
    status: str = "open",
    reserved_margin: str | Decimal = "0",
) -> Order:
    return Order.objects.create(
        portfolio=portfolio,
        client_order_id=f"test-{next(_order_ids)}",
        symbol=symbol,
        side=side,
        type=type,
        quantity=Decimal(quantity),
        price=Decimal(price) if price is not None else None,
        stop_price=Decimal(stop_price) if stop_price is not None else None,
        status=status,
        reserved_margin=Decimal(reserved_margin),
    )


def _point_market_data_at(url: str, settings: Any) -> None:
    Exchange.objects.filter(slug__in=["coingecko", "coinmarketcap"]).update(rest_url=url + "/api/v3")
    settings.HAUNT_FEAR_GREED_URL = url + FNG_PATH
    settings.HAUNT_COINMARKETCAP_API_KEY = None


@pytest.fixture
def market_up(seeded: None, settings: Any) -> Iterator[FakeProvider]:
    """CoinGecko /global and alternative.me answered by a local fake (their documented examples)."""
    fake = FakeProvider()
    fake.routes.update({GECKO_GLOBAL_PATH: Reply(GECKO_GLOBAL), FNG_PATH: Reply(FEAR_GREED)})
    fake.start()
    _point_market_data_at(fake.url, settings)
    yield fake
    fake.stop()


@pytest.fixture
def market_down(seeded: None, settings: Any) -> None:
    """Every market-data provider unreachable: a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _point_market_data_at(f"http://127.0.0.1:{port}", settings)
