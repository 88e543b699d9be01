"""Limit orders (marketable on arrival or resting with reserved funds), time in force, stops and
take-profits, and how prices_evaluate fills or triggers them."""

from decimal import Decimal

import pytest

from apps.trading.exceptions import FillOrKillUnfilled, InsufficientFunds, OrderWouldTrigger
from apps.trading.models import Fill, Order, Position
from apps.trading.services.orders import order_cancel
from apps.trading.services.triggers import prices_evaluate
from tests.trading.factories import row_counts

pytestmark = pytest.mark.django_db

D = Decimal
TAKER = D("0.0005")
MAKER = D("0.0002")


def evaluate(btc, price: str):
    btc(price)
    return prices_evaluate(prices={"btc": D(price)})


# --- limits ---------------------------------------------------------------------------------------


def test_a_marketable_buy_limit_fills_at_once_as_taker_at_the_better_live_price(place):
    order = place(type="limit", price=D("50500"), quantity=D("0.2"))

    fill = Fill.objects.get()
    assert order.status == Order.Status.FILLED
    assert (fill.price, fill.is_maker) == (D("50000"), False)  # min(limit 50,500, live 50,000)
    assert fill.fee == D("0.2") * 50000 * TAKER


def test_a_marketable_sell_limit_fills_at_the_higher_live_price(place):
    place(side="sell", type="limit", price=D("49000"), quantity=D("0.2"))

    assert Fill.objects.get().price == D("50000")  # max(limit, live)


def test_a_resting_limit_reserves_margin_and_maker_fee_and_writes_no_fill(place, portfolio):
    order = place(type="limit", price=D("49000"), quantity=D("0.5"), leverage=10)

    assert order.status == Order.Status.OPEN
    assert order.reserved_margin == D("0.5") * 49000 / 10 + D("0.5") * 49000 * MAKER  # 2,450 + 4.9
    assert not Fill.objects.exists()
    portfolio.refresh_from_db()
    assert portfolio.cash == D("100000")  # reserved, not moved


def test_reservations_count_against_later_orders(place, portfolio):
    place(type="limit", price=D("40000"), quantity=D("2"), leverage=1)  # holds 80,000 + 16
    before = row_counts()

    with pytest.raises(InsufficientFunds):
        place(type="limit", price=D("40000"), quantity=D("0.5"), leverage=1)  # needs 20,004

    assert row_counts() == before


def test_cancel_releases_the_reservation(place):
    order = place(type="limit", price=D("40000"), quantity=D("2"), leverage=1)

    cancelled = order_cancel(order=order)

    assert cancelled.status == Order.Status.CANCELLED
    assert cancelled.reserved_margin == 0
    assert place(type="limit", price=D("40000"), quantity=D("2"), leverage=1).status == Order.Status.OPEN


def test_a_resting_buy_limit_fills_as_maker_at_its_price_when_the_price_falls_through(place, btc, portfolio):
    order = place(type="limit", price=D("49000"), quantity=D("0.5"), leverage=10)

    untouched = evaluate(btc, "49500")
    crossed = evaluate(btc, "48800")

    order.refresh_from_db()
    fill = Fill.objects.get()
    assert (untouched.crossed, crossed.filled) == (0, 1)
    assert order.status == Order.Status.FILLED
    assert order.reserved_margin == 0
    assert (fill.price, fill.is_maker, fill.fee) == (D("49000"), True, D("0.5") * 49000 * MAKER)
    position = Position.objects.get()
    assert (position.entry_price, position.quantity, position.leverage) == (D("49000"), D("0.5"), 10)


def test_a_resting_sell_limit_fills_when_the_price_rises_to_it(place, btc):
    order = place(side="sell", type="limit", price=D("51000"), quantity=D("0.1"))

    result = evaluate(btc, "51000")

    order.refresh_from_db()
    assert result.filled == 1
    assert order.status == Order.Status.FILLED
    assert Position.objects.get().side == "short"


def test_an_evaluation_a_second_time_fills_nothing_more(place, btc):
    place(type="limit", price=D("49000"), quantity=D("0.5"))
    evaluate(btc, "48000")

    again = evaluate(btc, "48000")

    assert again.crossed == 0
    assert Fill.objects.count() == 1


def test_a_resting_order_without_funds_at_fill_time_is_rejected(place, btc, portfolio):
    order = place(type="limit", price=D("49000"), quantity=D("1"), leverage=1)
    portfolio.cash = D("100")  # an outside drain (e.g. a liquidation loss) after placement
    portfolio.save(update_fields=["cash"])

    result = evaluate(btc, "48000")

    order.refresh_from_db()
    assert result.rejected == 1
    assert (order.status, order.reject_reason, order.reserved_margin) == ("rejected", "insufficient_funds", 0)
    assert not Fill.objects.exists()
    assert not Position.objects.exists()


# --- time in force ------------------------------------------------------------------------------


def test_ioc_limit_that_cannot_fill_now_expires_without_a_fill(place):
    order = place(type="limit", price=D("49000"), time_in_force="IOC")

    assert order.status == Order.Status.EXPIRED
    assert order.filled_quantity == 0
    assert order.reserved_margin == 0
    assert not Fill.objects.exists()


def test_ioc_limit_that_can_fill_now_fills(place):
    order = place(type="limit", price=D("50000"), time_in_force="IOC")

    assert order.status == Order.Status.FILLED


