"""Modify leverage: every step of research §1.11, each refusal with its code and an audit row."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.markets.models import Candle
from apps.markets.services.store import Candle as LiveCandle
from apps.markets.services.store import price_store
from apps.trading.exceptions import (
    InsufficientMargin,
    InvalidLeverage,
    IsolatedLeverageReduction,
    LeverageCooldown,
    MaxLeverageRatio,
    NotFound,
    PositionNotOpen,
    PriceUnavailable,
    VolatilityGuard,
    WouldLiquidate,
)
from apps.trading.models import LeverageChange, MarginHistory, Portfolio, Position
from apps.trading.services.positions import position_leverage_change
from tests.trading.factories import open_position
from tests.trading.positions import reference as ref

pytestmark = pytest.mark.django_db
D = Decimal
ACTOR = "user:1"


@pytest.fixture
def btc_at_50000(set_price):
    set_price("btc", D(50000))


@pytest.fixture
def long_10x(portfolio, btc_at_50000) -> Position:
    """Isolated long 1 BTC @ 50,000, 10x, WB 5,000; cash 95,000."""
    return open_position(portfolio, side="long", entry="50000", leverage=10)


def change(position: Position, leverage: object, **kwargs) -> object:
    return position_leverage_change(position=position, leverage=leverage, actor=ACTOR, **kwargs)


def refused(
    position: Position, leverage: object, error: type[Exception], **kwargs
) -> tuple[Exception, LeverageChange]:
    """Assert the change is refused with `error`, changed nothing, and left one rejected audit row."""
    before = Position.objects.get(pk=position.pk)
    cash = Portfolio.objects.get(pk=position.portfolio_id).cash
    count = LeverageChange.objects.count()
    history = MarginHistory.objects.count()

    with pytest.raises(error) as caught:
        change(position, leverage, **kwargs)

    after = Position.objects.get(pk=position.pk)
    assert (after.leverage, after.isolated_margin, after.liquidation_price, after.version) == (
        before.leverage,
        before.isolated_margin,
        before.liquidation_price,
        before.version,
    )
    assert Portfolio.objects.get(pk=position.portfolio_id).cash == cash
    assert MarginHistory.objects.count() == history
    assert LeverageChange.objects.count() == count + 1
    audit = LeverageChange.objects.order_by("-created_at").first()
    assert audit.outcome == "rejected"
    assert audit.error_code == caught.value.code
    assert audit.old_leverage == audit.new_leverage == before.leverage
    assert audit.actor == ACTOR
    return caught.value, audit


# --- 2. validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leverage", "requested"),
    [(0, 0), (-3, -3), (126, 126), ("10.5", 10), (10.5, 10), (10.0, 10), ("abc", 0), (True, 0), (None, 0)],
)
def test_invalid_leverage_is_refused_and_audited(long_10x, leverage, requested):
    error, audit = refused(long_10x, leverage, InvalidLeverage)

    assert error.code == "invalid_leverage"
    assert error.http_status == 400
    assert error.detail["max_leverage"] == 125
    assert audit.requested_leverage == requested


def test_leverage_above_the_user_cap_is_refused(long_10x, engine):
    engine.user_max_leverage = 20
    engine.save()

    error, audit = refused(long_10x, 21, InvalidLeverage)
    change(long_10x, 20)

    assert error.detail["max_leverage"] == 20
    assert audit.requested_leverage == 21


def test_leverage_above_the_symbol_max_is_refused(portfolio, set_price):
    set_price("sol", D(100))
    position = open_position(portfolio, symbol="sol", side="long", quantity="10", entry="100", leverage=10)

    error, _ = refused(position, 51, InvalidLeverage)  # sol's instrument allows 50x

    assert error.detail["max_leverage"] == 50


def test_unknown_and_closed_positions(long_10x):
    Position.objects.filter(pk=long_10x.pk).update(status=Position.Status.CLOSED)

    _, audit = refused(long_10x, 20, PositionNotOpen)
    with pytest.raises(NotFound):
        change(Position(pk="01900000-0000-7000-8000-000000000000"), 20)

    assert audit.error_code == "position_not_open"


# --- 3. no-op ----------------------------------------------------------------------------------------


def test_same_leverage_is_a_no_op_and_audited(long_10x):
    result = change(long_10x, 10)

    long_10x.refresh_from_db()
    assert result.changed is False
    assert result.audit.outcome == "unchanged"
    assert result.audit.error_code == ""
    assert result.audit.mark_price == D(50000)
    assert result.max_notional == D(230_000_000)
    assert long_10x.leverage_changed_at is None
    assert not MarginHistory.objects.exists()


# --- 4. cooldown ---------------------------------------------------------------------------------------


def test_second_change_within_the_cooldown_gets_429_with_retry_after(long_10x, engine):
    engine.leverage_cooldown_seconds = 60
    engine.save()
    change(long_10x, 20)

    error, audit = refused(long_10x, 25, LeverageCooldown)

    assert error.http_status == 429
    assert 59 <= error.retry_after <= 60
    assert error.headers == {"Retry-After": str(error.retry_after)}
    assert audit.error_code == "leverage_cooldown"


def test_change_after_the_cooldown_is_allowed(long_10x, engine):
    engine.leverage_cooldown_seconds = 60
    engine.save()
    change(long_10x, 20)
    Position.objects.filter(pk=long_10x.pk).update(leverage_changed_at=timezone.now() - timedelta(seconds=61))

    result = change(long_10x, 25)

    assert result.changed


# --- 5. volatility guard ---------------------------------------------------------------------------------


def _minutes_since(seconds: int) -> list[int]:
    now_ms = int(time.time() * 1000)
    start = now_ms - seconds * 1000
    first = start - start % 60_000
    return list(range(first, now_ms, 60_000))


def test_volatility_guard_refuses_raises_after_a_big_move_in_stored_candles(long_10x, engine):
    engine.volatility_guard_enabled = True
    engine.save()  # window 300 s, max move 5%
    for open_time in _minutes_since(engine.volatility_window_seconds):
        Candle.objects.create(
            source="haunt", symbol="btc", interval="1m", open_time=open_time,
            open=D(45000), high=D(50000), low=D(45000), close=D(50000), volume=D(1),
        )  # fmt: skip

    error, audit = refused(long_10x, 20, VolatilityGuard)
    lowered = change(long_10x, 5)  # the guard only refuses raises

    assert D(error.detail["move"]) == abs(D(50000) / D(45000) - 1)  # 11.1% > 5%
    assert audit.mark_price == D(50000)
    assert lowered.changed


def test_volatility_guard_reads_the_live_minutes_and_passes_a_calm_market(long_10x, engine):
    engine.volatility_guard_enabled = True
    engine.save()
    minutes = _minutes_since(engine.volatility_window_seconds)
    calm = [LiveCandle("btc", "1m", t, D(49000), D(50000), D(49000), D(50000), D(1), True) for t in minutes]
    price_store().candles_put([], calm)

    result = change(long_10x, 20)  # |50,000 / 49,000 - 1| = 2% <= 5%

    assert result.changed


def test_volatility_guard_disabled_ignores_moves(long_10x):
    for open_time in _minutes_since(300):
        Candle.objects.create(
            source="haunt", symbol="btc", interval="1m", open_time=open_time,
            open=D(10000), high=D(50000), low=D(10000), close=D(50000), volume=D(1),
        )  # fmt: skip

    assert change(long_10x, 20).changed


# --- 6. bracket cap ----------------------------------------------------------------------------------------


def test_leverage_beyond_the_bracket_cap_for_the_notional_is_refused(portfolio, btc_at_50000):
    position = open_position(portfolio, side="long", quantity="2", entry="50000", leverage=10)

    error, _ = refused(position, 101, MaxLeverageRatio)  # 100,000 notional: 101x+ allows 50,000

    assert D(error.detail["notional"]) == 100000
    assert D(error.detail["max_notional"]) == 50000
    assert change(position, 100).max_notional == D(600_000)  # 100x: bracket 2's cap


# --- 7. binance_strict --------------------------------------------------------------------------------------


def test_binance_strict_refuses_lowering_isolated_leverage(long_10x, engine):
    engine.leverage_policy = "binance_strict"
    engine.save()

    _, audit = refused(long_10x, 5, IsolatedLeverageReduction)
    raised = change(long_10x, 20)

    assert audit.policy == "binance_strict"
    assert raised.changed


def test_binance_strict_allows_lowering_cross_leverage(portfolio, btc_at_50000, engine):
    engine.leverage_policy = "binance_strict"
    engine.save()
    position = open_position(portfolio, side="long", entry="50000", leverage=10, mode="cross")

    assert change(position, 5).changed


# --- 8. margin delta -----------------------------------------------------------------------------------------


def test_lowering_isolated_leverage_without_the_cash_is_refused(long_10x, portfolio):
    Portfolio.objects.filter(pk=portfolio.pk).update(cash=D(4000))
    # Reset policy: IM_new = Q·EP/L = 50,000 / 5 = 10,000; delta = 10,000 - 5,000 = 5,000 > 4,000.

    error, audit = refused(long_10x, 5, InsufficientMargin)

    assert D(error.detail["required"]) == 5000
    assert D(error.detail["available"]) == 4000
    assert audit.error_code == "insufficient_margin"


def test_lowering_cross_leverage_beyond_the_margin_balance_is_refused(portfolio, set_price):
    set_price("btc", D(50000))
    set_price("eth", D(3000))
    Portfolio.objects.filter(pk=portfolio.pk).update(cash=D(20000))
    btc = open_position(portfolio, side="long", entry="50000", leverage=10, mode="cross")
    open_position(
        portfolio, symbol="eth", side="short", quantity="10", entry="3000", leverage=10, mode="cross"
    )
    # Σ IM at 2x for btc + eth at 10x = 25,000 + 3,000 > 20,000; at 3x: 16,666.67 + 3,000 fits.

    error, _ = refused(btc, 2, InsufficientMargin)
    lowered = change(btc, 3)

    assert D(error.detail["required"]) == D(25000) + D(3000)
    assert lowered.changed


def test_raising_isolated_leverage_releases_margin_atomically(
    long_10x, portfolio, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = change(long_10x, 20, idempotency_key="k-1")

    position = Position.objects.get(pk=long_10x.pk)
    portfolio.refresh_from_db()
    im_new = D(1) * D(50000) / 20  # reset: 2,500
    delta = im_new - D(5000)  # -2,500, within max removable at 20x: min(5,000 - 200, 5,000 - 2,500)
    assert ref.max_removable("long", D(1), D(50000), D(50000), D(5000), 20) == 2500
    assert result.changed and result.max_notional == D(100_000_000)
    assert position.leverage == 20
    assert position.isolated_margin == im_new
    assert position.leverage_changed_at is not None
    assert portfolio.cash == D(95000) - delta
    assert ref.close(position.liquidation_price, ref.lp("long", D(1), D(50000), im_new))
    history = MarginHistory.objects.get(position=position)
    assert (history.delta_type, history.amount, history.margin_after, history.leverage) == (
        "leverage_change",
        delta,
        im_new,
        20,
    )
    audit = result.audit
    assert (audit.outcome, audit.old_leverage, audit.requested_leverage, audit.new_leverage) == (
        "applied",
        10,
        20,
        20,
    )
    assert audit.margin_delta == delta
    assert audit.mark_price == D(50000)
    assert audit.initial_margin_before == D(5000) and audit.initial_margin_after == D(2500)
    assert audit.maintenance_margin_before == audit.maintenance_margin_after == ref.mm(D(50000))
    assert ref.close(audit.liquidation_price_before, ref.lp("long", D(1), D(50000), D(5000)))
    assert audit.liquidation_price_after == position.liquidation_price
    assert (audit.policy, audit.idempotency_key, audit.actor) == ("reset", "k-1", ACTOR)
    assert len(callbacks) == 2  # account_config_update and position


def test_raising_a_losing_isolated_position_releases_at_most_max_removable(portfolio, set_price):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)
    set_price("btc", D(48000))
    # Reset would release 2,500; max removable at 20x: min(5,000 - 192, 5,000 - 2,000 - 2,400) = 600.
    removable = ref.max_removable("long", D(1), D(50000), D(48000), D(5000), 20)

    result = change(position, 20)

    assert removable == D(600)
    assert result.audit.margin_delta == -removable
    assert result.position.isolated_margin == D(5000) - removable


def test_lowering_isolated_leverage_takes_the_extra_margin_from_cash(long_10x, portfolio):
    result = change(long_10x, 5)

    portfolio.refresh_from_db()
    assert result.position.isolated_margin == D(10000)  # 50,000 / 5
    assert portfolio.cash == D(90000)
    assert ref.close(result.position.liquidation_price, ref.lp("long", D(1), D(50000), D(10000)))


def test_cross_leverage_change_moves_no_cash_and_not_the_liquidation_price(portfolio, btc_at_50000):
    position = open_position(portfolio, side="long", entry="50000", leverage=10, mode="cross")
    before = position.liquidation_price

    result = change(position, 20)

    portfolio.refresh_from_db()
    assert portfolio.cash == D(100000)
    assert result.position.liquidation_price == before
    assert result.audit.liquidation_price_after == before
    history = MarginHistory.objects.get(position=position)
    assert history.amount == D(50000) / 20 - D(50000) / 10  # the change of IM at mark
    assert history.margin_after == D(2500)


# --- 9. maintenance check ------------------------------------------------------------------------------------


def test_change_on_a_position_past_its_liquidation_price_would_liquidate(portfolio, set_price):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)
    set_price("btc", D(45000))  # below its LP (45,180.72): margin balance 0 < MM 180

    _, audit = refused(position, 20, WouldLiquidate)

    assert audit.error_code == "would_liquidate"
    assert audit.margin_delta == 0


def test_maintenance_buffer_refuses_a_raise_that_leaves_the_ratio_above_it(portfolio, set_price, engine):
    engine.maintenance_buffer = D("0.1")
    engine.save()
    position = open_position(portfolio, side="long", entry="50000", leverage=10)
    set_price("btc", D(46000))
    # 11x: max removable = max(0, min(5,000 - 184, 5,000 - 4,000 - 46,000/11)) = 0, so the margin
    # stays 5,000 and the ratio after is MM / (WB + UPnL) = 184 / 1,000 >= 0.1.
    ratio = ref.mm(D(46000)) / (D(5000) + ref.upnl("long", D(1), D(50000), D(46000)))

    error, audit = refused(position, 11, WouldLiquidate)

    assert ratio == D("0.184")
    assert D(error.detail["margin_ratio"]) == ratio
    assert audit.maintenance_margin_after == ref.mm(D(46000))


# --- price, idempotency ----------------------------------------------------------------------------------------


def test_no_fresh_price_is_a_503_after_validation(portfolio):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)

    refused(position, 0, InvalidLeverage)  # validation needs no price
    _, audit = refused(position, 20, PriceUnavailable)

    assert audit.error_code == "price_unavailable"
    assert audit.mark_price is None


def test_retry_with_the_same_idempotency_key_returns_the_first_result(long_10x, engine):
    engine.leverage_cooldown_seconds = 60
    engine.save()
    first = change(long_10x, 20, idempotency_key="same")

    again = change(long_10x, 20, idempotency_key="same")

    assert again.audit.pk == first.audit.pk
    assert again.changed is True
    assert LeverageChange.objects.count() == 1
    assert MarginHistory.objects.count() == 1
