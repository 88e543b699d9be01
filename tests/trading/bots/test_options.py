"""Options positions: cash flows of opening, closing and settling, by hand from the formulas."""

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.trading.exceptions import (
    InsufficientFunds,
    InvalidExpiry,
    InvalidQuantity,
    OptionNotOpen,
    PriceUnavailable,
    UnknownSymbol,
)
from apps.trading.models import Instrument, OptionPosition
from apps.trading.services.options import (
    option_close,
    option_collateral,
    option_mark_value,
    option_open,
    options_settle_expired,
)

pytestmark = pytest.mark.django_db

HALF_YEAR = timedelta(days=182.5)
TAKER = Decimal("0.0005")  # EngineSettings.taker_fee_rate default


def bs_call(s: float, k: float, t: float, sigma: float = 0.2, r: float = 0.1) -> float:
    n = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    d1 = (math.log(s / k) + (r + sigma**2 / 2) * t) / (sigma * math.sqrt(t))
    return s * n(d1) - k * math.exp(-r * t) * n(d1 - sigma * math.sqrt(t))


def open_option(portfolio, **overrides):
    kwargs = {
        "underlying": "btc",
        "option_type": "call",
        "side": "long",
        "strike": Decimal(40),
        "expiry": timezone.now() + HALF_YEAR,
        "quantity": Decimal(2),
    }
    return option_open(portfolio=portfolio, **(kwargs | overrides))


def cash_of(portfolio) -> Decimal:
    portfolio.refresh_from_db()
    return portfolio.cash


def test_long_call_pays_the_premium_and_the_taker_fee(portfolio, hull_market, set_price):
    set_price("btc", 42)

    option = open_option(portfolio)

    # Hull 15.6: c = 4.76 at S=42, K=40, T=0.5, r=10 %, sigma=20 %; premium on the 0.01 tick.
    assert option.premium == Decimal("4.76")
    assert option.volatility == Decimal("0.2")
    assert option.collateral == 0
    fee = Decimal("4.76") * 2 * TAKER
    assert cash_of(portfolio) == Decimal(100000) - Decimal("9.52") - fee
    assert portfolio.fees_paid == fee


def test_long_call_settled_in_the_money_receives_the_intrinsic_value(portfolio, hull_market, set_price):
    set_price("btc", 42)
    option = open_option(portfolio)
    cash_after_open = cash_of(portfolio)
    set_price("btc", 45)

    settled = options_settle_expired(now=option.expiry + timedelta(seconds=1))

    option.refresh_from_db()
    assert settled == 1
    assert option.status == OptionPosition.Status.SETTLED
    assert option.settlement_price == Decimal(45)
    assert option.settlement_amount == Decimal(10)  # (45 - 40) * 2
    assert cash_of(portfolio) == cash_after_open + 10
    assert portfolio.realized_pnl == Decimal(10) - Decimal("9.52")


def test_long_call_settled_out_of_the_money_expires_worthless(portfolio, hull_market, set_price):
    set_price("btc", 42)
    option = open_option(portfolio)
    cash_after_open = cash_of(portfolio)
    set_price("btc", 38)

    options_settle_expired(now=option.expiry)

    option.refresh_from_db()
    assert option.status == OptionPosition.Status.SETTLED
    assert option.settlement_amount == 0
    assert cash_of(portfolio) == cash_after_open
    assert portfolio.realized_pnl == Decimal("-9.52")


def test_short_put_holds_strike_collateral_and_pays_out_of_it(portfolio, hull_market, set_price):
    set_price("btc", 42)

    option = open_option(portfolio, option_type="put", side="short", quantity=Decimal(1))

    # Hull 15.6: p = 0.81; collateral of a written put = strike * quantity = 40.
    assert option.premium == Decimal("0.81")
    assert option.collateral == Decimal(40)
    fee = Decimal("0.81") * TAKER
    assert cash_of(portfolio) == Decimal(100000) + Decimal("0.81") - fee - 40
    assert option_collateral(portfolio=portfolio) == 40

    set_price("btc", 37)
    options_settle_expired(now=option.expiry)

    option.refresh_from_db()
    assert option.settlement_amount == Decimal(-3)  # the writer pays (40 - 37) * 1
    assert option.collateral == 0
    assert cash_of(portfolio) == Decimal(100000) + Decimal("0.81") - fee - 3
    assert portfolio.realized_pnl == Decimal("0.81") - 3


def test_short_call_holds_spot_collateral(portfolio, hull_market, set_price):
    set_price("btc", 42)

    option = open_option(portfolio, side="short", quantity=Decimal("0.5"))

    assert option.collateral == Decimal(21)  # spot 42 * 0.5


