"""A portfolio's money moves only on its home node: the user-facing writes on a portfolio homed
on another node are refused with 409 portfolio_homed_elsewhere and write nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.trading.exceptions import PortfolioHomedElsewhere
from apps.trading.models import EngineSettings, LeverageChange, OptionPosition, Order, Portfolio, Position
from apps.trading.selectors import portfolio_owned_here
from apps.trading.services.options import option_open
from apps.trading.services.orders import order_place
from tests.trading.factories import make_order, open_position
from tests.trading.ownership.conftest import AsNode
from tests.trading.ownership.rows import ELSEWHERE, money_of, written

pytestmark = pytest.mark.django_db

D = Decimal
ORDERS = "/api/trading/orders"
POSITIONS = "/api/trading/positions"
OPTIONS = "/api/trading/options"


@pytest.fixture
def btc(set_price: Any) -> None:
    set_price("btc", "50000")


@pytest.fixture
def hull_market(seeded: None) -> None:
    EngineSettings.objects.filter(key="default").update(
        option_volatility=D("0.2"), option_risk_free_rate=D("0.1")
    )


def assert_homed_elsewhere(response: Any) -> None:
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "portfolio_homed_elsewhere"
    assert error["detail"] == {"home_node": ELSEWHERE}


def option_body(portfolio: Portfolio) -> dict[str, str]:
    return {
        "portfolio": str(portfolio.pk),
        "underlying": "btc",
        "type": "call",
        "side": "long",
        "strike": "40",
        "expiry": (timezone.now() + timedelta(days=182.5)).isoformat(),
        "quantity": "2",
    }


# --- the guard ----------------------------------------------------------------------------------


def test_the_guard_passes_this_nodes_portfolios_and_refuses_the_others(portfolio, foreign, settings):
    assert settings.HAUNT_NODE_ID == portfolio.home_node == "local"

    portfolio_owned_here(portfolio)
    with pytest.raises(PortfolioHomedElsewhere) as refused:
        portfolio_owned_here(foreign)

    assert (refused.value.code, refused.value.http_status) == ("portfolio_homed_elsewhere", 409)
    assert refused.value.detail == {"home_node": ELSEWHERE}


# --- orders -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order",
    [
        {"type": "market"},
        {"type": "limit", "price": "49000", "timeInForce": "GTC"},  # would rest, reserving margin
        {"type": "stop", "stopPrice": "51000"},  # would wait for its trigger
    ],
)
def test_placing_an_order_on_a_portfolio_homed_elsewhere_is_409_and_writes_nothing(
    auth_client: APIClient, foreign, btc, order
):
    before, money = written(), money_of(foreign)

    response = auth_client.post(
        ORDERS,
        {"portfolio": str(foreign.pk), "symbol": "btc", "side": "buy", "quantity": "0.5"} | order,
        format="json",
    )

    assert_homed_elsewhere(response)
    assert written() == before
    assert money_of(foreign) == money


def test_the_same_order_on_this_nodes_portfolio_is_placed(auth_client: APIClient, portfolio, foreign, btc):
    before = written()

    response = auth_client.post(
        ORDERS,
        {"portfolio": str(portfolio.pk), "symbol": "btc", "side": "buy", "type": "market", "quantity": "0.5"},
        format="json",
    )

    assert response.status_code == 201
    assert Order.objects.get().portfolio_id == portfolio.pk
    assert written()["feed"] != before["feed"]  # what the refusals above are compared with


def test_the_home_node_itself_trades_the_portfolio(foreign, btc, as_node: AsNode):
    with as_node(ELSEWHERE):
        order = order_place(portfolio=foreign, symbol="btc", side="buy", type="market", quantity=D("0.5"))

    assert order.status == Order.Status.FILLED
    assert Position.objects.get().portfolio_id == foreign.pk


def test_a_bots_order_on_a_portfolio_homed_elsewhere_is_refused_by_the_service(foreign, btc):
    before = written()

    with pytest.raises(PortfolioHomedElsewhere):
        order_place(
            portfolio=foreign, symbol="btc", side="buy", type="market", quantity=D("0.5"), placed_by="bot:x"
        )

    assert written() == before


def test_cancelling_an_order_of_a_portfolio_homed_elsewhere_is_409_and_it_stays_open(
    auth_client: APIClient, foreign
):
    order = make_order(foreign, symbol="btc", price="49000", reserved_margin="4904.9")
    before, money = written(), money_of(foreign)

    response = auth_client.post(f"{ORDERS}/{order.pk}/cancel")

    assert_homed_elsewhere(response)
    row = Order.objects.get(pk=order.pk)
    assert (row.status, row.reserved_margin, row.version) == ("open", D("4904.9"), order.version)
    assert written() == before
    assert money_of(foreign) == money


# --- positions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["100", "-100"])
def test_adjusting_margin_on_a_portfolio_homed_elsewhere_is_409_and_writes_nothing(
    auth_client: APIClient, foreign, btc, amount
):
    position = open_position(foreign, side="long", entry="50000", leverage=10)  # isolated, wallet 5,000
    before, money = written(), money_of(foreign)

    response = auth_client.post(f"{POSITIONS}/{position.pk}/margin", {"amount": amount}, format="json")

    assert_homed_elsewhere(response)
    row = Position.objects.get(pk=position.pk)
    assert (row.isolated_margin, row.version) == (D(5000), position.version)
    assert written() == before
    assert money_of(foreign) == money


def test_changing_leverage_on_a_portfolio_homed_elsewhere_is_409_audited_as_rejected(
    auth_client: APIClient, foreign, btc
):
    position = open_position(foreign, side="long", entry="50000", leverage=10)
    before, money = written(), money_of(foreign)

    response = auth_client.put(f"{POSITIONS}/{position.pk}/leverage", {"leverage": 5}, format="json")

    assert_homed_elsewhere(response)
    row = Position.objects.get(pk=position.pk)
    assert (row.leverage, row.isolated_margin, row.version) == (10, D(5000), position.version)
    assert written() == before
    assert money_of(foreign) == money
    audit = LeverageChange.objects.get()  # a local audit row, like every other refusal
    assert (audit.outcome, audit.error_code) == (LeverageChange.Outcome.REJECTED, "portfolio_homed_elsewhere")
    assert (audit.old_leverage, audit.requested_leverage, audit.new_leverage) == (10, 5, 10)


def test_closing_a_position_of_a_portfolio_homed_elsewhere_is_409_and_it_stays_open(
    auth_client: APIClient, foreign, btc
):
    position = open_position(foreign, side="long", entry="50000", leverage=10)
    before, money = written(), money_of(foreign)

    response = auth_client.post(f"{POSITIONS}/{position.pk}/close")

    assert_homed_elsewhere(response)
    assert Position.objects.get(pk=position.pk).status == Position.Status.OPEN
    assert written() == before
    assert money_of(foreign) == money


# --- options ------------------------------------------------------------------------------------


def test_opening_an_option_on_a_portfolio_homed_elsewhere_is_409_and_writes_nothing(
    auth_client: APIClient, foreign, hull_market, btc
):
    before, money = written(), money_of(foreign)

    response = auth_client.post(OPTIONS, option_body(foreign), format="json")

    assert_homed_elsewhere(response)
    assert written() == before
    assert money_of(foreign) == money


def test_the_same_option_on_this_nodes_portfolio_is_opened(
    auth_client: APIClient, portfolio, hull_market, btc
):
    response = auth_client.post(OPTIONS, option_body(portfolio), format="json")

    assert response.status_code == 201
    assert OptionPosition.objects.get().portfolio_id == portfolio.pk


def test_closing_an_option_of_a_portfolio_homed_elsewhere_is_409_and_it_stays_open(
    auth_client: APIClient, foreign, hull_market, btc, as_node: AsNode
):
    with as_node(ELSEWHERE):
        option = option_open(
            portfolio=foreign,
            underlying="btc",
            option_type="call",
            side="long",
            strike=D(40),
            expiry=timezone.now() + timedelta(days=30),
            quantity=D(2),
        )
    before, money = written(), money_of(foreign)

    response = auth_client.post(f"{OPTIONS}/{option.pk}/close")

    assert_homed_elsewhere(response)
    assert OptionPosition.objects.get(pk=option.pk).status == OptionPosition.Status.OPEN
    assert written() == before
    assert money_of(foreign) == money


# --- preferences stay writable anywhere ---------------------------------------------------------


def test_preferences_of_a_portfolio_homed_elsewhere_can_change_on_any_node(auth_client: APIClient, foreign):
    hidden = auth_client.patch(f"/api/trading/portfolios/{foreign.pk}", {"isPublic": False}, format="json")
    activated = auth_client.post(f"/api/trading/portfolios/{foreign.pk}/activate")

    assert (hidden.status_code, activated.status_code) == (200, 200)
    row = Portfolio.objects.get(pk=foreign.pk)
    assert (row.is_public, row.is_active) == (False, True)
