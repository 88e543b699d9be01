"""Change capture: every write path feeds the change feed in the writing transaction."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings

from apps.sync.feed import feed_page
from apps.sync.models import SyncFeed, SyncTombstone
from apps.trading.models import Portfolio, Profile
from tests.conftest import make_user, skip_or_fail

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def settled_page(*, lane: int, since: int, until: int, limit: int = 100) -> dict:
    """feed_page once the feed is readable up to `until`: on a PostgreSQL server shared with other
    databases, any transaction open anywhere on it holds the safe head back for a moment (lag)."""
    deadline = time.monotonic() + 15
    while True:
        page = feed_page(lane=lane, since=since, limit=limit)
        if page["next"] >= until or time.monotonic() > deadline:
            return page
        time.sleep(0.05)


def make_profile(name: str = "alice") -> Profile:
    return Profile.objects.create(user=make_user(name), username=name)


def feed_of(obj: object) -> SyncFeed | None:
    return SyncFeed.objects.filter(entity_id=obj.pk).first()  # type: ignore[attr-defined]


@override_settings(HAUNT_NODE_ID="osaka")
def test_create_feeds_an_insert_with_this_node_as_origin_and_the_row_stamp():
    profile = make_profile()

    entry = feed_of(profile)
    assert entry is not None
    assert (entry.entity, entry.op, entry.origin, entry.lane) == ("profiles", "insert", "osaka", 5)
    assert entry.hlc == profile.hlc > 0
    assert profile.version_vector == {"osaka": 1}


def test_save_and_update_fields_move_the_entry_to_a_new_seq_and_bump_the_vector():
    profile = make_profile()
    first = feed_of(profile)
    assert first is not None

    profile.theme = "dark"
    profile.save(update_fields=["theme"])
    second = feed_of(profile)

    profile.refresh_from_db()
    assert second is not None and second.seq > first.seq
    assert second.op == "update"
    assert profile.hlc == second.hlc > first.hlc
    assert profile.version_vector == {"local": 2}
    assert SyncFeed.objects.filter(entity="profiles").count() == 1


def test_queryset_update_feeds_every_matched_row_and_stamps_each():
    alice, bob, carol = make_profile("alice"), make_profile("bob"), make_profile("carol")
    before = SyncFeed.objects.order_by("-seq").first()
    assert before is not None

    with override_settings(HAUNT_NODE_ID="nyc"):
        changed = Profile.objects.filter(username__in=["alice", "bob"]).update(theme="dark")

    assert changed == 2
    moved = set(SyncFeed.objects.filter(seq__gt=before.seq).values_list("entity_id", "origin"))
    assert moved == {(alice.pk, "nyc"), (bob.pk, "nyc")}
    rows = {p.pk: p for p in Profile.objects.all()}
    assert rows[alice.pk].version_vector == {"local": 1, "nyc": 1}
    assert rows[alice.pk].hlc > alice.hlc
    assert rows[carol.pk].version_vector == {"local": 1}  # untouched row keeps its stamps


def test_bulk_update_and_bulk_create_feed_their_rows():
    users = [make_user(f"u{i}") for i in range(3)]

    created = Profile.objects.bulk_create([Profile(user=u, username=u.username) for u in users])
    assert SyncFeed.objects.filter(entity_id__in=[p.pk for p in created], op="insert").count() == 3
    top = SyncFeed.objects.order_by("-seq").values_list("seq", flat=True).first()
    for profile in created:
        profile.theme = "light"
    Profile.objects.bulk_update(created, ["theme"])

    assert SyncFeed.objects.filter(seq__gt=top, op="update").count() == 3
    assert {tuple(sorted(p.version_vector.items())) for p in Profile.objects.all()} == {(("local", 2),)}
    assert len({p.hlc for p in Profile.objects.all()}) == 3


def test_delete_leaves_a_tombstone_above_the_deleted_version_and_a_delete_entry():
    profile = make_profile()
    stamp, vector = profile.hlc, profile.version_vector

    Profile.objects.filter(pk=profile.pk).delete()

    entry = feed_of(profile)
    tomb = SyncTombstone.objects.get(entity="profiles", entity_id=profile.pk)
    assert entry is not None and entry.op == "delete"
    assert tomb.hlc == entry.hlc > stamp
    assert tomb.version_vector == {"local": vector["local"] + 1}


def test_cascaded_deletes_are_captured_too():
    user = make_user("alice")
    portfolio = Portfolio.objects.create(
        user=user, name="main", cash=Decimal(1), initial_cash=Decimal(1), home_node="local"
    )

    user.delete()  # cascades to the portfolio (and the profile if any)

    assert SyncTombstone.objects.filter(entity="portfolios", entity_id=portfolio.pk).exists()


@pytest.mark.parametrize("path", ["save", "update", "bulk_create", "delete"])
def test_the_feed_entry_rolls_back_with_the_write(path: str):
    profile = make_profile()
    seq_before = SyncFeed.objects.filter(entity="profiles").get().seq
    user = make_user("zed")

    with pytest.raises(Boom), transaction.atomic():
        if path == "save":
            profile.theme = "dark"
            profile.save()
        elif path == "update":
            Profile.objects.update(theme="dark")
        elif path == "bulk_create":
            Profile.objects.bulk_create([Profile(user=user)])
        else:
            profile.delete()
        assert (
            SyncFeed.objects.filter(entity="profiles").order_by("-seq").first().seq > seq_before
        )  # visible inside
        raise Boom

    assert list(SyncFeed.objects.filter(entity="profiles").values_list("seq", flat=True)) == [seq_before]
    assert not SyncTombstone.objects.exists()


@pytest.mark.django_db(transaction=True)  # feed reads skip the open test transaction
def test_a_thousand_updates_of_one_row_leave_one_feed_entry():
    profile = make_profile()

    for i in range(1000):
        profile.indicators = [i]
        profile.save(update_fields=["indicators"])

    assert SyncFeed.objects.filter(entity="profiles").count() == 1
    page = settled_page(lane=5, since=0, until=SyncFeed.objects.filter(entity="profiles").get().seq)
    assert [row["data"]["indicators"] for row in page["rows"]] == [[999]]
    assert page["rows"][0]["version"] == 1001


@pytest.mark.django_db(transaction=True)  # feed reads skip the open test transaction
def test_feed_page_is_keyset_paged_and_checksummed():
    profiles = [make_profile(f"p{i}") for i in range(5)]

    top = SyncFeed.objects.filter(entity="profiles").order_by("-seq").first().seq
    settled_page(lane=5, since=0, until=top)
    first = feed_page(lane=5, since=0, limit=2)
    second = feed_page(lane=5, since=first["next"], limit=10)

    ids = [row["id"] for row in first["rows"] + second["rows"]]
    assert ids == [str(p.pk) for p in profiles]
    assert second["next"] == second["head"] >= first["next"]
    assert all(len(row["sha256"]) == 64 for row in first["rows"])


@pytest.mark.django_db(transaction=True)  # feed reads skip the open test transaction
def test_exclude_origin_skips_a_peers_own_writes_but_moves_past_them():
    with override_settings(HAUNT_NODE_ID="seoul"):
        make_profile("alice")
    mine = make_profile("bob")

    settled_page(
        lane=5, since=0, until=SyncFeed.objects.filter(entity="profiles").order_by("-seq").first().seq
    )
    page = feed_page(lane=5, since=0, limit=10, exclude_origin="seoul")

    assert [row["id"] for row in page["rows"]] == [str(mine.pk)]
    assert page["next"] == SyncFeed.objects.filter(entity="profiles").order_by("-seq").first().seq


@pytest.mark.django_db(transaction=True)
def test_a_late_commit_is_not_skipped_by_the_feed_cursor():
    """Research §R2: T1 takes seq 1 and commits after T2 (seq 2). A reader paging by the insert
    seq sees [2] and moves past 1 for ever. The feed numbers entries again after they commit
    (feed_sequence), so T1's entry lands above any cursor that has read T2's."""
    if connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL (on SQLite writers are serialised)")
    import psycopg

    params = connection.settings_dict
    dsn = dict(
        dbname=params["NAME"],
        user=params.get("USER") or None,
        host=params.get("HOST") or None,
        port=params.get("PORT") or None,
        password=params.get("PASSWORD") or None,
    )
    insert = (  # what capture writes
        "INSERT INTO sync_syncfeed (lane, entity, entity_id, op, origin, hlc, changed_at, sequenced) "
        "VALUES (5, 'profiles', %s, 'insert', 'local', 1, now(), false) RETURNING seq"
    )
    late, early = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(**dsn) as t1, psycopg.connect(**dsn) as t2:
        seq1 = t1.execute(insert, [late]).fetchone()[0]  # uncommitted
        seq2 = t2.execute(insert, [early]).fetchone()[0]
        t2.commit()

        with connection.cursor() as cursor:
            cursor.execute("SELECT seq FROM sync_syncfeed WHERE seq > 0 ORDER BY seq")
            naive = [row[0] for row in cursor.fetchall()]
        first = feed_page(lane=5, since=0, limit=10)
        t1.commit()
        second = feed_page(lane=5, since=first["next"], limit=10)

    assert seq1 < seq2
    assert naive == [seq2]  # the bug: a cursor at seq2 would never see seq1
    assert first["next"] == SyncFeed.objects.get(entity_id=early).seq  # T2's entry, renumbered
    late_seq = SyncFeed.objects.get(entity_id=late).seq
    assert first["next"] < late_seq == second["next"]  # T1's entry comes after: nothing skipped


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_each_get_their_own_feed_entries():
    if connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL")
    users = [make_user(f"w{i}") for i in range(4)]
    errors: list[BaseException] = []

    def write(user) -> None:
        try:
            for i in range(20):
                Profile.objects.update_or_create(user=user, defaults={"username": f"{user.username}-{i}"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert SyncFeed.objects.filter(entity="profiles").count() == 4


def test_numbering_one_lane_neither_waits_for_another_lane_nor_runs_unbounded():
    if connection.vendor != "postgresql":
        skip_or_fail("the sequencer is PostgreSQL's")
    from apps.sync.capture import SEQUENCER_LOCK
    from apps.sync.feed import feed_sequence
    from tests.sync.databases import raw_connect

    for name in ("amy", "bea", "cyd"):
        make_profile(name)  # lane 5, unsequenced until a reader numbers them
    with raw_connect(connection.settings_dict) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [SEQUENCER_LOCK, 9])  # a long run on lane 9
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")  # fail rather than hang if lanes shared a lock
        assert feed_sequence(lane=5, limit=2) == 2
        assert feed_sequence(lane=5, limit=2) == 1
    numbered = list(
        SyncFeed.objects.filter(entity="profiles").order_by("seq").values_list("sequenced", flat=True)
    )
    assert numbered == [True, True, True]


def snapshots(portfolio: Portfolio, count: int, start: int = 0) -> list:
    from datetime import UTC, datetime, timedelta

    from apps.trading.models import PortfolioSnapshot

    base = datetime(2020, 1, 1, tzinfo=UTC)
    money = {f: Decimal(0) for f in ("unrealized_pnl", "realized_pnl", "used_margin")}
    return [
        PortfolioSnapshot(
            portfolio=portfolio,
            taken_at=base + timedelta(minutes=i),
            equity=Decimal(1),
            cash=Decimal(1),
            **money,
        )
        for i in range(start, start + count)
    ]


def unnumbered(entity: str) -> int:
    return SyncFeed.objects.filter(entity=entity, sequenced=False).count()


@pytest.mark.django_db(transaction=True)
def test_a_bulk_write_numbers_its_own_feed_entries_once_committed_and_a_small_one_leaves_them_to_readers():
    if connection.vendor != "postgresql":
        skip_or_fail("the sequencer is PostgreSQL's")
    from apps.sync.capture import SEQUENCE_AFTER_COMMIT_MIN
    from apps.trading.models import PortfolioSnapshot

    portfolio = Portfolio.objects.create(
        user=make_user("alice"), name="main", cash=Decimal(1), initial_cash=Decimal(1), home_node="local"
    )
    rows = snapshots(portfolio, SEQUENCE_AFTER_COMMIT_MIN + 1)
    with transaction.atomic():
        PortfolioSnapshot.objects.bulk_create(rows[:-1])
        assert unnumbered("portfolio_snapshots") == SEQUENCE_AFTER_COMMIT_MIN  # not before the commit
    assert unnumbered("portfolio_snapshots") == 0

    PortfolioSnapshot.objects.bulk_create(rows[-1:])
    assert unnumbered("portfolio_snapshots") == 1  # a single write does not take the lane's lock

    with pytest.raises(Boom), transaction.atomic():  # rolled back: nothing fed, nothing numbered
        PortfolioSnapshot.objects.bulk_create(snapshots(portfolio, SEQUENCE_AFTER_COMMIT_MIN, start=10_000))
        raise Boom
    assert SyncFeed.objects.filter(entity="portfolio_snapshots").count() == SEQUENCE_AFTER_COMMIT_MIN + 1


@pytest.mark.django_db(transaction=True)
def test_bulk_writes_refresh_the_feeds_statistics_once_a_tenth_of_it_changed():
    if connection.vendor != "postgresql":
        skip_or_fail("PostgreSQL's planner statistics")
    from apps.sync.capture import FEED_TABLE, feed_statistics_refresh

    def estimated_rows() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [FEED_TABLE])
            return float(cursor.fetchone()[0])

    portfolio = Portfolio.objects.create(
        user=make_user("alice"), name="main", cash=Decimal(1), initial_cash=Decimal(1), home_node="local"
    )
    feed_statistics_refresh(using="default", changed=10**9)  # start from fresh statistics
    from apps.trading.models import PortfolioSnapshot

    PortfolioSnapshot.objects.bulk_create(snapshots(portfolio, 400))  # 800 changes: below 1,000
    assert estimated_rows() < 400
    PortfolioSnapshot.objects.bulk_create(snapshots(portfolio, 600, start=400))  # 2,000 in all

    assert estimated_rows() >= 1000
