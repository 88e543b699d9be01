"""Resting orders meet live prices: fill crossed limits, trigger stops, then check liquidations.

Called by the engine runner (services/engine.py) for every price batch, and by a periodic sweep
as a safety net. One query per call finds every crossed order of every symbol; when nothing
crosses, that query (plus one for the tradable symbols) is all the order side costs.

Only the orders and positions of this node's portfolios (home_node) are evaluated: every node of
the mesh sees the same prices, and each portfolio's money is moved by its home node alone.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from uuid import UUID

from django.db import transaction
from django.db.models import Q

from apps.trading.models import Instrument, Order, Portfolio, Side
from apps.trading.selectors import RESTING_ORDER_STATUSES, engine_settings, mark_prices, owned_here
from apps.trading.services.liquidations import liquidations_check
from apps.trading.services.orders import (
    STOP_TYPES,
    TAKE_PROFIT_TYPES,
    MarketContext,
    limit_marketable,
    market_context,
    resting_order_execute,
    stop_triggered,
)

logger = logging.getLogger(__name__)

STATUS_COUNTERS = {
    Order.Status.FILLED: "filled",
    Order.Status.OPEN: "rested",
    Order.Status.EXPIRED: "expired",
    Order.Status.REJECTED: "rejected",
}


@dataclass
class EvaluationResult:
    symbols: int = 0  # tradable symbols evaluated
    crossed: int = 0  # resting orders the prices reached
    triggered: int = 0  # of which stops / take-profits that triggered
    filled: int = 0
    rested: int = 0  # triggered stop-limits now resting on the book
    expired: int = 0
    rejected: int = 0
    skipped: int = 0  # already taken by another worker, or no longer crossed
    liquidations: int = 0


def prices_evaluate(*, prices: Mapping[str, Decimal]) -> EvaluationResult:
    """Trigger and fill every resting order these prices cross, each in its own transaction,
    then run part P's liquidation check for each tradable symbol.

    Safe to run in several workers at once: an order is processed under its portfolio's and its
    own row lock and only while still resting, so it fills once.
    """
    prices = {symbol.lower(): Decimal(price) for symbol, price in prices.items()}
    tradable = sorted(
        Instrument.objects.filter(enabled=True, symbol__in=list(prices)).values_list("symbol", flat=True)
    )
    result = EvaluationResult(symbols=len(tradable))
    if not tradable:
        return result
    live = {symbol: prices[symbol] for symbol in tradable}
    contexts: dict[str, MarketContext] = {}
    for order_id, portfolio_id, symbol in crossed_orders(prices=live):
        result.crossed += 1
        if symbol not in contexts:
            contexts[symbol] = _context(symbol)
        try:
            status = _resting_order_evaluate(
                order_id=order_id, portfolio_id=portfolio_id, price=live[symbol], context=contexts[symbol]
            )
        except Exception:  # one broken order must not stop the others from filling
            logger.exception("Evaluating order %s at %s failed", order_id, live[symbol])
            continue
        _count(result, status)
    for symbol in tradable:
        result.liquidations += len(liquidations_check(symbol=symbol, mark=live[symbol]))
    return result


def resting_orders_sweep() -> EvaluationResult:
    """Evaluate the current marks of every tradable symbol: the safety net for batches the runner
    missed (it was down or reconnecting)."""
    symbols = list(Instrument.objects.filter(enabled=True).values_list("symbol", flat=True))
    return prices_evaluate(prices=mark_prices(symbols))


def crossed_filter(symbol: str, price: Decimal) -> Q:
    """Resting orders of `symbol` that `price` reaches. Open orders are limits (their own or a
    triggered stop-limit's); pending ones are stops and take-profits."""
    open_, pending = Order.Status.OPEN, Order.Status.PENDING
    stops, take_profits = list(STOP_TYPES), list(TAKE_PROFIT_TYPES)
    return Q(symbol=symbol) & (
        Q(status=open_, side=Side.BUY, price__gte=price)
        | Q(status=open_, side=Side.SELL, price__lte=price)
        | Q(status=pending, side=Side.BUY, type__in=stops, stop_price__lte=price)
        | Q(status=pending, side=Side.SELL, type__in=stops, stop_price__gte=price)
        | Q(status=pending, side=Side.BUY, type__in=take_profits, stop_price__gte=price)
        | Q(status=pending, side=Side.SELL, type__in=take_profits, stop_price__lte=price)
    )


def crossed_orders(*, prices: Mapping[str, Decimal]) -> list[tuple[UUID, UUID, str]]:
    """(order id, portfolio id, symbol) of every resting order of this node's portfolios the
    prices cross, oldest first."""
    if not prices:
        return []
    condition = reduce(operator.or_, (crossed_filter(symbol, price) for symbol, price in prices.items()))
    return list(
        Order.objects.filter(condition, owned_here())
        .order_by("created_at", "id")
        .values_list("id", "portfolio_id", "symbol")
    )


def _context(symbol: str) -> MarketContext:
    return market_context(Instrument.objects.get(symbol=symbol), engine_settings())


def _resting_order_evaluate(
    *, order_id: UUID, portfolio_id: UUID, price: Decimal, context: MarketContext
) -> str:
    with transaction.atomic():
        # Portfolio first, as every placement does, so the two never deadlock; then the order,
        # skipping it if another worker holds it (that worker is filling it).
        portfolio = Portfolio.objects.select_for_update().get(pk=portfolio_id)
        order = (
            Order.objects.select_for_update(skip_locked=True)
            .filter(pk=order_id, status__in=RESTING_ORDER_STATUSES)
            .first()
        )
        if order is None or not _still_crossed(order, price):
            return "skipped"
        was_pending = order.status == Order.Status.PENDING
        status = resting_order_execute(portfolio=portfolio, order=order, live=price, context=context)
        return f"triggered:{status}" if was_pending else status


def _still_crossed(order: Order, price: Decimal) -> bool:
    if order.status == Order.Status.PENDING:
        assert order.stop_price is not None
        return stop_triggered(side=order.side, type=order.type, stop_price=order.stop_price, price=price)
    assert order.price is not None
    return limit_marketable(side=order.side, limit=order.price, price=price)


def _count(result: EvaluationResult, status: str) -> None:
    if status == "skipped":
        result.skipped += 1
        return
    if status.startswith("triggered:"):
        result.triggered += 1
        status = status.split(":", 1)[1]
    counter = STATUS_COUNTERS.get(Order.Status(status)) if status in Order.Status.values else None
    if counter is not None:
        setattr(result, counter, getattr(result, counter) + 1)
