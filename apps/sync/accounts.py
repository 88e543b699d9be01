"""User identity across nodes: node-owned auth user id ranges, and the Account mirror of each user.

Ids. Replicated rows (portfolios, profiles) point at auth users by integer id, so a user must have
the same id on every node and two nodes must never hand out the same id. On PostgreSQL each node
allocates from its own range: index = 20 bits of SHA-256(HAUNT_NODE_ID), range =
[index << 32, (index + 1) << 32), four billion ids per node, every id below 2**52 (exact in a
JavaScript number). auth_user.id and the columns referencing it are widened to bigint for this.
Two node ids share an index with probability about n*(n-1)/2 / 2**20 for n nodes (3e-6 for three
nodes, 4e-5 for ten); the `haunt.W010` check (run by migrate and `check --database default`)
and `sync_node_init` warn when a configured peer shares this node's index. SQLite (one node, the
newcomer default) keeps Django's plain ids. Note that `loaddata` of users resets the sequence to
MAX(id), which may lie in another node's range: run `sync_node_init` after it.

Accounts. An Account mirrors the auth user columns needed to log in and to own data; it is a
ReplicatedModel, so it travels like any other entity ("users", lane 2). Locally, a user save
writes the Account when a mirrored column changed (not on last_login updates). From a peer, the
post-apply hook writes the auth users set-based in the same transaction, before the deferred
foreign-key checks of the portfolios and profiles that refer to them.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core import checks
from django.db import DatabaseError, IntegrityError, connections, models, transaction

from apps.sync.models import Account, current_node_id
from apps.sync.models.accounts import MIRRORED_USER_FIELDS

logger = logging.getLogger(__name__)

INDEX_BITS = 20
RANGE_BITS = 32
_BACKFILL_CHUNK = 1000

__all__ = [
    "UserIdRange",
    "account_deactivate",
    "account_mirror",
    "account_pk",
    "accounts_backfill",
    "node_id_index",
    "node_id_range",
    "node_range_check",
    "user_ids_init",
    "users_apply",
]

# Set while the post-apply hook writes users, so nothing it does is mirrored back as a local write.
_applying: ContextVar[bool] = ContextVar("_applying_accounts", default=False)


@contextmanager
def _users_from_peer() -> Iterator[None]:
    reset = _applying.set(True)
    try:
        yield
    finally:
        _applying.reset(reset)


# --- Id ranges ------------------------------------------------------------------------------


def node_id_index(node: str | None = None) -> int:
    """The node's 20-bit range index, from SHA-256 of its id (the same on every machine)."""
    digest = hashlib.sha256((node or current_node_id()).encode()).digest()
    return int.from_bytes(digest[:4], "big") >> (32 - INDEX_BITS)


def node_id_range(node: str | None = None) -> tuple[int, int]:
    """[start, end) of the auth user ids `node` hands out."""
    index = node_id_index(node)
    return index << RANGE_BITS, (index + 1) << RANGE_BITS


@dataclass
class UserIdRange:
    node: str
    start: int
    end: int
    next_id: int
    moved: bool
    widened: list[str] = field(default_factory=list)


