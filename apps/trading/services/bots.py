"""Bots: the four personas as Strategy rows, each with its own (inactive) user and portfolio, run on
a schedule and trading only through the order service, exactly as a user does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from apps.markets.models import AGGREGATE_SOURCE
from apps.markets.selectors_candles import bars_select
from apps.moderation.engine import username_skeleton
from apps.sync.models import current_node_id
from apps.trading.engine.personas import (
    CancelOrder,
    ClosePosition,
    Holding,
    Intent,
    Market,
    ParametersInvalid,
    PlaceOrder,
    Predict,
    RestingOrder,
    Situation,
    decide,
)
from apps.trading.models import Order, Portfolio, Position, Strategy
from apps.trading.selectors import RESTING_ORDER_STATUSES, instrument_get, mark_price
from apps.trading.services.accounts import account_summary
from apps.trading.services.orders import order_cancel, order_place, position_close
from apps.trading.services.portfolios import portfolio_create
from apps.trading.services.predictions import prediction_record
from apps.trading.services.profiles import UsernameSkeletonTaken, profile_ensure, profile_username_set
from haunt.errors import HauntError

logger = logging.getLogger(__name__)

PERSONAS_FILE = Path(__file__).resolve().parent.parent / "seed" / "bots" / "personas.json"
BOT_PORTFOLIO_NAME = "Bot"
# Closed 1m candles a persona sees: the live store keeps the newest 500, and no persona's
# lookback is longer than a few hours.
HISTORY_MINUTES = 500
LAST_ERROR_MAX = 255


# --- Seeding ---------------------------------------------------------------------------------


def bot_definitions(path: Path = PERSONAS_FILE) -> list[dict[str, Any]]:
    """The bots to create, from the seed file."""
    bots: list[dict[str, Any]] = json.loads(path.read_text())["bots"]
    return bots


def bots_ensure(*, definitions: list[dict[str, Any]] | None = None) -> list[Strategy]:
    """Create each missing bot: an inactive user with an unusable password, its profile with a
    readable name, a portfolio and the Strategy row. Returns the strategies created.

    Create-only and idempotent: a bot whose strategy exists is left as the admin has it. Two
    concurrent runs are safe: the unique strategy name and user name make the loser skip.
    """
    created = []
    for definition in definitions if definitions is not None else bot_definitions():
        if Strategy.objects.filter(name=definition["name"]).exists():
            continue
        try:
            strategy = _bot_create(definition)
        except IntegrityError:
            logger.info("Bot %s was created concurrently", definition["name"])
            continue
        if strategy is not None:
            created.append(strategy)
    return created


@transaction.atomic
def _bot_create(definition: dict[str, Any]) -> Strategy | None:
    name = definition["name"]
    user, made = User.objects.get_or_create(username=f"bot_{name}", defaults={"is_active": False})
    if made:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif user.is_active or user.has_usable_password():
        # Someone signed up with the bot's login name: never turn a person's account into a bot.
        logger.error("Bot %s not created: user %s exists and is not a bot", name, user.username)
        return None
    profile_ensure(user=user)
    display_name = definition["username"]
    try:
        profile_username_set(user=user, display_name=display_name, skeleton=username_skeleton(display_name))
    except UsernameSkeletonTaken:
        logger.warning("Bot %s keeps the name %s: %r is taken", name, user.username, display_name)
    portfolio = Portfolio.objects.filter(user=user, name=BOT_PORTFOLIO_NAME).first()
    if portfolio is None:
        portfolio = portfolio_create(
            user=user, name=BOT_PORTFOLIO_NAME, margin_mode=definition.get("margin_mode", "cross")
        )
    strategy = Strategy(
        name=name,
        persona=definition["persona"],
        portfolio=portfolio,
        parameters=definition["parameters"],
        symbols=definition["symbols"],
        interval_seconds=definition["interval_seconds"],
        enabled=definition.get("enabled", True),
    )
    strategy.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        strategy.save(force_insert=True)
    return strategy


# --- Running ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StrategyRun:
    strategy: Strategy
    intents: int
    errors: list[str]


def strategy_due(strategy: Strategy, *, now: datetime) -> bool:
    if not strategy.enabled:
        return False
    if strategy.last_run_at is None:
        return True
    return strategy.last_run_at + timedelta(seconds=strategy.interval_seconds) <= now


def bots_run_due(*, now: datetime) -> int:
    """Run every enabled strategy whose interval has passed since its last run; returns how many ran.

    Each strategy runs in its own transaction holding its row lock (skip-locked: a strategy another
    worker is running is skipped, and re-checked as due under the lock). Errors are recorded in
    Strategy.last_error, never raised: one bot's failure does not stop the others. A node runs
    only the bots whose portfolio it owns, so a mesh of nodes never runs one bot twice.
    """
    mine = Strategy.objects.filter(enabled=True, portfolio__home_node=current_node_id())
    candidates = [s.pk for s in mine if strategy_due(s, now=now)]
    ran = 0
    for pk in candidates:
        ran += strategy_run(strategy_id=pk, now=now) is not None
    return ran


@transaction.atomic
def strategy_run(*, strategy_id: Any, now: datetime, force: bool = False) -> StrategyRun | None:
    """Run one strategy now if it is due (or `force`); None when it is not due or locked elsewhere."""
    strategy = (
        Strategy.objects.select_for_update(skip_locked=True)
        .select_related("portfolio")
        .filter(pk=strategy_id)
        .first()
    )
    if strategy is None or not (force or strategy_due(strategy, now=now)):
        return None
    intents, errors = 0, list[str]()
    try:
        with transaction.atomic():  # a failure below leaves this transaction usable
            intents, errors = _strategy_execute(strategy, now=now)
    except (HauntError, ParametersInvalid) as exc:
        errors = [_describe(exc)]
    except Exception as exc:  # a bug in one bot must not stop the batch; it is logged in full
        logger.exception("Bot %s failed", strategy.name)
        errors = [f"internal error: {type(exc).__name__}"]
    strategy.last_run_at = now
    strategy.last_error = "; ".join(errors)[:LAST_ERROR_MAX]
    strategy.save(update_fields=["last_run_at", "last_error"])
    if errors:
        logger.info("Bot %s: %s", strategy.name, strategy.last_error)
    return StrategyRun(strategy=strategy, intents=intents, errors=errors)


def _strategy_execute(strategy: Strategy, *, now: datetime) -> tuple[int, list[str]]:
    portfolio = strategy.portfolio
    cash = account_summary(portfolio=portfolio).free_margin
    executed, errors = 0, list[str]()
    for symbol in strategy.symbols:
        try:
            situation = _situation(portfolio=portfolio, symbol=symbol, cash=cash, now=now)
        except HauntError as exc:
            errors.append(f"{symbol}: {_describe(exc)}")
            continue
        for index, intent in enumerate(decide(strategy.persona, situation, strategy.parameters)):
            try:
                with transaction.atomic():
                    _intent_execute(strategy, intent, now=now, index=index)
                executed += 1
            except HauntError as exc:
                errors.append(f"{symbol}: {_describe(exc)}")
        # The next symbol decides on what is left.
        cash = account_summary(portfolio=portfolio).free_margin
    return executed, errors


def _situation(*, portfolio: Portfolio, symbol: str, cash: Any, now: datetime) -> Situation:
    instrument = instrument_get(symbol)
    price = mark_price(instrument.symbol)
    now_ms = int(now.timestamp() * 1000)
    bars = bars_select(
        source=AGGREGATE_SOURCE,
        symbol=instrument.symbol,
        interval="1m",
        start_ms=None,
        end_ms=now_ms,
        limit=HISTORY_MINUTES,
        newest=True,
        now_ms=now_ms,
    )
    market = Market(
        symbol=instrument.symbol,
        price=price,
        closes=tuple(bar.close for bar in bars),
        price_decimals=instrument.price_decimals,
        quantity_decimals=instrument.quantity_decimals,
        min_quantity=instrument.min_quantity,
    )
    position = Position.objects.filter(
        portfolio=portfolio, symbol=instrument.symbol, status=Position.Status.OPEN
    ).first()
    holding = (
        Holding(
            side=position.side,
            quantity=position.quantity,
            entry_price=position.entry_price,
            leverage=position.leverage,
        )
        if position is not None
        else None
    )
    orders = [
        RestingOrder(
            id=str(order.pk),
            side=order.side,
            price=order.price,
            quantity=order.quantity,
            reduce_only=order.reduce_only,
            created_at=order.created_at,
        )
        for order in Order.objects.filter(
            portfolio=portfolio, symbol=instrument.symbol, status__in=RESTING_ORDER_STATUSES
        )
    ]
    return Situation(market=market, holding=holding, orders=orders, cash=cash, now=now)


def placed_by(strategy: Strategy) -> str:
    return f"bot:{strategy.name}"


def _intent_execute(strategy: Strategy, intent: Intent, *, now: datetime, index: int) -> None:
    portfolio, actor = strategy.portfolio, placed_by(strategy)
    if isinstance(intent, Predict):
        prediction_record(
            strategy=strategy,
            symbol=intent.symbol,
            direction=intent.direction,
            confidence=intent.confidence,
            horizon_seconds=intent.horizon_seconds,
            price=intent.price,
            target_price=intent.target_price,
            now=now,
        )
    elif isinstance(intent, PlaceOrder):
        order_place(
            portfolio=portfolio,
            symbol=intent.symbol,
            side=intent.side,
            type=intent.type,
            quantity=intent.quantity,
            price=intent.price,
            reduce_only=intent.reduce_only,
            leverage=intent.leverage,
            margin_mode=intent.margin_mode,
            # One id per (bot, run, intent): a retried run places nothing twice.
            client_order_id=f"bot-{strategy.pk.hex[:12]}-{int(now.timestamp())}-{index}-{intent.symbol[:16]}",
            placed_by=actor,
        )
    elif isinstance(intent, ClosePosition):
        position = Position.objects.filter(
            portfolio=portfolio, symbol=intent.symbol, status=Position.Status.OPEN
        ).first()
        if position is not None:
            position_close(position=position, placed_by=actor)
    elif isinstance(intent, CancelOrder):
        order = Order.objects.filter(
            portfolio=portfolio, pk=intent.order_id, status__in=RESTING_ORDER_STATUSES
        ).first()
        if order is not None:
            order_cancel(order=order, actor=actor)


def _describe(exc: Exception) -> str:
    if isinstance(exc, HauntError):
        return f"{exc.code}: {exc.message}"
    return f"invalid parameters: {exc}"
