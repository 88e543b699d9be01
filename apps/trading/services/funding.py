"""Funding payments of open perpetual positions (../shared/research/trading.md §1.7).

amount = -s·Q·mark·rate, from the position's point of view: with a positive rate longs pay and
shorts receive; with a negative rate the reverse. Independent of leverage and margin. Cross
positions settle against the portfolio's cash, isolated ones against their own wallet.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from apps.trading.amounts import money
from apps.trading.engine.margin import sign
from apps.trading.models import (
    EngineSettings,
    FundingPayment,
    FundingRate,
    MarginMode,
    Portfolio,
    Position,
)
from apps.trading.selectors import engine_settings, mark_prices, owned_here
from apps.trading.services.risk import positions_refresh_liquidation_prices

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PeriodRate:
    rate: Decimal
    source: str  # "table:<provider>", "default" (table chosen, no row) or "fixed"


def funding_period_start(*, now: datetime, interval_hours: int) -> datetime:
    """The last funding time at or before `now`: boundaries every `interval_hours` from the Unix
    epoch, in UTC (every 8 h: 00:00, 08:00, 16:00)."""
    step = interval_hours * 3600
    seconds = int(now.timestamp()) // step * step
    return datetime.fromtimestamp(seconds, UTC)


def _due_positions(funding_time: datetime) -> QuerySet[Position]:
    """Open positions of this node's portfolios opened at or before the funding time that have no
    payment for it yet (each node pays its own portfolios: one payment per position and period)."""
    return Position.objects.filter(
        owned_here(), status=Position.Status.OPEN, opened_at__lte=funding_time
    ).exclude(funding_payments__funding_time=funding_time)


def funding_unpaid_count(*, funding_time: datetime) -> int:
    """How many positions of this node's portfolios still owe (or are owed) funding for this period."""
    return _due_positions(funding_time).count()


def period_rates(*, symbols: Iterable[str], funding_time: datetime) -> dict[str, PeriodRate]:
    """Each symbol's rate for the period: the recorded FundingRate when the engine's source is
    "table" and one exists, else the engine's default rate."""
    settings = engine_settings()
    symbols = set(symbols)
    if settings.funding_rate_source != EngineSettings.FundingRateSource.TABLE:
        return {symbol: PeriodRate(settings.default_funding_rate, "fixed") for symbol in symbols}
    recorded = {
        row.symbol: row for row in FundingRate.objects.filter(symbol__in=symbols, funding_time=funding_time)
    }
    return {
        symbol: (
            PeriodRate(recorded[symbol].rate, f"table:{recorded[symbol].source}"[:32])
            if symbol in recorded
            else PeriodRate(settings.default_funding_rate, "default")
        )
        for symbol in symbols
    }


def funding_amount(*, side: str, quantity: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """What the position receives (negative: pays) for one period."""
    return money(-sign(side) * quantity * mark * rate)


def funding_settle(*, funding_time: datetime) -> int:
    """Pay funding for `funding_time` to every position of this node's portfolios open then;
    returns the payments made.

    Idempotent per (position, period): positions already paid are skipped under the portfolio's
    row lock, and the unique constraint on (position, funding_time) stops a racing run that got
    past it. Positions whose symbol has no fresh mark are left unpaid (see funding_unpaid_count)
    for a later run.
    """
    due = list(_due_positions(funding_time).values_list("portfolio_id", "symbol"))
    if not due:
        return 0
    symbols = sorted({symbol for _, symbol in due})
    marks = mark_prices(symbols)
    missing = [symbol for symbol in symbols if symbol not in marks]
    if missing:
        logger.warning("Funding %s: no fresh mark for %s; those positions wait", funding_time, missing)
    rates = period_rates(symbols=symbols, funding_time=funding_time)
    paid = 0
    for portfolio_id in sorted({portfolio_id for portfolio_id, _ in due}):
        try:
            paid += _portfolio_funding_settle(
                portfolio_id=portfolio_id, funding_time=funding_time, marks=marks, rates=rates
            )
        except IntegrityError:  # a concurrent run paid this portfolio first: nothing written here
            logger.info("Funding %s for portfolio %s already paid by another run", funding_time, portfolio_id)
    return paid


@transaction.atomic
def _portfolio_funding_settle(
    *,
    portfolio_id: UUID,
    funding_time: datetime,
    marks: dict[str, Decimal],
    rates: dict[str, PeriodRate],
) -> int:
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio_id)
    positions = list(
        Position.objects.select_for_update()
        .filter(portfolio=portfolio, status=Position.Status.OPEN, opened_at__lte=funding_time)
        .order_by("id")
    )
    already = set(
        FundingPayment.objects.filter(position__in=positions, funding_time=funding_time).values_list(
            "position_id", flat=True
        )
    )
    payments: list[FundingPayment] = []
    changed: list[Position] = []
    for position in positions:
        if position.pk in already or position.symbol not in marks or position.symbol not in rates:
            continue
        mark, period = marks[position.symbol], rates[position.symbol]
        amount = funding_amount(side=position.side, quantity=position.quantity, mark=mark, rate=period.rate)
        # A wallet never goes below zero: a payment larger than it takes what is there (the
        # position is then at its liquidation point anyway).
        if position.margin_mode == MarginMode.ISOLATED:
            amount = max(amount, -position.isolated_margin)
            position.isolated_margin += amount
        else:
            amount = max(amount, -portfolio.cash)
            portfolio.cash += amount
        position.funding_paid -= amount
        portfolio.funding_paid -= amount
        changed.append(position)
        payments.append(
            FundingPayment(
                position=position,
                portfolio=portfolio,
                symbol=position.symbol,
                funding_time=funding_time,
                rate=period.rate,
                rate_source=period.source,
                mark_price=mark,
                quantity=position.quantity,
                amount=amount,
            )
        )
    if not payments:
        return 0
    FundingPayment.objects.bulk_create(payments)
    Position.objects.bulk_update(changed, ["isolated_margin", "funding_paid"])
    portfolio.save(update_fields=["cash", "funding_paid"])
    positions_refresh_liquidation_prices(portfolio=portfolio)  # the wallets moved
    return len(payments)