def user_ids_init(*, using: str = "default") -> UserIdRange | None:
    """Make auth_user's id sequence hand out this node's range (PostgreSQL; None elsewhere or
    before auth is migrated). Idempotent: never moves the sequence backwards inside the range; a
    sequence outside it (a new node, a changed node id, a loaddata reset) moves to the range's
    first free id."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    user_model = get_user_model()
    table = user_model._meta.db_table
    pk_column = user_model._meta.pk.column
    node = current_node_id()
    start, end = node_id_range(node)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if table not in connection.introspection.table_names(cursor):
            return None
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, pk_column])
        sequence = cursor.fetchone()[0]
        if sequence is None:
            return None
        widened = _user_ids_widen(
            cursor, connection=connection, table=table, column=pk_column, sequence=sequence
        )
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608  (from the catalog)
        last, called = cursor.fetchone()
        current = int(last) + 1 if called else int(last)
        quoted_table, quoted_pk = connection.ops.quote_name(table), connection.ops.quote_name(pk_column)
        cursor.execute(
            f"SELECT MAX({quoted_pk}) FROM {quoted_table} WHERE {quoted_pk} >= %s AND {quoted_pk} < %s",  # noqa: S608
            [start, end],
        )
        top = cursor.fetchone()[0]
        target = max(start, 1, int(top or 0) + 1)
        if start <= current < end:
            target = max(target, current)
        moved = target != current
        if moved:
            cursor.execute("SELECT setval(%s, %s, false)", [sequence, target])
    return UserIdRange(node=node, start=start, end=end, next_id=target, moved=moved, widened=widened)


def _user_ids_widen(cursor: Any, *, connection: Any, table: str, column: str, sequence: str) -> list[str]:
    """auth_user.id, its sequence and every column referencing it as bigint (Django creates them
    as integer: 32 bits cannot hold a node's range). Runs on each migrate, so a table added later
    with a foreign key to users is widened too."""
    cursor.execute(
        "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
        [connection.ops.quote_name(table), column],
    )
    targets: list[tuple[str, str]] = []
    if cursor.fetchone()[0] == "integer":
        targets.append((connection.ops.quote_name(table), column))
    cursor.execute(
        "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
        "WHERE c.contype = 'f' AND c.confrelid = %s::regclass AND a.atttypid = 'integer'::regtype "
        "ORDER BY 1, 2",
        [connection.ops.quote_name(table)],
    )
    targets += [(str(rel), str(col)) for rel, col in cursor.fetchall()]
    for relation, name in targets:
        cursor.execute(f"ALTER TABLE {relation} ALTER COLUMN {connection.ops.quote_name(name)} TYPE bigint")
    cursor.execute(
        "SELECT format_type(seqtypid, NULL) FROM pg_sequence WHERE seqrelid = %s::regclass", [sequence]
    )
    if cursor.fetchone()[0] != "bigint":  # a serial's own sequence does not follow its column
        cursor.execute(f"ALTER SEQUENCE {sequence} AS bigint")
    return [f"{relation}.{name}" for relation, name in targets]


def node_range_check(*, databases: Sequence[str] | None) -> list[checks.CheckMessage]:
    """haunt.W010: a configured peer whose id maps to this node's range index (they would hand
    out the same user ids). haunt.W011: the user id sequence is outside this node's range."""
    if not databases:
        return []
    from apps.sync.models import Peer

    messages: list[checks.CheckMessage] = []
    node = current_node_id()
    index = node_id_index(node)
    for alias in databases:
        connection = connections[alias]
        try:
            with connection.cursor() as cursor:
                if Peer._meta.db_table not in connection.introspection.table_names(cursor):
                    continue
            names = list(Peer.objects.using(alias).values_list("name", flat=True))
        except DatabaseError:
            continue
        for name in names:
            if name != node and node_id_index(name) == index:
                messages.append(
                    checks.Warning(
                        f"Peer {name!r} shares this node's ({node!r}) user id range {index}: both would "
                        "hand out the same auth user ids.",
                        hint="Rename one of the nodes (HAUNT_NODE_ID); see apps/sync/accounts.py.",
                        id="haunt.W010",
                    )
                )
        messages += _sequence_check(alias, node)
    return messages


def _sequence_check(alias: str, node: str) -> list[checks.CheckMessage]:
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return []
    user_model = get_user_model()
    start, end = node_id_range(node)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, %s)",
                [user_model._meta.db_table, user_model._meta.pk.column],
            )
            sequence = cursor.fetchone()[0]
            if sequence is None:
                return []
            cursor.execute(f"SELECT last_value FROM {sequence}")  # noqa: S608  (from the catalog)
            last = int(cursor.fetchone()[0])
    except DatabaseError:
        return []
    if start <= last < end or (start == 0 and last <= 1):
        return []
    return [
        checks.Warning(
            f"Auth user ids on {alias!r} are handed out outside this node's range [{start}, {end}).",
            hint="Run `manage.py sync_node_init`.",
            id="haunt.W011",
        )
    ]


# --- Mirroring local users ------------------------------------------------------------------


ACCOUNT_NAMESPACE = uuid.UUID("6f1d0c2e-5b8a-4e37-9a57-2d4c0b1f7a13")


def account_pk(user_id: int) -> uuid.UUID:
    """An Account's id, derived from its user id: the user id is the identity (unique across the
    mesh by its range), so two nodes that each wrote an Account for one user wrote two versions of
    one row (decided by last write wins), never two rows fighting over the user id."""
    return uuid.uuid5(ACCOUNT_NAMESPACE, str(int(user_id)))


def _mirrored(user: Any) -> dict[str, Any]:
    return {name: getattr(user, name) for name in MIRRORED_USER_FIELDS}


def account_mirror(
    *, user: Any, using: str = "default", raw: bool = False, update_fields: Iterable[str] | None = None
) -> Account | None:
    """Write `user`'s Account (a replicated write) when a mirrored column changed; a save of only
    other columns (last_login on every login) writes nothing. Returns the Account written.

    Django's auth code saves users outside any Haunt transaction, so the Account is written in its
    own transaction right after the user's; `sync_node_init` backfills one missed by a crash in
    between."""
    if raw or _applying.get():
        return None
    if update_fields is not None and not set(update_fields) & set(MIRRORED_USER_FIELDS):
        return None
    values = _mirrored(user)
    with transaction.atomic(using=using):
        accounts = Account.objects.using(using)
        account = accounts.select_for_update().filter(user_id=user.pk).first()
        if account is None:
            return accounts.create(id=account_pk(user.pk), user_id=user.pk, **values)
        changed = [name for name, value in values.items() if getattr(account, name) != value]
        if not changed:
            return None
        for name in changed:
            setattr(account, name, values[name])
        account.save(using=using, update_fields=changed)
        return account


