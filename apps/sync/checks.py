"""System check: every replicated model writes through ReplicatedQuerySet."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks

from apps.sync.models import ReplicatedModel, ReplicatedQuerySet


@checks.register()
def replicated_managers_check(**kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for model in apps.get_models():
        if not issubclass(model, ReplicatedModel):
            continue
        for manager in model._meta.managers:
            if not issubclass(manager._queryset_class, ReplicatedQuerySet):  # type: ignore[attr-defined]
                errors.append(
                    checks.Error(
                        f"{model.__name__}.{manager.name} does not use ReplicatedQuerySet, so its "
                        "update() and bulk writes would skip the replication stamps.",
                        obj=model,
                        id="haunt.E001",
                    )
                )
    return errors
