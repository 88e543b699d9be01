"""Liquidation as prices move, the insurance fund, and margin calls.

Per Binance (../shared/research/trading.md §1.3, §1.9): when a position's margin balance falls to
its maintenance margin, the account's resting orders on the symbol are cancelled and the position
is closed at the bankruptcy price, so the trader loses the margin (isolated: the isolated wallet;
cross: what brings the account's margin balance to 0, at most the cash) and never goes below 0.
The insurance fund takes the position over at the bankruptcy price and closes it at the mark:
the difference (`residual` = s*Q*(mark - bankruptcy)) is its gain or, below 0, the deficit it
covers. Out of a positive residual the clearance fee (liquidation_fee_rate * notional at mark)
is booked as a fee and the rest as surplus; the fund keeps both (the trader's loss is the margin
either way).

Finding candidates is one indexed range query on the stored liquidation price (longs with
mark <= LP, shorts with mark >= LP). Each candidate is then liquidated in its own transaction
with its portfolio and position rows locked FOR UPDATE SKIP LOCKED (portfolio first, the engine's
lock order) and re-checked at the mark: a second worker seeing the same price skips the rows the
first holds, finds the position no longer open afterwards, and the one-to-one
Liquidation.position is the last guard. A row skipped because its account was busy is re-checked
at the next price.

Margin calls: positions whose stored liquidation price lies within MARGIN_CALL_BAND of the mark
(and not past it) are evaluated exactly; one whose margin ratio is at or above 0.8 gets a
`margin_call` event once (an atomic cache add), and the flag is cleared when a later check of
the symbol no longer finds it at or above 0.8 (recovered, closed or liquidated), so its next
crossing calls again. Isolated positions are evaluated by the database (one indexed range query
with the bracket table as a CASE), cross ones exactly with their account.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Case, DecimalField, ExpressionWrapper, F, Q, Sum, Value, When
from django.utils import timezone

from apps.trading import events
from apps.trading.engine import margin
from apps.trading.engine.margin import Bracket
from apps.trading.models import (
    EngineSettings,
    Fill,
    InsuranceFundEntry,
    Liquidation,
    MarginHistory,
    MarginMode,
    Order,
    Portfolio,
    Position,
    PositionSide,
    Side,
)
from apps.trading.selectors import RESTING_ORDER_STATUSES, bracket_tables, engine_settings, owned_here
from apps.trading.services.fills import order_data, position_data
from apps.trading.services.risk import (
    ZERO,
    CrossContext,
    PositionRisk,
    cross_context_for,
    cross_contexts,
    position_risk,
    positions_refresh_liquidation_prices,
    stored,
)

logger = logging.getLogger(__name__)

CANDIDATE_PAGE = 500
MARGIN_CALL_RATIO = Decimal("0.8")
# Near liquidation the margin ratio climbs fast: ratio 0.8 is reached at most
# 0.25*MMR/(1 - MMR) of the mark before the liquidation price (less with cum > 0), i.e. within
# 0.6% for MMR up to 2.3% (BTCUSDT brackets up to 70M notional). A wider band costs a bigger
# scan on every price; a larger position gets its margin call later than at 0.8.
MARGIN_CALL_BAND = Decimal("0.006")
MARGIN_CALL_TTL_S = 3600
MONEY: DecimalField = DecimalField(max_digits=48, decimal_places=18)


def insurance_fund_balance() -> Decimal:
    """The insurance fund: the sum of its ledger."""
    return InsuranceFundEntry.objects.aggregate(total=Sum("amount"))["total"] or ZERO


def liquidation_candidates(*, symbol: str, mark: Decimal) -> Iterator[tuple[Any, Any]]:
    """(position id, portfolio id) of the open positions of this node's portfolios whose stored
    liquidation price `mark` has reached, most exposed first, a page at a time (each portfolio is
    liquidated by its home node only).

    One query per side and page, each a range on (symbol, side, liquidation_price) ordered by the
    price: ORDER BY + LIMIT keeps PostgreSQL on the index although it cannot know that longs'
    prices sit below the mark and shorts' above it (side and price are correlated).
    """
    for side, reached, further, order in (
        (PositionSide.LONG, "liquidation_price__gte", "liquidation_price__lte", "-liquidation_price"),
        (PositionSide.SHORT, "liquidation_price__lte", "liquidation_price__gte", "liquidation_price"),
    ):
        rows = Position.objects.filter(
            owned_here(), symbol=symbol, status=Position.Status.OPEN, side=side, **{reached: mark}
        )
        seen: set[Any] = set()
        page = rows
        while True:
            batch = list(
                page.exclude(pk__in=seen)
                .order_by(order)
                .values_list("pk", "portfolio_id", "liquidation_price")[:CANDIDATE_PAGE]
            )
            for pk, portfolio_id, _ in batch:
                seen.add(pk)
                yield pk, portfolio_id
            if len(batch) < CANDIDATE_PAGE:
                break
            page = rows.filter(**{further: batch[-1][2]})  # ties at the boundary: `seen` skips them


def liquidations_check(*, symbol: str, mark: Decimal) -> list[Liquidation]:
    """Liquidate every open position of `symbol` whose margin balance is <= its maintenance
    margin at `mark`; each exactly once, however many workers see this price. Then send margin
    calls. Returns the liquidations this call made."""
    table = bracket_tables([symbol]).get(symbol)
    if not table:
        return []
    settings = engine_settings()
    done = []
    for position_id, portfolio_id in liquidation_candidates(symbol=symbol, mark=mark):
        liquidation = _liquidate(
            position_id=position_id, portfolio_id=portfolio_id, mark=mark, table=table, settings=settings
        )
        if liquidation is not None:
            done.append(liquidation)
    margin_calls_check(symbol=symbol, mark=mark, table=table)
    return done


def _liquidate(
    *, position_id: Any, portfolio_id: Any, mark: Decimal, table: Sequence[Bracket], settings: EngineSettings
) -> Liquidation | None:
    try:
        with transaction.atomic():
            portfolio = Portfolio.objects.select_for_update(skip_locked=True).filter(pk=portfolio_id).first()
            if portfolio is None:
                return None  # another worker (or an order) holds the account: next price
            position = (
                Position.objects.select_for_update(skip_locked=True)
                .filter(pk=position_id, status=Position.Status.OPEN)
                .first()
            )
            if position is None:
                return None  # liquidated or closed meanwhile
            context = None
            if position.margin_mode == MarginMode.CROSS:
                context = cross_context_for(
                    position, marks={position.symbol: mark}, tables={position.symbol: table}
                )
            risk = position_risk(position, mark=mark, cross_context=context, brackets=table)
            if not risk.liquidatable:
                if context is not None:  # its stored price was stale (the other marks moved)
                    positions_refresh_liquidation_prices(portfolio=portfolio)
                return None
            return _execute(
                portfolio=portfolio, position=position, risk=risk, context=context, settings=settings
            )
    except IntegrityError:  # Liquidation.position is one-to-one: someone else got there first
        logger.info("Position %s was liquidated concurrently", position_id)
        return None


def _cancel_resting_orders(*, portfolio: Portfolio, symbol: str) -> list[Any]:
    """Cancel the account's resting orders on the symbol, releasing their reserved margin."""
    ids = list(
        Order.objects.filter(portfolio_id=portfolio.pk, symbol=symbol, status__in=RESTING_ORDER_STATUSES)
        .order_by()
        .values_list("pk", flat=True)
    )
    if ids:
        Order.objects.filter(pk__in=ids).update(
            status=Order.Status.CANCELLED, reserved_margin=ZERO, closed_at=timezone.now()
        )
    return ids


