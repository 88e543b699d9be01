import pytest
from rest_framework.test import APIClient

from apps.trading.models import Profile

pytestmark = pytest.mark.django_db


def test_token_login_then_me_with_token_and_bearer(api_client, user):
    response = api_client.post(
        "/api/auth/token", {"username": "alice", "password": "correct horse battery"}, format="json"
    )
    token = response.json()["token"]

    by_token = APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Token {token}")
    by_bearer = APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert response.json()["user"]["username"] == "alice"
    assert by_token.status_code == by_bearer.status_code == 200
    assert by_token.json()["user"]["id"] == user.pk
    assert by_token.json()["node"] == {"id": "local", "region": "local"}


def test_token_is_stable_across_logins(api_client, user):
    credentials = {"username": "alice", "password": "correct horse battery"}

    first = api_client.post("/api/auth/token", credentials, format="json").json()["token"]
    second = api_client.post("/api/auth/token", credentials, format="json").json()["token"]

    assert first == second


def test_session_login_works_for_me(client, user):
    client.force_login(user)

    response = client.get("/api/auth/me")

    assert response.status_code == 200
    assert response.json()["profile"]["username"] == "alice"


def test_inactive_user_cannot_get_a_token(api_client, user):
    user.is_active = False
    user.save()

    response = api_client.post(
        "/api/auth/token", {"username": "alice", "password": "correct horse battery"}, format="json"
    )

    assert response.status_code == 400


def test_preferences_update_changes_only_given_fields(auth_client, user):
    auth_client.get("/api/auth/me")

    response = auth_client.patch(
        "/api/auth/me", {"theme": "dark", "indicators": ["rsi", "macd"]}, format="json"
    )

    assert response.status_code == 200
    profile = Profile.objects.get(user=user)
    assert (profile.theme, profile.indicators, profile.default_timeframe) == ("dark", ["rsi", "macd"], "1d")
    assert response.json()["profile"]["defaultTimeframe"] == "1d"


def test_invalid_preference_choice_writes_nothing(auth_client, user):
    auth_client.get("/api/auth/me")
    before = Profile.objects.get(user=user).version

    response = auth_client.patch("/api/auth/me", {"theme": "neon"}, format="json")

    assert response.status_code == 400
    assert Profile.objects.get(user=user).version == before
