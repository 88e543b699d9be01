"""Orders: placement, cancellation, closing a position, and what happens when an order goes live.

Types: market; limit; stop and take-profit (market once triggered); stop-limit and
take-profit-limit (limit once triggered). A buy stop triggers when the price rises to its stop
price, a sell stop when it falls to it; take-profits the other way round.

Execution model (there is no order book depth, so every fill is a full fill of what can fill):
- market orders, and limit orders marketable on arrival, fill at once as taker at the live price
  (a marketable buy limit fills at min(limit, live) = live);
- other limit orders rest (status open) as maker and reserve their margin and fee from
  available funds, so concurrent orders cannot spend the same cash; they fill at their limit
  price when the live price crosses it (services/triggers.py);
- stops and take-profits wait (status pending) until triggered, then act as market or limit;
- IOC: fill now or expire; FOK: fill now, else FillOrKillUnfilled with nothing written.

Every placement, fill and cancellation locks the portfolio row first (then the order, then the
position), so all of one portfolio's money movements queue behind each other.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from uuid6 import uuid7

from apps.trading.amounts import money
from apps.trading.engine.margin import Bracket
from apps.trading.exceptions import (
    FillOrKillUnfilled,
    InsufficientFunds,
    InvalidLeverage,
    InvalidOrder,
    InvalidPrice,
    InvalidQuantity,
    OrderNotCancellable,
    OrderWouldTrigger,
    PositionNotOpen,
    PriceUnavailable,
    ReduceOnlyRejected,
)
from apps.trading.models import EngineSettings, Instrument, MarginMode, Order, Portfolio, Position, Side
from apps.trading.selectors import (
    RESTING_ORDER_STATUSES,
    brackets_for,
    engine_settings,
    instrument_get,
    mark_prices,
    portfolio_owned_here,
)
from apps.trading.services.fills import (
    ZERO,
    fillable_quantity,
    funds_available,
    notional_cap_check,
    open_position_locked,
    order_fill,
    order_publish,
    position_side,
)
from haunt.errors import DomainError

logger = logging.getLogger(__name__)

T = Order.Type
MARKET_TYPES = frozenset({T.MARKET, T.STOP, T.TAKE_PROFIT})  # fill at the live price once live
LIMIT_TYPES = frozenset({T.LIMIT, T.STOP_LIMIT, T.TAKE_PROFIT_LIMIT})
STOP_TYPES = frozenset({T.STOP, T.STOP_LIMIT})
TAKE_PROFIT_TYPES = frozenset({T.TAKE_PROFIT, T.TAKE_PROFIT_LIMIT})
CONDITIONAL_TYPES = STOP_TYPES | TAKE_PROFIT_TYPES
CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: str
    reduce_only: bool
    leverage: int | None
    margin_mode: str | None


@dataclass(frozen=True, slots=True)
class MarketContext:
    """What executing an order on one symbol needs besides the rows: fee rates and brackets."""

    settings: EngineSettings
    brackets: list[Bracket]


def market_context(instrument: Instrument, settings: EngineSettings | None = None) -> MarketContext:
    return MarketContext(settings=settings or engine_settings(), brackets=brackets_for(instrument))


# --- placement ----------------------------------------------------------------------------------


@transaction.atomic
def order_place(
    *,
    portfolio: Portfolio,
    symbol: str,
    side: str,
    type: str,
    quantity: Decimal | str,
    price: Decimal | str | None = None,
    stop_price: Decimal | str | None = None,
    time_in_force: str = Order.TimeInForce.GTC,
    reduce_only: bool = False,
    leverage: int | None = None,
    margin_mode: str | None = None,
    client_order_id: str | None = None,
    placed_by: str = "user",
) -> Order:
    """Place an order: fill it, rest it or park it until its trigger, as its type says.

    Idempotent per (portfolio, client_order_id): a retry returns the order the first call made
    (whatever its parameters) and never fills twice; without a client id one is generated.
    Every refusal raises before anything is written.
    """
    request = _request_clean(
        symbol=symbol,
        side=side,
        type=type,
        quantity=quantity,
        price=price,
        stop_price=stop_price,
        time_in_force=time_in_force,
        reduce_only=reduce_only,
        leverage=leverage,
        margin_mode=margin_mode,
    )
    if client_order_id is not None and not CLIENT_ID_PATTERN.match(client_order_id):
        raise InvalidOrder("clientOrderId must be 1-64 letters, digits or . _ : / -.", field="clientOrderId")
    # Every order of this portfolio, from any request or worker, queues here: the checks below
    # see committed balances and a retried client id sees the order its first attempt wrote.
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
    portfolio_owned_here(portfolio)
    if client_order_id is not None:
        existing = Order.objects.filter(portfolio=portfolio, client_order_id=client_order_id).first()
        if existing is not None:
            return existing

    instrument = instrument_get(request.symbol)
    _precision_check(request, instrument)
    context = market_context(instrument)
    _leverage_check(request.leverage, instrument=instrument, context=context)
    position = open_position_locked(portfolio=portfolio, symbol=instrument.symbol)
    quantity, leverage, mode = _position_terms(request, portfolio=portfolio, position=position)
    live = _live_price(instrument.symbol, context)
    _trigger_check(request, live=live)

    order = Order(
        portfolio=portfolio,
        client_order_id=client_order_id or f"haunt-{uuid7().hex}",
        symbol=instrument.symbol,
        side=request.side,
        type=request.type,
        time_in_force=request.time_in_force,
        quantity=quantity,
        price=request.price,
        stop_price=request.stop_price,
        reduce_only=request.reduce_only,
        leverage=leverage,
        margin_mode=mode,
        status=Order.Status.PENDING if request.type in CONDITIONAL_TYPES else Order.Status.OPEN,
        placed_by=placed_by,
    )
    try:
        with transaction.atomic():  # savepoint: the unique constraint is the last word on a retry
            order.save(force_insert=True)
    except IntegrityError:
        existing = Order.objects.filter(portfolio=portfolio, client_order_id=order.client_order_id).first()
        if existing is None:
            raise
        return existing

    if order.status == Order.Status.PENDING:
        order_publish(portfolio=portfolio, order=order)
    else:
        order_activate(portfolio=portfolio, order=order, live=live, context=context, arriving=True)
    return order


def _position_terms(
    request: OrderRequest, *, portfolio: Portfolio, position: Position | None
) -> tuple[Decimal, int, str]:
    """Quantity (reduce-only: clamped to the position), leverage and margin mode of the order.

    An open position keeps its own leverage and margin mode (change them on the position); a new
    one takes the order's, else 1x and the portfolio's default mode.
    """
    quantity = request.quantity
    if request.reduce_only:
        if position is None or position.side == position_side(request.side):
            raise ReduceOnlyRejected(
                "A reduce-only order needs an open position on the other side.", symbol=request.symbol
            )
        quantity = min(quantity, position.quantity)
    if position is not None:
        return quantity, position.leverage, position.margin_mode
    return quantity, request.leverage or 1, request.margin_mode or portfolio.margin_mode


def _trigger_check(request: OrderRequest, *, live: Decimal) -> None:
    """Binance -2021: a stop or take-profit must not be crossed already."""
    if request.type not in CONDITIONAL_TYPES:
        return
    assert request.stop_price is not None
    if stop_triggered(side=request.side, type=request.type, stop_price=request.stop_price, price=live):
        raise OrderWouldTrigger(
            f"The {request.type} would trigger at once: the price is {live:f}.",
            stop_price=str(request.stop_price),
            price=str(live),
        )


def _live_price(symbol: str, context: MarketContext) -> Decimal:
    """The fresh mark (as selectors.mark_price, reusing the settings already read)."""
    price = mark_prices([symbol], max_age_seconds=context.settings.max_price_age_seconds).get(symbol)
    if price is None:
        raise PriceUnavailable(f"No fresh price for {symbol!r}; try again shortly.", symbol=symbol)
    return price


def _request_clean(
    *,
    symbol: str,
    side: str,
    type: str,
    quantity: Decimal | str,
    price: Decimal | str | None,
    stop_price: Decimal | str | None,
    time_in_force: str,
    reduce_only: bool,
    leverage: int | None,
    margin_mode: str | None,
) -> OrderRequest:
    _choice("side", side, Side.values)
    _choice("type", type, Order.Type.values)
    _choice("timeInForce", time_in_force, Order.TimeInForce.values)
    if margin_mode is not None:
        _choice("marginMode", margin_mode, MarginMode.values)
    amount = _decimal(quantity, "quantity", InvalidQuantity)
    if amount is None or amount <= 0:
        raise InvalidQuantity("The quantity must be a positive number.", quantity=str(quantity))
    limit = _decimal(price, "price", InvalidPrice)
    trigger = _decimal(stop_price, "stopPrice", InvalidPrice)
    if type in LIMIT_TYPES and limit is None:
        raise InvalidOrder(f"A {type} order needs a price.", field="price")
    if type not in LIMIT_TYPES and limit is not None:
        raise InvalidOrder(f"A {type} order takes no price.", field="price")
    if type in CONDITIONAL_TYPES and trigger is None:
        raise InvalidOrder(f"A {type} order needs a stopPrice.", field="stopPrice")
    if type not in CONDITIONAL_TYPES and trigger is not None:
        raise InvalidOrder(f"A {type} order takes no stopPrice.", field="stopPrice")
    for name, value in (("price", limit), ("stopPrice", trigger)):
        if value is not None and value <= 0:
            raise InvalidPrice(f"{name} must be positive.", field=name, value=str(value))
    if leverage is not None and (isinstance(leverage, bool) or not isinstance(leverage, int) or leverage < 1):
        raise InvalidLeverage("Leverage must be a whole number of at least 1.", leverage=str(leverage))
    return OrderRequest(
        symbol=str(symbol).strip().lower(),
        side=side,
        type=type,
        quantity=amount,
        price=limit,
        stop_price=trigger,
        time_in_force=time_in_force,
        reduce_only=bool(reduce_only),
        leverage=leverage,
        margin_mode=margin_mode,
    )


def _choice(name: str, value: Any, allowed: list[str]) -> None:
    if value not in allowed:
        raise InvalidOrder(f"{name} must be one of {', '.join(allowed)}.", field=name, value=str(value))


def _decimal(value: Decimal | str | None, name: str, error: type[DomainError]) -> Decimal | None:
    if value is None:
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise error(f"{name} is not a number.", field=name, value=str(value)) from None
    if not number.is_finite():
        raise error(f"{name} is not a number.", field=name, value=str(value))
    return number


def decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _precision_check(request: OrderRequest, instrument: Instrument) -> None:
    if decimal_places(request.quantity) > instrument.quantity_decimals:
        raise InvalidQuantity(
            f"{instrument.symbol} quantities have at most {instrument.quantity_decimals} decimals.",
            quantity=str(request.quantity),
            quantity_decimals=instrument.quantity_decimals,
        )
    if request.quantity < instrument.min_quantity:
        raise InvalidQuantity(
            f"The smallest {instrument.symbol} order is {instrument.min_quantity.normalize():f}.",
            quantity=str(request.quantity),
            min_quantity=str(instrument.min_quantity.normalize()),
        )
    for name, value in (("price", request.price), ("stopPrice", request.stop_price)):
        if value is not None and decimal_places(value) > instrument.price_decimals:
            raise InvalidPrice(
                f"{instrument.symbol} prices have at most {instrument.price_decimals} decimals.",
                field=name,
                value=str(value),
                price_decimals=instrument.price_decimals,
            )


def leverage_max(*, instrument: Instrument, context: MarketContext) -> int:
    """The highest leverage an order may ask for: instrument, bracket table and engine caps."""
    caps = [instrument.max_leverage, context.settings.user_max_leverage]
    if context.brackets:
        caps.append(max(item.initial_leverage for item in context.brackets))
    return min(caps)


def _leverage_check(leverage: int | None, *, instrument: Instrument, context: MarketContext) -> None:
    if leverage is None:
        return
    highest = leverage_max(instrument=instrument, context=context)
    if leverage > highest:
        raise InvalidLeverage(
            f"{instrument.symbol} allows leverage from 1 to {highest}.",
            leverage=leverage,
            max_leverage=highest,
        )


def stop_triggered(*, side: str, type: str, stop_price: Decimal, price: Decimal) -> bool:
    """A buy stop / sell take-profit triggers at or above its stop price, the others at or below."""
    rises = (type in STOP_TYPES) == (side == Side.BUY)
    return price >= stop_price if rises else price <= stop_price


def limit_marketable(*, side: str, limit: Decimal, price: Decimal) -> bool:
    return price <= limit if side == Side.BUY else price >= limit


# --- an order that is live now ------------------------------------------------------------------


def order_activate(
    *, portfolio: Portfolio, order: Order, live: Decimal, context: MarketContext, arriving: bool
) -> None:
    """Fill, rest or expire an order that just became live (placed, or its stop triggered).

    Marketable now: a taker fill at the live price. Otherwise IOC expires, FOK is refused
    (FillOrKillUnfilled when arriving, so the placement writes nothing; expired when triggered)
    and GTC rests with its margin and fee reserved.
    """
    marks = {order.symbol: live}
    if order.type in MARKET_TYPES or limit_marketable(side=order.side, limit=_limit(order), price=live):
        order_fill(
            portfolio=portfolio,
            order=order,
            price=live,
            is_maker=False,
            fee_rate=context.settings.taker_fee_rate,
            brackets=context.brackets,
            marks=marks,
        )
        return
    if order.time_in_force == Order.TimeInForce.FOK and arriving:
        raise FillOrKillUnfilled(
            "Fill-or-kill: the order cannot fill in full now, so it was not placed.",
            price=str(live),
            limit=str(order.price),
        )
    if order.time_in_force != Order.TimeInForce.GTC:
        order_close(portfolio=portfolio, order=order, status=Order.Status.EXPIRED, reason="not_marketable")
        return
    _rest(portfolio=portfolio, order=order, marks=marks, context=context)


def _limit(order: Order) -> Decimal:
    assert order.price is not None, "a limit-type order always has a price"
    return order.price


def _rest(
    *, portfolio: Portfolio, order: Order, marks: Mapping[str, Decimal], context: MarketContext
) -> None:
    """Open the order on the book, holding the margin its fill would need plus the maker fee."""
    limit = _limit(order)
    position = open_position_locked(portfolio=portfolio, symbol=order.symbol)
    quantity = fillable_quantity(order=order, position=position)
    growing = quantity
    leverage = order.leverage
    if position is not None:
        leverage = position.leverage
        same_side = position.side == position_side(order.side)
        growing = (
            ZERO
            if order.reduce_only
            else (quantity if same_side else max(ZERO, quantity - position.quantity))
        )
        if same_side and growing:
            notional_cap_check(
                brackets=context.brackets,
                leverage=leverage,
                quantity=position.quantity + growing,
                price=limit,
                symbol=order.symbol,
            )
    elif growing:
        notional_cap_check(
            brackets=context.brackets, leverage=leverage, quantity=growing, price=limit, symbol=order.symbol
        )
    reserve = money(growing * limit / Decimal(leverage)) + money(
        quantity * limit * context.settings.maker_fee_rate
    )
    available = funds_available(portfolio=portfolio, marks=marks, exclude_order_id=order.pk)
    if available < reserve:
        raise InsufficientFunds(
            "Not enough available funds to hold this order's margin and fee.",
            required=str(reserve),
            available=str(max(ZERO, available)),
        )
    order.reserved_margin = reserve
    order.status = Order.Status.OPEN
    order.save(update_fields=["reserved_margin", "status"])
    order_publish(portfolio=portfolio, order=order)


def order_close(*, portfolio: Portfolio, order: Order, status: str, reason: str = "") -> None:
    """End a resting order without a fill (cancelled, expired or rejected); its reservation ends."""
    order.status = status
    order.reject_reason = reason
    order.reserved_margin = ZERO
    order.closed_at = timezone.now()
    order.save(update_fields=["status", "reject_reason", "reserved_margin", "closed_at", "triggered_at"])
    order_publish(portfolio=portfolio, order=order)


def resting_order_execute(
    *, portfolio: Portfolio, order: Order, live: Decimal, context: MarketContext
) -> str:
    """A locked resting order the live price reached: trigger a pending one, fill an open one (as
    maker, at its limit price). A refusal now (funds, reduce-only, bracket cap) rejects the order
    instead of failing the caller. Returns the order's new status."""
    try:
        with transaction.atomic():  # savepoint: a refused fill leaves no partial writes behind
            if order.status == Order.Status.PENDING:
                order.triggered_at = timezone.now()
                order.save(update_fields=["triggered_at"])
                order_activate(portfolio=portfolio, order=order, live=live, context=context, arriving=False)
            else:
                order_fill(
                    portfolio=portfolio,
                    order=order,
                    price=_limit(order),
                    is_maker=True,
                    fee_rate=context.settings.maker_fee_rate,
                    brackets=context.brackets,
                    marks={order.symbol: live},
                )
    except DomainError as exc:
        logger.info("Order %s refused when the price reached it: %s", order.pk, exc.code)
        portfolio.refresh_from_db()
        order.refresh_from_db()
        if order.status == Order.Status.PENDING:
            order.triggered_at = timezone.now()
        order_close(portfolio=portfolio, order=order, status=Order.Status.REJECTED, reason=exc.code)
    return str(order.status)


