"""Concurrent runs on PostgreSQL: funding pays once, first use creates one portfolio."""

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from apps.trading.exceptions import PortfolioNameTaken
from apps.trading.models import EngineSettings, FundingPayment, Portfolio, PortfolioSnapshot
from apps.trading.services.funding import funding_settle
from apps.trading.services.portfolios import portfolio_create, portfolio_default
from apps.trading.services.snapshots import snapshots_take
from tests.conftest import make_user, skip_or_fail
from tests.trading.factories import make_position

pytestmark = pytest.mark.django_db(transaction=True)

FUNDING_TIME = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        skip_or_fail("row locking needs PostgreSQL; SQLite serialises whole-database writes")


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    barrier, outcomes = threading.Barrier(count), []

    def run(index: int) -> None:
        try:
            barrier.wait()
            outcomes.append(work(index))
        except Exception as exc:  # collected and asserted by the caller
            outcomes.append(exc)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_funding_runs_pay_each_position_once(seeded, set_price):
    EngineSettings.objects.filter(key="default").update(
        funding_rate_source="fixed", default_funding_rate=Decimal("0.0001")
    )
    set_price("btc", "52000")
    portfolios = []
    for index in range(5):
        portfolio = Portfolio.objects.create(
            user=make_user(f"trader{index}"),
            name="main",
            cash=Decimal("100000"),
            initial_cash=Decimal("100000"),
            home_node="local",
        )
        make_position(portfolio, symbol="btc", quantity="2", opened_at=FUNDING_TIME - timedelta(hours=1))
        portfolios.append(portfolio)

    outcomes = run_together(4, lambda _: funding_settle(funding_time=FUNDING_TIME))

    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert sum(outcomes) == 5  # the payments made, across all runs
    assert FundingPayment.objects.count() == 5
    for portfolio in portfolios:
        portfolio.refresh_from_db()
        assert portfolio.cash == Decimal("100000") - Decimal("10.4")  # 2 * 52,000 * 0.0001, once
        assert portfolio.version == 2


def test_concurrent_first_requests_create_one_portfolio(seeded):
    user = make_user("alice")

    outcomes = run_together(4, lambda _: portfolio_default(user=user).pk)

    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert len(set(outcomes)) == 1
    assert Portfolio.objects.filter(user=user).count() == 1


def test_concurrent_creates_with_one_name_make_one(seeded):
    user = make_user("alice")

    outcomes = run_together(3, lambda _: portfolio_create(user=user, name="Swing"))

    assert sum(isinstance(o, Portfolio) for o in outcomes) == 1
    assert sum(isinstance(o, PortfolioNameTaken) for o in outcomes) == 2
    assert Portfolio.objects.filter(user=user, is_active=True).count() == 1


def test_concurrent_snapshot_runs_write_one_per_portfolio(seeded):
    for index in range(3):
        Portfolio.objects.create(
            user=make_user(f"trader{index}"),
            name="main",
            cash=Decimal("1"),
            initial_cash=Decimal("1"),
            home_node="local",
        )

    outcomes = run_together(3, lambda _: snapshots_take(taken_at=FUNDING_TIME))

    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert PortfolioSnapshot.objects.count() == 3
