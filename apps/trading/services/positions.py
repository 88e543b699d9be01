"""Isolated margin adjustments and modify-leverage on open positions.

Locking order, as everywhere in the engine: the portfolio row, then the position row.
Research notes: ../shared/research/trading.md §1.4, §1.5 and §1.11 (the leverage steps, in order).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.markets import candles as ohlc
from apps.markets.models import AGGREGATE_SOURCE
from apps.markets.selectors_candles import candles_between, live_tail
from apps.trading import events
from apps.trading.engine import margin
from apps.trading.engine.margin import Bracket
from apps.trading.exceptions import (
    InsufficientFunds,
    InsufficientMargin,
    InvalidLeverage,
    InvalidMarginAmount,
    IsolatedLeverageReduction,
    LeverageCooldown,
    MarginNotIsolated,
    MaxLeverageRatio,
    MaxRemovableExceeded,
    NotFound,
    PositionNotOpen,
    PriceUnavailable,
    VolatilityGuard,
    WouldLiquidate,
)
from apps.trading.models import (
    EngineSettings,
    Instrument,
    LeverageChange,
    MarginHistory,
    MarginMode,
    Portfolio,
    Position,
)
from apps.trading.selectors import (
    brackets_of,
    engine_settings,
    mark_price,
    mark_prices,
    portfolio_owned_here,
)
from apps.trading.services.fills import position_data
from apps.trading.services.risk import (
    ZERO,
    CrossContext,
    PositionRisk,
    cross_context_for,
    portfolio_available_cash,
    portfolio_reserved_margin,
    position_risk,
    positions_refresh_liquidation_prices,
    stored,
)
from haunt.errors import HauntError

logger = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _lock(position_id: Any) -> tuple[Portfolio, Position]:
    """Lock the position's portfolio, then the position (NotFound when it does not exist)."""
    portfolio_id = Position.objects.filter(pk=position_id).values_list("portfolio_id", flat=True).first()
    if portfolio_id is None:
        raise NotFound("No such position.", position_id=str(position_id))
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio_id)
    position = Position.objects.select_for_update().get(pk=position_id)
    return portfolio, position


def _valid_amount(amount: Decimal) -> bool:
    exponent = amount.as_tuple().exponent
    return amount.is_finite() and amount != 0 and isinstance(exponent, int) and exponent >= -12


def _publish_position(portfolio: Portfolio, position: Position) -> None:
    events.account_event_publish(
        user_id=portfolio.user_id, event_type=events.POSITION, data=position_data(position)
    )


# --- isolated margin -------------------------------------------------------------------------


@transaction.atomic
def position_margin_adjust(*, position: Position, amount: Decimal, actor: str) -> Position:
    """Add (amount > 0) or remove (amount < 0) isolated margin (Binance positionMargin).

    Only isolated positions (MarginNotIsolated); a zero amount is refused; a removal is capped by
    the max-removable amount at the live mark (MaxRemovableExceeded), an addition by the
    available cash (InsufficientFunds). The liquidation price is recomputed.
    """
    portfolio, position = _lock(position.pk)
    portfolio_owned_here(portfolio)
    if position.status != Position.Status.OPEN:
        raise PositionNotOpen("The position is not open.", status=position.status)
    if position.margin_mode != MarginMode.ISOLATED:
        raise MarginNotIsolated("Margin can be added or removed only on isolated positions.")
    if not _valid_amount(amount):
        raise InvalidMarginAmount("The amount must be non-zero with at most 12 decimals.")
    if amount > 0:
        available = portfolio_available_cash(portfolio=portfolio)
        if amount > available:
            raise InsufficientFunds("Not enough available cash to add this margin.", available=str(available))
        delta_type = MarginHistory.DeltaType.ADD
    else:
        risk = position_risk(position, mark=mark_price(position.symbol))
        if -amount > risk.max_removable:
            raise MaxRemovableExceeded(
                "This would remove more margin than the position can spare.",
                max_removable=str(risk.max_removable),
            )
        delta_type = MarginHistory.DeltaType.REMOVE

    position.isolated_margin += amount
    position.save(update_fields=["isolated_margin"])
    portfolio.cash -= amount
    portfolio.save(update_fields=["cash"])
    positions_refresh_liquidation_prices(portfolio=portfolio)
    position.refresh_from_db(fields=["liquidation_price"])
    MarginHistory.objects.create(
        position=position,
        portfolio=portfolio,
        delta_type=delta_type,
        amount=amount,
        margin_after=position.isolated_margin,
        leverage=position.leverage,
    )
    logger.info("Margin %s %s on position %s by %s", delta_type, amount, position.pk, actor)
    _publish_position(portfolio, position)
    return position


