"""The set-based paths of feed reads and apply give the same results as the row-by-row ones:
PostgreSQL text values made JSON-safe exactly like json_safe() does, new rows COPYed while rows
with a local version are still decided one by one, in one page."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connections
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.sync.apply import batch_apply
from apps.sync.feed import json_safe, rows_serialize, timestamptz_iso
from apps.sync.models import SyncConflict, SyncFeed
from apps.trading.models import Order, Portfolio, Profile
from tests.conftest import skip_or_fail
from tests.sync.data.conftest import NODE2, A, B, as_node, pull, settled_page, table


def postgres_text(value: dt.datetime) -> str:
    """How PostgreSQL prints a timestamptz in UTC (ISO DateStyle): trailing zeros of the
    fraction dropped, no fraction at all when it is zero, offset "+00"."""
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "+00"


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_timestamptz_text_becomes_what_isoformat_writes(value: dt.datetime) -> None:
    aware = value.replace(tzinfo=dt.UTC)

    assert timestamptz_iso(postgres_text(aware)) == aware.isoformat()


def test_an_offset_other_than_utc_is_converted_to_utc() -> None:
    assert timestamptz_iso("2024-05-01 12:30:00.5+02") == "2024-05-01T10:30:00.500000+00:00"


def orm_serialized(model: type[Order], pk: uuid.UUID) -> dict[str, object]:
    names = [f.attname for f in model._meta.concrete_fields]
    row = model._base_manager.filter(pk=pk).values(*names).get()
    return {name: json_safe(value) for name, value in row.items()}


@pytest.mark.django_db
def test_postgresql_rows_are_serialized_exactly_like_the_orm_path() -> None:
    if connections["default"].vendor != "postgresql":
        skip_or_fail("the raw reader is PostgreSQL's")
    user = User.objects.create_user(username="alice", password="x")
    portfolio = Portfolio.objects.create(
        user=user, name="main", cash=Decimal("1000"), initial_cash=Decimal("1000"), home_node=A
    )
    order = Order.objects.create(
        portfolio=portfolio,
        client_order_id="tiny",
        symbol="btc",
        side="buy",
        type="limit",
        quantity=Decimal("0.000000000001"),  # str(Decimal) writes "1E-12"
        price=Decimal("123.450000000000"),
        fee=Decimal("0"),  # "0E-12"
        status="open",
    )
    Order.objects.filter(pk=order.pk).update(
        triggered_at=dt.datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=dt.UTC),
        closed_at=dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC),  # no fraction at all
    )

    raw = rows_serialize(model=Order, ids=[order.pk], using="default")[str(order.pk)]
    expected = orm_serialized(Order, order.pk)

    assert raw == expected
    assert (raw["quantity"], raw["fee"], raw["triggered_at"], raw["closed_at"]) == (
        "1E-12",
        "0E-12",
        "2024-05-01T10:00:00.250000+00:00",
        "2024-05-01T12:00:00+00:00",
    )
    assert raw["price"] == "123.450000000000" and raw["reject_reason"] == ""

    # Zeros alone: PostgreSQL writes them as str(Decimal) does, with no round trip in Python.
    Order.objects.filter(pk=order.pk).update(quantity=Decimal("1"))
    only_zeros = rows_serialize(model=Order, ids=[order.pk], using="default")[str(order.pk)]
    assert only_zeros == orm_serialized(Order, order.pk)
    assert (only_zeros["quantity"], only_zeros["fee"]) == ("1.000000000000", "0E-12")


@pytest.mark.django_db(transaction=True, databases=["default", NODE2])
@pytest.mark.usefixtures("two_nodes")
def test_a_page_mixing_new_rows_and_concurrent_edits_applies_both_ways_and_converges() -> None:
    alice = User.objects.create_user(username="alice", password="x", is_staff=True)
    bob = User.objects.create_user(username="bob", password="x")
    for user in (alice, bob):
        User.objects.using(NODE2).create(id=user.id, username=user.username, password=user.password)
    with as_node(A):
        edited = Profile.objects.create(user=alice, username="alice")
    pull(source=A, target=B)
    with as_node(A):
        edited.theme = "dark"
        edited.save()
        fresh = Profile.objects.create(user=bob, username="bob")  # new on seoul: the COPY path
    with as_node(B):
        remote = Profile.objects.using(NODE2).get(pk=edited.pk)
        remote.theme = "light"
        remote.save()  # concurrent with osaka's edit, later stamp: decided row by row
    page = settled_page(source=A, lane=5, exclude_origin=B)
    assert {row["id"] for row in page["rows"]} == {str(edited.pk), str(fresh.pk)}

    with as_node(B):
        result = batch_apply(peer=A, lane=5, page=page, using=NODE2)

    # Both rows are written: the new one as it came, the edited one as seoul's winning version
    # with the joined version vector (it now dominates osaka's too).
    assert (result.applied, result.unchanged, result.conflicts, result.new_conflicts) == (2, 0, 1, 1)
    assert Profile.objects.using(NODE2).get(pk=edited.pk).version_vector == {A: 2, B: 1}
    refed = dict(SyncFeed.objects.using(NODE2).filter(entity="profiles").values_list("entity_id", "origin"))
    assert refed == {fresh.pk: A, edited.pk: B}  # the new row keeps its writer; seoul's edit stays its own
    pull(source=B, target=A)
    pull(source=A, target=B)
    assert table(Profile, "default") == table(Profile, NODE2)
    assert Profile.objects.get(pk=edited.pk).theme == "light"
    assert table(SyncConflict, "default") == table(SyncConflict, NODE2)
    assert SyncConflict.objects.count() == 1


@pytest.mark.django_db(transaction=True, databases=["default", NODE2])
@pytest.mark.usefixtures("two_nodes")
def test_applied_rows_are_refed_already_numbered_above_what_readers_have_seen() -> None:
    if connections["default"].vendor != "postgresql":
        skip_or_fail("numbering is PostgreSQL's")
    from apps.sync.feed import feed_sequence

    alice = User.objects.create_user(username="alice", password="x")
    User.objects.using(NODE2).create(id=alice.id, username="alice", password=alice.password)
    with as_node(B):
        Profile.objects.using(NODE2).create(user_id=alice.id, username="seoul-own")  # seoul's own write
    feed_sequence(using=NODE2)  # a reader numbered it
    seen = SyncFeed.objects.using(NODE2).get(entity="profiles").seq
    with as_node(A):
        bob = User.objects.create_user(username="bob", password="x")
        User.objects.using(NODE2).create(id=bob.id, username="bob", password=bob.password)
        Profile.objects.create(user=bob, username="bob")

    pull(source=A, target=B)

    refed = SyncFeed.objects.using(NODE2).get(entity="profiles", origin=A)
    assert refed.sequenced  # no reader has to number (and rewrite) it
    assert refed.seq > seen


def estimated_rows(table_name: str, using: str) -> float:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table_name])
        return float(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True, databases=["default", NODE2])
@pytest.mark.usefixtures("two_nodes")
def test_bulk_writes_and_a_backlog_applied_refresh_the_tables_planner_statistics() -> None:
    if connections["default"].vendor != "postgresql":
        skip_or_fail("PostgreSQL's planner statistics")
    from apps.sync.capture import table_statistics_refresh
    from apps.trading.models import PortfolioSnapshot

    snapshots = PortfolioSnapshot._meta.db_table
    for node in (A, B):
        with as_node(node) as using:
            table_statistics_refresh(using=using, table=snapshots, changed=10**9)  # empty, analysed
    user = User.objects.create_user(username="alice", password="x")
    User.objects.using(NODE2).create(id=user.id, username=user.username, password=user.password)
    with as_node(A):
        portfolio = Portfolio.objects.create(
            user=user, name="main", cash=Decimal(1), initial_cash=Decimal(1), home_node=A
        )
        start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

        def write(count: int, offset: int) -> None:
            PortfolioSnapshot.objects.bulk_create(
                PortfolioSnapshot(
                    portfolio=portfolio,
                    taken_at=start + dt.timedelta(minutes=offset + i),
                    equity=Decimal(1),
                    cash=Decimal(1),
                    unrealized_pnl=Decimal(0),
                    realized_pnl=Decimal(0),
                    used_margin=Decimal(0),
                )
                for i in range(count)
            )

        write(600, 0)  # fewer changes than the table has rows (at least 1,000): not yet
        assert estimated_rows(snapshots, "default") == 0
        write(600, 600)  # 1,200 changed since the last ANALYZE: the table doubled
        assert estimated_rows(snapshots, "default") == 1200

    pull(source=A, target=B, limit=600)  # two pages of new rows, each COPYed

    assert PortfolioSnapshot.objects.using(NODE2).count() == 1200
    assert estimated_rows(snapshots, NODE2) == 1200
