"""Celery tasks (positions): thin wrappers around services."""

from __future__ import annotations

import logging
from decimal import Decimal

from celery import shared_task

from apps.trading.services.liquidations import liquidations_check
from apps.trading.services.risk import cross_liquidation_prices_refresh

logger = logging.getLogger(__name__)


@shared_task
def cross_liquidation_prices_refresh_task() -> int:
    """Keep the stored liquidation prices of cross positions current as the account's other
    marks move (beat, e.g. every 30 s). Never retried: the next run supersedes a failed one."""
    changed = cross_liquidation_prices_refresh()
    logger.info("Cross liquidation prices refreshed: %d changed", changed)
    return changed


@shared_task
def liquidations_check_task(symbol: str, mark: str) -> int:
    """Liquidate the symbol's positions due at `mark` (a Decimal as a string). Safe to repeat:
    a position is liquidated once however many times this runs."""
    return len(liquidations_check(symbol=symbol, mark=Decimal(mark)))