# --- modify leverage ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeverageChangeResult:
    position: Position
    changed: bool
    audit: LeverageChange
    max_notional: Decimal  # maxNotional(leverage): the largest notional the leverage allows


@dataclass
class _Audit:
    """The audit row being assembled while the steps run (written even when one refuses)."""

    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return "position" in self.fields

    def write(self, *, outcome: str, error_code: str = "", **more: Any) -> LeverageChange:
        return LeverageChange.objects.create(
            **{**self.fields, **more}, outcome=outcome, error_code=error_code
        )


def _requested_int(value: object) -> int:
    """The requested leverage as an int for the audit column (0 when it is not a number)."""
    try:
        number = int(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        return 0
    return max(-INT32_MAX, min(INT32_MAX, number))


def _parse_leverage(value: object) -> int | None:
    """An integer leverage (int, integral Decimal, or a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def leverage_limit(*, instrument: Instrument, table: list[Bracket], settings: EngineSettings) -> int:
    """min(symbol max, bracket table max, per-user cap)."""
    table_max = max((b.initial_leverage for b in table), default=1)
    return min(instrument.max_leverage, table_max, settings.user_max_leverage)


def recent_move(*, symbol: str, mark: Decimal, window_seconds: int) -> Decimal | None:
    """|mark / price at the window's start - 1|, from the markets app's 1m candles (live store,
    then the database); None when no candle covers the window."""
    now_ms = int(time.time() * 1000)
    start_ms = now_ms - window_seconds * 1000
    first_minute = start_ms - start_ms % ohlc.MINUTE_MS
    minutes = {
        bar.open_time: bar
        for bar in live_tail(symbol=symbol, start_ms=first_minute, end_ms=now_ms + 1).all_minutes()
    }
    if not minutes or min(minutes) > first_minute:
        stored_bars = candles_between(
            source=AGGREGATE_SOURCE, symbol=symbol, interval="1m", start_ms=first_minute, end_ms=now_ms + 1
        )
        minutes = {**{bar.open_time: bar for bar in stored_bars}, **minutes}
    in_window = [bar for open_time, bar in minutes.items() if open_time >= first_minute]
    if not in_window:
        return None
    reference = min(in_window, key=lambda bar: bar.open_time).open
    if reference <= 0:
        return None
    return abs(mark / reference - 1)


def _cooldown_left(position: Position, settings: EngineSettings) -> int:
    if position.leverage_changed_at is None or settings.leverage_cooldown_seconds == 0:
        return 0
    elapsed = (timezone.now() - position.leverage_changed_at).total_seconds()
    left = settings.leverage_cooldown_seconds - elapsed
    return max(0, math.ceil(left))


def _cross_margin_check(
    *, portfolio: Portfolio, position: Position, leverage: int, marks: dict[str, Decimal]
) -> None:
    """Σ IM of the cross positions with this one at the new leverage must fit in the margin
    balance (cash + Σ cross UPnL) minus the margin reserved by resting orders (Binance -2028)."""
    cross = list(
        Position.objects.filter(
            portfolio_id=portfolio.pk, status=Position.Status.OPEN, margin_mode=MarginMode.CROSS
        )
    )
    missing = sorted({p.symbol for p in cross} - set(marks))
    marks = {**mark_prices(missing), **marks} if missing else marks
    required = ZERO
    upnl = ZERO
    for other in cross:
        mark = marks.get(other.symbol, other.entry_price)
        other_leverage = leverage if other.pk == position.pk else other.leverage
        required += margin.initial_margin(other.quantity * mark, other_leverage)
        upnl += margin.unrealized_pnl(other.side, other.quantity, other.entry_price, mark)
    room = portfolio.cash + upnl - portfolio_reserved_margin(portfolio=portfolio)
    if required > room:
        raise InsufficientMargin(
            "Leverage is smaller than permitted: insufficient margin balance.",
            required=str(required),
            available=str(room),
        )


def _isolated_margin_delta(
    *,
    portfolio: Portfolio,
    position: Position,
    leverage: int,
    mark: Decimal,
    table: list[Bracket],
    marks: dict[str, Decimal],
) -> Decimal:
    """Reset policy: margin becomes Q·EP/L. A raise releases at most the max-removable amount
    at the new leverage; a cut needs available cash for the extra margin."""
    delta = position.quantity * position.entry_price / Decimal(leverage) - position.isolated_margin
    if delta > 0:
        available = portfolio_available_cash(portfolio=portfolio, marks=marks)
        if delta > available:
            raise InsufficientMargin(
                "Not enough available cash for the margin this leverage needs.",
                required=str(delta),
                available=str(available),
            )
    elif delta < 0:
        removable = margin.max_removable_margin(
            side=position.side,
            quantity=position.quantity,
            entry=position.entry_price,
            mark=mark,
            wallet=position.isolated_margin,
            leverage=leverage,
            brackets=table,
        )
        delta = -min(-delta, removable)
    return delta


def position_leverage_change(
    *, position: Position, leverage: object, actor: str, idempotency_key: str = ""
) -> LeverageChangeResult:
    """Change an open position's leverage (PUT /api/trading/positions/{id}/leverage).

    The steps of research §1.11, in order: lock, validate, no-op, cooldown, volatility guard,
    bracket cap, strict-policy rule, margin delta, maintenance check, then one atomic write.
    Every request is audited (LeverageChange); a refusal's audit row is written after its
    transaction has rolled back, and the error is raised. Idempotent per idempotency_key: a
    retry of an applied or unchanged request returns the first result.
    """
    audit = _Audit()
    try:
        with transaction.atomic():
            return _leverage_change(
                position_id=position.pk, requested=leverage, actor=actor, key=idempotency_key, audit=audit
            )
    except HauntError as exc:
        if audit.ready:
            with transaction.atomic():
                audit.write(outcome=LeverageChange.Outcome.REJECTED, error_code=exc.code)
        raise


def _leverage_change(
    *, position_id: Any, requested: object, actor: str, key: str, audit: _Audit
) -> LeverageChangeResult:
    # 1. Resolve and lock.
    portfolio, position = _lock(position_id)
    settings = engine_settings()
    old = position.leverage
    audit.fields.update(
        position=position,
        portfolio=portfolio,
        actor=actor[:128],
        old_leverage=old,
        requested_leverage=_requested_int(requested),
        new_leverage=old,
        margin_mode=position.margin_mode,
        policy=settings.leverage_policy,
        idempotency_key=key[:64],
        liquidation_price_before=position.liquidation_price,
    )
    portfolio_owned_here(portfolio)  # after the audit fields: the refusal is audited
    if position.status != Position.Status.OPEN:
        raise PositionNotOpen("The position is not open.", status=position.status)
    if key:
        previous = (
            LeverageChange.objects.filter(position=position, idempotency_key=key[:64])
            .exclude(outcome=LeverageChange.Outcome.REJECTED)
            .first()
        )
        if previous is not None:
            table = brackets_of(position.symbol)
            audit.fields.clear()  # nothing new to audit: this is the same request again
            return LeverageChangeResult(
                position=position,
                changed=previous.outcome == LeverageChange.Outcome.APPLIED,
                audit=previous,
                max_notional=margin.max_notional_for_leverage(table, position.leverage),
            )

    table = brackets_of(position.symbol)
    instrument = Instrument.objects.get(symbol=position.symbol)
    marks = mark_prices([position.symbol])
    mark = marks.get(position.symbol)
    context: CrossContext | None = None
    before: PositionRisk | None = None
    if mark is not None:
        if position.margin_mode == MarginMode.CROSS:
            context = cross_context_for(position, marks=marks, tables={position.symbol: table})
        before = position_risk(position, mark=mark, cross_context=context, brackets=table)
        audit.fields.update(
            mark_price=mark,
            initial_margin_before=before.initial_margin,
            maintenance_margin_before=before.maintenance_margin,
        )

    # 2. Validate 1 <= L <= limit.
    limit = leverage_limit(instrument=instrument, table=table, settings=settings)
    new = _parse_leverage(requested)
    if new is None or not 1 <= new <= limit:
        raise InvalidLeverage(
            f"Leverage {requested} is not valid.", leverage=str(requested), max_leverage=limit
        )

    # 3. No change: 200, audited.
    if new == old:
        row = audit.write(
            outcome=LeverageChange.Outcome.UNCHANGED,
            initial_margin_after=audit.fields.get("initial_margin_before"),
            maintenance_margin_after=audit.fields.get("maintenance_margin_before"),
            liquidation_price_after=position.liquidation_price,
        )
        audit.fields.clear()
        return LeverageChangeResult(
            position=position,
            changed=False,
            audit=row,
            max_notional=margin.max_notional_for_leverage(table, old),
        )

    # 4. Cooldown per position.
    left = _cooldown_left(position, settings)
    if left > 0:
        raise LeverageCooldown(
            f"Leverage of this position was changed recently; retry in {left} s.", retry_after=left
        )

    if mark is None or before is None:
        raise PriceUnavailable(
            f"No fresh price for {position.symbol!r}; try again shortly.", symbol=position.symbol
        )

    # 5. Volatility guard (raises only).
    if settings.volatility_guard_enabled and new > old:
        move = recent_move(
            symbol=position.symbol, mark=mark, window_seconds=settings.volatility_window_seconds
        )
        if move is not None and move > settings.volatility_max_move:
            raise VolatilityGuard(
                "The market moves too fast to raise leverage now.",
                move=str(move),
                max_move=str(settings.volatility_max_move),
                window_seconds=settings.volatility_window_seconds,
            )

    # 6. Bracket cap: the notional at mark must fit maxNotional(L).
    max_notional = margin.max_notional_for_leverage(table, new)
    if before.notional > max_notional:
        raise MaxLeverageRatio(
            "Exceeded the maximum allowable position at current leverage.",
            notional=str(before.notional),
            max_notional=str(max_notional),
        )

    # 7. Strict Binance profile: no reduction on an open isolated position (-4161).
    isolated = position.margin_mode == MarginMode.ISOLATED
    if settings.leverage_policy == EngineSettings.LeveragePolicy.BINANCE_STRICT and isolated and new < old:
        raise IsolatedLeverageReduction(
            "Leverage reduction is not supported in Isolated Margin Mode with open positions."
        )

    # 8. Margin delta.
    if isolated:
        delta = _isolated_margin_delta(
            portfolio=portfolio, position=position, leverage=new, mark=mark, table=table, marks=marks
        )
    else:
        _cross_margin_check(portfolio=portfolio, position=position, leverage=new, marks=marks)
        delta = ZERO

    # 9. Maintenance check on the position as it would be.
    after = position_risk(
        replace_position(position, leverage=new, isolated_margin=position.isolated_margin + delta),
        mark=mark,
        cross_context=context,
        brackets=table,
    )
    audit.fields.update(
        margin_delta=delta,
        initial_margin_after=after.initial_margin,
        maintenance_margin_after=after.maintenance_margin,
        liquidation_price_after=stored(after.liquidation_price),
    )
    if after.margin_ratio is None or after.margin_ratio >= settings.maintenance_buffer:
        raise WouldLiquidate(
            "This leverage would trigger immediate liquidation.",
            margin_ratio=_text(after.margin_ratio),
            max_margin_ratio=str(settings.maintenance_buffer),
        )

    # 10. One atomic write.
    position.leverage = new
    position.isolated_margin += delta
    position.leverage_changed_at = timezone.now()
    position.save(update_fields=["leverage", "isolated_margin", "leverage_changed_at"])
    if delta:
        portfolio.cash -= delta
        portfolio.save(update_fields=["cash"])
    positions_refresh_liquidation_prices(portfolio=portfolio)
    position.refresh_from_db(fields=["liquidation_price"])
    # Cross positions keep no margin of their own: their row records the change of IM at mark.
    history_amount = delta if isolated else after.initial_margin - before.initial_margin
    MarginHistory.objects.create(
        position=position,
        portfolio=portfolio,
        delta_type=MarginHistory.DeltaType.LEVERAGE_CHANGE,
        amount=history_amount,
        margin_after=position.isolated_margin if isolated else after.initial_margin,
        leverage=new,
    )
    row = audit.write(
        outcome=LeverageChange.Outcome.APPLIED,
        new_leverage=new,
        liquidation_price_after=position.liquidation_price,
    )
    audit.fields.clear()
    events.account_event_publish(
        user_id=portfolio.user_id,
        event_type=events.ACCOUNT_CONFIG,
        data={
            "positionId": str(position.pk),
            "symbol": position.symbol,
            "leverage": new,
            "maxNotional": str(max_notional),
        },
    )
    _publish_position(portfolio, position)
    return LeverageChangeResult(position=position, changed=True, audit=row, max_notional=max_notional)


def replace_position(position: Position, **changes: Any) -> Position:
    """An unsaved copy of a position with some fields changed (for what-if risk figures)."""
    copy = Position(**{f.attname: getattr(position, f.attname) for f in Position._meta.concrete_fields})
    for name, value in changes.items():
        setattr(copy, name, value)
    return copy
