"""Default operational data, loaded from the JSON files in `apps/*/seed/`.

Seeding only adds rows that are missing (matched on each file's natural key), so whatever an
operator changed in the admin survives a re-seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models, transaction

SEED_DIR_GLOB = "apps/*/seed/*.json"


@dataclass(frozen=True)
class SeedResult:
    model: str
    created: int
    existing: int


def seed_files() -> list[Path]:
    return sorted(Path(settings.BASE_DIR).glob(SEED_DIR_GLOB))


def _resolve(model: type[models.Model], row: dict[str, Any]) -> dict[str, Any]:
    """Turn `{"exchange": {"slug": "binance"}}` into the related instance."""
    resolved = {}
    for name, value in row.items():
        field = model._meta.get_field(name)
        if field.is_relation and isinstance(value, dict):
            related = field.related_model
            assert related is not None and not isinstance(related, str)
            value = related._default_manager.get(**value)
        resolved[name] = value
    return resolved


@transaction.atomic
def seed_file_load(*, path: Path) -> SeedResult:
    """Create the file's missing rows, validating each with full_clean()."""
    spec = json.loads(path.read_text())
    model = apps.get_model(spec["model"])
    created = existing = 0
    for raw in spec["rows"]:
        row = _resolve(model, raw)
        lookup = {name: row[name] for name in spec["key"]}
        if model._default_manager.filter(**lookup).exists():
            existing += 1
            continue
        instance = model(**row)
        instance.full_clean()
        instance.save()
        created += 1
    return SeedResult(model=spec["model"], created=created, existing=existing)


def seed_defaults() -> list[SeedResult]:
    """Load every seed file, in dependency order (markets before trading)."""
    order = {"markets": 0, "storage": 1, "trading": 2, "moderation": 3}
    files = sorted(seed_files(), key=lambda p: (order.get(p.parent.parent.name, 9), p.name))
    return [seed_file_load(path=path) for path in files]