def test_fok_limit_that_cannot_fill_is_refused_and_writes_nothing(place):
    before = row_counts()

    with pytest.raises(FillOrKillUnfilled) as refused:
        place(type="limit", price=D("49000"), time_in_force="FOK")

    assert refused.value.code == "fok_unfilled"
    assert row_counts() == before


def test_fok_limit_that_can_fill_fills_in_full(place):
    order = place(side="sell", type="limit", price=D("49999.99"), time_in_force="FOK")

    assert (order.status, order.filled_quantity) == (Order.Status.FILLED, D("0.5"))


def test_market_orders_fill_whatever_the_time_in_force(place):
    assert place(time_in_force="FOK").status == Order.Status.FILLED
    assert place(time_in_force="IOC").status == Order.Status.FILLED


# --- stops and take-profits -----------------------------------------------------------------


def test_buy_stop_waits_then_fills_at_the_live_price_as_taker_when_the_price_rises_to_it(place, btc):
    order = place(type="stop", stop_price=D("51000"), quantity=D("0.2"))
    assert order.status == Order.Status.PENDING
    assert order.reserved_margin == 0

    below = evaluate(btc, "50900")
    through = evaluate(btc, "51200")

    order.refresh_from_db()
    fill = Fill.objects.get()
    assert (below.triggered, through.triggered, through.filled) == (0, 1, 1)
    assert order.status == Order.Status.FILLED
    assert order.triggered_at is not None
    assert (fill.price, fill.is_maker, fill.fee) == (D("51200"), False, D("0.2") * 51200 * TAKER)


def test_sell_stop_loss_closes_a_long_when_the_price_falls_to_it(place, btc, portfolio):
    place(quantity=D("1"), leverage=5)
    stop = place(side="sell", type="stop", stop_price=D("48000"), quantity=D("1"), reduce_only=True)

    evaluate(btc, "47900")

    stop.refresh_from_db()
    assert stop.status == Order.Status.FILLED
    closed = Position.objects.get()
    assert closed.status == Position.Status.CLOSED
    assert closed.realized_pnl == D("1") * (D("47900") - D("50000"))


def test_take_profits_trigger_in_the_opposite_direction(place, btc):
    sell_tp = place(side="sell", type="take_profit", stop_price=D("52000"), quantity=D("0.1"))
    buy_tp = place(side="buy", type="take_profit", stop_price=D("48000"), quantity=D("0.1"))

    evaluate(btc, "51000")  # between: neither
    up = evaluate(btc, "52000")
    down = evaluate(btc, "47000")

    sell_tp.refresh_from_db()
    buy_tp.refresh_from_db()
    assert (up.triggered, down.triggered) == (1, 1)
    assert sell_tp.average_price == D("52000")
    assert buy_tp.average_price == D("47000")


def test_stop_limit_rests_as_a_limit_once_triggered_and_fills_later(place, btc):
    order = place(type="stop_limit", stop_price=D("51000"), price=D("50800"), quantity=D("0.1"))

    triggered = evaluate(btc, "51100")  # triggers; 51,100 is above the 50,800 limit: rests
    order.refresh_from_db()
    assert (triggered.triggered, triggered.rested) == (1, 1)
    assert order.status == Order.Status.OPEN
    assert order.reserved_margin == D("0.1") * 50800 + D("0.1") * 50800 * MAKER  # 1x

    filled = evaluate(btc, "50700")

    order.refresh_from_db()
    assert filled.filled == 1
    assert (order.status, order.average_price) == (Order.Status.FILLED, D("50800"))
    assert Fill.objects.get().is_maker is True


def test_take_profit_limit_marketable_on_trigger_fills_as_taker(place, btc):
    order = place(side="sell", type="take_profit_limit", stop_price=D("52000"), price=D("51900"))

    evaluate(btc, "52100")

    order.refresh_from_db()
    fill = Fill.objects.get()
    assert order.status == Order.Status.FILLED
    assert (fill.price, fill.is_maker) == (D("52100"), False)


def test_a_stop_limit_ioc_that_cannot_fill_on_trigger_expires(place, btc):
    order = place(
        type="stop_limit", stop_price=D("51000"), price=D("50800"), quantity=D("0.1"), time_in_force="IOC"
    )

    result = evaluate(btc, "51100")

    order.refresh_from_db()
    assert result.expired == 1
    assert order.status == Order.Status.EXPIRED


@pytest.mark.parametrize(
    ("side", "type", "stop"),
    [
        ("buy", "stop", "50000"),  # a buy stop must be above the price
        ("buy", "stop", "49000"),
        ("sell", "stop", "51000"),  # a sell stop below it
        ("buy", "take_profit", "51000"),  # a buy take-profit below it
        ("sell", "take_profit_limit", "49000"),  # a sell take-profit above it
    ],
)
def test_stops_already_crossed_are_refused(place, side, type, stop):
    extra = {"price": D("50000")} if type.endswith("_limit") else {}
    before = row_counts()

    with pytest.raises(OrderWouldTrigger) as refused:
        place(side=side, type=type, stop_price=D(stop), **extra)

    assert refused.value.code == "order_would_immediately_trigger"
    assert row_counts() == before


def test_cancelled_stop_never_triggers(place, btc):
    order = place(type="stop", stop_price=D("51000"))
    order_cancel(order=order)

    result = evaluate(btc, "52000")

    assert result.crossed == 0
    assert not Fill.objects.exists()
