"""Accounts API: portfolios, summary, funding payments, snapshots, leaderboard, preferences."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.trading.models import FundingPayment, Portfolio, PortfolioSnapshot, Profile
from tests.trading.factories import make_position

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def foreign(seeded, outsider):
    return Portfolio.objects.create(
        user=outsider, name="bobs", cash=D("1"), initial_cash=D("1"), home_node="local", is_active=True
    )


def test_create_list_and_detail(seeded, auth_client):
    created = auth_client.post("/api/trading/portfolios", {"name": "Swing", "marginMode": "isolated"})

    assert created.status_code == 201
    body = created.json()
    assert (body["name"], body["marginMode"], body["costBasis"]) == ("Swing", "isolated", "average")
    assert body["cash"] == "100000"
    assert body["isActive"] is True
    assert body["avatarUrl"] == f"/api/avatars/{body['id']}.svg"
    listed = auth_client.get("/api/trading/portfolios").json()
    assert [p["id"] for p in listed] == [body["id"]]
    assert auth_client.get(f"/api/trading/portfolios/{body['id']}").json()["name"] == "Swing"


def test_duplicate_name_is_409(seeded, auth_client):
    auth_client.post("/api/trading/portfolios", {"name": "Swing"})

    response = auth_client.post("/api/trading/portfolios", {"name": "swing"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "portfolio_name_taken"


def test_bad_input_is_400(seeded, auth_client):
    for payload in ({"name": ""}, {"name": "x", "marginMode": "hedge"}, {"name": "x", "cash": "1e9"}):
        response = auth_client.post("/api/trading/portfolios", payload)
        assert response.status_code == 400, payload
        assert response.json()["error"]["code"] == "invalid"
    assert not Portfolio.objects.exists()


def test_another_users_portfolio_is_404_everywhere(auth_client, foreign):
    paths = [
        ("get", f"/api/trading/portfolios/{foreign.pk}"),
        ("patch", f"/api/trading/portfolios/{foreign.pk}"),
        ("post", f"/api/trading/portfolios/{foreign.pk}/activate"),
        ("get", f"/api/trading/account/summary?portfolio={foreign.pk}"),
        ("get", f"/api/trading/funding-payments?portfolio={foreign.pk}"),
        ("get", f"/api/trading/snapshots?portfolio={foreign.pk}"),
    ]
    for method, path in paths:
        response = getattr(auth_client, method)(path, {"isPublic": False} if method == "patch" else None)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    foreign.refresh_from_db()
    assert foreign.is_public is True


def test_anonymous_is_401(seeded):
    response = APIClient().get("/api/trading/portfolios")

    assert response.status_code == 401


def test_activate(seeded, auth_client):
    first = auth_client.post("/api/trading/portfolios", {"name": "a"}).json()
    second = auth_client.post("/api/trading/portfolios", {"name": "b"}).json()

    response = auth_client.post(f"/api/trading/portfolios/{second['id']}/activate")

    assert response.status_code == 200
    assert response.json()["isActive"] is True
    assert Portfolio.objects.get(pk=first["id"]).is_active is False


def test_patch_portfolio_preferences(seeded, auth_client):
    created = auth_client.post("/api/trading/portfolios", {"name": "a"}).json()

    response = auth_client.patch(
        f"/api/trading/portfolios/{created['id']}", {"costBasis": "fifo", "isPublic": False}
    )
    bad = auth_client.patch(f"/api/trading/portfolios/{created['id']}", {"costBasis": "lifo"})

    assert response.json()["costBasis"] == "fifo"
    assert response.json()["isPublic"] is False
    assert bad.status_code == 400


def test_summary_defaults_to_the_active_portfolio_created_on_first_use(seeded, auth_client, user):
    response = auth_client.get("/api/trading/account/summary")

    assert response.status_code == 200
    body = response.json()
    assert body["portfolioId"] == str(Portfolio.objects.get(user=user, is_active=True).pk)
    assert (body["equity"], body["freeMargin"], body["marginRatio"]) == ("100000", "100000", "0")
    assert body["stale"] is False


def test_summary_of_a_named_portfolio(portfolio, auth_client, set_price):
    make_position(portfolio, symbol="eth", side="long", quantity="10", entry="3000", leverage=5)
    set_price("eth", "3100")

    body = auth_client.get(f"/api/trading/account/summary?portfolio={portfolio.pk}").json()

    assert body["unrealizedPnl"] == "1000"
    assert body["usedMargin"] == "6200"  # 31,000 / 5
    assert body["openPositions"] == 1


def test_malformed_portfolio_param_is_400(portfolio, auth_client):
    response = auth_client.get("/api/trading/account/summary?portfolio=nope")

    assert response.status_code == 400


def test_funding_payments_list(portfolio, auth_client):
    position = make_position(portfolio, symbol="btc")
    for hour in (0, 8):
        FundingPayment.objects.create(
            position=position,
            portfolio=portfolio,
            symbol="btc",
            funding_time=datetime(2024, 5, 1, hour, tzinfo=UTC),
            rate=D("0.0001"),
            rate_source="fixed",
            mark_price=D("50000"),
            quantity=D("1"),
            amount=D("-5"),
        )

    body = auth_client.get("/api/trading/funding-payments?symbol=BTC").json()

    assert body["count"] == 2
    first = body["results"][0]
    assert first["fundingTime"].startswith("2024-05-01T08:00")
    assert (first["amount"], first["rate"], first["rateSource"]) == ("-5", "0.0001", "fixed")


def test_snapshots_since(portfolio, auth_client):
    now = timezone.now()
    for hours in (48, 2, 1):
        PortfolioSnapshot.objects.create(
            portfolio=portfolio,
            taken_at=now - timedelta(hours=hours),
            equity=D(100000 + hours),
            cash=D("100000"),
            unrealized_pnl=0,
            realized_pnl=0,
            used_margin=0,
        )
    since = (now - timedelta(hours=3)).isoformat()

    body = auth_client.get("/api/trading/snapshots", {"since": since}).json()

    assert [p["equity"] for p in body] == ["100002", "100001"]  # oldest first
    assert len(auth_client.get("/api/trading/snapshots").json()) == 3  # default: 30 days


def test_leaderboard_is_public(portfolio):
    Profile.objects.create(user=portfolio.user, username="Alice")

    response = APIClient().get("/api/trading/leaderboard?period=1d")

    assert response.status_code == 200
    body = response.json()
    assert body["period"] == "1d"
    assert body["results"][0]["username"] == "Alice"
    assert body["results"][0]["returnRatio"] == "0"


def test_leaderboard_bad_period_is_400(seeded):
    response = APIClient().get("/api/trading/leaderboard?period=2y")

    assert response.status_code == 400
    assert "period" in response.json()["error"]["detail"]


def test_preferences_get_and_patch(seeded, auth_client, user):
    initial = auth_client.get("/api/trading/preferences").json()

    response = auth_client.patch(
        "/api/trading/preferences",
        {"theme": "dark", "defaultTimeframe": "4h", "indicators": ["RSI(14)", "ema_50"]},
    )

    assert initial["theme"] == "system"
    assert response.status_code == 200
    profile = Profile.objects.get(user=user)
    assert (profile.theme, profile.default_timeframe, profile.indicators) == (
        "dark",
        "4h",
        ["RSI(14)", "ema_50"],
    )
    assert response.json()["avatarUrl"] == f"/api/avatars/{profile.pk}.svg"


@pytest.mark.parametrize(
    "payload",
    [
        {"theme": "neon"},
        {"defaultTimeframe": "7m"},
        {"indicators": "rsi"},
        {"indicators": ["<script>"]},
        {"indicators": ["x" * 33]},
        {"colour": "red"},
    ],
)
def test_invalid_preferences_are_400_and_change_nothing(seeded, auth_client, user, payload):
    response = auth_client.patch("/api/trading/preferences", payload, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    profile = Profile.objects.filter(user=user).first()
    assert profile is None or (profile.theme, profile.default_timeframe, profile.indicators) == (
        "system",
        "1d",
        [],
    )
