"""Bad orders are refused with a stable code before anything is written; reduce-only and
client-id idempotency."""

from decimal import Decimal

import pytest

from apps.trading.exceptions import PriceUnavailable, ReduceOnlyRejected
from apps.trading.models import EngineSettings, Fill, Order, Position
from apps.trading.services.orders import order_place, position_close
from haunt.errors import HauntError
from tests.trading.factories import row_counts

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"quantity": D("0")}, "invalid_quantity"),
        ({"quantity": D("-1")}, "invalid_quantity"),
        ({"quantity": "abc"}, "invalid_quantity"),
        ({"quantity": "NaN"}, "invalid_quantity"),
        ({"quantity": D("0.0001")}, "invalid_quantity"),  # btc: 3 quantity decimals
        ({"symbol": "sol", "quantity": D("0.005")}, "invalid_quantity"),  # 3 decimals > sol's 2
        ({"symbol": "doge", "quantity": D("0.5")}, "invalid_quantity"),  # doge trades whole coins
        ({"symbol": "nope"}, "unknown_symbol"),
        ({"leverage": 0}, "invalid_leverage"),
        ({"leverage": -3}, "invalid_leverage"),
        ({"leverage": 126}, "invalid_leverage"),  # btc: 125
        ({"symbol": "sol", "leverage": 51}, "invalid_leverage"),  # sol: 50
        ({"type": "limit"}, "invalid_order"),  # no price
        ({"type": "stop"}, "invalid_order"),  # no stop price
        ({"type": "stop_limit", "stop_price": D("51000")}, "invalid_order"),  # no limit price
        ({"price": D("50000")}, "invalid_order"),  # a market order takes no price
        ({"type": "limit", "price": D("49000"), "stop_price": D("1")}, "invalid_order"),
        ({"type": "limit", "price": D("0")}, "invalid_price"),
        ({"type": "limit", "price": D("-5")}, "invalid_price"),
        ({"type": "limit", "price": D("49000.123")}, "invalid_price"),  # btc: 2 price decimals
        ({"type": "stop", "stop_price": D("51000.001")}, "invalid_price"),
        ({"side": "long"}, "invalid_order"),
        ({"type": "trailing"}, "invalid_order"),
        ({"time_in_force": "GTD"}, "invalid_order"),
        ({"margin_mode": "portfolio"}, "invalid_order"),
        ({"client_order_id": "has spaces"}, "invalid_order"),
        ({"client_order_id": "x" * 65}, "invalid_order"),
        ({"quantity": D("3")}, "insufficient_funds"),  # 150,000 notional at 1x
        ({"reduce_only": True}, "reduce_only_rejected"),  # no position to reduce
        ({"quantity": D("1.2"), "leverage": 125}, "max_leverage_ratio"),  # 60,000 > 50,000 at 125x
    ],
)
def test_bad_orders_are_refused_with_a_code_and_change_nothing(place, portfolio, overrides, code):
    before = row_counts()

    with pytest.raises(HauntError) as refused:
        place(**overrides)

    portfolio.refresh_from_db()
    assert refused.value.code == code
    assert 400 <= refused.value.http_status < 500
    assert row_counts() == before
    assert portfolio.cash == D("100000")


def test_the_engine_cap_on_leverage_applies(place):
    EngineSettings.objects.filter(key="default").update(user_max_leverage=20)

    with pytest.raises(HauntError) as refused:
        place(leverage=21)

    assert refused.value.code == "invalid_leverage"
    assert refused.value.detail["max_leverage"] == 20
    assert place(leverage=20).leverage == 20


def test_no_fresh_price_is_a_503_and_writes_nothing(portfolio, set_price):
    set_price("btc", "50000", age_ms=120_000)  # older than max_price_age_seconds (30)

    with pytest.raises(PriceUnavailable) as refused:
        order_place(portfolio=portfolio, symbol="btc", side="buy", type="market", quantity=D("0.1"))

    assert refused.value.http_status == 503
    assert row_counts()["orders"] == 0


def test_symbols_are_case_insensitive(place):
    assert place(symbol="BTC").symbol == "btc"


# --- idempotency -----------------------------------------------------------------------------------


def test_a_retried_client_order_id_returns_the_first_order_and_fills_once(place, portfolio):
    first = place(client_order_id="retry-1")

    again = place(client_order_id="retry-1", quantity=D("0.7"))  # a retry never re-fills

    portfolio.refresh_from_db()
    assert again.pk == first.pk
    assert Fill.objects.count() == 1
    assert portfolio.cash == D("100000") - D("0.5") * 50000 * D("0.0005")


def test_a_retry_is_answered_even_when_the_price_has_gone_stale(place, set_price):
    first = place(client_order_id="retry-2")
    set_price("btc", "50000", age_ms=120_000)

    assert place(client_order_id="retry-2").pk == first.pk


def test_orders_without_a_client_id_get_distinct_generated_ones(place):
    one, two = place(), place()

    assert one.client_order_id != two.client_order_id
    assert one.client_order_id.startswith("haunt-")


# --- reduce-only and closing -----------------------------------------------------------------------


def test_reduce_only_is_clamped_to_the_position_and_never_flips(place):
    place(quantity=D("0.3"))

    order = place(side="sell", quantity=D("1"), reduce_only=True)

    assert (order.quantity, order.filled_quantity, order.status) == (D("0.3"), D("0.3"), "filled")
    assert not Position.objects.filter(status=Position.Status.OPEN).exists()


def test_reduce_only_on_the_same_side_as_the_position_is_refused(place):
    place(quantity=D("0.3"))
    before = row_counts()

    with pytest.raises(ReduceOnlyRejected):
        place(quantity=D("0.1"), reduce_only=True)

    assert row_counts() == before


def test_a_resting_reduce_only_whose_position_is_gone_is_rejected_when_reached(place, btc):
    from apps.trading.services.triggers import prices_evaluate

    place(quantity=D("0.3"))
    take_profit = place(side="sell", type="limit", price=D("52000"), quantity=D("0.3"), reduce_only=True)
    place(side="sell", quantity=D("0.3"))  # closed by hand meanwhile
    btc("52000")

    prices_evaluate(prices={"btc": D("52000")})

    take_profit.refresh_from_db()
    assert (take_profit.status, take_profit.reject_reason) == ("rejected", "reduce_only_rejected")
    assert not Position.objects.filter(status=Position.Status.OPEN).exists()


def test_position_close_sells_the_whole_long_reduce_only(place, btc, portfolio):
    place(quantity=D("0.4"))
    position = Position.objects.get()
    btc("50500")

    order = position_close(position=position, placed_by="bot:grandma")

    position.refresh_from_db()
    assert (order.side, order.type, order.reduce_only, order.placed_by) == (
        "sell",
        "market",
        True,
        "bot:grandma",
    )
    assert position.status == Position.Status.CLOSED
    assert position.realized_pnl == D("0.4") * 500


def test_closing_a_closed_position_is_refused(place):
    place(quantity=D("0.4"))
    position = Position.objects.get()
    position_close(position=position)

    with pytest.raises(HauntError) as refused:
        position_close(position=position)

    assert refused.value.code == "position_not_open"
    assert Order.objects.count() == 2
