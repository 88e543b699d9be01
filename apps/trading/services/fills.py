"""Fills: how one execution moves a position, its margin, the fees and the wallet.

Reference semantics, Binance USDⓈ-M one-way (../shared/research/trading.md §1.1, §1.6, §1.8):
- the entry price is the volume-weighted average of the fills that opened or increased the position;
- a fill against the position realizes s·qty·(fill - entry) into cash, and an isolated position
  also hands back its margin share (margin·qty/Q);
- a fill larger than the position closes it and opens the other side with the remainder (never
  for reduce-only orders); the new side keeps the closed position's leverage and margin mode;
- an isolated position takes notional/leverage at the fill price out of cash; a cross position's
  margin stays in the wallet and is counted by funds_available();
- the fee is notional·rate (maker for a resting order, taker otherwise), taken from cash.

Every function here runs inside the caller's transaction with the portfolio row locked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import Sum
from django.utils import timezone

from apps.trading import events
from apps.trading.amounts import money
from apps.trading.engine.margin import Bracket, max_notional_for_leverage, sign
from apps.trading.events import account_event_publish
from apps.trading.exceptions import InsufficientFunds, MaxLeverageRatio, ReduceOnlyRejected
from apps.trading.models import (
    Fill,
    MarginHistory,
    MarginMode,
    Order,
    Portfolio,
    Position,
    PositionSide,
    Side,
)
from apps.trading.selectors import mark_prices

ZERO = Decimal(0)


def position_side(order_side: str) -> str:
    return PositionSide.LONG if order_side == Side.BUY else PositionSide.SHORT


def open_position_locked(*, portfolio: Portfolio, symbol: str) -> Position | None:
    return (
        Position.objects.select_for_update()
        .filter(portfolio=portfolio, symbol=symbol, status=Position.Status.OPEN)
        .first()
    )


# --- funds ------------------------------------------------------------------------------------


def funds_available(
    *, portfolio: Portfolio, marks: Mapping[str, Decimal], exclude_order_id: UUID | None = None
) -> Decimal:
    """Cash new orders may use: cash - IM of open cross positions at mark - margin reserved by
    resting orders + the cross unrealized PnL when it is negative (a profit is not spendable).

    A cross position whose symbol has no fresh mark (neither in `marks` nor in the price store)
    is valued at its entry price.
    """
    rows = list(
        Position.objects.filter(
            portfolio=portfolio, status=Position.Status.OPEN, margin_mode=MarginMode.CROSS
        ).values_list("symbol", "side", "quantity", "entry_price", "leverage")
    )
    missing = sorted({row[0] for row in rows} - set(marks))
    known = {**mark_prices(missing), **marks} if missing else marks
    cross_margin = unrealized = ZERO
    for symbol, side, quantity, entry, leverage in rows:
        mark = known.get(symbol, entry)
        cross_margin += quantity * mark / Decimal(leverage)
        unrealized += sign(side) * quantity * (mark - entry)
    reserved = Order.objects.filter(portfolio=portfolio, status=Order.Status.OPEN)
    if exclude_order_id is not None:
        reserved = reserved.exclude(pk=exclude_order_id)
    held = reserved.aggregate(total=Sum("reserved_margin"))["total"] or ZERO
    return portfolio.cash - cross_margin - held + min(ZERO, unrealized)


def notional_cap_check(
    *, brackets: Sequence[Bracket], leverage: int, quantity: Decimal, price: Decimal, symbol: str
) -> None:
    """Binance -2027: a position may not grow past maxNotional(leverage) of its bracket table."""
    if not brackets:
        return
    cap = max_notional_for_leverage(brackets, leverage)
    if quantity * price > cap:
        raise MaxLeverageRatio(
            f"A {symbol} position of {quantity * price:f} notional is above {cap:f}, the most "
            f"{leverage}x allows; lower the leverage or the quantity.",
            notional=str(quantity * price),
            max_notional=str(cap),
            leverage=leverage,
        )


# --- executing a fill ---------------------------------------------------------------------------


@dataclass
class FillResult:
    quantity: Decimal = ZERO
    fills: list[Fill] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    increased: bool = False  # opened, increased or flipped: exposure grew, so funds were checked


@dataclass
class _Leg:
    """One position change of a fill (a flip has two: close, then open)."""

    position: Position
    quantity: Decimal
    fee: Decimal
    realized_pnl: Decimal = ZERO


def fillable_quantity(*, order: Order, position: Position | None) -> Decimal:
    """What of the order can fill now: its remainder, clamped to the position for reduce-only."""
    remaining = order.quantity - order.filled_quantity
    if not order.reduce_only:
        return remaining
    if position is None or position.side == position_side(order.side):
        raise ReduceOnlyRejected(
            f"A reduce-only {order.side} order needs an open "
            f"{'short' if order.side == Side.BUY else 'long'} {order.symbol} position.",
            symbol=order.symbol,
        )
    return min(remaining, position.quantity)


def order_fill(
    *,
    portfolio: Portfolio,
    order: Order,
    price: Decimal,
    is_maker: bool,
    fee_rate: Decimal,
    brackets: Sequence[Bracket],
    marks: Mapping[str, Decimal],
) -> FillResult:
    """Fill what the order can fill now at `price`: write the fills, move the position, margin,
    fees and cash, close the order, refresh liquidation prices and queue the account events.

    Raises InsufficientFunds when a fill that grows the position leaves available funds below
    zero, ReduceOnlyRejected, or MaxLeverageRatio; the caller's transaction then rolls back.
    """
    position = open_position_locked(portfolio=portfolio, symbol=order.symbol)
    quantity = fillable_quantity(order=order, position=position)
    result = FillResult(quantity=quantity)
    side = position_side(order.side)
    now = timezone.now()
    legs: list[_Leg] = []
    opening, leverage, margin_mode = quantity, order.leverage, order.margin_mode
    if position is not None and position.side != side:
        closing = min(quantity, position.quantity)
        legs.append(_reduce(portfolio, position, closing, price, _fee(closing, price, fee_rate), now))
        # A flip's new side keeps the closed position's leverage and margin mode.
        opening, leverage, margin_mode = quantity - closing, position.leverage, position.margin_mode
    elif position is not None:
        result.increased = True
        legs.append(
            _increase(portfolio, position, quantity, price, _fee(quantity, price, fee_rate), brackets)
        )
        opening = ZERO
    if opening > 0:
        result.increased = True
        legs.append(
            _open(
                portfolio,
                symbol=order.symbol,
                side=side,
                quantity=opening,
                price=price,
                leverage=leverage,
                margin_mode=margin_mode,
                fee=_fee(opening, price, fee_rate),
                brackets=brackets,
                now=now,
            )
        )

    fee_total = sum((leg.fee for leg in legs), ZERO)
    pnl_total = sum((leg.realized_pnl for leg in legs), ZERO)
    portfolio.cash -= fee_total
    portfolio.fees_paid += fee_total
    portfolio.realized_pnl += pnl_total
    _funds_check(portfolio=portfolio, order=order, marks=marks, increased=result.increased)
    portfolio.save(update_fields=["cash", "fees_paid", "realized_pnl"])

    result.fills = Fill.objects.bulk_create(
        [
            Fill(
                portfolio=portfolio,
                order=order,
                position=leg.position,
                kind=Fill.Kind.ORDER,
                symbol=order.symbol,
                side=order.side,
                quantity=leg.quantity,
                price=price,
                fee=leg.fee,
                fee_rate=fee_rate,
                is_maker=is_maker,
                realized_pnl=leg.realized_pnl,
                executed_at=now,
            )
            for leg in legs
        ]
    )
    _order_record_fill(order, quantity=quantity, price=price, fee=fee_total, now=now)
    positions_refresh_liquidation_prices(portfolio=portfolio)
    result.positions = list(Position.objects.filter(pk__in=[leg.position.pk for leg in legs]))
    _publish_fill(portfolio=portfolio, order=order, result=result)
    return result


def _fee(quantity: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    return money(quantity * price * rate)


def _funds_check(
    *, portfolio: Portfolio, order: Order, marks: Mapping[str, Decimal], increased: bool
) -> None:
    if portfolio.cash < 0:
        raise InsufficientFunds(
            "Not enough cash to settle this fill.", cash=str(portfolio.cash), symbol=order.symbol
        )
    if not increased:
        return  # reducing a position is always allowed while the wallet stays positive
    available = funds_available(portfolio=portfolio, marks=marks, exclude_order_id=order.pk)
    if available < 0:
        raise InsufficientFunds(
            "Not enough available funds for this order's margin and fee.",
            shortfall=str(-available),
            symbol=order.symbol,
        )


def _margin_history(position: Position, delta_type: str, amount: Decimal, margin_after: Decimal) -> None:
    MarginHistory.objects.create(
        position=position,
        portfolio_id=position.portfolio_id,
        delta_type=delta_type,
        amount=amount,
        margin_after=margin_after,
        leverage=position.leverage,
    )


def _position_margin(position: Position) -> Decimal:
    """The margin a history row reports: the isolated wallet, or IM at entry for a cross position."""
    if position.margin_mode == MarginMode.ISOLATED:
        return position.isolated_margin
    return money(position.quantity * position.entry_price / Decimal(position.leverage))


def _open(
    portfolio: Portfolio,
    *,
    symbol: str,
    side: str,
    quantity: Decimal,
    price: Decimal,
    leverage: int,
    margin_mode: str,
    fee: Decimal,
    brackets: Sequence[Bracket],
    now: Any,
) -> _Leg:
    notional_cap_check(brackets=brackets, leverage=leverage, quantity=quantity, price=price, symbol=symbol)
    margin = money(quantity * price / Decimal(leverage))
    isolated = margin if margin_mode == MarginMode.ISOLATED else ZERO
    position = Position.objects.create(
        portfolio=portfolio,
        symbol=symbol,
        side=side,
        quantity=quantity,
        entry_price=price,
        leverage=leverage,
        margin_mode=margin_mode,
        isolated_margin=isolated,
        fees_paid=fee,
        opened_at=now,
    )
    portfolio.cash -= isolated
    _margin_history(position, MarginHistory.DeltaType.OPEN, margin, margin)
    return _Leg(position=position, quantity=quantity, fee=fee)


def _increase(
    portfolio: Portfolio,
    position: Position,
    quantity: Decimal,
    price: Decimal,
    fee: Decimal,
    brackets: Sequence[Bracket],
) -> _Leg:
    total = position.quantity + quantity
    notional_cap_check(
        brackets=brackets, leverage=position.leverage, quantity=total, price=price, symbol=position.symbol
    )
    margin = money(quantity * price / Decimal(position.leverage))
    position.entry_price = money((position.quantity * position.entry_price + quantity * price) / total)
    position.quantity = total
    position.fees_paid += fee
    if position.margin_mode == MarginMode.ISOLATED:
        position.isolated_margin += margin
        portfolio.cash -= margin
    position.save(update_fields=["entry_price", "quantity", "fees_paid", "isolated_margin"])
    _margin_history(position, MarginHistory.DeltaType.INCREASE, margin, _position_margin(position))
    return _Leg(position=position, quantity=quantity, fee=fee)


def _reduce(
    portfolio: Portfolio, position: Position, quantity: Decimal, price: Decimal, fee: Decimal, now: Any
) -> _Leg:
    pnl = money(sign(position.side) * quantity * (price - position.entry_price))
    closes = quantity == position.quantity
    if position.margin_mode == MarginMode.ISOLATED:
        released = (
            position.isolated_margin
            if closes
            else money(position.isolated_margin * quantity / position.quantity)
        )
        position.isolated_margin -= released
        portfolio.cash += released
    else:
        released = money(quantity * position.entry_price / Decimal(position.leverage))
    portfolio.cash += pnl
    position.quantity -= quantity
    position.realized_pnl += pnl
    position.fees_paid += fee
    fields = ["quantity", "isolated_margin", "realized_pnl", "fees_paid"]
    if closes:
        position.status = Position.Status.CLOSED
        position.closed_at = now
        position.liquidation_price = None
        fields += ["status", "closed_at", "liquidation_price"]
    position.save(update_fields=fields)
    _margin_history(position, MarginHistory.DeltaType.REDUCE, -released, _position_margin(position))
    return _Leg(position=position, quantity=quantity, fee=fee, realized_pnl=pnl)


def _order_record_fill(order: Order, *, quantity: Decimal, price: Decimal, fee: Decimal, now: Any) -> None:
    filled = order.filled_quantity + quantity
    previous = order.average_price or ZERO
    order.average_price = money((previous * order.filled_quantity + price * quantity) / filled)
    order.filled_quantity = filled
    order.fee += fee
    order.reserved_margin = ZERO
    # A reduce-only order clamped to a smaller position expires with what it filled.
    order.status = Order.Status.FILLED if filled == order.quantity else Order.Status.EXPIRED
    order.closed_at = now
    order.save(
        update_fields=["average_price", "filled_quantity", "fee", "reserved_margin", "status", "closed_at"]
    )


def positions_refresh_liquidation_prices(*, portfolio: Portfolio) -> None:
    """Part P's risk service, imported on use: risk.py imports this module (funds_available)."""
    from apps.trading.services.risk import positions_refresh_liquidation_prices as refresh

    refresh(portfolio=portfolio)


