"""Account reads: a user's portfolios and the public leaderboard."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal
from uuid import UUID

from django.contrib.auth.models import User
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from apps.trading.exceptions import NotFound
from apps.trading.models import FundingPayment, Portfolio, PortfolioSnapshot, Profile
from apps.trading.services.accounts import account_summaries

Period = Literal["1d", "7d", "30d", "all"]
PERIODS: dict[str, timedelta | None] = {
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
ZERO = Decimal(0)


def portfolios_of(*, user: User) -> QuerySet[Portfolio]:
    return Portfolio.objects.filter(user=user).order_by("created_at", "id")


def portfolio_of_user(*, user: User, portfolio_id: UUID | str) -> Portfolio:
    """The user's portfolio with this id; another user's (or none) is NotFound (404)."""
    portfolio = Portfolio.objects.filter(user=user, pk=portfolio_id).first()
    if portfolio is None:
        raise NotFound("No such portfolio.", portfolio=str(portfolio_id))
    return portfolio


def funding_payments_of(*, portfolio: Portfolio, symbol: str | None = None) -> QuerySet[FundingPayment]:
    payments = FundingPayment.objects.filter(portfolio=portfolio).order_by("-funding_time", "id")
    return payments.filter(symbol=symbol.lower()) if symbol else payments


def snapshots_of(
    *, portfolio: Portfolio, since: datetime, until: datetime | None = None, limit: int
) -> list[PortfolioSnapshot]:
    """The equity curve from `since`, oldest first (the newest `limit` points when there are more)."""
    snapshots = PortfolioSnapshot.objects.filter(portfolio=portfolio, taken_at__gte=since)
    if until is not None:
        snapshots = snapshots.filter(taken_at__lte=until)
    return list(reversed(snapshots.order_by("-taken_at")[:limit]))


def public_name(*, user_id: int, profile: Profile | None) -> str:
    """The moderated username, or a neutral stable name for users who have not chosen one."""
    if profile is not None and profile.username:
        return profile.username
    return "trader-" + hashlib.sha256(f"user:{user_id}".encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class LeaderboardEntry:
    rank: int
    portfolio_id: UUID
    portfolio_name: str
    username: str
    equity: Decimal
    start_equity: Decimal
    return_ratio: Decimal
    stale: bool


def leaderboard(*, period: Period, limit: int, now: datetime | None = None) -> list[LeaderboardEntry]:
    """Public portfolios ranked by return over the period: equity now against the snapshot at or
    just before the period's start, or the initial cash (period "all", or a portfolio too young to
    have such a snapshot)."""
    delta = PERIODS[period]
    portfolios = Portfolio.objects.filter(is_public=True).select_related("user__profile")
    if delta is None:
        rows = list(portfolios)
    else:
        start = (now or timezone.now()) - delta
        baseline = PortfolioSnapshot.objects.filter(portfolio=OuterRef("pk"), taken_at__lte=start).order_by(
            "-taken_at"
        )
        rows = list(portfolios.annotate(start_equity=Subquery(baseline.values("equity")[:1])))
    summaries = account_summaries(portfolios=rows)
    ranked = []
    for portfolio in rows:
        start_equity = getattr(portfolio, "start_equity", None)
        if start_equity is None:
            start_equity = portfolio.initial_cash
        equity = summaries[portfolio.pk].equity
        ratio = (equity - start_equity) / start_equity if start_equity > 0 else ZERO
        ranked.append((ratio, equity, portfolio, start_equity))
    ranked.sort(key=lambda item: (-item[0], -item[1], item[2].created_at, str(item[2].pk)))
    return [
        LeaderboardEntry(
            rank=index,
            portfolio_id=portfolio.pk,
            portfolio_name=portfolio.name,
            username=public_name(user_id=portfolio.user_id, profile=getattr(portfolio.user, "profile", None)),
            equity=equity,
            start_equity=start_equity,
            return_ratio=ratio,
            stale=summaries[portfolio.pk].stale,
        )
        for index, (ratio, equity, portfolio, start_equity) in enumerate(ranked[:limit], start=1)
    ]
