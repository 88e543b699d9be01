"""REST API of positions, leverage, liquidations and margin history."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from apps.trading.models import LeverageChange, MarginHistory, Position
from apps.trading.services.liquidations import liquidations_check
from tests.trading.factories import make_portfolio, open_position
from tests.trading.positions import reference as ref

pytestmark = pytest.mark.django_db
D = Decimal
URL = "/api/trading/positions"


@pytest.fixture
def long_10x(portfolio, set_price) -> Position:
    set_price("btc", D(48000))
    return open_position(portfolio, side="long", entry="50000", leverage=10)


@pytest.fixture
def bobs_position(outsider, seeded) -> Position:
    return open_position(make_portfolio(outsider, name="bob"), side="short", entry="50000", leverage=5)


@pytest.fixture
def bob_client(outsider) -> APIClient:
    client = APIClient()
    client.force_authenticate(outsider)
    return client


def test_list_shows_only_your_positions_with_filters(auth_client, long_10x, bobs_position, portfolio):
    closed = open_position(portfolio, symbol="eth", side="short", quantity="1", entry="3000")
    Position.objects.filter(pk=closed.pk).update(status=Position.Status.CLOSED)

    everything = auth_client.get(URL).json()
    open_only = auth_client.get(URL, {"status": "open"}).json()
    eth = auth_client.get(URL, {"symbol": "ETH"}).json()

    assert {row["id"] for row in everything["results"]} == {str(long_10x.pk), str(closed.pk)}
    assert [row["id"] for row in open_only["results"]] == [str(long_10x.pk)]
    assert [row["id"] for row in eth["results"]] == [str(closed.pk)]
    row = open_only["results"][0]
    assert D(row["markPrice"]) == 48000
    assert D(row["unrealizedPnl"]) == ref.upnl("long", D(1), D(50000), D(48000))
    assert D(row["isolatedMargin"]) == 5000


def test_detail_carries_the_risk_figures_at_the_live_mark(auth_client, long_10x):
    body = auth_client.get(f"{URL}/{long_10x.pk}").json()

    risk = body["risk"]
    assert D(risk["markPrice"]) == 48000
    assert D(risk["notional"]) == 48000
    assert D(risk["initialMargin"]) == 4800
    assert D(risk["maintenanceMargin"]) == ref.mm(D(48000))
    assert D(risk["marginBalance"]) == D(5000) - 2000
    assert D(risk["marginRatio"]) == ref.mm(D(48000)) / 3000
    assert D(risk["bankruptcyPrice"]) == ref.bankruptcy("long", D(1), D(50000), D(5000))
    assert D(risk["maxRemovable"]) == ref.max_removable("long", D(1), D(50000), D(48000), D(5000), 10)
    assert ref.close(D(risk["liquidationPrice"]), ref.lp("long", D(1), D(50000), D(5000)))


def test_another_users_position_is_404_and_nothing_changes(auth_client, bobs_position):
    before = Position.objects.get(pk=bobs_position.pk)
    target = f"{URL}/{bobs_position.pk}"

    responses = [
        auth_client.get(target),
        auth_client.post(f"{target}/margin", {"amount": "100"}, format="json"),
        auth_client.put(f"{target}/leverage", {"leverage": 2}, format="json"),
        auth_client.post(f"{target}/close"),
        auth_client.get(f"{target}/leverage-history"),
    ]

    assert [r.status_code for r in responses] == [404] * 5
    assert {r.json()["error"]["code"] for r in responses} == {"not_found"}
    after = Position.objects.get(pk=bobs_position.pk)
    assert (after.version, after.leverage, after.isolated_margin) == (
        before.version,
        before.leverage,
        before.isolated_margin,
    )
    assert not LeverageChange.objects.exists()
    assert not MarginHistory.objects.exists()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"amount": "250"}, D(5250)),
        ({"amount": "-250"}, D(4750)),
        ({"type": "remove", "amount": "250"}, D(4750)),
    ],
)
def test_margin_add_and_remove(auth_client, long_10x, set_price, payload, expected):
    set_price("btc", D(52000))  # removable: min(5,000 - 210, 5,000 + 2,000 - 5,200) = 1,800

    response = auth_client.post(f"{URL}/{long_10x.pk}/margin", payload, format="json")

    assert response.status_code == 200
    assert D(response.json()["isolatedMargin"]) == expected
    assert ref.close(D(response.json()["liquidationPrice"]), ref.lp("long", D(1), D(50000), expected))


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"amount": "0"}, "invalid_margin_amount"),
        ({"type": "add", "amount": "-5"}, "invalid"),
        ({"amount": "100", "extra": 1}, "invalid"),
        ({"amount": "-4000"}, "max_removable_exceeded"),
    ],
)
def test_margin_bad_input_is_a_4xx_with_a_code(auth_client, long_10x, payload, code):
    response = auth_client.post(f"{URL}/{long_10x.pk}/margin", payload, format="json")

    assert 400 <= response.status_code < 500
    assert response.json()["error"]["code"] == code
    assert Position.objects.get(pk=long_10x.pk).isolated_margin == 5000


def test_leverage_change_and_its_history(auth_client, long_10x, engine):
    engine.leverage_cooldown_seconds = 60
    engine.save()
    url = f"{URL}/{long_10x.pk}/leverage"

    ok = auth_client.put(url, {"leverage": 5}, format="json")
    cooling = auth_client.put(url, {"leverage": 4}, format="json")
    invalid = auth_client.put(url, {"leverage": "ten"}, format="json")
    unchanged = auth_client.put(url, {"leverage": 5}, format="json")
    history = auth_client.get(f"{URL}/{long_10x.pk}/leverage-history").json()["results"]

    assert ok.status_code == 200
    body = ok.json()
    assert (body["symbol"], body["leverage"], body["changed"]) == ("btc", 5, True)
    assert D(body["maxNotional"]) == D(480_000_000)  # 5x: cap of bracket 8, the last allowing 5x
    assert D(body["position"]["isolatedMargin"]) == D(10000)  # reset: 50,000 / 5
    assert cooling.status_code == 429
    assert cooling.json()["error"]["code"] == "leverage_cooldown"
    assert 59 <= int(cooling["Retry-After"]) <= 60
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "invalid_leverage"
    assert unchanged.status_code == 200 and unchanged.json()["changed"] is False
    assert [(h["outcome"], h["errorCode"], h["requestedLeverage"]) for h in history] == [
        ("unchanged", "", 5),
        ("rejected", "invalid_leverage", 0),
        ("rejected", "leverage_cooldown", 4),
        ("applied", "", 5),
    ]
    assert history[-1]["actor"] == f"user:{long_10x.portfolio.user_id}"


@pytest.mark.parametrize(("leverage", "max_leverage"), [(0, 125), (-1, 125), (126, 125), (1000, 125)])
def test_leverage_out_of_range_is_a_400_audited_and_changes_nothing(
    auth_client, long_10x, portfolio, leverage, max_leverage
):
    cash = portfolio.cash

    response = auth_client.put(f"{URL}/{long_10x.pk}/leverage", {"leverage": leverage}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["detail"]["max_leverage"]) == ("invalid_leverage", max_leverage)
    after = Position.objects.get(pk=long_10x.pk)
    assert (after.leverage, after.isolated_margin, after.version) == (10, D(5000), long_10x.version)
    portfolio.refresh_from_db()
    assert portfolio.cash == cash
    assert not MarginHistory.objects.filter(delta_type="leverage_change").exists()
    (audit,) = LeverageChange.objects.all()
    assert (audit.outcome, audit.error_code, audit.requested_leverage) == (
        "rejected",
        "invalid_leverage",
        leverage,
    )


def test_leverage_missing_is_an_input_error(auth_client, long_10x):
    response = auth_client.put(f"{URL}/{long_10x.pk}/leverage", {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_close_places_a_reduce_only_market_order(auth_client, long_10x):
    response = auth_client.post(f"{URL}/{long_10x.pk}/close")

    assert response.status_code == 201
    order = response.json()
    assert (order["side"], order["type"], order["reduceOnly"]) == ("sell", "market", True)
    assert Position.objects.get(pk=long_10x.pk).status == "closed"


def test_liquidations_and_margin_history_lists(auth_client, long_10x, bobs_position, bob_client):
    auth_client.post(f"{URL}/{long_10x.pk}/margin", {"type": "add", "amount": "100"}, format="json")
    liquidations_check(symbol="btc", mark=D(40000))

    mine = auth_client.get("/api/trading/liquidations").json()["results"]
    history = auth_client.get("/api/trading/margin-history", {"type": "liquidation"}).json()["results"]
    all_history = auth_client.get("/api/trading/margin-history", {"symbol": "btc"}).json()["results"]
    bobs = bob_client.get("/api/trading/liquidations").json()["results"]

    assert [row["positionId"] for row in mine] == [str(long_10x.pk)]
    assert D(mine[0]["marginLost"]) == 5100
    assert D(mine[0]["bankruptcyPrice"]) == ref.bankruptcy("long", D(1), D(50000), D(5100))
    assert [(row["deltaType"], D(row["amount"])) for row in history] == [("liquidation", D(-5100))]
    assert {row["deltaType"] for row in all_history} == {"add", "liquidation"}
    assert bobs == []
