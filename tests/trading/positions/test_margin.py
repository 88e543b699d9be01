"""Adding and removing isolated margin (Binance positionMargin, research §1.5)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.trading.exceptions import (
    InsufficientFunds,
    InvalidMarginAmount,
    MarginNotIsolated,
    MaxRemovableExceeded,
    PositionNotOpen,
    PriceUnavailable,
)
from apps.trading.models import MarginHistory, Order, Position
from apps.trading.services.positions import position_margin_adjust
from tests.trading.factories import open_position
from tests.trading.positions import reference as ref

pytestmark = pytest.mark.django_db
D = Decimal


def test_adding_margin_moves_cash_to_the_position_and_lowers_the_liquidation_price(
    portfolio, django_capture_on_commit_callbacks
):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)  # WB 5,000
    cash_before = portfolio.cash

    with django_capture_on_commit_callbacks() as callbacks:
        position = position_margin_adjust(position=position, amount=D(1000), actor="user:1")

    portfolio.refresh_from_db()
    assert position.isolated_margin == D(6000)
    assert portfolio.cash == cash_before - 1000
    assert ref.close(position.liquidation_price, ref.lp("long", D(1), D(50000), D(6000)))
    assert ref.close(position.liquidation_price, D("44176.71"), "0.01")
    row = MarginHistory.objects.get(position=position)
    assert (row.delta_type, row.amount, row.margin_after, row.leverage) == ("add", D(1000), D(6000), 10)
    assert len(callbacks) == 1  # the position event


def test_removing_margin_within_max_removable(portfolio, set_price):
    position = open_position(portfolio, side="long", entry="50000", leverage=10, margin="8000")
    set_price("btc", D(52000))
    removable = ref.max_removable("long", D(1), D(50000), D(52000), D(8000), 10)  # min(7,790, 4,800)

    position = position_margin_adjust(position=position, amount=-removable, actor="user:1")

    assert removable == D(4800)
    assert position.isolated_margin == D(8000) - removable
    assert ref.close(position.liquidation_price, ref.lp("long", D(1), D(50000), D(3200)))
    assert MarginHistory.objects.get(position=position).delta_type == "remove"


def test_removing_more_than_max_removable_is_refused_and_changes_nothing(portfolio, set_price):
    position = open_position(portfolio, side="long", entry="50000", leverage=10, margin="8000")
    set_price("btc", D(49000))
    # min(8,000 - (49,000 x 0.004), 8,000 - 1,000 - 4,900) = 2,100
    removable = ref.max_removable("long", D(1), D(50000), D(49000), D(8000), 10)

    with pytest.raises(MaxRemovableExceeded) as caught:
        position_margin_adjust(position=position, amount=-(removable + D("0.01")), actor="user:1")

    position.refresh_from_db()
    assert removable == D(2100)
    assert D(caught.value.detail["max_removable"]) == removable
    assert position.isolated_margin == D(8000)
    assert not MarginHistory.objects.exists()


def test_adding_more_than_available_cash_is_refused(portfolio, set_price):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)  # cash 95,000
    Order.objects.create(
        portfolio=portfolio,
        client_order_id="resting",
        symbol="eth",
        side="buy",
        type="limit",
        quantity=D(1),
        price=D(1000),
        reserved_margin=D(15000),
    )
    available = D(95000) - D(15000)

    with pytest.raises(InsufficientFunds):
        position_margin_adjust(position=position, amount=available + D("0.000000000001"), actor="user:1")
    position = position_margin_adjust(position=position, amount=available, actor="user:1")

    portfolio.refresh_from_db()
    assert portfolio.cash == D(15000)
    assert position.isolated_margin == D(5000) + available


def test_margin_on_a_cross_position_is_refused(portfolio):
    position = open_position(portfolio, side="long", entry="50000", mode="cross")

    with pytest.raises(MarginNotIsolated):
        position_margin_adjust(position=position, amount=D(100), actor="user:1")


@pytest.mark.parametrize("amount", [D(0), D("0.0000000000001")])
def test_zero_or_too_precise_amount_is_refused(portfolio, amount):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)

    with pytest.raises(InvalidMarginAmount):
        position_margin_adjust(position=position, amount=amount, actor="user:1")


def test_margin_on_a_closed_position_is_refused(portfolio):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)
    Position.objects.filter(pk=position.pk).update(status=Position.Status.CLOSED)

    with pytest.raises(PositionNotOpen):
        position_margin_adjust(position=position, amount=D(100), actor="user:1")


def test_removing_margin_needs_a_fresh_mark(portfolio):
    position = open_position(portfolio, side="long", entry="50000", leverage=10, margin="8000")

    with pytest.raises(PriceUnavailable):
        position_margin_adjust(position=position, amount=D(-100), actor="user:1")
