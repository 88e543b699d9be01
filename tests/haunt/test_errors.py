"""Every API error is {"error": {"code", "message", "detail"}} with the right 4xx status."""

import pytest

pytestmark = pytest.mark.django_db


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "detail"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_malformed_json_is_a_400_parse_error(api_client):
    response = api_client.post(
        "/api/auth/token", data='{"username": "alice",', content_type="application/json"
    )

    assert_envelope(response, 400, "parse_error")


def test_wrong_types_are_a_400_with_the_field_named(auth_client):
    response = auth_client.patch("/api/auth/me", {"indicators": "rsi", "theme": 7}, format="json")

    error = assert_envelope(response, 400, "invalid")
    assert set(error["detail"]) == {"indicators", "theme"}


def test_unknown_fields_are_refused_not_ignored(auth_client):
    response = auth_client.patch("/api/auth/me", {"theme": "dark", "colour": "red"}, format="json")

    error = assert_envelope(response, 400, "invalid")
    assert error["detail"] == {"colour": ["Unknown field."]}


def test_body_that_is_not_an_object_is_a_400(auth_client):
    response = auth_client.patch("/api/auth/me", ["dark"], format="json")

    assert_envelope(response, 400, "invalid")


def test_unknown_api_route_is_a_json_404(api_client):
    response = api_client.get("/api/no/such/thing")

    error = assert_envelope(response, 404, "not_found")
    assert "/api/no/such/thing" in error["message"]


def test_missing_auth_is_a_401_with_challenge(api_client):
    response = api_client.get("/api/auth/me")

    assert_envelope(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_bad_token_is_a_401(api_client):
    response = api_client.get("/api/auth/me", HTTP_AUTHORIZATION="Token nope")

    assert_envelope(response, 401, "authentication_failed")


def test_wrong_method_is_a_405(auth_client):
    response = auth_client.delete("/api/auth/me")

    assert_envelope(response, 405, "method_not_allowed")


def test_unsupported_media_type_is_a_415(auth_client):
    response = auth_client.patch("/api/auth/me", data="theme=dark", content_type="text/plain")

    assert_envelope(response, 415, "unsupported_media_type")


def test_wrong_password_is_a_400_invalid_credentials(api_client, user):
    response = api_client.post("/api/auth/token", {"username": "alice", "password": "nope"}, format="json")

    assert_envelope(response, 400, "invalid_credentials")


def test_throttled_requests_get_429_with_retry_after(api_client, user):
    body = {"username": "alice", "password": "wrong"}
    statuses = [api_client.post("/api/auth/token", body, format="json").status_code for _ in range(10)]

    response = api_client.post("/api/auth/token", body, format="json")

    assert statuses == [400] * 10  # the auth scope allows 10 attempts a minute
    error = assert_envelope(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert error["detail"]["retry_after"] > 0


def test_non_api_404_stays_html(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
