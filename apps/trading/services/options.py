"""Options positions: European calls and puts on listed assets, priced by Black-Scholes at the live
spot with the engine's volatility and rate, paid from and settled into the portfolio's cash.

Cash flows (premium and values per unit, quantity q, taker fee rate f):
- open long:   cash -= premium·q + fee, fee = premium·q·f
- open short:  cash += premium·q - fee - collateral; the collateral moves into the option
- close long:  cash += value·q - value·q·f          (value = the model value now)
- close short: cash += collateral - value·q - value·q·f
- settle:      long: cash += intrinsic·q; short: cash += collateral - intrinsic·q (no fee)

Premiums and close values are the model value rounded to the instrument's price tick
(price_decimals, half-even), as an exchange quotes them; marking (option_mark_value) is unrounded.

Collateral of a written option: a call holds spot·q (the price of the units it may have to
deliver, valued at opening), a put holds strike·q (cash-secured: the most it can pay). The premium
received counts towards it. A written call can lose more than its collateral if the price runs
away; at settlement the writer then pays at most collateral plus cash, the paper counterparty
absorbs the rest, so a wallet never goes negative.

Lock order everywhere: the option row, then its portfolio (opening locks only the portfolio).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from apps.trading import events
from apps.trading.amounts import money
from apps.trading.engine.options import (
    Greeks,
    black_scholes_greeks,
    black_scholes_price,
    intrinsic_value,
    years_between,
)
from apps.trading.exceptions import (
    InsufficientFunds,
    InvalidExpiry,
    InvalidOrder,
    InvalidPrice,
    InvalidQuantity,
    OptionNotOpen,
    PriceUnavailable,
    UnknownSymbol,
)
from apps.trading.models import PLACES, EngineSettings, Instrument, OptionPosition, Portfolio, PositionSide
from apps.trading.selectors import engine_settings, mark_price, owned_here, portfolio_owned_here

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
QUANTUM_DECIMALS = PLACES
MAX_EXPIRY = timedelta(days=365)
# Settlement rows per run: a minute's expiries of a busy node, small enough for short transactions.
SETTLE_BATCH = 500


@dataclass(frozen=True, slots=True)
class OptionQuote:
    underlying: str
    option_type: str
    strike: Decimal
    expiry: datetime
    spot: Decimal
    years: Decimal
    volatility: Decimal
    rate: Decimal
    premium: Decimal  # model value of one unit
    greeks: Greeks


def option_instrument(underlying: str) -> Instrument:
    """The enabled instrument with options listed, or UnknownSymbol."""
    instrument = Instrument.objects.filter(
        symbol=underlying.lower(), enabled=True, options_enabled=True
    ).first()
    if instrument is None:
        raise UnknownSymbol(f"No options are listed on {underlying!r}.", symbol=underlying)
    return instrument


def option_quote(
    *, underlying: str, option_type: str, strike: Decimal, expiry: datetime, now: datetime | None = None
) -> OptionQuote:
    """Premium and greeks of one unit at the live spot (PriceUnavailable without a fresh price)."""
    now = now or timezone.now()
    instrument = option_instrument(underlying)
    _check_contract(instrument=instrument, option_type=option_type, strike=strike, expiry=expiry, now=now)
    settings = engine_settings()
    spot = mark_price(instrument.symbol)
    years = years_between(now, expiry)
    inputs: dict[str, Any] = {
        "spot": spot,
        "strike": strike,
        "years": years,
        "volatility": settings.option_volatility,
        "rate": settings.option_risk_free_rate,
    }
    return OptionQuote(
        underlying=instrument.symbol,
        option_type=option_type,
        strike=strike,
        expiry=expiry,
        spot=spot,
        years=years,
        volatility=settings.option_volatility,
        rate=settings.option_risk_free_rate,
        premium=black_scholes_price(option_type, **inputs),
        greeks=black_scholes_greeks(option_type, **inputs),
    )


@transaction.atomic
def option_open(
    *,
    portfolio: Portfolio,
    underlying: str,
    option_type: str,
    side: str,
    strike: Decimal,
    expiry: datetime,
    quantity: Decimal,
    placed_by: str = "user",
) -> OptionPosition:
    """Buy (long) or write (short) an option at the model premium; see the module for cash flows."""
    portfolio_owned_here(portfolio)  # home_node never changes: refuse before quoting
    if side not in PositionSide.values:
        raise InvalidOrder(f"side must be one of {PositionSide.values}.", side=side)
    now = timezone.now()
    instrument = option_instrument(underlying)
    _check_quantity(instrument=instrument, quantity=quantity)
    quote = option_quote(
        underlying=instrument.symbol, option_type=option_type, strike=strike, expiry=expiry, now=now
    )
    premium = _tick(quote.premium, instrument.price_decimals)
    if premium <= 0:
        raise InvalidOrder("This option is worth nothing at the model price.", premium=str(quote.premium))
    # Every cash movement of this account queues on this lock.
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
    amount = premium * quantity
    fee = money(amount * engine_settings().taker_fee_rate)
    if side == PositionSide.LONG:
        collateral = ZERO
        cash_change = -amount - fee
    else:
        collateral = money(
            (quote.spot if option_type == OptionPosition.OptionType.CALL else strike) * quantity
        )
        cash_change = amount - fee - collateral
    if portfolio.cash + cash_change < 0:
        raise InsufficientFunds(
            "Not enough cash for this option.", cash=str(portfolio.cash), required=str(-cash_change)
        )
    portfolio.cash += cash_change
    portfolio.fees_paid += fee
    portfolio.save(update_fields=["cash", "fees_paid"])
    option = OptionPosition(
        portfolio=portfolio,
        underlying=instrument.symbol,
        option_type=option_type,
        side=side,
        strike=strike,
        expiry=expiry,
        quantity=quantity,
        premium=premium,
        volatility=quote.volatility,
        collateral=collateral,
        opened_at=now,
    )
    option.save()
    _publish(
        option, user_id=portfolio.user_id, action="opened", placed_by=placed_by, spot=quote.spot, fee=fee
    )
    return option


@transaction.atomic
def option_close(*, option: OptionPosition, placed_by: str = "user") -> OptionPosition:
    """Close an open option at its model value now (after expiry: its intrinsic value), paying the
    taker fee on that value."""
    # Portfolio first, then the option: the lock order of every money movement.
    portfolio = Portfolio.objects.select_for_update().get(pk=option.portfolio_id)
    portfolio_owned_here(portfolio)
    option = OptionPosition.objects.select_for_update().get(pk=option.pk)
    if option.status != OptionPosition.Status.OPEN:
        raise OptionNotOpen("This option is no longer open.", status=option.status)
    now = timezone.now()
    spot = mark_price(option.underlying)
    settings = engine_settings()
    unit = black_scholes_price(
        option.option_type,
        spot=spot,
        strike=option.strike,
        years=years_between(now, option.expiry),
        volatility=settings.option_volatility,
        rate=settings.option_risk_free_rate,
    )
    amount = _tick(unit, _price_decimals(option.underlying)) * option.quantity
    fee = money(amount * settings.taker_fee_rate)
    if option.side == PositionSide.LONG:
        cash_change, settlement_amount = amount - fee, amount
    else:
        cash_change, settlement_amount = option.collateral - amount - fee, -amount
    if portfolio.cash + cash_change < 0:
        raise InsufficientFunds(
            "Not enough cash to buy this option back.", cash=str(portfolio.cash), required=str(-cash_change)
        )
    _finish(
        option,
        portfolio,
        status=OptionPosition.Status.CLOSED,
        price=spot,
        settlement_amount=settlement_amount,
        cash_change=cash_change,
        fee=fee,
        now=now,
    )
    _publish(option, user_id=portfolio.user_id, action="closed", placed_by=placed_by, spot=spot, fee=fee)
    return option


def options_settle_expired(*, now: datetime) -> int:
    """Settle every open option of this node's portfolios whose expiry has passed at the
    underlying's live price; returns how many were settled (other nodes settle their own).

    Idempotent and safe with several workers: each option is claimed with a skip-locked row lock
    and settled only while still open, in its own transaction. Options whose underlying has no
    fresh price stay open for the next run.
    """
    ids = list(
        OptionPosition.objects.filter(owned_here(), status=OptionPosition.Status.OPEN, expiry__lte=now)
        .order_by("expiry")
        .values_list("pk", flat=True)[:SETTLE_BATCH]
    )
    prices: dict[str, Decimal] = {}
    settled = 0
    for pk in ids:
        try:
            settled += _option_settle(pk=pk, now=now, prices=prices)
        except PriceUnavailable as exc:
            logger.warning("Option %s not settled: %s", pk, exc.message)
    return settled


@transaction.atomic
def _option_settle(*, pk: Any, now: datetime, prices: dict[str, Decimal]) -> int:
    portfolio_id = OptionPosition.objects.filter(pk=pk).values_list("portfolio_id", flat=True).first()
    if portfolio_id is None:
        return 0
    # Portfolio first (the lock order of every money movement), then claim the option.
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio_id)
    option = (
        OptionPosition.objects.select_for_update(skip_locked=True)
        .filter(pk=pk, status=OptionPosition.Status.OPEN, expiry__lte=now)
        .first()
    )
    if option is None:
        return 0  # settled or being settled by another worker
    if option.underlying not in prices:
        prices[option.underlying] = mark_price(option.underlying)
    spot = prices[option.underlying]
    payoff = money(intrinsic_value(option.option_type, spot, option.strike) * option.quantity)
    if option.side == PositionSide.LONG:
        cash_change, settlement_amount = payoff, payoff
    else:
        paid = min(payoff, option.collateral + portfolio.cash)
        if paid < payoff:
            logger.warning("Writer of option %s short by %s at settlement", option.pk, payoff - paid)
        cash_change, settlement_amount = option.collateral - paid, -paid
    _finish(
        option,
        portfolio,
        status=OptionPosition.Status.SETTLED,
        price=spot,
        settlement_amount=settlement_amount,
        cash_change=cash_change,
        fee=ZERO,
        now=now,
    )
    _publish(option, user_id=portfolio.user_id, action="settled", placed_by="engine", spot=spot, fee=ZERO)
    return 1


def option_mark_value(*, portfolio: Portfolio | None = None, option: OptionPosition | None = None) -> Decimal:
    """Signed model value at live marks (long positive, written negative, quantity included) of one
    option, or of all the open options of a portfolio. Collateral is not included
    (option_collateral). PriceUnavailable when an underlying has no fresh price."""
    if (portfolio is None) == (option is None):
        raise TypeError("Pass exactly one of portfolio= or option=.")
    if option is not None:
        options = [option]
    else:
        options = list(OptionPosition.objects.filter(portfolio=portfolio, status=OptionPosition.Status.OPEN))
    if not options:
        return ZERO
    settings = engine_settings()
    spots = {symbol: mark_price(symbol) for symbol in sorted({o.underlying for o in options})}
    now = timezone.now()
    return sum(
        (option_value(option=o, spot=spots[o.underlying], now=now, settings=settings) for o in options), ZERO
    )


def option_value(
    *, option: OptionPosition, spot: Decimal, now: datetime, settings: EngineSettings | None = None
) -> Decimal:
    """Signed model value of one option position (quantity included) at this spot; after expiry its
    intrinsic value. Not rounded to the price tick."""
    settings = settings or engine_settings()
    if option.status != OptionPosition.Status.OPEN:
        return ZERO
    unit = black_scholes_price(
        option.option_type,
        spot=spot,
        strike=option.strike,
        years=years_between(now, option.expiry),
        volatility=settings.option_volatility,
        rate=settings.option_risk_free_rate,
    )
    sign = 1 if option.side == PositionSide.LONG else -1
    return sign * unit * option.quantity


def option_collateral(*, portfolio: Portfolio) -> Decimal:
    """Cash held against the portfolio's open written options (part of its equity)."""
    total = OptionPosition.objects.filter(portfolio=portfolio, status=OptionPosition.Status.OPEN).aggregate(
        total=Sum("collateral")
    )["total"]
    return total or ZERO


