"""Position risk at a mark: margins, PnL, margin ratio, liquidation and bankruptcy prices.

Formulas: ../shared/research/trading.md §1.1-§1.5 via apps/trading/engine/margin.py.
- isolated: the wallet is the position's isolated margin; margin balance = wallet + UPnL.
- cross: the wallet is the portfolio's cash (the cross wallet); margin balance = cash + the UPnL
  of every cross position, and the liquidation price uses TMM1 / UPNL1, the maintenance margin
  and unrealized PnL of the account's *other* cross positions.

A symbol without a fresh mark is valued at its entry price when liquidation prices are
refreshed (the stored price is then what it would be with no move since entry).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum

from apps.trading.engine import margin
from apps.trading.engine.margin import Bracket
from apps.trading.models import MarginMode, Order, Portfolio, Position
from apps.trading.selectors import (
    RESTING_ORDER_STATUSES,
    bracket_tables,
    brackets_of,
    mark_prices,
    owned_here,
)
from apps.trading.services.fills import funds_available

ZERO = Decimal(0)
# Stored prices have 12 decimals (models.PLACES); quantizing first makes "changed?" exact.
STORED = Decimal("1e-12")
SAME_PRICE_TOLERANCE = Decimal("1e-13")


@dataclass(frozen=True, slots=True)
class CrossContext:
    """The rest of a cross account as seen by one of its positions."""

    wallet: Decimal  # cross wallet balance: the portfolio's cash
    other_maintenance: Decimal = ZERO  # TMM1
    other_unrealized: Decimal = ZERO  # UPNL1


@dataclass(frozen=True, slots=True)
class PositionRisk:
    mark: Decimal
    notional: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    margin_ratio: Decimal | None  # None when the margin balance is not positive
    liquidation_price: Decimal | None  # None when the position cannot be liquidated
    bankruptcy_price: Decimal | None
    max_removable: Decimal
    max_notional: Decimal  # maxNotional(current leverage)
    account_maintenance: Decimal  # MM the margin balance is compared with (cross: all positions)

    @property
    def liquidatable(self) -> bool:
        """Margin balance at or below maintenance margin (Binance: margin ratio >= 100%)."""
        return self.margin_balance <= self.account_maintenance


def stored(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(STORED)


def _cross_terms(
    positions: Iterable[Position], marks: Mapping[str, Decimal], tables: Mapping[str, Sequence[Bracket]]
) -> dict[Any, tuple[Decimal, Decimal]]:
    """(MM, UPnL) at mark of each open cross position, by id."""
    terms = {}
    for position in positions:
        if position.margin_mode != MarginMode.CROSS or position.status != Position.Status.OPEN:
            continue
        table = tables.get(position.symbol)
        if not table:
            continue
        mark = marks.get(position.symbol, position.entry_price)
        notional = position.quantity * mark
        terms[position.pk] = (
            margin.maintenance_margin(table, notional),
            margin.unrealized_pnl(position.side, position.quantity, position.entry_price, mark),
        )
    return terms


def _context_from_terms(
    position: Position, wallet: Decimal, terms: Mapping[Any, tuple[Decimal, Decimal]]
) -> CrossContext:
    own_mm, own_upnl = terms.get(position.pk, (ZERO, ZERO))
    total_mm = sum((mm for mm, _ in terms.values()), ZERO)
    total_upnl = sum((upnl for _, upnl in terms.values()), ZERO)
    return CrossContext(
        wallet=wallet, other_maintenance=total_mm - own_mm, other_unrealized=total_upnl - own_upnl
    )


def cross_context_for(
    position: Position,
    *,
    marks: Mapping[str, Decimal] | None = None,
    tables: Mapping[str, Sequence[Bracket]] | None = None,
) -> CrossContext:
    """The cross account around `position` from the database: cash and the other open cross
    positions at `marks` (fetched when not given; entry price for a symbol without a mark)."""
    wallet = Portfolio.objects.filter(pk=position.portfolio_id).values_list("cash", flat=True).get()
    others = list(
        Position.objects.filter(
            portfolio_id=position.portfolio_id, status=Position.Status.OPEN, margin_mode=MarginMode.CROSS
        ).exclude(pk=position.pk)
    )
    symbols = {p.symbol for p in others}
    if marks is None or not symbols <= set(marks):
        marks = {**mark_prices(sorted(symbols)), **(marks or {})}
    if tables is None or not symbols <= set(tables):
        tables = {**bracket_tables(symbols), **(tables or {})}
    terms = _cross_terms(others, marks, tables)
    return _context_from_terms(position, wallet, terms)


def position_risk(
    position: Position,
    *,
    mark: Decimal,
    cross_context: CrossContext | None = None,
    brackets: Sequence[Bracket] | None = None,
) -> PositionRisk:
    """The position's margins and prices at `mark`.

    A cross position without `cross_context` reads its account from the database.
    """
    table = brackets if brackets is not None else brackets_of(position.symbol)
    side, qty, entry = position.side, position.quantity, position.entry_price
    notional = qty * mark
    mm = margin.maintenance_margin(table, notional)
    upnl = margin.unrealized_pnl(side, qty, entry, mark)
    if position.margin_mode == MarginMode.ISOLATED:
        wallet, others = position.isolated_margin, CrossContext(wallet=position.isolated_margin)
        max_removable = margin.max_removable_margin(
            side=side,
            quantity=qty,
            entry=entry,
            mark=mark,
            wallet=wallet,
            leverage=position.leverage,
            brackets=table,
        )
    else:
        others = cross_context if cross_context is not None else cross_context_for(position)
        wallet, max_removable = others.wallet, ZERO
    account_mm = mm + others.other_maintenance
    balance = wallet + upnl + others.other_unrealized
    liquidation = margin.liquidation_price(
        side=side,
        quantity=qty,
        entry=entry,
        wallet=wallet,
        brackets=table,
        other_maintenance=others.other_maintenance,
        other_unrealized=others.other_unrealized,
    )
    return PositionRisk(
        mark=mark,
        notional=notional,
        initial_margin=margin.initial_margin(notional, position.leverage),
        maintenance_margin=mm,
        unrealized_pnl=upnl,
        margin_balance=balance,
        margin_ratio=margin.margin_ratio(account_mm, balance),
        liquidation_price=liquidation,
        # Where the account's margin balance reaches 0 (cross: with the others' UPnL).
        bankruptcy_price=margin.bankruptcy_price(side, qty, entry, wallet + others.other_unrealized)
        if qty > 0
        else None,
        max_removable=max_removable,
        max_notional=margin.max_notional_for_leverage(table, position.leverage),
        account_maintenance=account_mm,
    )


def portfolio_available_cash(*, portfolio: Portfolio, marks: Mapping[str, Decimal] | None = None) -> Decimal:
    """Cash new margin may use (the order engine's definition: cash - Σ cross IM at mark -
    reserved margin of resting orders + min(0, Σ cross UPnL)), never below 0."""
    return max(ZERO, funds_available(portfolio=portfolio, marks=dict(marks or {})))


def portfolio_reserved_margin(*, portfolio: Portfolio) -> Decimal:
    """Margin (and fees) held by the portfolio's resting orders."""
    total = Order.objects.filter(portfolio_id=portfolio.pk, status__in=RESTING_ORDER_STATUSES).aggregate(
        total=Sum("reserved_margin")
    )["total"]
    return total or ZERO