# --- cancel and close ---------------------------------------------------------------------------


@transaction.atomic
def order_cancel(*, order: Order, actor: str = "user") -> Order:
    """Cancel a resting (open or pending) order and release what it reserved."""
    portfolio = Portfolio.objects.select_for_update().get(pk=order.portfolio_id)
    portfolio_owned_here(portfolio)
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status not in RESTING_ORDER_STATUSES:
        raise OrderNotCancellable(
            f"The order is {order.status}; only resting orders can be cancelled.", status=order.status
        )
    order_close(portfolio=portfolio, order=order, status=Order.Status.CANCELLED)
    logger.info("Order %s cancelled by %s", order.pk, actor)
    return order


@transaction.atomic
def position_close(*, position: Position, placed_by: str = "user") -> Order:
    """Close an open position with a reduce-only market order for its whole quantity."""
    portfolio = Portfolio.objects.select_for_update().get(pk=position.portfolio_id)
    portfolio_owned_here(portfolio)
    position = Position.objects.select_for_update().get(pk=position.pk)
    if position.status != Position.Status.OPEN:
        raise PositionNotOpen(f"The position is {position.status}.", status=position.status)
    return order_place(
        portfolio=portfolio,
        symbol=position.symbol,
        side=Side.SELL if position.side == "long" else Side.BUY,
        type=Order.Type.MARKET,
        quantity=position.quantity.normalize(),
        reduce_only=True,
        placed_by=placed_by,
    )