def account_deactivate(*, user_id: int, using: str = "default") -> int:
    """A user deleted here: its Account is kept and deactivated (a replicated write), so other
    nodes deactivate the user instead of deleting it there (deleting would cascade into rows that
    replicate on their own)."""
    if _applying.get():
        return 0
    return int(Account.objects.using(using).filter(user_id=user_id, is_active=True).update(is_active=False))


def accounts_backfill(*, using: str = "default") -> int:
    """Create the Accounts of users that have none (users from before this feature, or one whose
    Account write was lost to a crash); returns how many. Captured, so a backlog sync carries them."""
    user_model = get_user_model()
    have = Account.objects.using(using).values("user_id")
    missing = user_model._default_manager.using(using).exclude(pk__in=have).order_by("pk")
    created = 0
    with transaction.atomic(using=using):
        batch: list[Account] = []
        for user in missing.iterator(chunk_size=_BACKFILL_CHUNK):
            batch.append(Account(id=account_pk(user.pk), user_id=user.pk, **_mirrored(user)))
            if len(batch) >= _BACKFILL_CHUNK:
                created += len(Account.objects.using(using).bulk_create(batch))
                batch = []
        if batch:
            created += len(Account.objects.using(using).bulk_create(batch))
    return created


# --- Applying Accounts from a peer ----------------------------------------------------------

_USER_UPDATE_FIELDS = list(MIRRORED_USER_FIELDS)


def users_apply(*, using: str, written: list[str], deleted: list[str]) -> None:
    """Post-apply hook of "sync.account": create or update the auth users of the Accounts just
    written from a peer, with the same ids, set-based (one upsert), without a local write.

    - An id already used here by another person (different date_joined: two nodes sharing a range
      index) is left alone and logged; the Account's rows stay parked until fixed by hand.
    - A username held here by another user: the earlier joined (then lower id) keeps it, the other
      is renamed `<name>~<id>` on every node (its Account too, when it is local: a replicated write).
    - Deleted Accounts are ignored: Haunt never deletes one (a user delete deactivates it).
    """
    if not written:
        return
    accounts = list(Account._base_manager.using(using).filter(pk__in=written))
    user_model = get_user_model()
    users = user_model._base_manager.using(using)
    joined_here = dict(users.filter(pk__in=[a.user_id for a in accounts]).values_list("pk", "date_joined"))
    accepted = []
    for account in accounts:
        joined = joined_here.get(account.user_id)
        if joined is not None and joined != account.date_joined:
            logger.error(
                "sync: user id %s is another person here (joined %s, the peer's joined %s); not applied.",
                account.user_id,
                joined,
                account.date_joined,
            )
            continue
        accepted.append(account)
    if not accepted:
        return
    names = _usernames_settle(accounts=accepted, using=using)
    rows = [
        user_model(
            pk=a.user_id, **{**{n: getattr(a, n) for n in MIRRORED_USER_FIELDS}, "username": names[a.user_id]}
        )
        for a in accepted
    ]
    with _users_from_peer():
        try:
            with transaction.atomic(using=using):
                _users_upsert(users, rows)
        except IntegrityError:
            for row in rows:  # one bad row (a name swap inside the batch) must not stop the lane
                try:
                    with transaction.atomic(using=using):
                        _users_upsert(users, [row])
                except IntegrityError as exc:
                    logger.error("sync: auth user %s from a peer not applied: %s", row.pk, exc)


def _users_upsert(users: models.QuerySet[Any], rows: list[Any]) -> None:
    users.bulk_create(rows, update_conflicts=True, unique_fields=["id"], update_fields=_USER_UPDATE_FIELDS)


def username_for_loser(username: str, user_id: int) -> str:
    suffix = f"~{user_id}"
    return username[: 150 - len(suffix)] + suffix


def _usernames_settle(*, accounts: list[Account], using: str) -> dict[int, str]:
    """The username each incoming account gets here; renames local losers of a name clash."""
    names = {a.user_id: a.username for a in accounts}
    users = get_user_model()._base_manager.using(using)
    holders = users.filter(username__in=set(names.values())).exclude(pk__in=list(names))
    contenders: dict[str, list[tuple[datetime, int, bool]]] = defaultdict(list)
    for account in accounts:
        contenders[account.username].append((account.date_joined, account.user_id, False))
    for pk, username, joined in holders.values_list("pk", "username", "date_joined"):
        contenders[username].append((joined, pk, True))
    for username, group in contenders.items():
        for _, user_id, local in sorted(group)[1:]:
            renamed = username_for_loser(username, user_id)
            if local:
                users.filter(pk=user_id).update(username=renamed)
                Account.objects.using(using).filter(user_id=user_id).update(username=renamed)
            else:
                names[user_id] = renamed
    return names
