"""Position risk figures against the reference formulas of research/trading.md §1.1-§1.5."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.trading.models import Position
from apps.trading.services.risk import (
    CrossContext,
    cross_liquidation_prices_refresh,
    position_risk,
    positions_refresh_liquidation_prices,
)
from tests.trading.factories import open_position
from tests.trading.positions import reference as ref
from tests.trading.positions.conftest import FAQ_TABLES

pytestmark = pytest.mark.django_db
D = Decimal
CENT = "0.01"


# --- isolated BTCUSDT setups of §1.3 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "entry", "leverage", "wallet", "published"),
    [
        ("long", "50000", 10, "5000", D("45180.72")),
        ("short", "50000", 10, "5000", D("54776.12")),
        ("long", "51000", 10, "5100", D("46084.34")),
        ("long", "50000", 20, "2500", D("47690.76")),
        ("long", "50000", 1, "50000", None),
        ("short", "50000", 1, "50000", D("99552.24")),
    ],
    ids=["long-10x", "short-10x", "long-51000", "long-20x", "long-1x", "short-1x"],
)
def test_isolated_liquidation_price_matches_the_faq_formula(
    portfolio, side, entry, leverage, wallet, published
):
    position = open_position(portfolio, side=side, entry=entry, leverage=leverage, margin=wallet)

    expected = ref.lp(side, D(1), D(entry), D(wallet))

    assert ref.close(position.liquidation_price, expected)
    assert ref.close(position.liquidation_price, published, CENT)


def test_short_liquidation_price_lies_in_bracket_2_not_the_entry_bracket(portfolio):
    position = open_position(portfolio, side="short", entry="50000", leverage=10, margin="5000")

    # Entry notional 50,000 is bracket 1 (0.4%, cum 0): that bracket's price is 55,000/1.004.
    with_entry_bracket = (D(50000) + D(5000) + 0) / (1 + D("0.004"))
    # At the LP the notional is above 50,000: bracket 2 (0.5%, cum 50) applies.
    with_lp_bracket = (D(50000) + D(5000) + D(50)) / (1 + D("0.005"))

    assert position.liquidation_price > D(50000)
    assert ref.close(position.liquidation_price, with_lp_bracket)
    assert abs(position.liquidation_price - with_entry_bracket) > 4


def test_long_above_bracket_1_at_entry_liquidates_in_bracket_1(portfolio):
    position = open_position(portfolio, side="long", entry="51000", leverage=10, margin="5100")

    with_lp_bracket = (D(51000) - D(5100) - 0) / (1 - D("0.004"))  # notional ~46,084 <= 50,000
    with_entry_bracket = (D(51000) - D(5100) - D(50)) / (1 - D("0.005"))  # entry 51,000: bracket 2

    assert ref.close(position.liquidation_price, with_lp_bracket)
    assert abs(position.liquidation_price - with_entry_bracket) > 3


def test_one_x_long_cannot_be_liquidated_and_has_bankruptcy_price_zero(portfolio):
    position = open_position(portfolio, side="long", entry="50000", leverage=1)

    risk = position_risk(position, mark=D(30000))

    assert position.liquidation_price is None
    assert risk.liquidation_price is None
    assert risk.bankruptcy_price == 0  # EP - WB/Q = 50,000 - 50,000


@pytest.mark.parametrize(("side", "expected"), [("long", D(45000)), ("short", D(55000))])
def test_bankruptcy_price_long_and_short(portfolio, side, expected):
    position = open_position(portfolio, side=side, entry="50000", leverage=10, margin="5000")

    risk = position_risk(position, mark=D(50000))

    assert risk.bankruptcy_price == ref.bankruptcy(side, D(1), D(50000), D(5000)) == expected


def test_isolated_risk_figures_at_a_mark(portfolio):
    position = open_position(portfolio, side="long", quantity="2", entry="50000", leverage=10)
    mark = D(48000)

    risk = position_risk(position, mark=mark)

    notional = 2 * mark  # 96,000: bracket 2
    wallet = D(2) * D(50000) / 10  # 10,000
    maintenance = notional * D("0.005") - 50  # 430
    pnl = ref.upnl("long", D(2), D(50000), mark)  # -4,000
    assert risk.notional == notional
    assert risk.initial_margin == notional / 10
    assert risk.maintenance_margin == maintenance == ref.mm(notional)
    assert risk.unrealized_pnl == pnl == D(-4000)
    assert risk.margin_balance == wallet + pnl
    assert risk.margin_ratio == maintenance / (wallet + pnl)
    assert risk.max_removable == ref.max_removable("long", D(2), D(50000), mark, wallet, 10)
    assert risk.max_notional == D(230_000_000)  # 10x: cap of the last bracket allowing 10x
    assert not risk.liquidatable


def test_position_at_its_liquidation_price_is_liquidatable(portfolio):
    position = open_position(portfolio, side="long", entry="50000", leverage=10, margin="5000")

    at_lp = position_risk(position, mark=position.liquidation_price - D("0.000001"))
    above = position_risk(position, mark=position.liquidation_price + 1)

    assert at_lp.liquidatable
    assert at_lp.margin_ratio >= 1
    assert not above.liquidatable


def test_margin_added_moves_the_first_long_liquidation_price(portfolio):
    position = open_position(portfolio, side="long", entry="50000", leverage=10, margin="6000")

    # 5,000 of initial margin + 1,000 added (positionMargin type 1): WB 6,000.
    assert ref.close(position.liquidation_price, ref.lp("long", D(1), D(50000), D(6000)))
    assert ref.close(position.liquidation_price, D("44176.71"), CENT)


# --- cross margin ---------------------------------------------------------------------------------

WB = D("1535443.01")


def test_binance_cross_example_eth_leg(faq_instruments, portfolio):
    eth = Position(
        portfolio=portfolio,
        symbol="ethfaq",
        side="long",
        quantity=D("3683.979"),
        entry_price=D("1456.84"),
        leverage=10,
        margin_mode="cross",
    )
    context = CrossContext(wallet=WB, other_maintenance=D("71200.81"), other_unrealized=D("-56354.57"))

    risk = position_risk(eth, mark=D("1400"), cross_context=context)

    expected = ref.lp(
        "long", D("3683.979"), D("1456.84"), WB, FAQ_TABLES["ethfaq"], D("71200.81"), D("-56354.57")
    )
    assert ref.close(risk.liquidation_price, expected)
    assert ref.close(risk.liquidation_price, D("1153.26"), CENT)


def test_binance_cross_example_btc_leg(faq_instruments, portfolio):
    btc = Position(
        portfolio=portfolio,
        symbol="btcfaq",
        side="long",
        quantity=D("109.488"),
        entry_price=D("32481.98"),
        leverage=10,
        margin_mode="cross",
    )
    context = CrossContext(wallet=WB, other_maintenance=D("356512.508"), other_unrealized=D("-448192.89"))

    risk = position_risk(btc, mark=D("31967.27"), cross_context=context)

    expected = ref.lp(
        "long", D("109.488"), D("32481.98"), WB, FAQ_TABLES["btcfaq"], D("356512.508"), D("-448192.89")
    )
    assert ref.close(risk.liquidation_price, expected)
    assert ref.close(risk.liquidation_price, D("26316.89"), CENT)


def test_cross_example_as_two_positions_of_one_portfolio(faq_instruments, portfolio, set_price):
    portfolio.cash = WB
    portfolio.save()
    # The example's BTC mark, and the ETH mark at which ETH's MM is the example's 356,512.508.
    btc_mark = D("31967.27")
    eth_mark = (D("356512.508") + 135_365) / (D("3683.979") * D("0.10"))
    set_price("btcfaq", btc_mark)
    set_price("ethfaq", eth_mark)

    eth = open_position(portfolio, symbol="ethfaq", quantity="3683.979", entry="1456.84", mode="cross")
    btc = open_position(portfolio, symbol="btcfaq", quantity="109.488", entry="32481.98", mode="cross")
    eth.refresh_from_db()

    eth_table, btc_table = FAQ_TABLES["ethfaq"], FAQ_TABLES["btcfaq"]
    btc_mm = ref.mm(D("109.488") * btc_mark, btc_table)
    btc_upnl = ref.upnl("long", D("109.488"), D("32481.98"), btc_mark)
    eth_mm = ref.mm(D("3683.979") * eth_mark, eth_table)
    eth_upnl = ref.upnl("long", D("3683.979"), D("1456.84"), eth_mark)
    assert ref.close(btc_mm, D("71200.81"), "1")  # the example's TMM1 / UPNL1, to rounding
    assert ref.close(btc_upnl, D("-56354.57"), CENT)
    assert ref.close(eth_upnl, D("-448192.89"), "1")
    assert ref.close(
        eth.liquidation_price, ref.lp("long", D("3683.979"), D("1456.84"), WB, eth_table, btc_mm, btc_upnl)
    )
    assert ref.close(
        btc.liquidation_price, ref.lp("long", D("109.488"), D("32481.98"), WB, btc_table, eth_mm, eth_upnl)
    )
    assert ref.close(eth.liquidation_price, D("1153.26"), CENT)
    assert ref.close(btc.liquidation_price, D("26316.89"), CENT)


def _cash(portfolio, amount) -> None:
    portfolio.cash = D(amount)
    portfolio.save()


def test_cross_risk_uses_the_whole_account(portfolio, set_price):
    """Two cross positions in one portfolio: margin balance and ratio are the account's."""
    _cash(portfolio, 10000)
    set_price("btc", D(48000))
    set_price("eth", D(3300))
    btc = open_position(portfolio, symbol="btc", side="long", quantity="1", entry="50000", mode="cross")
    eth = open_position(portfolio, symbol="eth", side="short", quantity="10", entry="3000", mode="cross")

    risk = position_risk(btc, mark=D(48000))
    eth_risk = position_risk(eth, mark=D(3300))

    eth_table = [  # DEFAULT2021 (the seeded table of eth): its first two brackets suffice here
        (D(0), D(50_000), D("0.004"), D(0), 125),
        (D(50_000), D(250_000), D("0.005"), D(50), 100),
    ]
    btc_upnl, eth_upnl = D(-2000), D(-3000)  # 1 x (48,000 - 50,000); -10 x (3,300 - 3,000)
    btc_mm = ref.mm(D(48000))  # 192
    eth_mm = ref.mm(D(33000), eth_table)  # 132
    balance = D(10000) + btc_upnl + eth_upnl  # 5,000
    assert risk.unrealized_pnl == btc_upnl
    assert risk.margin_balance == eth_risk.margin_balance == balance
    assert risk.account_maintenance == btc_mm + eth_mm
    assert risk.margin_ratio == eth_risk.margin_ratio == (btc_mm + eth_mm) / balance
    btc_lp = ref.lp("long", D(1), D(50000), D(10000), ref.BTC_TABLE, eth_mm, eth_upnl)
    eth_lp = ref.lp("short", D(10), D(3000), D(10000), eth_table, btc_mm, btc_upnl)
    assert ref.close(risk.liquidation_price, btc_lp)
    assert ref.close(btc_lp, D("43305.22"), CENT)  # (10,000 - 132 - 3,000 - 50,000) / -0.996
    assert ref.close(eth_risk.liquidation_price, eth_lp)
    # Cross bankruptcy: where cash + every cross UPnL reaches 0.
    assert risk.bankruptcy_price == ref.bankruptcy("long", D(1), D(50000), D(10000) + eth_upnl) == 43000
    assert eth_risk.bankruptcy_price == ref.bankruptcy("short", D(10), D(3000), D(10000) + btc_upnl) == 3800
    assert risk.max_removable == 0
    btc.refresh_from_db()
    eth.refresh_from_db()
    assert ref.close(btc.liquidation_price, btc_lp)
    assert ref.close(eth.liquidation_price, eth_lp)


