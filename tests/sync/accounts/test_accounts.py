"""User identity across nodes: Accounts mirror auth users, replicate, and re-create the user (same
id, same password hash) on the other node, before the rows that belong to the user."""

from __future__ import annotations

import io
import logging
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User, update_last_login
from django.core.management import call_command
from django.db import connections

from apps.sync import accounts as accounts_module
from apps.sync.accounts import account_pk, node_id_index, node_id_range, node_range_check, user_ids_init
from apps.sync.hooks import apply_order, has_post_apply
from apps.sync.models import Account, SyncDeadLetter, SyncFeed, capture_disabled
from apps.trading.models import Portfolio
from tests.conftest import skip_or_fail
from tests.sync.accounts.conftest import NODE_B, USERS_LANE, A, B, as_node, pull_lane, settled_page

PASSWORD = "correct horse battery"

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", NODE_B]),
    pytest.mark.usefixtures("two_nodes"),
]


def user_on(node: str, username: str, **extra: Any) -> User:
    with as_node(node) as alias:
        return User.objects.db_manager(alias).create_user(
            username=username, email=f"{username}@example.com", password=PASSWORD, **extra
        )


def portfolio_on(node: str, user: User, name: str = "main") -> Portfolio:
    with as_node(node) as alias:
        return Portfolio.objects.using(alias).create(
            user=user, name=name, cash=Decimal("1000"), initial_cash=Decimal("1000"), home_node=node
        )


def users_feed(alias: str) -> list[tuple[str, str]]:
    return list(SyncFeed.objects.using(alias).filter(entity="users").values_list("op", "origin"))


def test_a_new_user_gets_an_account_in_the_change_feed() -> None:
    user = user_on(B, "carol", is_staff=True)

    account = Account.objects.using(NODE_B).get(user_id=user.pk)
    assert account.pk == account_pk(user.pk)
    assert (account.username, account.email, account.password) == (
        "carol",
        "carol@example.com",
        user.password,
    )
    assert (account.is_active, account.is_staff, account.is_superuser) == (True, True, False)
    assert account.date_joined == user.date_joined
    assert account.last_modified_by == B
    assert users_feed(NODE_B) == [("insert", B)]


def test_logins_do_not_replicate_but_a_password_change_does() -> None:
    user = user_on(A, "dave")
    account = Account.objects.get(user_id=user.pk)
    feed_seq = SyncFeed.objects.get(entity="users").seq

    with as_node(A):
        update_last_login(User, user)  # what a login does: save(update_fields=["last_login"])
        user.first_name = "Dave"  # not a mirrored column
        user.save()

    assert Account.objects.get(pk=account.pk).version == account.version
    assert SyncFeed.objects.get(entity="users").seq == feed_seq

    with as_node(A):
        user.set_password("a new passphrase")
        user.save()

    changed = Account.objects.get(pk=account.pk)
    assert changed.version == account.version + 1
    assert changed.password == user.password != account.password
    assert SyncFeed.objects.get(entity="users").seq > feed_seq


def test_an_account_from_a_peer_creates_the_user_who_can_log_in_and_own_a_portfolio_here() -> None:
    user = user_on(B, "erin")
    portfolio = portfolio_on(B, user)

    result = pull_lane(source=B, target=A)  # users and portfolios share lane 2

    assert result.applied == 2 and result.parked == 0
    assert not SyncDeadLetter.objects.exists()
    here = User.objects.get(pk=user.pk)
    assert (here.username, here.email, here.password) == ("erin", "erin@example.com", user.password)
    assert here.date_joined == user.date_joined
    assert authenticate(username="erin", password=PASSWORD) == here
    assert authenticate(username="erin", password="wrong") is None
    assert Portfolio.objects.get(pk=portfolio.pk).user_id == user.pk


