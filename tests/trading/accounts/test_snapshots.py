from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.trading.models import Portfolio, PortfolioSnapshot
from apps.trading.services.snapshots import snapshot_slot, snapshots_take
from apps.trading.tasks.accounts import snapshots_take_task
from tests.trading.factories import make_position

pytestmark = pytest.mark.django_db

D = Decimal
AT = datetime(2024, 5, 1, 12, 15, tzinfo=UTC)


def test_one_snapshot_per_portfolio_with_its_figures(portfolio, outsider, set_price):
    other = Portfolio.objects.create(
        user=outsider, name="b", cash=D("5000"), initial_cash=D("5000"), home_node="local"
    )
    make_position(portfolio, symbol="eth", side="long", quantity="10", entry="3000", leverage=5)
    set_price("eth", "3100")

    written = snapshots_take(taken_at=AT)

    assert written == 2
    snapshot = PortfolioSnapshot.objects.get(portfolio=portfolio)
    # UPnL = 10 * (3,100 - 3,000) = 1,000; cross IM = 31,000 / 5 = 6,200
    assert snapshot.taken_at == AT
    assert snapshot.equity == D("101000")
    assert snapshot.cash == D("100000")
    assert snapshot.unrealized_pnl == D("1000")
    assert snapshot.used_margin == D("6200")
    assert PortfolioSnapshot.objects.get(portfolio=other).equity == D("5000")


def test_snapshots_are_idempotent_per_time(portfolio):
    snapshots_take(taken_at=AT)

    again = snapshots_take(taken_at=AT)

    assert again == 0
    assert PortfolioSnapshot.objects.count() == 1


def test_a_new_portfolio_gets_its_first_snapshot_on_a_rerun(portfolio, outsider):
    snapshots_take(taken_at=AT)
    Portfolio.objects.create(user=outsider, name="late", cash=D("1"), initial_cash=D("1"), home_node="local")

    assert snapshots_take(taken_at=AT) == 1
    assert PortfolioSnapshot.objects.filter(taken_at=AT).count() == 2


def test_snapshot_slot_is_the_quarter_hour():
    assert snapshot_slot(now=datetime(2024, 5, 1, 12, 29, 59, tzinfo=UTC)) == AT


def test_task_uses_the_current_slot_so_a_retry_adds_nothing(portfolio):
    assert snapshots_take_task() == 1
    assert snapshots_take_task() in (0, 1)  # 1 only if a quarter hour turned in between

    snapshot = PortfolioSnapshot.objects.order_by("taken_at").first()
    assert snapshot is not None
    assert snapshot.taken_at == snapshot_slot(now=snapshot.taken_at)
    assert snapshot.taken_at <= timezone.now()
