"""Row locking on PostgreSQL: concurrent writers never lose a version increment."""

import threading

import pytest
from django.db import connection

from apps.trading.models import Profile
from apps.trading.services import profile_ensure, profile_preferences_update
from tests.conftest import make_user, skip_or_fail

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        skip_or_fail("row locking needs PostgreSQL; SQLite serialises whole-database writes")


def test_concurrent_preference_updates_each_bump_the_version():
    user = make_user("alice")
    profile_ensure(user=user)
    barrier, errors = threading.Barrier(4), []

    def update(theme: str) -> None:
        try:
            barrier.wait()
            profile_preferences_update(user=user, theme=theme)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=update, args=(t,)) for t in ("dark", "light", "dark", "system")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Profile.objects.get(user=user).version == 5  # 1 + four serialised writes, none lost
