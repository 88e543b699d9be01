"""Order fixtures: a live BTC price, a second funded user, and a placing helper with defaults."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from apps.trading.models import Order, Portfolio
from apps.trading.services.orders import order_place

Place = Callable[..., Order]


@pytest.fixture
def btc(set_price: Callable[..., None]) -> Callable[[Any], None]:
    """Set the live BTC price (starts at 50,000)."""
    set_price("btc", "50000")
    return lambda price: set_price("btc", price)


@pytest.fixture
def place(portfolio: Portfolio, btc: Any) -> Place:
    """order_place on the funded portfolio: a BTC market buy of 0.5 unless told otherwise."""

    def _place(**overrides: Any) -> Order:
        kwargs: dict[str, Any] = {
            "portfolio": portfolio,
            "symbol": "btc",
            "side": "buy",
            "type": "market",
            "quantity": Decimal("0.5"),
        }
        return order_place(**(kwargs | overrides))

    return _place