def test_a_portfolio_ahead_of_its_account_in_the_page_is_not_parked() -> None:
    user = user_on(B, "frank")
    portfolio_on(B, user)
    with as_node(B):
        user.email = "frank@elsewhere.example"  # moves the account's feed entry after the portfolio
        user.save()
    page = settled_page(source=B, target=A)
    assert [row["entity"] for row in page["rows"]] == ["portfolios", "users"]

    with as_node(A):
        from apps.sync.apply import batch_apply

        result = batch_apply(peer=B, lane=USERS_LANE, page=page)

    assert result.parked == 0 and result.applied == 2
    assert User.objects.get(pk=user.pk).email == "frank@elsewhere.example"


def test_applying_an_account_writes_nothing_back() -> None:
    user = user_on(B, "grace")
    pull_lane(source=B, target=A)

    here = Account.objects.get(user_id=user.pk)
    there = Account.objects.using(NODE_B).get(user_id=user.pk)
    assert (here.version, here.hlc, here.last_modified_by) == (there.version, there.hlc, B)
    # Re-fed with the writer's origin, so the page for the writer leaves it out.
    assert users_feed("default") == [("update", B)]
    assert settled_page(source=A, target=B)["rows"] == []

    with as_node(A):  # a login here, and a save with nothing mirrored changed: still nothing
        local = User.objects.get(pk=user.pk)
        update_last_login(User, local)
        local.save()
    assert Account.objects.get(user_id=user.pk).version == there.version
    assert users_feed("default") == [("update", B)]


def test_a_later_update_from_the_peer_updates_the_user_here() -> None:
    user = user_on(B, "heidi")
    pull_lane(source=B, target=A)
    with as_node(B):
        user.is_active = False
        user.set_password("another passphrase")
        user.save()

    pull_lane(source=B, target=A)

    here = User.objects.get(pk=user.pk)
    assert not here.is_active and here.password == user.password
    assert User.objects.filter(username="heidi").count() == 1


def test_a_user_deleted_on_a_peer_is_deactivated_here_not_deleted() -> None:
    user = user_on(B, "ivan")
    pull_lane(source=B, target=A)
    user_id = user.pk
    with as_node(B):
        user.delete()

    pull_lane(source=B, target=A)

    assert User.objects.get(pk=user_id).is_active is False
    assert Account.objects.using(NODE_B).get(user_id=user_id).is_active is False


def test_users_from_before_the_feature_are_backfilled_by_sync_node_init() -> None:
    with capture_disabled():
        user = user_on(B, "judy")
        Account.objects.using(NODE_B).filter(user_id=user.pk)._raw_delete(NODE_B)
    assert not users_feed(NODE_B)

    out = io.StringIO()
    with as_node(B) as alias:
        call_command("sync_node_init", database=alias, stdout=out)
        call_command("sync_node_init", database=alias, stdout=io.StringIO())  # idempotent

    assert "Accounts backfilled: 1." in out.getvalue()
    assert Account.objects.using(NODE_B).filter(user_id=user.pk).count() == 1
    assert users_feed(NODE_B) == [("insert", B)]
    pull_lane(source=B, target=A)
    assert User.objects.get(pk=user.pk).username == "judy"


def test_a_username_taken_here_goes_to_the_earlier_user_on_both_nodes() -> None:
    first = user_on(A, "kim", id=node_id_range(A)[0] + 1000)
    second = user_on(B, "kim", id=node_id_range(B)[0] + 1000)
    assert first.date_joined < second.date_joined

    pull_lane(source=B, target=A)
    pull_lane(source=A, target=B)
    pull_lane(source=B, target=A)  # the rename of the loser's account, written on B

    loser = f"kim~{second.pk}"
    for alias in ("default", NODE_B):
        names = dict(User.objects.using(alias).values_list("pk", "username"))
        assert names == {first.pk: "kim", second.pk: loser}
        assert Account.objects.using(alias).get(user_id=second.pk).username == loser


