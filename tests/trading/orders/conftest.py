"""Order fixtures: a live BTC price, a second funded user, and a placing helper with defaults."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User

from apps.trading.models import Fill, MarginHistory, Order, Portfolio, Position
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


def make_portfolio(user: User, *, cash: str = "100000", name: str = "main") -> Portfolio:
    return Portfolio.objects.create(
        user=user,
        name=name,
        cash=Decimal(cash),
        initial_cash=Decimal(cash),
        is_active=True,
        home_node="local",
    )


def row_counts() -> dict[str, int]:
    """Rows of every table an order can write, to show a refusal wrote nothing."""
    return {
        "orders": Order.objects.count(),
        "fills": Fill.objects.count(),
        "positions": Position.objects.count(),
        "margin_history": MarginHistory.objects.count(),
    }
