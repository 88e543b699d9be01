from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from apps.trading.exceptions import PortfolioNameTaken
from apps.trading.models import EngineSettings, Portfolio
from apps.trading.services.portfolios import (
    portfolio_create,
    portfolio_default,
    portfolio_preferences_update,
    portfolio_set_active,
)

pytestmark = pytest.mark.django_db


def test_first_portfolio_is_funded_and_active(seeded, user, settings):
    EngineSettings.objects.filter(key="default").update(starting_cash=Decimal("25000"))

    first = portfolio_create(user=user, name="Swing", margin_mode="isolated", cost_basis="fifo")
    second = portfolio_create(user=user, name="Scalp")

    assert (first.cash, first.initial_cash) == (Decimal("25000"), Decimal("25000"))
    assert (first.margin_mode, first.cost_basis, first.home_node) == (
        "isolated",
        "fifo",
        settings.HAUNT_NODE_ID,
    )
    assert first.is_active is True
    assert second.is_active is False


def test_duplicate_name_is_refused_case_insensitively(seeded, user, outsider):
    portfolio_create(user=user, name="Main")

    with pytest.raises(PortfolioNameTaken):
        portfolio_create(user=user, name=" main ")

    portfolio_create(user=outsider, name="Main")  # names are per user
    assert Portfolio.objects.filter(user=user).count() == 1


def test_default_portfolio_is_created_once(seeded, user):
    created = portfolio_default(user=user)
    again = portfolio_default(user=user)

    assert again.pk == created.pk
    assert created.is_active
    assert created.cash == EngineSettings.objects.get().starting_cash
    assert Portfolio.objects.filter(user=user).count() == 1


def test_default_activates_the_oldest_when_none_is_active(seeded, user):
    oldest = portfolio_create(user=user, name="a")
    portfolio_create(user=user, name="b")
    Portfolio.objects.filter(pk=oldest.pk).update(is_active=False)

    assert portfolio_default(user=user).pk == oldest.pk
    assert Portfolio.objects.filter(user=user, is_active=True).count() == 1


def test_set_active_switches_the_single_active_portfolio(seeded, user):
    first = portfolio_create(user=user, name="a")
    second = portfolio_create(user=user, name="b")

    portfolio_set_active(portfolio=second)

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.is_active, second.is_active) == (False, True)
    assert portfolio_default(user=user).pk == second.pk
    assert second.version == 2  # one replicated write


def test_the_database_allows_only_one_active_portfolio(seeded, user):
    portfolio_create(user=user, name="a")
    second = portfolio_create(user=user, name="b")

    with pytest.raises(IntegrityError), transaction.atomic():
        Portfolio.objects.filter(pk=second.pk).update(is_active=True)


def test_preferences_update(seeded, user):
    portfolio = portfolio_create(user=user, name="a")

    portfolio_preferences_update(portfolio=portfolio, margin_mode="isolated", is_public=False)

    portfolio.refresh_from_db()
    assert (portfolio.margin_mode, portfolio.cost_basis, portfolio.is_public) == (
        "isolated",
        "average",
        False,
    )
