from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

REQUIRE_SERVICES = os.environ.get("HAUNT_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs a missing service, but fail in CI, where it must run."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (HAUNT_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def redis_url_or_skip() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        skip_or_fail("needs REDIS_URL")
    assert url is not None
    parsed = urlparse(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex((parsed.hostname or "127.0.0.1", parsed.port or 6379)) != 0:
            skip_or_fail(f"Redis at {url} is unreachable")
    return url


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    cache.clear()  # throttle counters live in the cache
    yield
    cache.clear()


def make_user(username: str = "alice", password: str = "correct horse battery") -> User:
    return User.objects.create_user(username=username, email=f"{username}@example.com", password=password)


@pytest.fixture
def user(db: None) -> User:
    return make_user("alice")


@pytest.fixture
def outsider(db: None) -> User:
    return make_user("bob")


@pytest.fixture
def token(user: User) -> str:
    return Token.objects.create(user=user).key


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def auth_client(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pool_before_teardown(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Close psycopg's pool before the test database is dropped.

    The pool keeps idle connections open, and PostgreSQL refuses to drop a database in use.
    """
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all(initialized_only=True):
            close_pool = getattr(connection, "close_pool", None)
            if close_pool is not None:
                close_pool()
