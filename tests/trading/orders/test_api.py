"""/api/trading/orders and /api/trading/trades: placement, lists, detail, cancel, access."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from apps.trading.models import Order, Portfolio
from tests.trading.factories import make_portfolio, row_counts

pytestmark = pytest.mark.django_db

D = Decimal
ORDERS = "/api/trading/orders"


def post(client: APIClient, **body):
    return client.post(
        ORDERS, {"symbol": "btc", "side": "buy", "type": "market", "quantity": "0.5"} | body, format="json"
    )


def test_place_a_market_order(auth_client, portfolio, btc):
    response = post(auth_client, leverage=10, clientOrderId="web-1")

    body = response.json()
    assert response.status_code == 201
    assert body["status"] == "filled"
    assert body["portfolioId"] == str(portfolio.pk)
    assert (body["quantity"], body["averagePrice"], body["fee"]) == ("0.5", "50000", "12.5")
    assert body["clientOrderId"] == "web-1"
    assert body["placedBy"] == "user"


def test_the_order_goes_to_the_active_portfolio_unless_another_is_named(auth_client, user, portfolio, btc):
    other = Portfolio.objects.create(
        user=user, name="second", cash=D("5000"), initial_cash=D("5000"), home_node="local"
    )

    named = post(auth_client, portfolio=str(other.pk), quantity="0.01").json()
    default = post(auth_client, quantity="0.01").json()

    assert named["portfolioId"] == str(other.pk)
    assert default["portfolioId"] == str(portfolio.pk)


def test_a_retried_client_id_returns_the_same_order(auth_client, portfolio, btc):
    first = post(auth_client, clientOrderId="dup").json()

    again = post(auth_client, clientOrderId="dup").json()

    assert again["id"] == first["id"]
    assert Order.objects.count() == 1


def test_no_fresh_price_answers_503_price_unavailable(auth_client, portfolio):
    response = post(auth_client)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "price_unavailable"
    assert row_counts()["orders"] == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"quantity": "0"}, 400, "invalid_quantity"),
        ({"quantity": "-1"}, 400, "invalid_quantity"),
        ({"quantity": "0.0001"}, 400, "invalid_quantity"),
        ({"symbol": "nope"}, 400, "unknown_symbol"),
        ({"leverage": 0}, 400, "invalid_leverage"),
        ({"leverage": 500}, 400, "invalid_leverage"),
        ({"type": "limit"}, 400, "invalid_order"),
        ({"type": "limit", "price": "49000.001"}, 400, "invalid_price"),
        ({"quantity": "lots"}, 400, "invalid"),
        ({"side": "up"}, 400, "invalid"),
        ({"colour": "red"}, 400, "invalid"),  # unknown fields are errors, not ignored
        ({"quantity": "10"}, 409, "insufficient_funds"),
        ({"reduceOnly": True}, 409, "reduce_only_rejected"),
        ({"type": "limit", "price": "40000", "timeInForce": "FOK"}, 409, "fok_unfilled"),
        ({"type": "stop", "stopPrice": "49000"}, 400, "order_would_immediately_trigger"),
    ],
)
def test_bad_input_gets_its_code_and_changes_nothing(auth_client, portfolio, btc, body, status, code):
    before = row_counts()

    response = post(auth_client, **body)

    portfolio.refresh_from_db()
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert row_counts() == before
    assert portfolio.cash == D("100000")


def test_list_filters_by_status_and_symbol_and_paginates(auth_client, portfolio, btc, set_price):
    set_price("eth", "3000")
    post(auth_client)
    post(auth_client, type="limit", price="45000")
    post(auth_client, type="stop", stopPrice="55000")
    post(auth_client, symbol="eth", quantity="1")

    resting = auth_client.get(ORDERS, {"status": "open,pending"}).json()
    eth = auth_client.get(ORDERS, {"symbol": "ETH"}).json()
    page = auth_client.get(ORDERS, {"page_size": 2}).json()
    bad = auth_client.get(ORDERS, {"status": "sleeping"})

    assert sorted(o["type"] for o in resting["results"]) == ["limit", "stop"]
    assert [o["symbol"] for o in eth["results"]] == ["eth"]
    assert (page["count"], len(page["results"])) == (4, 2)
    assert page["next"] is not None
    assert bad.status_code == 400


def test_detail_and_cancel_of_own_order(auth_client, portfolio, btc):
    order = post(auth_client, type="limit", price="45000").json()

    detail = auth_client.get(f"{ORDERS}/{order['id']}")
    cancelled = auth_client.post(f"{ORDERS}/{order['id']}/cancel")
    twice = auth_client.post(f"{ORDERS}/{order['id']}/cancel")

    assert detail.json()["reservedMargin"] == "22504.5"  # 0.5·45,000/1 + 0.5·45,000·0.0002
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["reservedMargin"]) == ("cancelled", "0")
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "order_not_cancellable"


def test_another_users_order_is_not_found(auth_client, portfolio, outsider, btc):
    theirs = make_portfolio(outsider, name="theirs")
    from apps.trading.services.orders import order_place

    order = order_place(
        portfolio=theirs, symbol="btc", side="buy", type="limit", quantity=D("0.1"), price=D("40000")
    )

    detail = auth_client.get(f"{ORDERS}/{order.pk}")
    cancel = auth_client.post(f"{ORDERS}/{order.pk}/cancel")
    listing = auth_client.get(ORDERS, {"portfolio": str(theirs.pk)})
    placing = post(auth_client, portfolio=str(theirs.pk))

    assert [r.status_code for r in (detail, cancel, listing, placing)] == [404, 404, 404, 404]
    assert detail.json()["error"]["code"] == "not_found"
    order.refresh_from_db()
    assert order.status == "open"
    assert Order.objects.count() == 1


def test_trades_lists_own_fills(auth_client, portfolio, outsider, btc):
    post(auth_client, quantity="0.5")
    post(auth_client, side="sell", quantity="0.8")  # a flip: two fills
    from apps.trading.services.orders import order_place

    order_place(
        portfolio=make_portfolio(outsider, name="theirs"),
        symbol="btc",
        side="buy",
        type="market",
        quantity=D("0.1"),
    )

    trades = auth_client.get("/api/trading/trades").json()

    assert trades["count"] == 3
    assert {t["portfolioId"] for t in trades["results"]} == {str(portfolio.pk)}
    assert sorted(t["quantity"] for t in trades["results"]) == ["0.3", "0.5", "0.5"]
    assert sorted(t["realizedPnl"] for t in trades["results"]) == ["0", "0", "0"]  # no move: no PnL


def test_anonymous_is_refused(api_client, btc):
    assert api_client.get(ORDERS).status_code in (401, 403)
