"""The bot personas' decisions: pure functions of recent prices, the bot's position, its resting
orders and its free cash, returning intents that services.bots executes through the order service.

Every figure a persona uses comes from its Strategy.parameters (seeded from
apps/trading/seed/bots/personas.json, edited in the admin); a missing or malformed parameter is
ParametersInvalid, which the runner records as the strategy's last error.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


class ParametersInvalid(ValueError):
    """A strategy's parameters lack a value or hold one of the wrong kind."""


# --- What a persona sees ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Market:
    """One symbol: its live mark, the closes of recent 1m candles (oldest first) and its precision."""

    symbol: str
    price: Decimal
    closes: Sequence[Decimal]
    price_decimals: int
    quantity_decimals: int
    min_quantity: Decimal


@dataclass(frozen=True, slots=True)
class Holding:
    """The bot's open position on the symbol (one-way: long or short, unsigned quantity)."""

    side: str
    quantity: Decimal
    entry_price: Decimal
    leverage: int


@dataclass(frozen=True, slots=True)
class RestingOrder:
    id: str
    side: str
    price: Decimal | None
    quantity: Decimal
    reduce_only: bool
    created_at: datetime


# --- What a persona asks for -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    symbol: str
    side: str  # buy / sell
    type: str  # market / limit
    quantity: Decimal
    price: Decimal | None = None
    leverage: int | None = None
    margin_mode: str | None = None
    reduce_only: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ClosePosition:
    symbol: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CancelOrder:
    order_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Predict:
    symbol: str
    direction: str  # up / down
    confidence: Decimal
    horizon_seconds: int
    price: Decimal
    target_price: Decimal | None = None


Intent = PlaceOrder | ClosePosition | CancelOrder | Predict


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything a persona decides on."""

    market: Market
    holding: Holding | None
    orders: Sequence[RestingOrder] = field(default_factory=tuple)
    cash: Decimal = ZERO  # free cash for new orders
    now: datetime | None = None


# --- Parameters ------------------------------------------------------------------------------


class Params:
    """Typed reads of a strategy's JSON parameters (numbers may be JSON numbers or strings)."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def _get(self, name: str) -> Any:
        if name not in self.raw:
            raise ParametersInvalid(f"missing parameter {name!r}")
        return self.raw[name]

    def decimal(self, name: str, *, positive: bool = True) -> Decimal:
        value = self._get(name)
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ParametersInvalid(f"parameter {name!r} is not a number: {value!r}") from None
        if not number.is_finite() or (positive and number <= 0):
            raise ParametersInvalid(f"parameter {name!r} must be a positive number, not {value!r}")
        return number

    def fraction(self, name: str) -> Decimal:
        number = self.decimal(name)
        if number > 1:
            raise ParametersInvalid(f"parameter {name!r} must be at most 1, not {number}")
        return number

    def integer(self, name: str, *, minimum: int = 1) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ParametersInvalid(f"parameter {name!r} must be an integer >= {minimum}, not {value!r}")
        return value

    def text(self, name: str, *, choices: Sequence[str]) -> str:
        value = self._get(name)
        if value not in choices:
            raise ParametersInvalid(f"parameter {name!r} must be one of {list(choices)}, not {value!r}")
        return str(value)


# --- Helpers ---------------------------------------------------------------------------------


def quantity_for(market: Market, notional: Decimal) -> Decimal:
    """The largest quantity within the notional at the market price, rounded down to the lot; 0
    below the minimum quantity."""
    if notional <= 0:
        return ZERO
    quantity = (notional / market.price).quantize(ONE.scaleb(-market.quantity_decimals), ROUND_FLOOR)
    return quantity if quantity >= market.min_quantity else ZERO


def lot_floor(market: Market, quantity: Decimal) -> Decimal:
    return quantity.quantize(ONE.scaleb(-market.quantity_decimals), ROUND_FLOOR)


def tick(market: Market, price: Decimal, *, up: bool) -> Decimal:
    """A price on the instrument's tick, rounded away from the market (a bid down, an ask up)."""
    return price.quantize(ONE.scaleb(-market.price_decimals), ROUND_CEILING if up else ROUND_FLOOR)


def window(closes: Sequence[Decimal], minutes: int) -> Sequence[Decimal]:
    return closes[-minutes:]


def roe(holding: Holding, price: Decimal) -> Decimal:
    """Return on the position's margin: price move in the position's favour times leverage."""
    move = price / holding.entry_price - 1
    return (move if holding.side == "long" else -move) * holding.leverage


def exit_side(holding: Holding) -> str:
    return "sell" if holding.side == "long" else "buy"


# --- Personas --------------------------------------------------------------------------------