def _fund_entries(*, symbol: str, liquidation: Liquidation, residual: Decimal, fee: Decimal) -> None:
    entries = []
    if fee > 0:
        entries.append((InsuranceFundEntry.Reason.LIQUIDATION_FEE, fee))
    if residual - fee > 0:
        entries.append((InsuranceFundEntry.Reason.LIQUIDATION_SURPLUS, residual - fee))
    if residual < 0:
        entries.append((InsuranceFundEntry.Reason.LIQUIDATION_DEFICIT, residual))
    InsuranceFundEntry.objects.bulk_create(
        [
            InsuranceFundEntry(symbol=symbol, liquidation=liquidation, reason=reason, amount=stored(amount))
            for reason, amount in entries
        ]
    )


def _execute(
    *,
    portfolio: Portfolio,
    position: Position,
    risk: PositionRisk,
    context: CrossContext | None,
    settings: EngineSettings,
) -> Liquidation:
    cancelled = _cancel_resting_orders(portfolio=portfolio, symbol=position.symbol)
    side, qty, entry, mark = position.side, position.quantity, position.entry_price, risk.mark
    if context is None:
        loss = position.isolated_margin
    else:  # what brings the cross margin balance to 0, within the cash
        loss = min(portfolio.cash, max(ZERO, portfolio.cash + context.other_unrealized))
    bankruptcy = margin.bankruptcy_price(side, qty, entry, loss)
    loss = min(loss, margin.sign(side) * qty * (entry - bankruptcy))  # a long's price floors at 0
    residual = margin.unrealized_pnl(side, qty, bankruptcy, mark)
    fee = min(settings.liquidation_fee_rate * risk.notional, max(ZERO, residual))
    now = timezone.now()

    loss_stored = stored(loss) or ZERO
    liquidation = Liquidation.objects.create(
        position=position,
        portfolio=portfolio,
        symbol=position.symbol,
        side=side,
        margin_mode=position.margin_mode,
        quantity=qty,
        entry_price=entry,
        mark_price=mark,
        liquidation_price=position.liquidation_price,
        bankruptcy_price=stored(bankruptcy),
        margin_lost=loss_stored,
        fee=stored(fee),
        insurance_fund_delta=stored(residual),
        liquidated_at=now,
    )
    _fund_entries(symbol=position.symbol, liquidation=liquidation, residual=residual, fee=fee)
    Fill.objects.create(
        portfolio=portfolio,
        position=position,
        kind=Fill.Kind.LIQUIDATION,
        symbol=position.symbol,
        side=Side.SELL if side == PositionSide.LONG else Side.BUY,
        quantity=qty,
        price=stored(bankruptcy),
        realized_pnl=-loss_stored,
        executed_at=now,
    )
    MarginHistory.objects.create(
        position=position,
        portfolio=portfolio,
        delta_type=MarginHistory.DeltaType.LIQUIDATION,
        amount=-loss_stored,
        margin_after=ZERO,
        leverage=position.leverage,
        created_at=now,
    )
    position.status = Position.Status.LIQUIDATED
    position.closed_at = now
    position.isolated_margin = ZERO
    position.realized_pnl -= loss_stored
    position.save(update_fields=["status", "closed_at", "isolated_margin", "realized_pnl"])
    portfolio.realized_pnl -= loss_stored
    fields = ["realized_pnl"]
    if context is not None:  # an isolated loss already left the cash when the margin was posted
        portfolio.cash -= loss_stored
        fields.append("cash")
    portfolio.save(update_fields=fields)
    if context is not None:
        positions_refresh_liquidation_prices(portfolio=portfolio)
    _publish(portfolio=portfolio, position=position, liquidation=liquidation, cancelled=cancelled)
    return liquidation


