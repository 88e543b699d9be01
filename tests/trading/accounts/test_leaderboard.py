from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.trading.models import Portfolio, PortfolioSnapshot, Profile
from apps.trading.selectors_accounts import leaderboard, public_name
from tests.conftest import make_user
from tests.trading.factories import make_position

pytestmark = pytest.mark.django_db

D = Decimal


def _portfolio(
    username: str, *, cash: str, initial: str = "100000", public: bool = True, profile: str | None = ""
) -> Portfolio:
    user = make_user(username)
    if profile is not None:
        Profile.objects.create(user=user, username=profile or username.title())
    return Portfolio.objects.create(
        user=user, name="main", cash=D(cash), initial_cash=D(initial), is_public=public, home_node="local"
    )


def _snapshot(portfolio: Portfolio, *, ago: timedelta, equity: str) -> None:
    PortfolioSnapshot.objects.create(
        portfolio=portfolio,
        taken_at=timezone.now() - ago,
        equity=D(equity),
        cash=D(equity),
        unrealized_pnl=0,
        realized_pnl=0,
        used_margin=0,
    )


@pytest.fixture
def field(seeded):
    """ann: 110,000 now, 100,000 two days ago, 105,000 twelve hours ago.
    ben: 104,000 now, 80,000 two days ago (no newer snapshot).
    cat: 99,000 now, no snapshot (too young), started with 100,000.
    dan: 500,000 now but private."""
    ann = _portfolio("ann", cash="110000")
    _snapshot(ann, ago=timedelta(days=2), equity="100000")
    _snapshot(ann, ago=timedelta(hours=12), equity="105000")
    ben = _portfolio("ben", cash="104000")
    _snapshot(ben, ago=timedelta(days=2), equity="80000")
    cat = _portfolio("cat", cash="99000")
    _portfolio("dan", cash="500000", public=False)
    return ann, ben, cat


def test_one_day_return_against_the_snapshot_just_before_the_period_start(field):
    ann, ben, cat = field

    entries = leaderboard(period="1d", limit=10)

    # 1d start = 24 h ago. ann: the 2-day-old snapshot is the last before it (the 12-hour one is
    # after): 110/100 - 1 = 10%. ben: 104/80 - 1 = 30%. cat: no snapshot, initial cash: -1%.
    assert [e.portfolio_id for e in entries] == [ben.pk, ann.pk, cat.pk]
    assert [e.return_ratio for e in entries] == [D("0.3"), D("0.1"), D("-0.01")]
    assert [e.rank for e in entries] == [1, 2, 3]
    assert entries[1].start_equity == D("100000")
    assert entries[1].equity == D("110000")


def test_seven_days_is_too_long_for_these_snapshots(field):
    ann, ben, cat = field

    entries = leaderboard(period="7d", limit=10)

    # No snapshot a week old: everyone is measured against their initial cash.
    assert [e.portfolio_id for e in entries] == [ann.pk, ben.pk, cat.pk]
    assert [e.return_ratio for e in entries] == [D("0.1"), D("0.04"), D("-0.01")]


def test_all_time_uses_initial_cash(field):
    ann, ben, _ = field

    entries = leaderboard(period="all", limit=2)

    assert [e.portfolio_id for e in entries] == [ann.pk, ben.pk]


def test_private_portfolios_are_left_out(field):
    assert "Dan" not in [e.username for e in leaderboard(period="all", limit=10)]


def test_names_come_from_profiles_and_a_neutral_name_stands_in(seeded):
    named = _portfolio("erin", cash="100000", profile="Erin_the_Bold")
    anonymous = _portfolio("fred", cash="100000", profile=None)

    names = {e.portfolio_id: e.username for e in leaderboard(period="all", limit=10)}

    assert names[named.pk] == "Erin_the_Bold"
    assert names[anonymous.pk].startswith("trader-")
    assert "fred" not in names[anonymous.pk]
    assert names[anonymous.pk] == public_name(user_id=anonymous.user_id, profile=None)


def test_equity_now_includes_unrealized_pnl(seeded, set_price):
    flat = _portfolio("gil", cash="100000")
    trader = _portfolio("hal", cash="100000")
    make_position(trader, symbol="eth", side="short", quantity="10", entry="3000", leverage=5)
    set_price("eth", "2900")  # +1,000

    entries = leaderboard(period="all", limit=10)

    assert [e.portfolio_id for e in entries] == [trader.pk, flat.pk]
    assert entries[0].return_ratio == D("0.01")
