"""A second node in the same process: another database ("node2", created and migrated once per
session), and helpers to write as a node and to sync one node from another."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings

from apps.sync.apply import batch_apply
from apps.sync.capture import invalidate_configs
from apps.sync.feed import cursor_get, feed_page, lanes, rows_serialize
from tests.sync.databases import extra_database

NODE2 = "node2"
A, B = "osaka", "seoul"
ALIASES = {A: "default", B: NODE2}


@pytest.fixture(scope="session")
def node2_db(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """Register and migrate the "node2" database alias (test_<name>_node2 / a second SQLite file)."""
    yield from extra_database(NODE2, django_db_blocker)


@pytest.fixture
def two_nodes(node2_db: str) -> Iterator[None]:
    """Use with @pytest.mark.django_db(transaction=True, databases=["default", "node2"])."""
    from apps.sync import hlc

    invalidate_configs()
    hlc.forget_high_water()
    yield
    invalidate_configs()


@contextmanager
def as_node(name: str) -> Iterator[str]:
    """Run code as node `name` (its HAUNT_NODE_ID); yields its database alias."""
    with override_settings(HAUNT_NODE_ID=name):
        yield ALIASES[name]


def _feed_top(alias: str, lane: int) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM sync_syncfeed WHERE lane = %s", [lane])
        return int(cursor.fetchone()[0])


def pull(*, source: str, target: str, limit: int = 500, lane_ids: list[int] | None = None) -> int:
    """`target` pulls every lane of `source`'s feed until caught up; returns rows applied.

    On a PostgreSQL server shared with other test databases, a transaction open anywhere on it
    holds the safe head back for a moment: keep pulling until every committed entry was read.
    """
    applied = 0
    for lane in lane_ids if lane_ids is not None else lanes():
        top = _feed_top(ALIASES[source], lane)
        deadline = time.monotonic() + 20
        while True:
            with as_node(target) as target_db:
                since = cursor_get(peer=source, lane=lane, using=target_db)
            with as_node(source) as source_db:
                page = feed_page(lane=lane, since=since, limit=limit, exclude_origin=target, using=source_db)
            with as_node(target) as target_db:
                result = batch_apply(peer=source, lane=lane, page=page, using=target_db)
            applied += result.applied + result.deleted + result.retried
            if page["next"] == since:
                if page["next"] >= top or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
    return applied


def settled_page(
    *, source: str, lane: int, exclude_origin: str | None, since: int = 0, limit: int = 500
) -> dict:
    """feed_page on `source`, once everything committed in the lane is readable."""
    alias = ALIASES[source]
    top = _feed_top(alias, lane)
    deadline = time.monotonic() + 20
    with as_node(source):
        while True:
            page = feed_page(lane=lane, since=since, limit=limit, exclude_origin=exclude_origin, using=alias)
            if page["next"] >= top or time.monotonic() > deadline:
                return page
            time.sleep(0.05)


def table(model: Any, using: str) -> dict[str, dict[str, Any]]:
    ids = list(model._base_manager.using(using).values_list("pk", flat=True))
    return rows_serialize(model=model, ids=ids, using=using)
