"""What the home-node tests compare before and after a refused write or a periodic run."""

from __future__ import annotations

from typing import Any

from apps.sync.models import SyncFeed
from apps.trading.models import (
    Fill,
    FundingPayment,
    Liquidation,
    MarginHistory,
    OptionPosition,
    Order,
    Portfolio,
    PortfolioSnapshot,
    Position,
)

ELSEWHERE = "elsewhere"


def written() -> dict[str, Any]:
    """Rows of every replicated table a trading write can touch, and the change feed's entries
    (each replicated write inserts one or restamps its row's entry)."""
    return {
        "orders": Order.objects.count(),
        "fills": Fill.objects.count(),
        "positions": Position.objects.count(),
        "margin_history": MarginHistory.objects.count(),
        "options": OptionPosition.objects.count(),
        "funding": FundingPayment.objects.count(),
        "liquidations": Liquidation.objects.count(),
        "snapshots": PortfolioSnapshot.objects.count(),
        "feed": set(SyncFeed.objects.values_list("entity", "entity_id", "hlc")),
    }


def money_of(portfolio: Portfolio) -> tuple[Any, ...]:
    """The portfolio row's money and its replication version (any write bumps the version)."""
    row = Portfolio.objects.get(pk=portfolio.pk)
    return (row.cash, row.realized_pnl, row.fees_paid, row.funding_paid, row.version)
