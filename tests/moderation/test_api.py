import pytest

from apps.moderation.models import UsernameAppeal
from apps.trading.models import Profile
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_put_username_changes_it(auth_client, blocklist):
    response = auth_client.put("/api/user/username", {"username": "NightOwl"}, format="json")

    assert response.status_code == 200
    assert response.json()["username"] == "NightOwl"
    assert response.json()["flagged"] is False


def test_refusal_is_a_400_envelope_naming_the_category_not_the_term(auth_client, blocklist):
    response = auth_client.put("/api/user/username", {"username": "b4dw0rd_fan"}, format="json")

    error = response.json()["error"]
    assert response.status_code == 400
    assert error["code"] == "blocked"
    assert error["detail"]["category"] == "slurs"
    assert "badword" not in response.content.decode().lower()
    assert "b4dw0rd" not in error["message"].lower()


def test_second_change_is_429_with_retry_after(auth_client, blocklist):
    auth_client.put("/api/user/username", {"username": "NightOwl"}, format="json")

    response = auth_client.put("/api/user/username", {"username": "DayOwl"}, format="json")

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 0 < int(response["Retry-After"]) <= 86400


def test_taken_look_alike_is_a_409(auth_client, blocklist):
    other = make_user("carol")
    from apps.moderation.services import username_change

    username_change(user=other, raw="limes")

    response = auth_client.put("/api/user/username", {"username": "Iimes"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "username_taken"


def test_check_reports_without_changing_anything(auth_client, user, blocklist):
    bad = auth_client.post("/api/user/username/check", {"username": "zork"}, format="json").json()
    good = auth_client.post("/api/user/username/check", {"username": "zorkish"}, format="json").json()

    assert (bad["ok"], bad["code"], bad["category"]) == (False, "blocked", "violent_threats")
    assert "zork" not in bad["reason"].lower()
    assert good["ok"] is True  # a token term does not match inside a longer word
    assert not Profile.objects.filter(user=user).exclude(username="alice").exists()


def test_check_is_throttled_so_the_list_cannot_be_probed(auth_client, blocklist):
    statuses = [
        auth_client.post("/api/user/username/check", {"username": f"probe{i}"}, format="json").status_code
        for i in range(31)
    ]

    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429


def test_bad_input_is_a_400_not_a_500(auth_client, blocklist):
    wrong_type = auth_client.put("/api/user/username", {"username": ["x"]}, format="json")
    unknown = auth_client.put("/api/user/username", {"username": "abc", "colour": 1}, format="json")
    invisible = auth_client.put("/api/user/username", {"username": "ad\u200bmin"}, format="json")

    assert wrong_type.status_code == unknown.status_code == invisible.status_code == 400
    assert invisible.json()["error"]["code"] == "invisible_characters"


def test_appeal_then_list_own_appeals_only(auth_client, user, blocklist):
    other = make_user("dave")
    UsernameAppeal.objects.create(user=other, requested_name="x", message="m")

    created = auth_client.post(
        "/api/user/username/appeals", {"username": "Grobian", "message": "My family name."}, format="json"
    )
    listed = auth_client.get("/api/user/username/appeals").json()

    assert created.status_code == 201
    assert created.json()["status"] == "pending"
    assert [a["username"] for a in listed["results"]] == ["Grobian"]


def test_duplicate_pending_appeal_is_a_409(auth_client, blocklist):
    body = {"username": "Grobian", "message": "My family name."}
    auth_client.post("/api/user/username/appeals", body, format="json")

    again = auth_client.post("/api/user/username/appeals", body, format="json")

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "appeal_pending"


def test_anonymous_cannot_change_a_username(api_client):
    response = api_client.put("/api/user/username", {"username": "x"}, format="json")

    assert response.status_code == 401
