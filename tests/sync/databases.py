"""A second node's database in the same test process: registered under its own alias, created
(PostgreSQL: `<test db>_<alias>`; SQLite: a file in HAUNT_DATA_DIR) and migrated once."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connections


def raw_connect(params: dict[str, Any], *, dbname: str | None = None, autocommit: bool = True) -> Any:
    """A plain psycopg connection to the server of Django's `params` (its database, or `dbname`):
    a second session next to the test's own."""
    import psycopg

    return psycopg.connect(
        dbname=dbname or params["NAME"],
        user=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
        host=params.get("HOST") or None,
        port=params.get("PORT") or None,
        autocommit=autocommit,
    )


def _postgres_admin(params: dict[str, Any]) -> Any:
    return raw_connect(params, dbname="postgres")


def extra_database(alias: str, django_db_blocker: Any) -> Iterator[str]:
    """Generator for a session fixture: set the database up, yield its alias, drop it after."""
    params = copy.deepcopy(connections["default"].settings_dict)
    vendor = connections["default"].vendor
    if vendor == "postgresql":
        params["NAME"] = f"{params['NAME']}_{alias}"
        with _postgres_admin(params) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{params["NAME"]}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{params["NAME"]}"')
    else:
        path = Path(os.environ.get("HAUNT_DATA_DIR", "/tmp")) / f"test_{alias}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        params["NAME"] = str(path)
    params["TEST"] = {**params.get("TEST", {}), "NAME": params["NAME"], "MIRROR": None}
    connections.settings[alias] = params
    django_settings.DATABASES[alias] = params
    with django_db_blocker.unblock():
        call_command("migrate", database=alias, verbosity=0, interactive=False)
    yield alias
    with django_db_blocker.unblock():
        connection = connections[alias]
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            close_pool()
        connection.close()
        if vendor == "postgresql":
            with _postgres_admin(params) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{params["NAME"]}" WITH (FORCE)')
    connections.settings.pop(alias, None)
    django_settings.DATABASES.pop(alias, None)
