"""Options, strategies and bots over HTTP: shapes, codes, and access to one's own options only."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.trading.models import OptionPosition, Portfolio, PredictionHistory, Strategy
from apps.trading.services.bots import bots_ensure
from apps.trading.services.options import option_open
from apps.trading.services.predictions import prediction_record

pytestmark = pytest.mark.django_db

OPTIONS = "/api/trading/options"


def expiry_in(days: float = 182.5) -> str:
    return (timezone.now() + timedelta(days=days)).isoformat()


def body(**overrides):
    return {
        "underlying": "btc",
        "type": "call",
        "side": "long",
        "strike": "40",
        "expiry": expiry_in(),
        "quantity": "2",
    } | overrides


def test_quote_gives_premium_and_greeks(auth_client, hull_market, set_price):
    set_price("btc", 42)

    response = auth_client.get(
        f"{OPTIONS}/quote", {"underlying": "btc", "type": "put", "strike": "40", "expiry": expiry_in()}
    )

    assert response.status_code == 200
    data = response.json()
    assert Decimal(data["premium"]).quantize(Decimal("0.01")) == Decimal("0.81")  # Hull 15.6
    assert Decimal(data["spot"]) == 42
    assert -1 < Decimal(data["greeks"]["delta"]) < 0  # a put
    assert set(data["greeks"]) == {"delta", "gamma", "vega", "theta", "rho"}


def test_open_list_and_close_an_option(auth_client, portfolio, hull_market, set_price):
    set_price("btc", 42)

    opened = auth_client.post(OPTIONS, body(), format="json")

    assert opened.status_code == 201
    option = opened.json()
    assert (option["premium"], option["status"], option["portfolioId"]) == ("4.76", "open", str(portfolio.pk))
    listed = auth_client.get(OPTIONS).json()
    assert [o["id"] for o in listed["results"]] == [option["id"]]
    assert Decimal(listed["results"][0]["value"]) > 9  # two calls worth ~4.76 each

    closed = auth_client.post(f"{OPTIONS}/{option['id']}/close")

    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert auth_client.get(OPTIONS, {"status": "open"}).json()["results"] == []


def test_another_users_option_is_not_found(auth_client, portfolio, other_portfolio, hull_market, set_price):
    set_price("btc", 42)
    theirs = option_open(
        portfolio=other_portfolio,
        underlying="btc",
        option_type="call",
        side="long",
        strike=Decimal(40),
        expiry=timezone.now() + timedelta(days=30),
        quantity=Decimal(1),
    )

    response = auth_client.post(f"{OPTIONS}/{theirs.pk}/close")
    listed = auth_client.get(OPTIONS, {"portfolio": str(other_portfolio.pk)})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert listed.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == OptionPosition.Status.OPEN


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"quantity": "0"}, 400, "invalid_quantity"),
        ({"quantity": "1.23456"}, 400, "invalid_quantity"),
        ({"expiry": "2001-01-01T00:00:00Z"}, 400, "invalid_expiry"),
        ({"underlying": "nope"}, 400, "unknown_symbol"),
        ({"type": "straddle"}, 400, "invalid"),
        ({"strike": "-1"}, 400, "invalid_price"),
        ({"quantity": "30000"}, 409, "insufficient_funds"),
        ({"surprise": "field"}, 400, "invalid"),
    ],
)
def test_bad_option_input_gets_a_coded_4xx(
    auth_client, portfolio, hull_market, set_price, overrides, status, code
):
    set_price("btc", 42)

    response = auth_client.post(OPTIONS, body(**overrides), format="json")

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    portfolio.refresh_from_db()
    assert portfolio.cash == 100000
    assert not OptionPosition.objects.exists()


def test_no_price_is_a_503(auth_client, portfolio, hull_market):
    response = auth_client.post(OPTIONS, body(), format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "price_unavailable"


def test_options_need_authentication(api_client):
    assert api_client.get(OPTIONS).status_code == 401


def test_strategies_and_bots_are_readable(auth_client, seeded, set_price):
    bots_ensure()
    quant = Strategy.objects.get(persona="quant")
    prediction_record(
        strategy=quant,
        symbol="btc",
        direction="up",
        confidence=Decimal("0.7"),
        horizon_seconds=3600,
        price=Decimal(100),
    )
    PredictionHistory.objects.update(correct=True, actual_price=Decimal(101), resolved_at=timezone.now())
    set_price("btc", 100)

    strategies = auth_client.get("/api/trading/strategies")
    bots = auth_client.get("/api/trading/bots")

    assert strategies.status_code == 200
    assert {s["persona"] for s in strategies.json()} == {"grandma", "crypto_bro", "quant", "scalper"}
    assert bots.status_code == 200
    by_persona = {b["strategy"]["persona"]: b for b in bots.json()}
    assert by_persona["grandma"]["username"] == "Grandma Bot"
    assert Decimal(by_persona["grandma"]["summary"]["equity"]) == 100000
    assert len(by_persona["quant"]["predictions"]) == 1
    assert by_persona["quant"]["accuracy"] == "1.0000"
    assert by_persona["grandma"]["predictions"] == []
    assert (
        Portfolio.objects.get(pk=by_persona["quant"]["strategy"]["portfolioId"]).user.username == "bot_quant"
    )
