"""Two nodes in one process (databases "default" = osaka and "node2" = seoul): feed_page on one,
batch_apply on the other."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from apps.sync import apply as apply_module
from apps.sync.apply import batch_apply
from apps.sync.capture import invalidate_configs
from apps.sync.feed import cursor_get, feed_sequence, page_checksum, row_checksum
from apps.sync.hlc import clock, hlc_ms, hlc_pack
from apps.sync.models import EntitySyncConfig, SyncConflict, SyncDeadLetter, SyncFeed, SyncTombstone
from apps.trading.exceptions import ChecksumMismatch, ClockDrift
from apps.trading.models import Fill, Order, Portfolio, Profile
from haunt.models import Notification
from tests.sync.data.conftest import NODE2, A, B, as_node, pull, settled_page, table

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", NODE2]),
    pytest.mark.usefixtures("two_nodes"),
]


def twin_user(name: str, *, staff: bool = False) -> User:
    """The same user (same id) on both nodes: users are not replicated."""
    user = User.objects.create_user(username=name, password="x", is_staff=staff)
    User.objects.using(NODE2).create(id=user.id, username=name, password=user.password, is_staff=staff)
    return user


def make_portfolio(user: User, *, home: str = A, name: str = "main") -> Portfolio:
    return Portfolio.objects.create(
        user=user, name=name, cash=Decimal("1000"), initial_cash=Decimal("1000"), home_node=home
    )


def make_order(portfolio: Portfolio, **overrides: Any) -> Order:
    values: dict[str, Any] = dict(
        portfolio=portfolio,
        client_order_id="c1",
        symbol="btc",
        side="buy",
        type="limit",
        quantity=Decimal("2"),
        price=Decimal("100"),
        status="open",
    )
    values.update(overrides)
    return Order.objects.create(**values)


def both_ways() -> None:
    pull(source=A, target=B)
    pull(source=B, target=A)
    pull(source=A, target=B)


def test_rows_replicate_and_tables_are_identical():
    user = twin_user("alice")
    with as_node(A):
        profile = Profile.objects.create(user=user, username="alice", indicators=["rsi"])
        portfolio = make_portfolio(user)
        order = make_order(portfolio)
        Fill.objects.create(
            portfolio=portfolio,
            order=order,
            symbol="btc",
            side="buy",
            quantity=Decimal("1"),
            price=Decimal("100.5"),
        )

    applied = pull(source=A, target=B)

    assert applied == 4
    for model in (Profile, Portfolio, Order, Fill):
        assert table(model, "default") == table(model, NODE2)
    seoul = Profile.objects.using(NODE2).get(pk=profile.pk)
    assert (seoul.version_vector, seoul.hlc, seoul.last_modified_by) == ({A: 1}, profile.hlc, A)
    assert Order.objects.using(NODE2).get(pk=order.pk).price == Decimal("100")


def test_the_cursor_commits_with_the_rows_and_a_crash_changes_nothing(monkeypatch):
    user = twin_user("alice")
    with as_node(A):
        profile = Profile.objects.create(user=user, username="alice")
    page = settled_page(source=A, lane=5, exclude_origin=B)

    def crash(**kwargs: Any) -> None:
        raise RuntimeError("killed mid-batch")

    monkeypatch.setattr(apply_module, "_conflicts_record", crash)
    with as_node(B), pytest.raises(RuntimeError):
        batch_apply(peer=A, lane=5, page=page, using=NODE2)

    assert cursor_get(peer=A, lane=5, using=NODE2) == 0
    assert not Profile.objects.using(NODE2).exists()
    assert not SyncFeed.objects.using(NODE2).filter(entity="profiles").exists()

    monkeypatch.undo()
    with as_node(B):
        result = batch_apply(peer=A, lane=5, page=page, using=NODE2)
        again = batch_apply(peer=A, lane=5, page=page, using=NODE2)

    assert result.applied == 1 and result.cursor == page["next"]
    assert again.already_applied and again.applied == 0
    assert Profile.objects.using(NODE2).get().pk == profile.pk


def test_applied_rows_are_refed_with_their_origin_and_never_echoed_back():
    user = twin_user("alice")
    with as_node(A):
        profile = Profile.objects.create(user=user, username="alice")
    pull(source=A, target=B)

    to_osaka = settled_page(source=B, lane=5, exclude_origin=A)
    to_nyc = settled_page(source=B, lane=5, exclude_origin="nyc")
    refed = SyncFeed.objects.using(NODE2).get(entity_id=profile.pk)  # numbered by the reads above

    assert refed.origin == A
    assert to_osaka["rows"] == [] and to_osaka["next"] == refed.seq  # nothing back to its writer
    assert [row["id"] for row in to_nyc["rows"]] == [str(profile.pk)]  # a third node gets it through seoul
    assert pull(source=B, target=A) == 0


def test_concurrent_lww_edits_converge_with_one_identical_conflict_per_node():
    user = twin_user("alice", staff=True)
    with as_node(A):
        profile = Profile.objects.create(user=user, username="alice")
    pull(source=A, target=B)
    with as_node(A):
        profile.theme = "dark"
        profile.save()
    with as_node(B):
        remote = Profile.objects.using(NODE2).get(pk=profile.pk)
        remote.theme = "light"
        remote.save()  # later HLC: seoul's write wins

    both_ways()
    pull(source=B, target=A)

    assert table(Profile, "default") == table(Profile, NODE2)
    assert Profile.objects.get(pk=profile.pk).theme == "light"
    assert Profile.objects.get(pk=profile.pk).version_vector == {A: 2, B: 1}
    osaka_conflicts = table(SyncConflict, "default")
    assert len(osaka_conflicts) == 1
    assert osaka_conflicts == table(SyncConflict, NODE2)
    conflict = SyncConflict.objects.get()
    assert (conflict.strategy, conflict.status, conflict.winner) == ("LAST_WRITE_WINS", "auto", "b")
    assert (conflict.a_node, conflict.b_node) == (A, B)
    assert Notification.objects.filter(user=user, kind="sync-conflict").count() == 1
    assert Notification.objects.using(NODE2).filter(user_id=user.id, kind="sync-conflict").count() == 1


def test_orders_merge_never_reopens_a_filled_order():
    user = twin_user("alice")
    with as_node(A):
        order = make_order(make_portfolio(user))
    pull(source=A, target=B)
    with as_node(A):
        Order.objects.filter(pk=order.pk).update(status="filled", filled_quantity=Decimal("2"))
    with as_node(B):
        Order.objects.using(NODE2).filter(pk=order.pk).update(
            price=Decimal("101")
        )  # later edit, still "open"

    both_ways()

    assert table(Order, "default") == table(Order, NODE2)
    merged = Order.objects.get(pk=order.pk)
    assert (merged.status, merged.filled_quantity, merged.price) == ("filled", Decimal("2"), Decimal("101"))
    assert SyncConflict.objects.get().winner == "merged"


def test_an_edit_that_saw_the_fill_still_cannot_take_the_order_back_from_filled():
    # No conflict here (the edit follows the fill), so on PostgreSQL it is decided on the local
    # row's deciding columns alone: the status and fill must be among them.
    user = twin_user("alice")
    with as_node(A):
        order = make_order(make_portfolio(user))
        Order.objects.filter(pk=order.pk).update(status="filled", filled_quantity=Decimal("2"))
    pull(source=A, target=B)
    with as_node(B):
        Order.objects.using(NODE2).filter(pk=order.pk).update(status="open", price=Decimal("101"))

    pull(source=B, target=A)

    kept = Order.objects.get(pk=order.pk)
    assert (kept.status, kept.filled_quantity, kept.price) == ("filled", Decimal("2"), Decimal("101"))
    assert not SyncConflict.objects.exists()


def test_portfolios_keep_their_home_nodes_concurrent_write():
    user = twin_user("alice")
    with as_node(A):
        portfolio = make_portfolio(user, home=A)
    pull(source=A, target=B)
    with as_node(A):
        Portfolio.objects.filter(pk=portfolio.pk).update(cash=Decimal("900"))
    with as_node(B):
        Portfolio.objects.using(NODE2).filter(pk=portfolio.pk).update(cash=Decimal("5"))  # later, not home

    both_ways()

    assert table(Portfolio, "default") == table(Portfolio, NODE2)
    assert Portfolio.objects.get(pk=portfolio.pk).cash == Decimal("900")
    assert SyncConflict.objects.get().strategy == "PRIMARY_WINS"


def test_reject_refuses_the_later_write_everywhere_and_its_origin_compensates():
    for alias in ("default", NODE2):
        EntitySyncConfig.objects.using(alias).create(
            entity="profiles", model="trading.profile", lane=5, strategy="REJECT"
        )
    invalidate_configs()
    user = twin_user("alice")
    with as_node(A):
        profile = Profile.objects.create(user=user, username="alice")
    pull(source=A, target=B)
    with as_node(A):
        Profile.objects.filter(pk=profile.pk).update(theme="dark")  # first
    with as_node(B):
        Profile.objects.using(NODE2).filter(pk=profile.pk).update(theme="light")  # later: rejected

    both_ways()
    pull(source=B, target=A)

    assert table(Profile, "default") == table(Profile, NODE2)
    final = Profile.objects.get(pk=profile.pk)
    assert final.theme == "dark"
    assert final.last_modified_by == B  # seoul's compensating write, dominating both
    assert SyncConflict.objects.get().status == "rejected"


def test_a_stamp_beyond_max_drift_quarantines_the_page(settings):
    settings.HAUNT_SYNC_MAX_DRIFT_MS = 1000
    user = twin_user("alice")
    with as_node(A):
        Profile.objects.create(user=user, username="alice")
    page = settled_page(source=A, lane=5, exclude_origin=B)
    row = page["rows"][0]
    row["hlc"] = row["data"]["hlc"] = hlc_pack(hlc_ms(clock().now()) + 60_000)
    row["sha256"] = row_checksum(row)
    page["checksum"] = page_checksum(page)
    before = clock("node2").last

    with as_node(B), pytest.raises(ClockDrift):
        batch_apply(peer=A, lane=5, page=page, using=NODE2)

    assert cursor_get(peer=A, lane=5, using=NODE2) == 0
    assert not Profile.objects.using(NODE2).exists()
    assert clock("node2").last < row["hlc"] and clock().last >= before


def test_a_tampered_page_is_refused():
    user = twin_user("alice")
    with as_node(A):
        Profile.objects.create(user=user, username="alice")
    page = settled_page(source=A, lane=5, exclude_origin=B)
    page["rows"][0]["data"]["username"] = "mallory"

    with as_node(B), pytest.raises(ChecksumMismatch):
        batch_apply(peer=A, lane=5, page=page, using=NODE2)
    assert not Profile.objects.using(NODE2).exists()


def test_a_row_whose_parent_has_not_arrived_is_parked_then_applied_when_it_does():
    user = twin_user("alice")
    with as_node(A):
        order = make_order(make_portfolio(user))

    pull(source=A, target=B, lane_ids=[0])  # orders before their portfolio (lane 2)

    letter = SyncDeadLetter.objects.using(NODE2).get()
    assert (letter.reason, letter.status, str(letter.entity_id)) == (
        "missing_parent",
        "parked",
        str(order.pk),
    )
    assert cursor_get(peer=A, lane=0, using=NODE2) > 0  # the lane moved on

    pull(source=A, target=B, lane_ids=[2])

    assert Order.objects.using(NODE2).filter(pk=order.pk).exists()
    assert SyncDeadLetter.objects.using(NODE2).get().status == "resolved"


def test_a_poison_row_is_dead_lettered_and_the_rest_of_the_page_applies():
    user = twin_user("alice")
    with as_node(A):
        portfolio = make_portfolio(user)
        good = make_order(portfolio, client_order_id="good")
        bad = make_order(portfolio, client_order_id="bad")
    pull(source=A, target=B, lane_ids=[2])
    page = settled_page(source=A, lane=0, exclude_origin=B)
    for row in page["rows"]:
        if row["id"] == str(bad.pk):
            row["data"]["filled_quantity"] = "5"  # above quantity: a check constraint refuses it
            row["sha256"] = row_checksum(row)
    page["checksum"] = page_checksum(page)

    with as_node(B):
        result = batch_apply(peer=A, lane=0, page=page, using=NODE2)

    assert result.dead_lettered == 1 and result.applied == 1
    assert Order.objects.using(NODE2).filter(pk=good.pk).exists()
    assert not Order.objects.using(NODE2).filter(pk=bad.pk).exists()
    letter = SyncDeadLetter.objects.using(NODE2).get()
    assert (letter.status, letter.reason) == ("dead", "rejected_by_database")
    assert cursor_get(peer=A, lane=0, using=NODE2) == page["next"]


def test_deletes_replicate_as_tombstones_and_beat_an_older_update():
    user = twin_user("alice")
    with as_node(A):
        profile = Profile.objects.create(user=user, username="alice")
    pull(source=A, target=B)
    page_before_delete = settled_page(source=A, lane=5, exclude_origin=B)  # the old version
    with as_node(A):
        Profile.objects.get(pk=profile.pk).delete()

    pull(source=A, target=B)

    assert not Profile.objects.using(NODE2).exists()
    assert SyncTombstone.objects.using(NODE2).get().entity_id == profile.pk
    with as_node(B):
        from apps.sync.apply import repair_apply

        repair_apply(peer=A, page=page_before_delete, using=NODE2)  # a late copy of the old row
    assert not Profile.objects.using(NODE2).exists()


def test_lww_sql_guard_matches_the_python_resolver_on_postgresql():
    import json

    import psycopg
    from django.db import connections
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from apps.sync.feed import rows_serialize
    from apps.sync.resolve import Version, resolve
    from tests.conftest import skip_or_fail

    if connections["default"].vendor != "postgresql":
        skip_or_fail("the SQL guard is PostgreSQL's")
    user = twin_user("alice")
    with as_node(A):
        profile = Profile.objects.create(user=user, username="alice")
    base = rows_serialize(model=Profile, ids=[profile.pk], using="default")[str(profile.pk)]
    nodes = ["Seoul", "nyc", "osaka"]

    @settings(max_examples=60, deadline=None)
    @given(
        local=st.tuples(st.integers(1, 4), st.sampled_from(nodes), st.sampled_from(["dark", "light"])),
        incoming=st.tuples(
            st.integers(1, 4), st.sampled_from(nodes), st.sampled_from(["dark", "light", "system"])
        ),
    )
    def check(local: tuple[int, str, str], incoming: tuple[int, str, str]) -> None:
        if local[:2] == incoming[:2] and local[2] != incoming[2]:
            return  # one (hlc, node) stamp is one version
        mine = {
            **base,
            "hlc": local[0],
            "last_modified_by": local[1],
            "theme": local[2],
            "version_vector": {local[1]: local[0]},
        }
        theirs = {
            **base,
            "hlc": incoming[0],
            "last_modified_by": incoming[1],
            "theme": incoming[2],
            "version_vector": {incoming[1]: incoming[0]},
        }
        connection = connections["default"]
        sql = apply_module.write_sql(Profile, connection, guard="lww")
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM trading_profile")
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, [json.dumps([mine])])
            cursor.execute(sql, [json.dumps([theirs])])
        stored = rows_serialize(model=Profile, ids=[profile.pk], using="default")[str(profile.pk)]
        expected = resolve(
            strategy="LAST_WRITE_WINS", local=Version.from_row(mine), incoming=Version.from_row(theirs)
        ).result
        assert (stored["hlc"], stored["last_modified_by"], stored["theme"]) == (
            expected.hlc,
            expected.node,
            expected.data["theme"],
        )

    check()


def test_conflict_resolution_is_a_replicated_write_above_both_versions(settings):
    from apps.sync.services import conflict_resolve

    user = twin_user("alice", staff=True)
    with as_node(A):
        profile = Profile.objects.create(user=user, username="alice")
    pull(source=A, target=B)
    with as_node(A):
        Profile.objects.filter(pk=profile.pk).update(theme="dark")
    with as_node(B):
        Profile.objects.using(NODE2).filter(pk=profile.pk).update(theme="light")
    both_ways()
    conflict = SyncConflict.objects.get()

    with as_node(A):
        resolved = conflict_resolve(conflict=conflict, choice="remote", actor=user)  # the losing "dark"
    both_ways()

    assert resolved.status == "resolved" and resolved.resolved_by == "user:alice"
    assert Profile.objects.using(NODE2).get(pk=profile.pk).theme == "dark"
    assert Profile.objects.get(pk=profile.pk).hlc > max(conflict.a_hlc, conflict.b_hlc)
    assert SyncConflict.objects.using(NODE2).get().status == "resolved"
    assert table(Profile, "default") == table(Profile, NODE2)


def test_reconciliation_finds_and_repairs_a_missing_row():
    from apps.sync.apply import repair_apply
    from apps.sync.reconcile import bucket_checksums, bucket_rows, reconcile_diff, rows_export

    user = twin_user("alice")
    with as_node(A):
        profiles = [
            Profile.objects.create(user=user if i == 0 else twin_user(f"u{i}"), username=f"u{i}")
            for i in range(5)
        ]
    pull(source=A, target=B)
    Profile.objects.using(NODE2).filter(pk=profiles[2].pk)._raw_delete(NODE2)  # lost without a trace

    ours = bucket_checksums(entity="profiles", buckets=16)
    theirs = bucket_checksums(entity="profiles", buckets=16, using=NODE2)
    differing = [i for i in range(16) if ours[i] != theirs[i]]
    assert len(differing) == 1
    bucket = differing[0]
    missing = reconcile_diff(
        local_rows=bucket_rows(entity="profiles", bucket=bucket, buckets=16, using=NODE2),
        remote_rows=bucket_rows(entity="profiles", bucket=bucket, buckets=16),
    )
    assert missing == [str(profiles[2].pk)]
    with as_node(A):
        page = rows_export(entity="profiles", ids=missing)
    with as_node(B):
        repair_apply(peer=A, page=page, using=NODE2)

    assert bucket_checksums(entity="profiles", buckets=16, using=NODE2) == ours
    assert cursor_get(peer=A, lane=5, using=NODE2) > 0


def test_tombstones_are_purged_only_once_every_peer_acknowledged():
    from apps.sync.services import tombstones_purge

    user = twin_user("alice")
    with as_node(A):
        profile = Profile.objects.create(user=user, username="alice")
        profile_id = profile.pk
        profile.delete()
    feed_sequence()  # the number peers read, and acknowledge, the delete under
    delete_seq = SyncFeed.objects.get(entity_id=profile_id).seq

    assert tombstones_purge(acked={B: {5: delete_seq}, "nyc": {5: delete_seq - 1}}) == 0
    assert tombstones_purge(acked={B: {5: delete_seq}, "nyc": {}}) == 0
    assert SyncTombstone.objects.exists()
    assert tombstones_purge(acked={B: {5: delete_seq}, "nyc": {5: delete_seq}}) == 1
    assert not SyncTombstone.objects.exists()
    assert not SyncFeed.objects.filter(entity_id=profile_id).exists()


def test_queue_cleanup_purges_settled_conflicts_after_the_retention_period():
    from apps.sync.services import queue_cleanup

    user = twin_user("alice")
    with as_node(A):
        profile = Profile.objects.create(user=user, username="alice")
    pull(source=A, target=B)
    with as_node(A):
        Profile.objects.filter(pk=profile.pk).update(theme="dark")
    with as_node(B):
        Profile.objects.using(NODE2).filter(pk=profile.pk).update(theme="light")
    both_ways()
    conflict = SyncConflict.objects.get()

    assert queue_cleanup(now=conflict.created_at + timezone.timedelta(days=29)) == 0
    assert queue_cleanup(now=conflict.created_at + timezone.timedelta(days=31)) == 1
    assert not SyncConflict.objects.exists()