def _finish(
    option: OptionPosition,
    portfolio: Portfolio,
    *,
    status: str,
    price: Decimal,
    settlement_amount: Decimal,
    cash_change: Decimal,
    fee: Decimal,
    now: datetime,
) -> None:
    """Write the end of an option: its cash flow, realized PnL against the premium, and the row."""
    opening = option.premium * option.quantity
    realized = (
        settlement_amount - opening if option.side == PositionSide.LONG else opening + settlement_amount
    )
    portfolio.cash += cash_change
    portfolio.fees_paid += fee
    portfolio.realized_pnl += realized
    portfolio.save(update_fields=["cash", "fees_paid", "realized_pnl"])
    option.status = status
    option.settlement_price = price
    option.settlement_amount = settlement_amount
    option.collateral = ZERO
    option.settled_at = now
    option.save(update_fields=["status", "settlement_price", "settlement_amount", "collateral", "settled_at"])


def _check_contract(
    *, instrument: Instrument, option_type: str, strike: Decimal, expiry: datetime, now: datetime
) -> None:
    if option_type not in OptionPosition.OptionType.values:
        raise InvalidOrder(
            f"type must be one of {OptionPosition.OptionType.values}.", option_type=option_type
        )
    if strike <= 0:
        raise InvalidPrice("The strike must be positive.", strike=str(strike))
    if _decimals(strike) > instrument.price_decimals:
        raise InvalidPrice(
            f"The strike has more than {instrument.price_decimals} decimals.", strike=str(strike)
        )
    if expiry <= now:
        raise InvalidExpiry("The expiry must be in the future.", expiry=expiry.isoformat())
    if expiry > now + MAX_EXPIRY:
        raise InvalidExpiry("Options are listed up to one year out.", expiry=expiry.isoformat())


