"""Account summary figures, derived by hand from the reference formulas (trading.md §1.1, §1.6).

Seeded brackets: btc uses Binance's BTCUSDT 2024 table (bracket 1: notional <= 50,000, MMR 0.4%,
cum 0; bracket 2: <= 600,000, MMR 0.5%, cum 50); eth uses the 2021 default table (bracket 1:
<= 50,000, MMR 0.4%, cum 0).
"""

from decimal import Decimal

import pytest

from apps.trading.services.accounts import account_summary
from tests.trading.factories import make_order, make_position

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def book(portfolio, set_price):
    """90,000 cash; an isolated btc long (10,000 wallet), a cross eth short, two resting orders."""
    portfolio.cash = D("90000")
    portfolio.realized_pnl = D("250")
    portfolio.save()
    make_position(
        portfolio,
        symbol="btc",
        side="long",
        quantity="2",
        entry="50000",
        leverage=10,
        margin_mode="isolated",
        isolated_margin="10000",
    )
    make_position(portfolio, symbol="eth", side="short", quantity="10", entry="3000", leverage=5)
    make_order(portfolio, status="open", reserved_margin="500")
    make_order(portfolio, type="stop", price=None, stop_price="90", status="pending", reserved_margin="100")
    make_order(portfolio, status="filled", reserved_margin="0")  # not resting: not counted
    set_price("btc", "52000")
    set_price("eth", "3100")
    return portfolio


def test_summary_of_isolated_and_cross_positions_at_marks(book):
    summary = account_summary(portfolio=book)

    # btc: UPnL = +1 * 2 * (52,000 - 50,000) = 4,000; notional 104,000 -> bracket 2:
    #      MM = 104,000 * 0.005 - 50 = 470
    # eth: UPnL = -1 * 10 * (3,100 - 3,000) = -1,000; notional 31,000 -> bracket 1:
    #      MM = 31,000 * 0.004 = 124; cross IM = 31,000 / 5 = 6,200
    assert summary.unrealized_pnl == D("3000")
    assert summary.balance == D("90000")
    assert summary.isolated_margin == D("10000")
    assert summary.equity == D("90000") + D("10000") + D("4000") - D("1000")  # 103,000
    assert summary.margin_balance == D("103000")
    assert summary.reserved_margin == D("600")
    assert summary.used_margin == D("10000") + D("6200") + D("600")  # 16,800
    # Free = cash - cross IM - reserved + the cross loss (a cross gain is not spendable).
    assert summary.free_margin == D("90000") - D("6200") - D("600") - D("1000")  # 82,200
    assert summary.maintenance_margin == D("470") + D("124")
    assert summary.margin_ratio == D("594") / D("103000")
    assert summary.realized_pnl == D("250")
    assert summary.open_positions == 2
    assert summary.pending_orders == 2
    assert summary.stale is False
    assert summary.return_ratio == D("103000") / D("100000") - 1


def test_cross_gain_is_not_spendable(portfolio, set_price):
    make_position(portfolio, symbol="eth", side="long", quantity="10", entry="3000", leverage=5)
    set_price("eth", "3500")  # UPnL +5,000, notional 35,000, IM 7,000

    summary = account_summary(portfolio=portfolio)

    assert summary.free_margin == D("100000") - D("7000")
    assert summary.equity == D("105000")


def test_missing_mark_values_the_position_at_entry_and_flags_the_summary(book, set_price):
    set_price("eth", "3100", age_ms=120_000)  # older than max_price_age_seconds (30 s)

    summary = account_summary(portfolio=book)

    # eth at its entry 3,000: UPnL 0, notional 30,000, IM 6,000, MM 120.
    assert summary.stale is True
    assert summary.missing_marks == ("eth",)
    assert summary.unrealized_pnl == D("4000")
    assert summary.used_margin == D("10000") + D("6000") + D("600")
    assert summary.maintenance_margin == D("470") + D("120")


def test_a_stale_price_counts_as_missing(portfolio, set_price):
    make_position(portfolio, symbol="eth", side="long", quantity="1", entry="3000", leverage=5)
    set_price("eth", "3300", age_ms=120_000)  # older than max_price_age_seconds (30 s)

    summary = account_summary(portfolio=portfolio)

    assert summary.missing_marks == ("eth",)
    assert summary.unrealized_pnl == 0


def test_empty_portfolio(portfolio):
    summary = account_summary(portfolio=portfolio)

    assert summary.equity == D("100000")
    assert summary.free_margin == D("100000")
    assert summary.used_margin == 0
    assert summary.margin_ratio == 0
    assert (summary.open_positions, summary.pending_orders) == (0, 0)


def test_closed_positions_are_ignored(portfolio, set_price):
    position = make_position(portfolio, symbol="eth", side="long", quantity="1", entry="3000")
    position.status = "closed"
    position.save()
    set_price("eth", "1000")

    assert account_summary(portfolio=portfolio).equity == D("100000")


def test_margin_ratio_is_none_when_the_margin_balance_is_gone(portfolio, set_price):
    portfolio.cash = D("1000")
    portfolio.save()
    make_position(portfolio, symbol="eth", side="long", quantity="10", entry="3000", leverage=50)
    set_price("eth", "2800")  # UPnL -2,000 > cash

    summary = account_summary(portfolio=portfolio)

    assert summary.margin_balance == D("-1000")
    assert summary.margin_ratio is None
    assert summary.free_margin == 0


def _option(portfolio, **fields):
    from datetime import timedelta

    from django.utils import timezone

    from apps.trading.models import OptionPosition

    values = {
        "underlying": "sol",
        "option_type": "call",
        "side": "long",
        "strike": D("150"),
        "expiry": timezone.now() + timedelta(days=30),
        "quantity": D("1"),
        "premium": D("10"),
        "volatility": D("0.6"),
    }
    return OptionPosition.objects.create(portfolio=portfolio, **(values | fields))


def test_options_without_a_mark_count_at_their_premium_and_written_collateral_counts(portfolio):
    _option(portfolio, quantity=D("0.5"), premium=D("2000"))  # long: +1,000
    _option(portfolio, option_type="put", side="short", premium=D("800"), collateral=D("5000"))  # -800

    summary = account_summary(portfolio=portfolio)

    assert summary.options_value == D("1000") - D("800")
    assert summary.equity == D("100000") + D("5000") + D("200")
    assert summary.used_margin == D("5000")
    assert summary.stale is True
    assert summary.missing_marks == ("sol",)


def test_options_are_valued_with_the_engine_model_at_the_mark(portfolio, set_price):
    from apps.trading.selectors import engine_settings
    from apps.trading.services.options import option_value

    option = _option(portfolio, quantity=D("2"))
    set_price("sol", "160")

    summary = account_summary(portfolio=portfolio)

    from django.utils import timezone

    expected = option_value(option=option, spot=D("160"), now=timezone.now(), settings=engine_settings())
    assert summary.stale is False
    assert abs(summary.options_value - expected) < D("0.001")
    # A call 10 in the money is worth at least its intrinsic value, 2 * 10.
    assert summary.options_value > D("20")
    assert summary.equity == D("100000") + summary.options_value
