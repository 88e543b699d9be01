from __future__ import annotations

from apps.storage.models import RetentionPolicy


def retention_days(*, entity: str) -> int | None:
    """Days to keep `entity`, or None when no enabled policy exists (keep everything)."""
    policy = RetentionPolicy.objects.filter(entity=entity, enabled=True).first()
    return policy.retention_days if policy else None
