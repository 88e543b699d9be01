"""Portfolios: creation with the engine's starting cash, the active portfolio, preferences."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from apps.trading.exceptions import PortfolioNameTaken
from apps.trading.models import MarginMode, Portfolio
from apps.trading.selectors import engine_settings

DEFAULT_PORTFOLIO_NAME = "Main"


def _lock_user(user: User) -> None:
    # Every portfolio creation or activation of one user queues on the user's row, so two first
    # requests cannot both see "no portfolio yet" (the unique constraints are the backstop).
    User.objects.select_for_update().filter(pk=user.pk).first()


def _insert(*, user: User, name: str, margin_mode: str, cost_basis: str, is_active: bool) -> Portfolio:
    cash = engine_settings().starting_cash
    portfolio = Portfolio(
        user=user,
        name=name,
        cash=cash,
        initial_cash=cash,
        margin_mode=margin_mode,
        cost_basis=cost_basis,
        is_active=is_active,
        home_node=str(settings.HAUNT_NODE_ID),
    )
    portfolio.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():  # savepoint: a lost race leaves the outer transaction usable
        portfolio.save(force_insert=True)
    return portfolio


@transaction.atomic
def portfolio_create(
    *,
    user: User,
    name: str,
    margin_mode: str = MarginMode.CROSS,
    cost_basis: str = Portfolio.CostBasis.AVERAGE,
) -> Portfolio:
    """A new portfolio funded with EngineSettings.starting_cash; the user's first one becomes active.

    Names are unique per user, compared case-insensitively: a duplicate is PortfolioNameTaken (409).
    """
    name = name.strip()
    _lock_user(user)
    if Portfolio.objects.filter(user=user, name__iexact=name).exists():
        raise PortfolioNameTaken(f"You already have a portfolio named {name!r}.", name=name)
    first = not Portfolio.objects.filter(user=user).exists()
    try:
        return _insert(user=user, name=name, margin_mode=margin_mode, cost_basis=cost_basis, is_active=first)
    except IntegrityError:
        raise PortfolioNameTaken(f"You already have a portfolio named {name!r}.", name=name) from None


def portfolio_default(*, user: User) -> Portfolio:
    """The user's active portfolio, created (or the oldest one activated) on first use.

    Race-safe: concurrent first requests serialise on the user's row, and should a database
    without row locks let two through, the unique constraints make the loser read the winner's.
    """
    active = Portfolio.objects.filter(user=user, is_active=True).first()
    if active is not None:
        return active
    try:
        return _portfolio_default_locked(user=user)
    except IntegrityError:
        return Portfolio.objects.get(user=user, is_active=True)


@transaction.atomic
def _portfolio_default_locked(*, user: User) -> Portfolio:
    _lock_user(user)
    portfolios = Portfolio.objects.select_for_update().filter(user=user).order_by("created_at", "id")
    active = next((p for p in portfolios if p.is_active), None)
    if active is not None:
        return active
    oldest = portfolios.first()
    if oldest is not None:
        return _activate(oldest)
    return _insert(
        user=user,
        name=DEFAULT_PORTFOLIO_NAME,
        margin_mode=MarginMode.CROSS,
        cost_basis=Portfolio.CostBasis.AVERAGE,
        is_active=True,
    )


def _activate(portfolio: Portfolio) -> Portfolio:
    # Deactivate first: the partial unique constraint allows one active row per user at any time.
    Portfolio.objects.filter(user_id=portfolio.user_id, is_active=True).exclude(pk=portfolio.pk).update(
        is_active=False
    )
    if not portfolio.is_active:
        portfolio.is_active = True
        portfolio.save(update_fields=["is_active"])
    return portfolio


@transaction.atomic
def portfolio_set_active(*, portfolio: Portfolio) -> Portfolio:
    """Make this the user's active portfolio (the others are deactivated in the same transaction)."""
    list(Portfolio.objects.select_for_update().filter(user_id=portfolio.user_id).order_by("id"))
    portfolio = Portfolio.objects.get(pk=portfolio.pk)
    return _activate(portfolio)


@transaction.atomic
def portfolio_preferences_update(
    *,
    portfolio: Portfolio,
    margin_mode: str | None = None,
    cost_basis: str | None = None,
    is_public: bool | None = None,
) -> Portfolio:
    """Change the default margin mode for new positions, the cost-basis method or leaderboard
    visibility; fields left as None keep their value."""
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
    changes = {
        name: value
        for name, value in (
            ("margin_mode", margin_mode),
            ("cost_basis", cost_basis),
            ("is_public", is_public),
        )
        if value is not None
    }
    for name, value in changes.items():
        setattr(portfolio, name, value)
    if changes:
        portfolio.full_clean(validate_unique=False, validate_constraints=False)
        portfolio.save(update_fields=list(changes))
    return portfolio
