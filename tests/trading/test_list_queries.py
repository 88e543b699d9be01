"""No N+1 in the trading list endpoints: the queries of a list do not grow with its rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.trading.models import (
    Fill,
    FundingPayment,
    LeverageChange,
    Liquidation,
    MarginHistory,
    OptionPosition,
    Portfolio,
    PortfolioSnapshot,
    Position,
)
from apps.trading.services.bots import bots_ensure
from tests.conftest import make_user
from tests.trading.factories import make_order, make_portfolio, make_position

pytestmark = pytest.mark.django_db
D = Decimal
BASE = "/api/trading"
SYMBOLS = ("btc", "eth", "sol", "xrp", "doge", "ada")
MAX_QUERIES = 12  # auth, portfolio, page count + rows, marks/settings: a handful, never per row
_numbers = count(1)


def leverage_audit(position: Position) -> LeverageChange:
    return LeverageChange.objects.create(
        position=position,
        portfolio_id=position.portfolio_id,
        actor="user:1",
        old_leverage=10,
        requested_leverage=20,
        new_leverage=20,
        margin_mode=position.margin_mode,
        policy="reset",
        outcome="applied",
    )


def add_rows(portfolio: Portfolio, n: int) -> None:
    """n more rows of every listed kind for the portfolio (and n public portfolios for the
    leaderboard); positions spread over several symbols so marks are read for many at once."""
    now = timezone.now()
    for _ in range(n):
        i = next(_numbers)
        symbol = SYMBOLS[i % len(SYMBOLS)]
        make_order(portfolio, symbol=symbol)
        position = make_position(portfolio, symbol=symbol, margin_mode="isolated", status="closed")
        Fill.objects.create(
            portfolio=portfolio, position=position, symbol=symbol, side="buy", quantity=1, price=10
        )
        MarginHistory.objects.create(
            position=position, portfolio=portfolio, delta_type="open", amount=10, margin_after=10, leverage=10
        )
        leverage_audit(position)
        Liquidation.objects.create(
            position=position,
            portfolio=portfolio,
            symbol=symbol,
            side="long",
            margin_mode="isolated",
            quantity=1,
            entry_price=10,
            mark_price=9,
            bankruptcy_price=9,
            margin_lost=1,
            insurance_fund_delta=0,
        )
        FundingPayment.objects.create(
            position=position,
            portfolio=portfolio,
            symbol=symbol,
            funding_time=now - timedelta(hours=8 * i),
            rate=D("0.0001"),
            rate_source="default",
            mark_price=10,
            quantity=1,
            amount=D("-0.001"),
        )
        PortfolioSnapshot.objects.create(
            portfolio=portfolio,
            taken_at=now - timedelta(minutes=15 * i),
            equity=100,
            cash=100,
            unrealized_pnl=0,
            realized_pnl=0,
            used_margin=0,
        )
        OptionPosition.objects.create(
            portfolio=portfolio,
            underlying=symbol,
            option_type="call",
            side="long",
            strike=10,
            expiry=now + timedelta(days=30),
            quantity=1,
            premium=1,
            volatility=D("0.5"),
        )
        other = make_portfolio(make_user(f"trader{i}"), name=f"public {i}")
        Portfolio.objects.filter(pk=other.pk).update(is_public=True)
        make_position(other, symbol=symbol)


@pytest.fixture
def open_positions(portfolio: Portfolio) -> Callable[[int], None]:
    """Open positions, one per symbol: the positions list values them at live marks."""
    made: list[str] = []

    def _open(n: int) -> None:
        for symbol in SYMBOLS[len(made) : len(made) + n]:
            make_position(portfolio, symbol=symbol)
            made.append(symbol)

    return _open


def queries_of(client: Any, url: str) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured), response.json()


def rows_in(body: Any) -> int:
    if isinstance(body, list):
        return len(body)
    return len(body["results"])


@pytest.mark.parametrize(
    "path",
    [
        "orders",
        "trades",
        "positions",
        "liquidations",
        "margin-history",
        "funding-payments",
        "snapshots",
        "options",
        "leaderboard?period=all",
    ],
)
def test_list_queries_do_not_grow_with_rows(
    path, auth_client, portfolio, set_price, open_positions, django_assert_max_num_queries
):
    for symbol in SYMBOLS:
        set_price(symbol, 10)
    url = f"{BASE}/{path}"
    add_rows(portfolio, 2)
    open_positions(2)
    few, body = queries_of(auth_client, url)
    few_rows = rows_in(body)

    add_rows(portfolio, 4)
    open_positions(4)
    with django_assert_max_num_queries(MAX_QUERIES):
        many, body = queries_of(auth_client, url)

    assert rows_in(body) > few_rows >= 2
    assert many == few


def test_leverage_history_queries_do_not_grow_with_rows(
    auth_client, portfolio, django_assert_max_num_queries
):
    position = make_position(portfolio)

    def audit(n: int) -> None:
        for _ in range(n):
            leverage_audit(position)

    url = f"{BASE}/positions/{position.pk}/leverage-history"
    audit(2)
    few, _ = queries_of(auth_client, url)
    audit(5)
    with django_assert_max_num_queries(MAX_QUERIES):
        many, body = queries_of(auth_client, url)

    assert rows_in(body) == 7
    assert many == few


@pytest.mark.parametrize("path", ["strategies", "bots"])
def test_bot_lists_read_a_bounded_number_of_queries(path, auth_client, seeded, set_price):
    set_price("btc", 10)
    bots_ensure()  # the four personas
    url = f"{BASE}/{path}"
    four, body = queries_of(auth_client, url)
    assert len(body) == 4

    bots_ensure(
        definitions=[
            {
                "name": f"extra{i}",
                "persona": "grandma",
                "username": f"Extra {i} Bot",
                "symbols": ["btc"],
                "interval_seconds": 60,
                "parameters": {},
            }
            for i in range(3)
        ]
    )
    seven, body = queries_of(auth_client, url)

    assert len(body) == 7
    assert seven == four
