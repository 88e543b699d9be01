"""Row locking on PostgreSQL: one liquidation per position, serialised leverage changes."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from apps.trading.models import (
    Fill,
    InsuranceFundEntry,
    LeverageChange,
    Liquidation,
    MarginHistory,
    Portfolio,
    Position,
)
from apps.trading.services.liquidations import liquidations_check
from apps.trading.services.positions import position_leverage_change, position_margin_adjust
from tests.conftest import skip_or_fail
from tests.trading.factories import open_position

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        skip_or_fail("row locking needs PostgreSQL; SQLite serialises whole-database writes")


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released at once; return each one's result or exception."""
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:  # collected and asserted by the test
            results[index] = exc
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_seeing_the_same_price_liquidate_a_position_once(portfolio, workers):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)

    results = run_together([lambda: liquidations_check(symbol="btc", mark=D(45100))] * workers)

    assert not [r for r in results if isinstance(r, Exception)]
    assert sum(len(r) for r in results) == 1
    assert Liquidation.objects.filter(position=position).count() == 1
    assert Fill.objects.filter(position=position).count() == 1
    assert MarginHistory.objects.filter(position=position, delta_type="liquidation").count() == 1
    assert InsuranceFundEntry.objects.count() == 1  # the 100 residual, all fee at 0.5%
    portfolio.refresh_from_db()
    assert portfolio.realized_pnl == D(-5000)


def test_many_positions_two_workers_each_liquidated_once(portfolio, user):
    positions = [open_position(portfolio, symbol=s, side="long", entry="100", leverage=20) for s in ("btc",)]
    others = []
    for index in range(6):
        other = Portfolio.objects.create(
            user=user, name=f"p{index}", cash=D(10000), initial_cash=D(10000), home_node="local"
        )
        others.append(open_position(other, side="long", entry="50000", leverage=10))

    results = run_together([lambda: liquidations_check(symbol="btc", mark=D(45000))] * 2)

    assert not [r for r in results if isinstance(r, Exception)]
    ids = [liq.position_id for r in results for liq in r]
    assert sorted(map(str, ids)) == sorted(str(p.pk) for p in others)
    assert Liquidation.objects.count() == len(others)
    assert Position.objects.get(pk=positions[0].pk).status == "open"  # 100-entry long is far from it


def test_concurrent_leverage_changes_serialise(portfolio, set_price, engine):
    engine.leverage_cooldown_seconds = 0
    engine.save()
    set_price("btc", D(50000))
    position = open_position(portfolio, side="long", entry="50000", leverage=10)
    start = Position.objects.get(pk=position.pk).version
    targets = [5, 20, 4, 25, 8, 2]

    results = run_together(
        [lambda t=t: position_leverage_change(position=position, leverage=t, actor="user:1") for t in targets]
    )

    assert not [r for r in results if isinstance(r, Exception)]
    position.refresh_from_db()
    portfolio.refresh_from_db()
    applied = LeverageChange.objects.filter(outcome="applied").order_by("created_at")
    assert applied.count() == len(targets)
    # Each change saw the one before it: the chain of old -> new leverages is unbroken.
    chain = list(applied.values_list("old_leverage", "new_leverage"))
    assert chain[0][0] == 10
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(chain))
    assert position.leverage == chain[-1][1]
    assert position.isolated_margin == D(50000) / position.leverage  # reset policy, at mark = entry
    assert portfolio.cash + position.isolated_margin == D(100000)  # no margin created or lost
    assert position.version == start + len(targets) + sum(  # a position write per change, +LP refresh
        1 for r in results if r.position.liquidation_price is not None
    )


def test_concurrent_margin_adds_cannot_overspend(portfolio, set_price):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)  # cash 95,000
    Portfolio.objects.filter(pk=portfolio.pk).update(cash=D(1000))

    results = run_together(
        [lambda: position_margin_adjust(position=position, amount=D(600), actor="user:1")] * 3
    )

    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 2
    assert {e.code for e in errors} == {"insufficient_funds"}
    portfolio.refresh_from_db()
    position.refresh_from_db()
    assert portfolio.cash == D(400)
    assert position.isolated_margin == D(5600)
