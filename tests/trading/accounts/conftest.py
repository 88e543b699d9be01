"""Accounts fixtures: a fake market-data provider so the bootstrap never reaches the network
(row factories are in tests/trading/factories.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from apps.markets.models import Exchange
from tests.markets.conftest import FakeProvider, Reply
from tests.markets.overview.conftest import FEAR_GREED, FNG_PATH, GECKO_GLOBAL, GECKO_GLOBAL_PATH


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
