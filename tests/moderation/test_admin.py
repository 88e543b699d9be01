"""End to end through the admin: appeal, a moderator approves, the user can use the name."""

import pytest
from django.contrib.auth.models import User

from apps.moderation.models import BlockedTerm, UsernameAppeal, UsernameReview
from tests.conftest import make_user
from tests.moderation.conftest import FAKE_LIST

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, db):
    moderator = User.objects.create_superuser("moderator", "m@example.com", "pw")
    client.force_login(moderator)
    return client


def test_appeal_approved_in_the_admin_lets_that_user_take_the_name(
    auth_client, user, admin_client, blocklist
):
    auth_client.post(
        "/api/user/username/appeals", {"username": "Grobian", "message": "Surname."}, format="json"
    )
    refused_before = auth_client.put("/api/user/username", {"username": "Grobian"}, format="json")
    appeal = UsernameAppeal.objects.get()

    response = admin_client.post(
        "/admin/moderation/usernameappeal/", {"action": "approve", "_selected_action": [appeal.pk]}
    )
    accepted = auth_client.put("/api/user/username", {"username": "Grobian"}, format="json")

    other = make_user("erin")
    from rest_framework.test import APIClient

    other_client = APIClient()
    other_client.force_authenticate(other)
    other_try = other_client.put("/api/user/username", {"username": "Grobian"}, format="json")

    appeal.refresh_from_db()
    assert refused_before.status_code == 400
    assert response.status_code == 302
    assert appeal.status == "approved"
    assert accepted.status_code == 200
    assert other_try.status_code == 400  # whitelisted for alice only
    assert user.notifications.filter(kind="username.appeal_approved").exists()


def test_deny_action(auth_client, user, admin_client, blocklist):
    auth_client.post(
        "/api/user/username/appeals", {"username": "Grobian", "message": "Surname."}, format="json"
    )
    appeal = UsernameAppeal.objects.get()

    admin_client.post(
        "/admin/moderation/usernameappeal/", {"action": "deny", "_selected_action": [appeal.pk]}
    )

    appeal.refresh_from_db()
    assert appeal.status == "denied"
    assert user.notifications.filter(kind="username.appeal_denied").exists()


def test_import_from_file_in_the_admin(admin_client):
    with FAKE_LIST.open("rb") as handle:
        response = admin_client.post(
            "/admin/moderation/blockedterm/import/", {"file": handle, "default_category": "profanity"}
        )

    assert response.status_code == 302
    assert BlockedTerm.objects.filter(term="badword", category="slurs").exists()


def test_review_reset_gives_the_user_a_neutral_name(auth_client, user, admin_client, blocklist):
    auth_client.put("/api/user/username", {"username": "meh_trader"}, format="json")
    review = UsernameReview.objects.get()

    admin_client.post(
        "/admin/moderation/usernamereview/", {"action": "reset", "_selected_action": [review.pk]}
    )

    user.profile.refresh_from_db()
    assert user.profile.username.startswith("trader-")
    assert user.profile.username_changed_at is None


def test_moderation_pages_render(admin_client, blocklist):
    for page in ("blockedterm", "allowedword", "usernameappeal", "usernamereview", "usernamemoderationevent"):
        assert admin_client.get(f"/admin/moderation/{page}/").status_code == 200
    assert admin_client.get("/admin/moderation/blockedterm/import/").status_code == 200