def liquidation_data(liquidation: Liquidation) -> dict[str, Any]:
    """The liquidation as carried by `liquidation` events (Decimals as strings)."""
    return {
        "id": str(liquidation.pk),
        "positionId": str(liquidation.position_id),
        "portfolioId": str(liquidation.portfolio_id),
        "symbol": liquidation.symbol,
        "side": liquidation.side,
        "marginMode": liquidation.margin_mode,
        "quantity": str(liquidation.quantity),
        "entryPrice": str(liquidation.entry_price),
        "markPrice": str(liquidation.mark_price),
        "liquidationPrice": None
        if liquidation.liquidation_price is None
        else str(liquidation.liquidation_price),
        "bankruptcyPrice": str(liquidation.bankruptcy_price),
        "marginLost": str(liquidation.margin_lost),
        "fee": str(liquidation.fee),
        "insuranceFundDelta": str(liquidation.insurance_fund_delta),
        "liquidatedAt": liquidation.liquidated_at.isoformat(),
    }


def _publish(
    *, portfolio: Portfolio, position: Position, liquidation: Liquidation, cancelled: list[Any]
) -> None:
    user_id = portfolio.user_id
    for order in Order.objects.filter(pk__in=cancelled):
        events.account_event_publish(user_id=user_id, event_type=events.ORDER, data=order_data(order))
    events.account_event_publish(
        user_id=user_id, event_type=events.LIQUIDATION, data=liquidation_data(liquidation)
    )
    events.account_event_publish(user_id=user_id, event_type=events.POSITION, data=position_data(position))


# --- margin calls --------------------------------------------------------------------------------


def margin_call_key(position_id: Any) -> str:
    return f"trading:margin-call:{position_id}"


def _called_key(symbol: str) -> str:
    return f"trading:margin-calls:{symbol}"


def _maintenance_expression(table: Sequence[Bracket], notional: str) -> Case:
    """MM = notional x MMR - cum of the notional's bracket, as SQL (the `notional` annotation)."""
    whens = [
        When(**{f"{notional}__lte": b.cap}, then=F(notional) * Value(b.mmr) - Value(b.cum))
        for b in table[:-1]
    ]
    last = table[-1]
    return Case(*whens, default=F(notional) * Value(last.mmr) - Value(last.cum), output_field=MONEY)


