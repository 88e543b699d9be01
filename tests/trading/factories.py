"""Rows built directly with the ORM for trading tests (production code goes through the services):
portfolios, positions, resting orders, and the row counts that show a refusal wrote nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from django.contrib.auth.models import User
from django.db.models import F
from django.utils import timezone

from apps.trading.models import Fill, MarginHistory, Order, Portfolio, Position
from apps.trading.services.risk import positions_refresh_liquidation_prices


def make_portfolio(
    user: User, *, cash: str | Decimal = "100000", name: str = "main", is_active: bool = True
) -> Portfolio:
    return Portfolio.objects.create(
        user=user,
        name=name,
        cash=Decimal(cash),
        initial_cash=Decimal(cash),
        is_active=is_active,
        home_node="local",
    )


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
    status: str = "open",
) -> Position:
    """A bare position row (open unless told): no cash moves, no liquidation price (see
    open_position)."""
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
        status=status,
    )


def open_position(
    portfolio: Portfolio,
    *,
    symbol: str = "btc",
    side: str = "long",
    quantity: str | Decimal = "1",
    entry: str | Decimal = "50000",
    leverage: int = 10,
    mode: str = "isolated",
    margin: str | Decimal | None = None,
) -> Position:
    """An open position as a fill leaves it: an isolated one's margin (Q·EP/L unless given) has
    left the cash, and the liquidation prices of the portfolio are refreshed."""
    wallet = Decimal(0)
    if mode == "isolated":
        wallet = Decimal(margin) if margin is not None else Decimal(quantity) * Decimal(entry) / leverage
        Portfolio.objects.filter(pk=portfolio.pk).update(cash=F("cash") - wallet)
    position = make_position(
        portfolio,
        symbol=symbol,
        side=side,
        quantity=quantity,
        entry=entry,
        leverage=leverage,
        margin_mode=mode,
        isolated_margin=wallet,
        opened_at=timezone.now(),
    )
    positions_refresh_liquidation_prices(portfolio=portfolio)
    position.refresh_from_db()
    portfolio.refresh_from_db()
    return position


_order_numbers = count(1)


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
        client_order_id=f"test-{next(_order_numbers)}",
        symbol=symbol,
        side=side,
        type=type,
        quantity=Decimal(quantity),
        price=Decimal(price) if price is not None else None,
        stop_price=Decimal(stop_price) if stop_price is not None else None,
        status=status,
        reserved_margin=Decimal(reserved_margin),
    )


def row_counts() -> dict[str, int]:
    """Rows of every table an order can write, to show a refusal wrote nothing."""
    return {
        "orders": Order.objects.count(),
        "fills": Fill.objects.count(),
        "positions": Position.objects.count(),
        "margin_history": MarginHistory.objects.count(),
    }