# --- account events ---------------------------------------------------------------------------


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _when(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def order_data(order: Order) -> dict[str, Any]:
    return {
        "id": str(order.pk),
        "portfolioId": str(order.portfolio_id),
        "clientOrderId": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "timeInForce": order.time_in_force,
        "quantity": _text(order.quantity),
        "price": _text(order.price),
        "stopPrice": _text(order.stop_price),
        "reduceOnly": order.reduce_only,
        "leverage": order.leverage,
        "marginMode": order.margin_mode,
        "status": order.status,
        "filledQuantity": _text(order.filled_quantity),
        "averagePrice": _text(order.average_price),
        "fee": _text(order.fee),
        "reservedMargin": _text(order.reserved_margin),
        "rejectReason": order.reject_reason,
        "placedBy": order.placed_by,
        "createdAt": _when(order.created_at),
        "triggeredAt": _when(order.triggered_at),
        "closedAt": _when(order.closed_at),
    }


def fill_data(fill: Fill) -> dict[str, Any]:
    return {
        "id": str(fill.pk),
        "portfolioId": str(fill.portfolio_id),
        "orderId": str(fill.order_id) if fill.order_id else None,
        "positionId": str(fill.position_id) if fill.position_id else None,
        "kind": fill.kind,
        "symbol": fill.symbol,
        "side": fill.side,
        "quantity": _text(fill.quantity),
        "price": _text(fill.price),
        "fee": _text(fill.fee),
        "feeRate": _text(fill.fee_rate),
        "isMaker": fill.is_maker,
        "realizedPnl": _text(fill.realized_pnl),
        "executedAt": _when(fill.executed_at),
    }


def position_data(position: Position) -> dict[str, Any]:
    return {
        "id": str(position.pk),
        "portfolioId": str(position.portfolio_id),
        "symbol": position.symbol,
        "side": position.side,
        "quantity": _text(position.quantity),
        "entryPrice": _text(position.entry_price),
        "leverage": position.leverage,
        "marginMode": position.margin_mode,
        "isolatedMargin": _text(position.isolated_margin),
        "liquidationPrice": _text(position.liquidation_price),
        "realizedPnl": _text(position.realized_pnl),
        "feesPaid": _text(position.fees_paid),
        "status": position.status,
        "openedAt": _when(position.opened_at),
        "closedAt": _when(position.closed_at),
    }


def order_publish(*, portfolio: Portfolio, order: Order) -> None:
    account_event_publish(user_id=portfolio.user_id, event_type=events.ORDER, data=order_data(order))


def _publish_fill(*, portfolio: Portfolio, order: Order, result: FillResult) -> None:
    """Fills, then the positions they moved (a flip's closed one first), then the order."""
    positions = sorted(result.positions, key=lambda p: (p.status == Position.Status.OPEN, p.opened_at))
    frames = [
        *((events.FILL, fill_data(fill)) for fill in result.fills),
        *((events.POSITION, position_data(position)) for position in positions),
        (events.ORDER, order_data(order)),
    ]
    for event_type, data in frames:
        account_event_publish(user_id=portfolio.user_id, event_type=event_type, data=data)