def test_an_id_used_here_by_someone_else_is_not_overwritten(caplog: pytest.LogCaptureFixture) -> None:
    user = user_on(B, "leo")
    impostor_id = user.pk
    with capture_disabled():
        User.objects.create_user(id=impostor_id, username="mallory", password="x")
        Account.objects.filter(user_id=impostor_id)._raw_delete("default")  # a user from before Accounts

    with caplog.at_level(logging.ERROR, logger="apps.sync.accounts"):
        pull_lane(source=B, target=A)

    assert User.objects.get(pk=impostor_id).username == "mallory"
    assert "another person here" in caplog.text


def test_the_users_entity_applies_first_in_a_page() -> None:
    assert has_post_apply("sync.account")
    assert apply_order("sync.account") < apply_order("trading.portfolio")


# --- Id ranges ---------------------------------------------------------------------------------


def test_ranges_are_derived_from_the_node_id_and_disjoint() -> None:
    start_a, end_a = node_id_range(A)
    start_b, end_b = node_id_range(B)
    assert (end_a - start_a) == (end_b - start_b) == 2**32
    assert start_a == node_id_index(A) * 2**32 and node_id_index(A) < 2**20
    assert end_a <= start_b or end_b <= start_a
    assert max(end_a, end_b) <= 2**52  # exact in a JavaScript number
    assert node_id_range(A) == node_id_range(A)


def _needs_postgresql() -> None:
    if connections["default"].vendor != "postgresql":
        skip_or_fail("needs PostgreSQL (SQLite keeps plain ids)")


def test_ids_from_two_nodes_never_collide() -> None:
    _needs_postgresql()
    ids = {A: [user_on(A, f"a{i}").pk for i in range(20)], B: [user_on(B, f"b{i}").pk for i in range(20)]}

    for node, given in ids.items():
        start, end = node_id_range(node)
        assert all(start <= pk < end for pk in given)
        assert given == sorted(given) and len(set(given)) == 20
    assert not set(ids[A]) & set(ids[B])

    pull_lane(source=B, target=A)
    assert User.objects.filter(pk__in=ids[B]).count() == 20  # 64-bit ids are found by lookups
    assert User.objects.count() == 40


def test_sync_node_init_never_moves_the_sequence_backwards_and_repairs_it() -> None:
    _needs_postgresql()
    start, end = node_id_range(A)
    first = user_on(A, "nina")
    with as_node(A):
        again = user_ids_init()
    assert again is not None and not again.moved and again.next_id == first.pk + 1

    with connections["default"].cursor() as cursor:  # a loaddata-style reset into another range
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('auth_user', 'id'), %s)", [node_id_range(B)[0] + 5]
        )
    with as_node(A):
        assert any(m.id == "haunt.W011" for m in node_range_check(databases=["default"]))
        repaired = user_ids_init()
    assert repaired is not None and repaired.moved and repaired.next_id == first.pk + 1
    assert start <= user_on(A, "olga").pk == first.pk + 1 < end


def test_the_user_id_columns_are_widened_to_bigint() -> None:
    _needs_postgresql()
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT format_type(a.atttypid, NULL) FROM pg_constraint c JOIN pg_attribute a "
            "ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
            "WHERE c.contype = 'f' AND c.confrelid = 'auth_user'::regclass"
        )
        types = {row[0] for row in cursor.fetchall()}
    assert types == {"bigint"}


def test_a_peer_sharing_this_nodes_range_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.sync.models import Peer

    with as_node(A):
        peer = Peer(name="kyoto", url="http://127.0.0.1:9", key_id="k-kyoto")
        peer.secret = "s" * 32
        peer.save()
        assert not [m for m in node_range_check(databases=["default"]) if m.id == "haunt.W010"]
        monkeypatch.setattr(accounts_module, "node_id_index", lambda node=None: 7)
        warnings = [m for m in node_range_check(databases=["default"]) if m.id == "haunt.W010"]
    assert len(warnings) == 1 and "kyoto" in warnings[0].msg