def test_writer_never_pays_more_than_collateral_and_cash(portfolio, hull_market, set_price):
    set_price("btc", 42)
    option = open_option(portfolio, side="short", quantity=Decimal(1))
    portfolio.refresh_from_db()
    portfolio.cash = Decimal(5)  # spent elsewhere
    portfolio.save()
    set_price("btc", 100)

    options_settle_expired(now=option.expiry)

    option.refresh_from_db()
    assert option.settlement_amount == Decimal(-47)  # owes 60, has 42 collateral + 5 cash
    assert cash_of(portfolio) == 0


def test_close_long_receives_the_model_value_less_the_fee(portfolio, hull_market, set_price):
    set_price("btc", 42)
    option = open_option(portfolio)
    cash_after_open = cash_of(portfolio)
    set_price("btc", 44)

    closed = option_close(option=option)

    value = Decimal(str(round(bs_call(44, 40, 0.5), 2)))  # on the price tick
    assert closed.status == OptionPosition.Status.CLOSED
    assert closed.settlement_amount == value * 2
    assert cash_of(portfolio) == cash_after_open + value * 2 - value * 2 * TAKER
    assert portfolio.realized_pnl == (value - Decimal("4.76")) * 2
    with pytest.raises(OptionNotOpen):
        option_close(option=closed)


def test_close_short_releases_collateral_and_buys_back(portfolio, hull_market, set_price):
    set_price("btc", 42)
    option = open_option(portfolio, option_type="put", side="short", quantity=Decimal(1))
    cash_after_open = cash_of(portfolio)

    option_close(option=option)

    # Same spot, a moment later: the buy-back costs the premium again (on the tick).
    assert cash_of(portfolio) == cash_after_open + 40 - Decimal("0.81") - Decimal("0.81") * TAKER


def test_settlement_is_idempotent_and_waits_for_expiry(portfolio, hull_market, set_price):
    set_price("btc", 42)
    option = open_option(portfolio)

    assert options_settle_expired(now=option.expiry - timedelta(seconds=1)) == 0
    assert options_settle_expired(now=option.expiry) == 1
    cash = cash_of(portfolio)
    assert options_settle_expired(now=option.expiry + timedelta(hours=1)) == 0
    assert cash_of(portfolio) == cash


def test_settlement_without_a_price_leaves_the_option_open(portfolio, hull_market, set_price):
    set_price("btc", 42)
    option = open_option(portfolio)
    set_price("btc", 42, age_ms=10 * 60 * 1000)  # stale

    assert options_settle_expired(now=option.expiry) == 0

    option.refresh_from_db()
    assert option.status == OptionPosition.Status.OPEN


def test_mark_value_is_signed_model_value(portfolio, hull_market, set_price):
    set_price("btc", 42)
    long_call = open_option(portfolio)
    open_option(portfolio, side="short", quantity=Decimal(1))

    value = option_mark_value(portfolio=portfolio)

    # Long 2 and short 1 of the same call: net one call at the model value (~4.7594).
    assert abs(value - Decimal(repr(bs_call(42, 40, 0.5)))) < Decimal("0.0001")
    assert abs(option_mark_value(option=long_call) - 2 * value) < Decimal("1e-6")  # a few ms of theta


def test_open_publishes_an_option_event_on_commit(
    portfolio, hull_market, set_price, django_capture_on_commit_callbacks
):
    set_price("btc", 42)

    with django_capture_on_commit_callbacks() as callbacks:
        open_option(portfolio)

    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"expiry": "past"}, InvalidExpiry),
        ({"expiry": "far"}, InvalidExpiry),
        ({"quantity": Decimal(0)}, InvalidQuantity),
        ({"quantity": Decimal("-1")}, InvalidQuantity),
        ({"quantity": Decimal("0.0001")}, InvalidQuantity),  # below the lot
        ({"underlying": "nope"}, UnknownSymbol),
        ({"quantity": Decimal(30000)}, InsufficientFunds),  # 30,000 * 4.76 > 100,000
    ],
)
def test_bad_input_is_refused_and_changes_nothing(portfolio, hull_market, set_price, overrides, error):
    set_price("btc", 42)
    expiries = {"past": timezone.now() - timedelta(minutes=1), "far": timezone.now() + timedelta(days=400)}
    if "expiry" in overrides:
        overrides = {"expiry": expiries[overrides["expiry"]]}

    with pytest.raises(error):
        open_option(portfolio, **overrides)

    assert cash_of(portfolio) == 100000
    assert not OptionPosition.objects.exists()


def test_options_disabled_underlying_is_unknown(portfolio, hull_market, set_price):
    Instrument.objects.filter(symbol="btc").update(options_enabled=False)
    set_price("btc", 42)

    with pytest.raises(UnknownSymbol):
        open_option(portfolio)


def test_no_fresh_price_is_a_503(portfolio, hull_market):
    with pytest.raises(PriceUnavailable):
        open_option(portfolio)
