"""Positions built directly with the ORM (tests may; production code goes through the services)."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import F

from apps.trading.models import Portfolio, Position
from apps.trading.services.risk import positions_refresh_liquidation_prices


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
    """An open position; an isolated one's margin (Q·EP/L unless given) leaves the cash."""
    qty, price = Decimal(quantity), Decimal(entry)
    wallet = Decimal(0)
    if mode == "isolated":
        wallet = Decimal(margin) if margin is not None else qty * price / leverage
        Portfolio.objects.filter(pk=portfolio.pk).update(cash=F("cash") - wallet)
    position = Position.objects.create(
        portfolio=portfolio,
        symbol=symbol,
        side=side,
        quantity=qty,
        entry_price=price,
        leverage=leverage,
        margin_mode=mode,
        isolated_margin=wallet,
    )
    positions_refresh_liquidation_prices(portfolio=portfolio)
    position.refresh_from_db()
    portfolio.refresh_from_db()
    return position


def make_portfolio(user, *, cash: str | Decimal = "100000", name: str = "p2") -> Portfolio:
    return Portfolio.objects.create(
        user=user, name=name, cash=Decimal(cash), initial_cash=Decimal(cash), home_node="local"
    )
