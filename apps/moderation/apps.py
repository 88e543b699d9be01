from typing import Any

from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_save


def _blocklist_changed(**kwargs: Any) -> None:
    from apps.moderation.services import blocklist_changed

    transaction.on_commit(blocklist_changed)


class ModerationConfig(AppConfig):
    name = "apps.moderation"
    label = "moderation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Cache invalidation only: every process rebuilds its matcher when the list changes.
        from apps.moderation.models import AllowedWord, BlockedTerm

        for model in (BlockedTerm, AllowedWord):
            post_save.connect(
                _blocklist_changed, sender=model, dispatch_uid=f"blocklist-save-{model.__name__}"
            )
            post_delete.connect(
                _blocklist_changed, sender=model, dispatch_uid=f"blocklist-delete-{model.__name__}"
            )