def test_cross_long_with_a_large_wallet_has_no_liquidation_price(portfolio):
    position = open_position(portfolio, side="long", entry="50000", mode="cross")  # cash 100,000

    assert ref.lp("long", D(1), D(50000), D(100000)) is None
    assert position.liquidation_price is None


def test_refresh_without_a_mark_values_the_other_positions_at_entry(portfolio):
    _cash(portfolio, 10000)
    btc = open_position(portfolio, symbol="btc", side="long", entry="50000", mode="cross")
    open_position(portfolio, symbol="eth", side="long", quantity="10", entry="3000", mode="cross")

    btc.refresh_from_db()

    eth_mm = D(30000) * D("0.004")  # at entry (no fresh mark): UPnL 0
    expected = ref.lp("long", D(1), D(50000), D(10000), ref.BTC_TABLE, eth_mm, D(0))
    assert expected is not None
    assert ref.close(btc.liquidation_price, expected)


def test_periodic_cross_refresh_follows_the_other_marks(portfolio, set_price):
    _cash(portfolio, 10000)
    btc = open_position(portfolio, symbol="btc", side="long", entry="50000", mode="cross")
    eth = open_position(portfolio, symbol="eth", side="long", quantity="10", entry="3000", mode="cross")
    eth_before = eth.liquidation_price
    before = Position.objects.get(pk=btc.pk).liquidation_price
    set_price("eth", D(2000))  # eth loses 10,000: btc's liquidation price rises

    changed = cross_liquidation_prices_refresh()

    btc.refresh_from_db()
    eth_mm = D(20000) * D("0.004")
    eth.refresh_from_db()
    assert eth.liquidation_price == eth_before
    assert changed == 1
    assert btc.liquidation_price > before
    assert ref.close(
        btc.liquidation_price, ref.lp("long", D(1), D(50000), D(10000), ref.BTC_TABLE, eth_mm, D(-10000))
    )


def test_refresh_skips_closed_positions_and_writes_only_changes(portfolio, django_assert_max_num_queries):
    position = open_position(portfolio, side="long", entry="50000", leverage=10, margin="5000")
    Position.objects.filter(pk=position.pk).update(status=Position.Status.CLOSED, liquidation_price=None)

    with django_assert_max_num_queries(2):
        positions_refresh_liquidation_prices(portfolio=portfolio)

    position.refresh_from_db()
    assert position.liquidation_price is None