def grandma_decide(situation: Situation, raw: Mapping[str, Any]) -> list[Intent]:
    """Buys a little, unleveraged, after a dip from the recent high; sells a slice once up enough.

    Parameters: lookback_minutes, dip_percent, buy_cash_fraction, max_exposure_fraction,
    take_profit_percent, take_profit_fraction.
    """
    params = Params(raw)
    lookback = params.integer("lookback_minutes", minimum=2)
    dip = params.decimal("dip_percent") / HUNDRED
    buy_fraction = params.fraction("buy_cash_fraction")
    max_exposure = params.fraction("max_exposure_fraction")
    take_profit = params.decimal("take_profit_percent") / HUNDRED
    take_fraction = params.fraction("take_profit_fraction")
    market, holding = situation.market, situation.holding
    if holding is not None and holding.side == "short":
        return [ClosePosition(market.symbol, reason="grandma never stays short")]
    if holding is not None and market.price >= holding.entry_price * (1 + take_profit):
        quantity = lot_floor(market, holding.quantity * take_fraction)
        if quantity < market.min_quantity or quantity >= holding.quantity:
            return [ClosePosition(market.symbol, reason="take profit")]
        return [
            PlaceOrder(market.symbol, "sell", "market", quantity, reduce_only=True, reason="take some profit")
        ]
    recent = window(market.closes, lookback)
    if len(recent) < 2 or market.price > max(recent) * (1 - dip):
        return []
    exposure = holding.quantity * market.price if holding is not None else ZERO
    if exposure >= max_exposure * (situation.cash + exposure):
        return []
    quantity = quantity_for(market, situation.cash * buy_fraction)
    if quantity <= 0:
        return []
    return [
        PlaceOrder(
            market.symbol, "buy", "market", quantity, leverage=1, margin_mode="cross", reason="buy the dip"
        )
    ]


def crypto_bro_decide(situation: Situation, raw: Mapping[str, Any]) -> list[Intent]:
    """Chases momentum with high leverage: goes with a strong move over the lookback, bails out at
    its stop or target (on margin), or when the move turns against it.

    Parameters: lookback_minutes, momentum_percent, leverage, margin_mode, order_cash_fraction,
    stop_loss_percent, take_profit_percent (the last two on margin, i.e. ROE).
    """
    params = Params(raw)
    lookback = params.integer("lookback_minutes", minimum=2)
    threshold = params.decimal("momentum_percent") / HUNDRED
    leverage = params.integer("leverage")
    margin_mode = params.text("margin_mode", choices=("isolated", "cross"))
    fraction = params.fraction("order_cash_fraction")
    stop_loss = params.decimal("stop_loss_percent") / HUNDRED
    take_profit = params.decimal("take_profit_percent") / HUNDRED
    market, holding = situation.market, situation.holding
    recent = window(market.closes, lookback)
    momentum = market.price / recent[0] - 1 if len(recent) >= 2 else ZERO
    if holding is not None:
        result = roe(holding, market.price)
        against = -momentum if holding.side == "long" else momentum
        if result <= -stop_loss:
            return [ClosePosition(market.symbol, reason="stopped out")]
        if result >= take_profit:
            return [ClosePosition(market.symbol, reason="take profit")]
        if against >= threshold:
            return [ClosePosition(market.symbol, reason="momentum turned")]
        return []
    if abs(momentum) < threshold:
        return []
    quantity = quantity_for(market, situation.cash * fraction * leverage)
    if quantity <= 0:
        return []
    side = "buy" if momentum > 0 else "sell"
    return [
        PlaceOrder(
            market.symbol,
            side,
            "market",
            quantity,
            leverage=leverage,
            margin_mode=margin_mode,
            reason=f"momentum {momentum:+.2%}",
        )
    ]


def quant_signal(closes: Sequence[Decimal], *, fast: int, slow: int) -> tuple[Decimal, Decimal] | None:
    """(z, spread) of a moving-average crossover: z = (MA_fast - MA_slow) / (sd / √fast), where sd is
    the population standard deviation of the slow window's closes (the fast mean's standard error
    under a random walk around the slow mean). None without enough closes or with a flat market."""
    if len(closes) < slow:
        return None
    slow_window = list(closes[-slow:])
    spread = statistics.pstdev(slow_window)
    if spread == 0:
        return None
    difference = statistics.mean(closes[-fast:]) - statistics.mean(slow_window)
    z = difference / (spread / Decimal(fast).sqrt())
    return z, spread


