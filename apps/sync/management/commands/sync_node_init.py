from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.sync.accounts import accounts_backfill, node_id_range, node_range_check, user_ids_init
from apps.sync.models import current_node_id


class Command(BaseCommand):
    help = (
        "Prepare this node for the mesh (idempotent): put the auth user id sequence in this node's "
        "range (PostgreSQL) and create the replicated Account of every user that has none."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        node = current_node_id()
        ids = user_ids_init(using=using)
        if ids is None:
            start, end = node_id_range(node)
            self.stdout.write(
                f"{node}: user ids left to the database (not PostgreSQL); range would be [{start}, {end})."
            )
        else:
            state = "moved to" if ids.moved else "already at"
            self.stdout.write(
                f"{node}: user ids in [{ids.start}, {ids.end}), sequence {state} {ids.next_id}."
            )
            if ids.widened:
                self.stdout.write(f"Widened to bigint: {', '.join(ids.widened)}.")
        created = accounts_backfill(using=using)
        self.stdout.write(f"Accounts backfilled: {created}.")
        for message in node_range_check(databases=[using]):
            self.stderr.write(self.style.WARNING(f"{message.id}: {message.msg} {message.hint or ''}".strip()))
