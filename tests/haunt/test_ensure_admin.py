import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db


@override_settings(
    HAUNT_ADMIN_USERNAME="root",
    HAUNT_ADMIN_EMAIL="ops@example.com",
    HAUNT_ADMIN_PASSWORD="a long passphrase 42",
)
def test_creates_the_admin_once():
    call_command("ensure_admin", stdout=io.StringIO())
    call_command("ensure_admin", stdout=io.StringIO())

    admin = User.objects.get(username="root")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("a long passphrase 42")
    assert User.objects.count() == 1


@override_settings(HAUNT_ADMIN_USERNAME="root", HAUNT_ADMIN_PASSWORD="12345")
def test_weak_password_is_refused():
    with pytest.raises(CommandError, match="refused"):
        call_command("ensure_admin")

    assert not User.objects.exists()


@override_settings(HAUNT_ADMIN_USERNAME=None, HAUNT_ADMIN_PASSWORD=None)
def test_missing_env_is_an_error():
    with pytest.raises(CommandError, match="HAUNT_ADMIN_USERNAME"):
        call_command("ensure_admin")