def quant_decide(situation: Situation, raw: Mapping[str, Any]) -> list[Intent]:
    """Predicts the direction over a horizon from a moving-average crossover, with the normal CDF of
    its z-score as confidence, and trades when |z| clears the entry level.

    Parameters: fast_window, slow_window, z_entry, horizon_seconds, leverage, margin_mode,
    order_cash_fraction.
    """
    params = Params(raw)
    fast = params.integer("fast_window")
    slow = params.integer("slow_window", minimum=fast + 1)
    z_entry = params.decimal("z_entry")
    horizon = params.integer("horizon_seconds")
    leverage = params.integer("leverage")
    margin_mode = params.text("margin_mode", choices=("isolated", "cross"))
    fraction = params.fraction("order_cash_fraction")
    market, holding = situation.market, situation.holding
    signal = quant_signal(market.closes, fast=fast, slow=slow)
    if signal is None:
        return []
    z, spread = signal
    if z == 0:
        return []
    direction = "up" if z > 0 else "down"
    confidence = min(
        Decimal(repr(statistics.NormalDist().cdf(float(abs(z))))).quantize(Decimal("0.0001")),
        Decimal("0.9999"),
    )
    target = market.price + spread if direction == "up" else max(market.price - spread, ZERO)
    intents: list[Intent] = [
        Predict(market.symbol, direction, confidence, horizon, market.price, tick(market, target, up=True))
    ]
    wanted = "long" if direction == "up" else "short"
    strong = abs(z) >= z_entry
    if holding is not None and holding.side != wanted:
        intents.append(ClosePosition(market.symbol, reason=f"signal flipped (z={z:.2f})"))
        holding = None
    if holding is None and strong:
        quantity = quantity_for(market, situation.cash * fraction * leverage)
        if quantity > 0:
            intents.append(
                PlaceOrder(
                    market.symbol,
                    "buy" if wanted == "long" else "sell",
                    "market",
                    quantity,
                    leverage=leverage,
                    margin_mode=margin_mode,
                    reason=f"z={z:.2f}",
                )
            )
    return intents


def scalper_decide(situation: Situation, raw: Mapping[str, Any]) -> list[Intent]:
    """Quotes both sides tightly around the price when flat; with a position, rests a reduce-only
    exit a little in profit and cuts the position at its stop. Orders older than their time to live
    are cancelled and re-quoted.

    Parameters: spread_percent, order_cash_fraction, leverage, margin_mode, take_profit_percent,
    stop_loss_percent (on margin), order_ttl_seconds.
    """
    params = Params(raw)
    spread = params.decimal("spread_percent") / HUNDRED
    fraction = params.fraction("order_cash_fraction")
    leverage = params.integer("leverage")
    margin_mode = params.text("margin_mode", choices=("isolated", "cross"))
    take_profit = params.decimal("take_profit_percent") / HUNDRED
    stop_loss = params.decimal("stop_loss_percent") / HUNDRED
    ttl = timedelta(seconds=params.integer("order_ttl_seconds"))
    market, holding, now = situation.market, situation.holding, situation.now
    intents: list[Intent] = []
    live: list[RestingOrder] = []
    for order in situation.orders:
        if now is not None and now - order.created_at >= ttl:
            intents.append(CancelOrder(order.id, reason="stale quote"))
        else:
            live.append(order)
    if holding is not None:
        if roe(holding, market.price) <= -stop_loss:
            cancels = [CancelOrder(o.id, reason="stopped out") for o in live]
            return [*intents, *cancels, ClosePosition(market.symbol, reason="stopped out")]
        side = exit_side(holding)
        if not any(o.side == side and o.reduce_only for o in live):
            up = holding.side == "long"
            target = holding.entry_price * (1 + take_profit if up else 1 - take_profit)
            intents.append(
                PlaceOrder(
                    market.symbol,
                    side,
                    "limit",
                    holding.quantity,
                    price=tick(market, target, up=up),
                    reduce_only=True,
                    reason="take profit",
                )
            )
        return intents
    if live:
        return intents
    quantity = quantity_for(market, situation.cash * fraction * leverage)
    if quantity <= 0:
        return intents
    for side, factor, up in (("buy", 1 - spread, False), ("sell", 1 + spread, True)):
        intents.append(
            PlaceOrder(
                market.symbol,
                side,
                "limit",
                quantity,
                price=tick(market, market.price * factor, up=up),
                leverage=leverage,
                margin_mode=margin_mode,
                reason="quote",
            )
        )
    return intents


DECIDERS: dict[str, Callable[[Situation, Mapping[str, Any]], list[Intent]]] = {
    "grandma": grandma_decide,
    "crypto_bro": crypto_bro_decide,
    "quant": quant_decide,
    "scalper": scalper_decide,
}


def decide(persona: str, situation: Situation, parameters: Mapping[str, Any]) -> list[Intent]:
    """The intents of a persona in this situation (ParametersInvalid for an unknown persona too)."""
    decider = DECIDERS.get(persona)
    if decider is None:
        raise ParametersInvalid(f"unknown persona {persona!r}")
    return decider(situation, parameters)