def _same_price(new: Decimal | None, old: Decimal | None) -> bool:
    """Equal to the stored price, to the ~15 digits SQLite keeps (it stores decimals as floats)."""
    if new is None or old is None:
        return new is old
    return abs(new - old) <= abs(new) * SAME_PRICE_TOLERANCE


def _refresh(positions: list[Position], *, wallet: Decimal, marks: Mapping[str, Decimal]) -> list[Position]:
    """Recompute the liquidation price of one portfolio's open positions; return the changed ones."""
    tables = bracket_tables({p.symbol for p in positions})
    terms = _cross_terms(positions, marks, tables)
    changed = []
    for position in positions:
        table = tables.get(position.symbol)
        if not table:
            continue  # no instrument any more: nothing to compute the price from
        if position.margin_mode == MarginMode.CROSS:
            context = _context_from_terms(position, wallet, terms)
        else:
            context = CrossContext(wallet=position.isolated_margin)
        price = stored(
            margin.liquidation_price(
                side=position.side,
                quantity=position.quantity,
                entry=position.entry_price,
                wallet=context.wallet,
                brackets=table,
                other_maintenance=context.other_maintenance,
                other_unrealized=context.other_unrealized,
            )
        )
        if not _same_price(price, position.liquidation_price):
            position.liquidation_price = price
            changed.append(position)
    return changed


