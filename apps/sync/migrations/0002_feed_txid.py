"""PostgreSQL only: the change feed's `txid xid8` column, so feed readers can stop below the oldest
transaction still running (pg_snapshot_xmin) and never skip a row whose transaction commits late.
A no-op on SQLite, where writers are serialised and seq order is commit order."""

from collections.abc import Callable
from typing import Any

from django.db import migrations

FORWARD = [
    "ALTER TABLE sync_syncfeed ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()",
]
BACKWARD = ["ALTER TABLE sync_syncfeed DROP COLUMN txid"]


def _run(statements: list[str]) -> Callable[[Any, Any], None]:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("sync", "0001_initial")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]
