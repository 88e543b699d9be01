"""Two nodes in one process for the account tests: "default" is osaka, a second database
("accounts_b", created and migrated once per session) is seoul. Same approach as
tests/sync/data/conftest.py, under its own alias so both suites can run in one session."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from apps.sync.apply import ApplyResult, batch_apply
from apps.sync.capture import invalidate_configs
from apps.sync.feed import cursor_get, feed_page
from tests.sync.databases import extra_database

NODE_B = "accounts_b"
A, B = "osaka", "seoul"
ALIASES = {A: "default", B: NODE_B}
USERS_LANE = 2


@pytest.fixture(scope="session")
def node_b_db(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    yield from extra_database(NODE_B, django_db_blocker)


@contextmanager
def as_node(name: str) -> Iterator[str]:
    """Run code as node `name` (its HAUNT_NODE_ID); yields its database alias."""
    with override_settings(HAUNT_NODE_ID=name):
        yield ALIASES[name]


@pytest.fixture
def two_nodes(node_b_db: str) -> Iterator[None]:
    """Each node's user ids in its own range (PostgreSQL), as `sync_node_init` leaves them.
    Use with @pytest.mark.django_db(transaction=True, databases=["default", NODE_B])."""
    from apps.sync import hlc

    invalidate_configs()
    hlc.forget_high_water()
    for name in (A, B):
        with as_node(name) as alias:
            call_command("sync_node_init", database=alias, stdout=io.StringIO(), stderr=io.StringIO())
    yield
    invalidate_configs()


def _feed_top(alias: str, lane: int) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM sync_syncfeed WHERE lane = %s", [lane])
        return int(cursor.fetchone()[0])


def settled_page(*, source: str, target: str, lane: int = USERS_LANE, limit: int = 500) -> dict[str, Any]:
    """The next page of `source`'s feed for `target`, once everything committed is readable."""
    with as_node(target) as target_db:
        since = cursor_get(peer=source, lane=lane, using=target_db)
    top = _feed_top(ALIASES[source], lane)
    deadline = time.monotonic() + 20
    with as_node(source) as source_db:
        while True:
            page = feed_page(lane=lane, since=since, limit=limit, exclude_origin=target, using=source_db)
            if page["next"] >= top or time.monotonic() > deadline:
                return page
            time.sleep(0.05)


def pull_lane(*, source: str, target: str, lane: int = USERS_LANE) -> ApplyResult:
    """`target` applies one page (everything pending) of `source`'s lane."""
    page = settled_page(source=source, target=target, lane=lane)
    with as_node(target) as target_db:
        return batch_apply(peer=source, lane=lane, page=page, using=target_db)
