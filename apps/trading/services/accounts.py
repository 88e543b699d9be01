"""Account summary: equity, balance, margins and PnL of portfolios at live marks.

Formulas (../shared/research/trading.md §1.1, §1.6; apps/trading/engine/margin.py):
- unrealized PnL = s·Q·(mark - entry); notional = Q·mark
- used margin = Σ isolated wallets + Σ cross IM at mark (notional / leverage) + Σ margin reserved
  by resting orders
- margin balance = cash + Σ isolated wallets + Σ unrealized PnL; equity adds the options' value
- free margin = what new orders may use: cash - cross IM - reserved + min(0, cross UPnL), ≥ 0
- margin ratio = Σ MM / margin balance (None when the balance is not positive)

A position whose symbol has no fresh mark is valued at its entry price and the summary is
flagged `stale`. Every function here reads; none writes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import Count, Sum
from django.utils import timezone

from apps.trading.engine.margin import (
    Bracket,
    initial_margin,
    maintenance_margin,
    margin_ratio,
    unrealized_pnl,
)
from apps.trading.models import (
    EngineSettings,
    MarginMode,
    OptionPosition,
    Order,
    Portfolio,
    Position,
    PositionSide,
)
from apps.trading.selectors import RESTING_ORDER_STATUSES, bracket_tables, engine_settings, mark_prices
from apps.trading.services.options import option_value

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PositionValuation:
    """One open position at its mark (entry price when no fresh mark exists)."""

    position: Position
    mark: Decimal
    live: bool
    notional: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    unrealized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class AccountSummary:
    portfolio_id: UUID
    equity: Decimal
    balance: Decimal  # cash: the (cross) wallet balance
    isolated_margin: Decimal
    used_margin: Decimal
    free_margin: Decimal
    reserved_margin: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    maintenance_margin: Decimal
    margin_balance: Decimal
    margin_ratio: Decimal | None
    options_value: Decimal
    initial_cash: Decimal
    return_ratio: Decimal  # equity / initial cash - 1
    open_positions: int
    pending_orders: int
    stale: bool
    missing_marks: tuple[str, ...]
    positions: tuple[PositionValuation, ...]  # the open positions, valued


def position_valuations(
    positions: Sequence[Position],
    *,
    marks: dict[str, Decimal] | None = None,
    brackets: dict[str, list[Bracket]] | None = None,
) -> list[PositionValuation]:
    """Value open positions at live marks (fetched unless given), with the same formulas as the
    engine (apps/trading/engine/margin.py)."""
    symbols = sorted({p.symbol for p in positions})
    if marks is None:
        marks = mark_prices(symbols) if symbols else {}
    if brackets is None:
        brackets = bracket_tables(symbols) if symbols else {}
    valued = []
    for position in positions:
        live = position.symbol in marks
        mark = marks[position.symbol] if live else position.entry_price
        notional = position.quantity * mark
        table = brackets.get(position.symbol)
        valued.append(
            PositionValuation(
                position=position,
                mark=mark,
                live=live,
                notional=notional,
                initial_margin=initial_margin(notional, position.leverage),
                maintenance_margin=maintenance_margin(table, notional) if table else ZERO,
                unrealized_pnl=unrealized_pnl(position.side, position.quantity, position.entry_price, mark),
            )
        )
    return valued


def _options_values(
    options: Sequence[OptionPosition], *, marks: dict[str, Decimal], settings: EngineSettings
) -> tuple[dict[UUID, Decimal], dict[UUID, Decimal], dict[UUID, set[str]]]:
    """(model value, collateral) of each portfolio's open options, and the underlyings without a
    fresh mark (those options are valued at their opening premium)."""
    values: dict[UUID, Decimal] = defaultdict(lambda: ZERO)
    collateral: dict[UUID, Decimal] = defaultdict(lambda: ZERO)
    missing: dict[UUID, set[str]] = defaultdict(set)
    now = timezone.now()
    for option in options:
        collateral[option.portfolio_id] += option.collateral
        spot = marks.get(option.underlying)
        if spot is None:
            missing[option.portfolio_id].add(option.underlying)
            sign = 1 if option.side == PositionSide.LONG else -1
            values[option.portfolio_id] += sign * option.premium * option.quantity
        else:
            values[option.portfolio_id] += option_value(option=option, spot=spot, now=now, settings=settings)
    return values, collateral, missing


def account_summaries(*, portfolios: Sequence[Portfolio]) -> dict[UUID, AccountSummary]:
    """Summaries of many portfolios with a fixed number of queries (one price-store read)."""
    ids = [p.pk for p in portfolios]
    if not ids:
        return {}
    positions = list(Position.objects.filter(portfolio_id__in=ids, status=Position.Status.OPEN))
    options = list(OptionPosition.objects.filter(portfolio_id__in=ids, status=OptionPosition.Status.OPEN))
    settings = engine_settings()
    symbols = sorted({p.symbol for p in positions} | {o.underlying for o in options})
    marks = mark_prices(symbols, max_age_seconds=settings.max_price_age_seconds) if symbols else {}
    valuations: dict[UUID, list[PositionValuation]] = defaultdict(list)
    for valuation in position_valuations(positions, marks=marks):
        valuations[valuation.position.portfolio_id].append(valuation)
    resting = {
        row["portfolio_id"]: row
        for row in Order.objects.filter(portfolio_id__in=ids, status__in=RESTING_ORDER_STATUSES)
        .values("portfolio_id")
        .annotate(count=Count("id"), reserved=Sum("reserved_margin"))
    }
    option_values, option_collateral, options_missing = _options_values(
        options, marks=marks, settings=settings
    )
    return {
        p.pk: _summary(
            p,
            valuations[p.pk],
            resting.get(p.pk),
            option_values[p.pk],
            option_collateral[p.pk],
            options_missing[p.pk],
        )
        for p in portfolios
    }


def _summary(
    portfolio: Portfolio,
    valuations: list[PositionValuation],
    resting: dict[str, Any] | None,
    options_value: Decimal,
    options_collateral: Decimal,
    options_missing: set[str],
) -> AccountSummary:
    isolated = [v for v in valuations if v.position.margin_mode == MarginMode.ISOLATED]
    cross = [v for v in valuations if v.position.margin_mode != MarginMode.ISOLATED]
    isolated_wallets = sum((v.position.isolated_margin for v in isolated), ZERO)
    cross_im = sum((v.initial_margin for v in cross), ZERO)
    cross_upnl = sum((v.unrealized_pnl for v in cross), ZERO)
    upnl = sum((v.unrealized_pnl for v in valuations), ZERO)
    mm = sum((v.maintenance_margin for v in valuations), ZERO)
    reserved = (resting or {}).get("reserved") or ZERO
    cash = portfolio.cash
    margin_balance = cash + isolated_wallets + upnl
    # Collateral of written options is held outside cash, like an isolated wallet.
    equity = margin_balance + options_collateral + options_value
    missing = tuple(sorted({v.position.symbol for v in valuations if not v.live} | options_missing))
    return AccountSummary(
        portfolio_id=portfolio.pk,
        equity=equity,
        balance=cash,
        isolated_margin=isolated_wallets,
        used_margin=isolated_wallets + cross_im + reserved + options_collateral,
        free_margin=max(ZERO, cash - cross_im - reserved + min(ZERO, cross_upnl)),
        reserved_margin=reserved,
        unrealized_pnl=upnl,
        realized_pnl=portfolio.realized_pnl,
        maintenance_margin=mm,
        margin_balance=margin_balance,
        margin_ratio=margin_ratio(mm, margin_balance) if valuations else ZERO,
        options_value=options_value,
        initial_cash=portfolio.initial_cash,
        return_ratio=(equity / portfolio.initial_cash - 1) if portfolio.initial_cash else ZERO,
        open_positions=len(valuations),
        pending_orders=(resting or {}).get("count", 0),
        stale=bool(missing),
        missing_marks=missing,
        positions=tuple(valuations),
    )


def account_summary(*, portfolio: Portfolio) -> AccountSummary:
    """Equity, balance, used and free margin, PnL and margin ratio of one portfolio at live marks."""
    return account_summaries(portfolios=[portfolio])[portfolio.pk]