def _check_quantity(*, instrument: Instrument, quantity: Decimal) -> None:
    if quantity <= 0:
        raise InvalidQuantity("The quantity must be positive.", quantity=str(quantity))
    if _decimals(quantity) > instrument.quantity_decimals:
        raise InvalidQuantity(
            f"The quantity has more than {instrument.quantity_decimals} decimals.", quantity=str(quantity)
        )
    if quantity < instrument.min_quantity:
        raise InvalidQuantity(f"The minimum quantity is {instrument.min_quantity}.", quantity=str(quantity))


def _tick(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)


def _price_decimals(symbol: str) -> int:
    """The underlying's price tick; an option outlives its instrument being delisted."""
    decimals = Instrument.objects.filter(symbol=symbol).values_list("price_decimals", flat=True).first()
    return decimals if decimals is not None else QUANTUM_DECIMALS


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _publish(
    option: OptionPosition, *, user_id: int, action: str, placed_by: str, spot: Decimal, fee: Decimal
) -> None:
    data = option_event_data(option)
    data.update(action=action, placedBy=placed_by, spot=str(spot), fee=str(fee))
    events.account_event_publish(user_id=user_id, event_type=events.OPTION, data=data)


def option_event_data(option: OptionPosition) -> dict[str, Any]:
    """The option as JSON-safe data (Decimals and datetimes as strings)."""

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "id": str(option.pk),
        "portfolioId": str(option.portfolio_id),
        "underlying": option.underlying,
        "type": option.option_type,
        "side": option.side,
        "strike": str(option.strike),
        "expiry": option.expiry.isoformat(),
        "quantity": str(option.quantity),
        "premium": str(option.premium),
        "collateral": str(option.collateral),
        "status": option.status,
        "settlementPrice": text(option.settlement_price),
        "settlementAmount": text(option.settlement_amount),
        "settledAt": option.settled_at.isoformat() if option.settled_at else None,
    }