def _isolated_at_margin_call(symbol: str, mark: Decimal, table: Sequence[Bracket], near: Q) -> list[Any]:
    """Isolated positions near their liquidation price whose margin ratio is >= 0.8 at `mark`,
    computed by the database: margin balance (wallet + UPnL) <= MM / 0.8."""
    upnl = Case(
        When(side=PositionSide.LONG, then=F("quantity") * (Value(mark) - F("entry_price"))),
        default=F("quantity") * (F("entry_price") - Value(mark)),
        output_field=MONEY,
    )
    rows = (
        Position.objects.filter(near, margin_mode=MarginMode.ISOLATED)
        .annotate(mc_notional=ExpressionWrapper(F("quantity") * Value(mark), output_field=MONEY))
        .annotate(mc_mm=_maintenance_expression(table, "mc_notional"), mc_balance=F("isolated_margin") + upnl)
        .filter(mc_balance__lte=F("mc_mm") / Value(MARGIN_CALL_RATIO))
        .order_by()
    )
    return list(rows.values_list("pk", flat=True))


def _cross_at_margin_call(
    symbol: str, mark: Decimal, table: Sequence[Bracket], bands: Sequence[Q]
) -> list[Any]:
    """Cross positions near their (stored) liquidation price whose account margin ratio is >= 0.8."""
    fields = ("pk", "portfolio_id", "side", "quantity", "entry_price", "margin_mode", "status", "symbol")
    rows = [
        position
        for band in bands
        for position in Position.objects.filter(band, margin_mode=MarginMode.CROSS).order_by().only(*fields)
    ]
    if not rows:
        return []
    contexts = cross_contexts(
        portfolio_ids={p.portfolio_id for p in rows}, marks={symbol: mark}, tables={symbol: table}
    )
    called = []
    for position in rows:
        context = contexts[position.pk]
        account_mm = margin.maintenance_margin(table, position.quantity * mark) + context.other_maintenance
        balance = (
            context.wallet
            + margin.unrealized_pnl(position.side, position.quantity, position.entry_price, mark)
            + context.other_unrealized
        )
        if balance <= 0 or account_mm / balance >= MARGIN_CALL_RATIO:
            called.append(position.pk)
    return called


def margin_calls_check(*, symbol: str, mark: Decimal, table: Sequence[Bracket]) -> int:
    """Send a margin call to each open position of the symbol whose margin ratio is >= 0.8 at
    `mark`, once per crossing; returns how many were sent.

    Only positions whose stored liquidation price lies within MARGIN_CALL_BAND of the mark (and
    not past it) are looked at; isolated ones are evaluated by the database. The positions at or
    above 0.8 are remembered per symbol: one no longer among them has its flag cleared, so its
    next crossing calls again.
    """
    # One range per side, each bounded on both ends, so the index serves both (an OR of the two
    # is estimated as half the table and scanned sequentially).
    # This node's portfolios only: the home node watches (and calls) its own accounts.
    open_here = Q(symbol=symbol, status=Position.Status.OPEN) & owned_here()
    bands = [
        open_here
        & Q(
            side=PositionSide.LONG,
            liquidation_price__lt=mark,
            liquidation_price__gte=mark * (1 - MARGIN_CALL_BAND),
        ),
        open_here
        & Q(
            side=PositionSide.SHORT,
            liquidation_price__gt=mark,
            liquidation_price__lte=mark * (1 + MARGIN_CALL_BAND),
        ),
    ]
    now_called = {str(pk) for band in bands for pk in _isolated_at_margin_call(symbol, mark, table, band)}
    now_called |= {str(pk) for pk in _cross_at_margin_call(symbol, mark, table, bands)}
    before: set[str] = cache.get(_called_key(symbol)) or set()
    if before - now_called:
        cache.delete_many([margin_call_key(pk) for pk in before - now_called])
    if now_called or before:
        cache.set(_called_key(symbol), now_called, MARGIN_CALL_TTL_S)
    fresh = [pk for pk in now_called - before if cache.add(margin_call_key(pk), 1, MARGIN_CALL_TTL_S)]
    if not fresh:
        return 0
    contexts: dict[Any, CrossContext] = {}
    positions = list(Position.objects.filter(pk__in=fresh).select_related("portfolio"))
    cross_ids = {p.portfolio_id for p in positions if p.margin_mode == MarginMode.CROSS}
    if cross_ids:
        contexts = cross_contexts(portfolio_ids=cross_ids, marks={symbol: mark}, tables={symbol: table})
    for position in positions:
        risk = position_risk(position, mark=mark, cross_context=contexts.get(position.pk), brackets=table)
        events.account_event_publish(
            user_id=position.portfolio.user_id,
            event_type=events.MARGIN_CALL,
            data={
                **position_data(position),
                "markPrice": str(mark),
                "marginRatio": None if risk.margin_ratio is None else str(risk.margin_ratio),
                "marginBalance": str(risk.margin_balance),
                "maintenanceMargin": str(risk.account_maintenance),
            },
        )
    return len(positions)