def positions_refresh_liquidation_prices(*, portfolio: Portfolio) -> None:
    """Recompute and store Position.liquidation_price of every open position of the portfolio.

    Call it inside the transaction that changed a position or the cash, after saving them: it
    reads the cash from the database. Three or four queries plus one bulk update of the
    positions whose price moved.
    """
    positions = list(Position.objects.filter(portfolio_id=portfolio.pk, status=Position.Status.OPEN))
    if not positions:
        return
    wallet = Portfolio.objects.filter(pk=portfolio.pk).values_list("cash", flat=True).get()
    marks = mark_prices(sorted({p.symbol for p in positions}))
    changed = _refresh(positions, wallet=wallet, marks=marks)
    if changed:
        Position.objects.bulk_update(changed, ["liquidation_price"])


def cross_liquidation_prices_refresh() -> int:
    """Refresh the stored liquidation prices of every portfolio of this node holding cross
    positions (other nodes refresh their own).

    A cross position's liquidation price moves with the marks of the account's other symbols,
    which liquidations_check (indexed on the stored price of one symbol) cannot see: this
    periodic pass keeps the stored prices close. Returns how many prices changed.
    """
    portfolio_ids = list(
        Position.objects.filter(owned_here(), status=Position.Status.OPEN, margin_mode=MarginMode.CROSS)
        .order_by()
        .values_list("portfolio_id", flat=True)
        .distinct()
    )
    changed_total = 0
    for portfolio_id in portfolio_ids:
        with transaction.atomic():
            portfolio = Portfolio.objects.select_for_update(skip_locked=True).filter(pk=portfolio_id).first()
            if portfolio is None:
                continue  # busy (an order or a liquidation): it refreshes its own prices
            positions = list(Position.objects.filter(portfolio_id=portfolio_id, status=Position.Status.OPEN))
            marks = mark_prices(sorted({p.symbol for p in positions}))
            changed = _refresh(positions, wallet=portfolio.cash, marks=marks)
            if changed:
                Position.objects.bulk_update(changed, ["liquidation_price"])
            changed_total += len(changed)
    return changed_total


def cross_contexts(
    *,
    portfolio_ids: Iterable[Any],
    marks: Mapping[str, Decimal],
    tables: Mapping[str, Sequence[Bracket]] | None = None,
) -> dict[Any, CrossContext]:
    """The CrossContext of every open cross position of these portfolios, by position id, in a
    few queries (marks are fetched for symbols missing from `marks`; entry price without one)."""
    ids = set(portfolio_ids)
    if not ids:
        return {}
    positions = list(
        Position.objects.filter(
            portfolio_id__in=ids, status=Position.Status.OPEN, margin_mode=MarginMode.CROSS
        ).order_by()
    )
    cash = dict(Portfolio.objects.filter(pk__in=ids).values_list("pk", "cash"))
    symbols = {p.symbol for p in positions}
    if not symbols <= set(marks):
        marks = {**mark_prices(sorted(symbols - set(marks))), **marks}
    if tables is None or not symbols <= set(tables):
        tables = {**bracket_tables(symbols), **(tables or {})}
    by_portfolio: dict[Any, list[Position]] = defaultdict(list)
    for position in positions:
        by_portfolio[position.portfolio_id].append(position)
    contexts = {}
    for portfolio_id, members in by_portfolio.items():
        terms = _cross_terms(members, marks, tables)
        for position in members:
            contexts[position.pk] = _context_from_terms(position, cash[portfolio_id], terms)
    return contexts
