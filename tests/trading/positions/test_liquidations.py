"""Liquidation at the bankruptcy price and the insurance fund (research §1.3, §1.9)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.trading.models import (
    Fill,
    InsuranceFundEntry,
    Liquidation,
    MarginHistory,
    Order,
    Portfolio,
    Position,
)
from apps.trading.services.liquidations import insurance_fund_balance, liquidations_check
from tests.trading.factories import open_position
from tests.trading.positions import reference as ref

pytestmark = pytest.mark.django_db
D = Decimal

ETH_TABLE = [(D(0), D(50_000), D("0.004"), D(0), 125), (D(50_000), D(250_000), D("0.005"), D(50), 100)]


def entries() -> dict[str, Decimal]:
    return dict(InsuranceFundEntry.objects.values_list("reason", "amount"))


@pytest.fixture
def fee_rate_0_1_percent(engine):
    engine.liquidation_fee_rate = D("0.001")
    engine.save()
    return D("0.001")


def test_isolated_long_liquidated_above_bankruptcy_leaves_a_residual_to_the_fund(
    portfolio, fee_rate_0_1_percent, django_capture_on_commit_callbacks, account_events
):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)  # WB 5,000; cash 95,000
    mark = D(45100)  # below the LP 45,180.72, above the bankruptcy price 45,000

    with django_capture_on_commit_callbacks(execute=True):
        done = liquidations_check(symbol="btc", mark=mark)

    bankruptcy = ref.bankruptcy("long", D(1), D(50000), D(5000))  # 45,000
    residual = 1 * (mark - bankruptcy)  # the fund closes at mark what it took over at 45,000: +100
    fee = min(fee_rate_0_1_percent * 1 * mark, residual)  # 45.10
    assert len(done) == 1
    liquidation = Liquidation.objects.get()
    assert liquidation.position_id == position.pk
    assert liquidation.bankruptcy_price == bankruptcy == D(45000)
    assert liquidation.mark_price == mark
    assert ref.close(liquidation.liquidation_price, ref.lp("long", D(1), D(50000), D(5000)))
    assert liquidation.margin_lost == D(5000)
    assert liquidation.fee == fee == D("45.1")
    assert liquidation.insurance_fund_delta == residual == D(100)
    assert entries() == {"liquidation_fee": fee, "liquidation_surplus": residual - fee}
    assert insurance_fund_balance() == residual
    position.refresh_from_db()
    portfolio.refresh_from_db()
    assert position.status == "liquidated"
    assert position.isolated_margin == 0
    assert position.realized_pnl == D(-5000)
    assert portfolio.cash == D(95000)  # the margin had already left the cash
    assert portfolio.realized_pnl == D(-5000)
    fill = Fill.objects.get()
    assert (fill.kind, fill.side, fill.quantity, fill.price, fill.realized_pnl) == (
        "liquidation",
        "sell",
        D(1),
        bankruptcy,
        D(-5000),
    )
    history = MarginHistory.objects.get()
    assert (history.delta_type, history.amount, history.margin_after) == ("liquidation", D(-5000), 0)
    kinds = [event["type"] for event in account_events()]
    assert kinds == ["liquidation", "position"]


def test_default_fee_rate_takes_the_whole_small_residual_as_fee(portfolio, engine):
    open_position(portfolio, side="long", entry="50000", leverage=10)

    liquidations_check(symbol="btc", mark=D(45100))

    # 0.5% of 45,100 = 225.50 > the residual of 100: the fee is capped at what is left.
    assert engine.liquidation_fee_rate == D("0.005")
    assert entries() == {"liquidation_fee": D(100)}


def test_isolated_short_liquidation(portfolio, fee_rate_0_1_percent):
    open_position(portfolio, side="short", entry="50000", leverage=10)  # LP 54,776.12 (bracket 2)
    mark = D(54800)

    liquidations_check(symbol="btc", mark=mark)

    liquidation = Liquidation.objects.get()
    bankruptcy = ref.bankruptcy("short", D(1), D(50000), D(5000))  # 55,000
    residual = -1 * (mark - bankruptcy)  # +200
    assert liquidation.bankruptcy_price == bankruptcy == D(55000)
    assert liquidation.insurance_fund_delta == residual == D(200)
    assert liquidation.fee == fee_rate_0_1_percent * mark
    assert Fill.objects.get().side == "buy"


def test_fill_worse_than_bankruptcy_is_covered_by_the_fund(portfolio):
    position = open_position(portfolio, side="long", entry="50000", leverage=10)
    InsuranceFundEntry.objects.create(reason="seed", amount=D(10000))
    mark = D(44000)  # gapped through the bankruptcy price 45,000

    liquidations_check(symbol="btc", mark=mark)

    deficit = 1 * (mark - D(45000))  # -1,000
    liquidation = Liquidation.objects.get()
    assert liquidation.insurance_fund_delta == deficit
    assert liquidation.fee == 0
    assert entries() == {"seed": D(10000), "liquidation_deficit": deficit}
    assert insurance_fund_balance() == D(9000)
    portfolio.refresh_from_db()
    position.refresh_from_db()
    assert position.isolated_margin == 0  # the trader lost the margin, nothing more
    assert portfolio.cash == D(95000)
    assert liquidation.margin_lost == D(5000)


def test_cross_trader_ends_at_zero_when_the_fill_is_worse_than_bankruptcy(portfolio):
    Portfolio.objects.filter(pk=portfolio.pk).update(cash=D(5000))
    open_position(portfolio, side="long", entry="50000", leverage=10, mode="cross")
    mark = D(44000)

    liquidations_check(symbol="btc", mark=mark)

    portfolio.refresh_from_db()
    liquidation = Liquidation.objects.get()
    assert liquidation.bankruptcy_price == ref.bankruptcy("long", D(1), D(50000), D(5000)) == D(45000)
    assert liquidation.margin_lost == D(5000)
    assert portfolio.cash == 0
    assert portfolio.realized_pnl == D(-5000)
    assert liquidation.insurance_fund_delta == mark - D(45000)


def test_cross_loss_is_what_brings_the_account_to_zero(portfolio, set_price):
    """Two cross positions: btc is liquidated with the loss cash + UPNL1, eth then follows."""
    Portfolio.objects.filter(pk=portfolio.pk).update(cash=D(10000))
    set_price("eth", D(2900))
    btc = open_position(portfolio, side="long", entry="50000", mode="cross")
    eth = open_position(portfolio, symbol="eth", side="long", quantity="10", entry="3000", mode="cross")
    eth_upnl = ref.upnl("long", D(10), D(3000), D(2900))  # -1,000
    eth_mm = ref.mm(D(29000), ETH_TABLE)  # 116
    btc_lp = ref.lp("long", D(1), D(50000), D(10000), ref.BTC_TABLE, eth_mm, eth_upnl)
    mark = D(41200)
    btc.refresh_from_db()
    assert ref.close(btc.liquidation_price, btc_lp)
    assert ref.close(btc_lp, D("41281.12"), "0.01") and mark < btc_lp

    liquidations_check(symbol="btc", mark=mark)

    loss = D(10000) + eth_upnl  # 9,000: the account's margin balance reaches 0 at the bankruptcy price
    bankruptcy = D(50000) - loss / 1  # 41,000
    liquidation = Liquidation.objects.get()
    portfolio.refresh_from_db()
    eth.refresh_from_db()
    assert liquidation.margin_lost == loss
    assert liquidation.bankruptcy_price == bankruptcy
    assert liquidation.insurance_fund_delta == mark - bankruptcy  # +200
    assert portfolio.cash == D(10000) - loss == -eth_upnl
    # eth's price is refreshed with the new cash: it now sits at its own liquidation price.
    eth_lp = ref.lp("long", D(10), D(3000), D(1000), ETH_TABLE)
    assert ref.close(eth.liquidation_price, eth_lp)
    assert eth_lp > D(2900)

    liquidations_check(symbol="eth", mark=D(2900))

    portfolio.refresh_from_db()
    assert Liquidation.objects.count() == 2
    assert portfolio.cash == 0
    assert Liquidation.objects.get(symbol="eth").bankruptcy_price == D(3000) - D(1000) / 10


def test_cross_loss_never_exceeds_the_cash(portfolio, set_price):
    Portfolio.objects.filter(pk=portfolio.pk).update(cash=D(10000))
    set_price("eth", D(3100))
    open_position(portfolio, side="long", entry="50000", mode="cross")
    eth = open_position(portfolio, symbol="eth", side="long", quantity="10", entry="3000", mode="cross")
    mark = D(39000)  # below btc's LP of 39,140.56 (eth's +1,000 of UPnL lowers it)

    liquidations_check(symbol="btc", mark=mark)

    portfolio.refresh_from_db()
    liquidation = Liquidation.objects.get()
    assert liquidation.margin_lost == D(10000)  # min(cash, cash + UPNL1 = 11,000)
    assert liquidation.bankruptcy_price == D(40000)
    assert liquidation.insurance_fund_delta == mark - D(40000)  # the fund covers 1,000
    assert portfolio.cash == 0
    eth.refresh_from_db()
    assert eth.status == "open"


def test_resting_orders_on_the_symbol_are_cancelled_first(
    portfolio, account_events, django_capture_on_commit_callbacks
):
    open_position(portfolio, side="long", entry="50000", leverage=10)

    def resting(symbol: str) -> Order:
        return Order.objects.create(
            portfolio=portfolio, client_order_id=f"r-{symbol}", symbol=symbol, side="buy", type="limit",
            quantity=D(1), price=D(100), reserved_margin=D(50),
        )  # fmt: skip

    btc_order, eth_order = resting("btc"), resting("eth")

    with django_capture_on_commit_callbacks(execute=True):
        liquidations_check(symbol="btc", mark=D(45100))

    btc_order.refresh_from_db()
    eth_order.refresh_from_db()
    assert (btc_order.status, btc_order.reserved_margin) == ("cancelled", 0)
    assert btc_order.closed_at is not None
    assert (eth_order.status, eth_order.reserved_margin) == ("open", D(50))
    assert [e["type"] for e in account_events()] == ["order", "liquidation", "position"]


def test_positions_short_of_their_liquidation_price_are_untouched(portfolio):
    long = open_position(portfolio, side="long", entry="50000", leverage=10)
    other = open_position(portfolio, symbol="eth", side="short", quantity="1", entry="3000", leverage=10)

    done = liquidations_check(symbol="btc", mark=long.liquidation_price + D("0.01"))

    assert done == []
    assert not Liquidation.objects.exists()
    assert Position.objects.filter(status="open").count() == 2
    assert other.liquidation_price is not None


def test_a_second_check_does_not_liquidate_twice(portfolio):
    open_position(portfolio, side="long", entry="50000", leverage=10)

    first = liquidations_check(symbol="btc", mark=D(45000))
    second = liquidations_check(symbol="btc", mark=D(45000))

    assert len(first) == 1 and second == []
    assert Liquidation.objects.count() == 1
    assert Fill.objects.count() == 1


def test_stale_cross_price_is_rechecked_exactly_and_refreshed(portfolio, set_price):
    Portfolio.objects.filter(pk=portfolio.pk).update(cash=D(10000))
    btc = open_position(portfolio, side="long", entry="50000", mode="cross")
    open_position(portfolio, symbol="eth", side="long", quantity="10", entry="3000", mode="cross")
    stale = Position.objects.get(pk=btc.pk).liquidation_price
    set_price("eth", D(3500))  # eth gains 5,000: btc's true liquidation price drops below the stored one
    true_lp = ref.lp("long", D(1), D(50000), D(10000), ref.BTC_TABLE, ref.mm(D(35000), ETH_TABLE), D(5000))
    mark = (stale + true_lp) / 2

    done = liquidations_check(symbol="btc", mark=mark)

    btc.refresh_from_db()
    assert done == []
    assert btc.status == "open"
    assert ref.close(btc.liquidation_price, true_lp)


# --- margin calls ---------------------------------------------------------------------------------


def test_margin_call_once_per_crossing(portfolio, account_events, django_capture_on_commit_callbacks):
    open_position(portfolio, side="long", entry="50000", leverage=10)  # LP 45,180.72

    def ratio(mark: Decimal) -> Decimal:
        return ref.mm(mark) / (D(5000) + ref.upnl("long", D(1), D(50000), mark))

    def margin_calls(mark: Decimal) -> list[dict]:
        with django_capture_on_commit_callbacks(execute=True):
            liquidations_check(symbol="btc", mark=mark)
        return [e for e in account_events() if e["type"] == "margin_call"]

    assert ratio(D(45200)) == D("0.904") and ratio(D(45300)) < D("0.8")
    first = margin_calls(D(45200))
    repeated = margin_calls(D(45200))
    recovered = margin_calls(D(45300))
    again = margin_calls(D(45200))

    assert len(first) == 1
    assert D(first[0]["data"]["marginRatio"]) == D("0.904")
    assert repeated == [] and recovered == []
    assert len(again) == 1
    assert not Liquidation.objects.exists()


def test_cross_margin_call_uses_the_account(portfolio, account_events, django_capture_on_commit_callbacks):
    Portfolio.objects.filter(pk=portfolio.pk).update(cash=D(5000))
    open_position(portfolio, side="long", entry="50000", mode="cross")  # LP 45,180.72 like 10x isolated
    mark = D(45200)

    with django_capture_on_commit_callbacks(execute=True):
        liquidations_check(symbol="btc", mark=mark)

    calls = [e for e in account_events() if e["type"] == "margin_call"]
    expected = ref.mm(mark) / (D(5000) + ref.upnl("long", D(1), D(50000), mark))  # 180.8 / 200
    assert len(calls) == 1
    assert D(calls[0]["data"]["marginRatio"]) == expected == D("0.904")
    assert calls[0]["data"]["marginMode"] == "cross"
