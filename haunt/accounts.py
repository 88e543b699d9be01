"""Accounts: the first admin user and API tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from rest_framework.authtoken.models import Token


@transaction.atomic
def admin_user_ensure(*, username: str, email: str, password: str) -> bool:
    """Create a superuser unless one with this username exists; True when created.

    The password goes through the configured validators so a deployment cannot start with
    a weak admin password.
    """
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        return False
    user = user_model(username=username, email=email, is_staff=True, is_superuser=True)
    validate_password(password, user)
    user.set_password(password)
    user.save()
    return True


def api_token_get_or_create(*, user: AbstractBaseUser) -> str:
    """The user's API token, created on first use."""
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
