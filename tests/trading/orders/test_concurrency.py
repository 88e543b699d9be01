"""Row locking on PostgreSQL: concurrent orders cannot overspend, a retried client id fills once,
and two workers evaluating the same price fill a resting order once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from apps.trading.exceptions import InsufficientFunds
from apps.trading.models import Fill, Order, Position
from apps.trading.services.orders import order_place
from apps.trading.services.triggers import prices_evaluate
from tests.conftest import skip_or_fail

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("row locking needs PostgreSQL; SQLite serialises whole-database writes")


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Start every call at the same moment, each in its own thread with its own connection."""
    barrier, outcomes = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait()
            outcomes[index] = calls[index]()
        except Exception as exc:  # collected and asserted by the test
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def buy(portfolio, **overrides: Any) -> Callable[[], Order]:
    kwargs = {"portfolio": portfolio, "symbol": "btc", "side": "buy", "type": "market", "quantity": D("1.5")}
    return lambda: order_place(**(kwargs | overrides))


def test_concurrent_market_orders_cannot_overspend(portfolio, btc):
    # Each needs 75,000 of margin at 1x (+37.5 fee) out of 100,000: only one fits.
    outcomes = run_together([buy(portfolio), buy(portfolio)])

    assert sum(isinstance(o, InsufficientFunds) for o in outcomes) == 1
    assert sum(isinstance(o, Order) for o in outcomes) == 1
    position = Position.objects.get()
    assert position.quantity == D("1.5")
    portfolio.refresh_from_db()
    assert portfolio.cash == D("100000") - D("1.5") * 50000 * D("0.0005")


def test_concurrent_resting_orders_cannot_reserve_the_same_cash(portfolio, btc):
    limit = {"type": "limit", "price": D("45000"), "quantity": D("1.2")}  # 54,000 + 10.8 each

    outcomes = run_together([buy(portfolio, **limit), buy(portfolio, **limit), buy(portfolio, **limit)])

    assert sum(isinstance(o, InsufficientFunds) for o in outcomes) == 2
    assert Order.objects.get().reserved_margin == D("1.2") * 45000 + D("1.2") * 45000 * D("0.0002")


def test_a_retried_client_order_id_fills_once(portfolio, btc):
    outcomes = run_together([buy(portfolio, quantity=D("0.5"), client_order_id="same") for _ in range(4)])

    assert all(isinstance(o, Order) for o in outcomes), outcomes
    assert len({o.pk for o in outcomes}) == 1
    assert Fill.objects.count() == 1
    assert Position.objects.get().quantity == D("0.5")


def test_two_workers_evaluating_one_price_fill_a_resting_order_once(portfolio, btc):
    order = buy(portfolio, type="limit", price=D("49000"), quantity=D("0.5"))()
    btc("48000")

    outcomes = run_together([lambda: prices_evaluate(prices={"btc": D("48000")}) for _ in range(4)])

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sum(o.filled for o in outcomes) == 1
    assert Fill.objects.count() == 1
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("filled", D("0.5"))
    assert Position.objects.get().quantity == D("0.5")


def test_a_cancel_racing_a_fill_either_cancels_or_fills(portfolio, btc):
    from apps.trading.services.orders import order_cancel

    order = buy(portfolio, type="limit", price=D("49000"), quantity=D("0.5"))()
    btc("48000")

    outcomes = run_together(
        [lambda: prices_evaluate(prices={"btc": D("48000")}), lambda: order_cancel(order=order)]
    )

    order.refresh_from_db()
    if order.status == "filled":
        assert Fill.objects.count() == 1
        assert outcomes[1].code == "order_not_cancellable"
    else:
        assert order.status == "cancelled"
        assert not Fill.objects.exists()
