"""Two workers at once (PostgreSQL row locks): an option is settled once, a bot runs once."""

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from apps.trading.models import OptionPosition, Order, Strategy
from apps.trading.services.bots import bots_ensure, bots_run_due
from apps.trading.services.options import option_open, options_settle_expired
from tests.conftest import skip_or_fail
from tests.trading.bots.personas import GRANDMA, definition, store_closes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        skip_or_fail("row locking needs PostgreSQL; SQLite serialises whole-database writes")


def run_twice(work: Callable[[], int]) -> tuple[list[int], list[Exception]]:
    barrier, results, errors = threading.Barrier(2), [], []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(work())
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_two_workers_settle_an_option_once(portfolio, set_price):
    set_price("btc", 42)
    option = option_open(
        portfolio=portfolio,
        underlying="btc",
        option_type="call",
        side="long",
        strike=Decimal(40),
        expiry=timezone.now() + timedelta(days=30),
        quantity=Decimal(2),
    )
    portfolio.refresh_from_db()
    cash_before = portfolio.cash
    set_price("btc", 45)

    results, errors = run_twice(lambda: options_settle_expired(now=option.expiry))

    assert errors == []
    assert sorted(results) == [0, 1]
    portfolio.refresh_from_db()
    assert portfolio.cash == cash_before + 10  # (45 - 40) * 2, paid once
    assert OptionPosition.objects.get(pk=option.pk).status == OptionPosition.Status.SETTLED


def test_two_workers_run_a_due_bot_once(seeded, set_price):
    (bot,) = bots_ensure(definitions=[definition("granny", "grandma", GRANDMA)])
    store_closes("btc", [100] * 30)
    set_price("btc", 97)
    now = timezone.now()

    results, errors = run_twice(lambda: bots_run_due(now=now))

    assert errors == []
    assert sorted(results) == [0, 1]
    assert Order.objects.filter(placed_by="bot:granny").count() == 1
    assert Strategy.objects.get(pk=bot.pk).version == 2  # created, then one run
