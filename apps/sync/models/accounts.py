"""The replicated mirror of an auth user: what another node needs to log the person in and to
hold rows (portfolios, profiles) that belong to them.

Auth users are Django's own table and do not replicate themselves; their ids come from a range
owned by this node (apps.sync.accounts), so a user keeps the same id on every node and foreign
keys to it mean the same person everywhere.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.core import checks
from django.db import models
from django.db.models.signals import class_prepared, post_delete, post_migrate, post_save
from django.utils import timezone

from apps.sync.hooks import register_post_apply
from apps.sync.models.base import ReplicatedModel

__all__ = ["MIRRORED_USER_FIELDS", "Account", "NodeRangedUserId"]

# Auth user columns an Account carries (besides the id). last_login is left out on purpose: a
# login on one node is not a change of the account.
MIRRORED_USER_FIELDS = (
    "username",
    "email",
    "password",
    "is_active",
    "is_staff",
    "is_superuser",
    "date_joined",
)


class Account(ReplicatedModel):
    """One auth user, as every node should have it. Written only by apps.sync.accounts."""

    user_id = models.BigIntegerField(unique=True, help_text="The auth user's id (the same on every node).")
    username = models.CharField(max_length=150)
    email = models.EmailField(blank=True)
    password = models.CharField(max_length=128)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    is_superuser = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["user_id"]

    def __str__(self) -> str:
        return f"account {self.username} ({self.user_id})"


class NodeRangedUserId(models.BigAutoField):
    """The auth user's primary key as Haunt runs it: a 64-bit id from a node's range.

    Django creates auth_user.id as a 32-bit AutoField, and it treats a larger value as matching no
    row (its lookups refuse out-of-range integers) and casts it to `integer` in set-based writes.
    The post_migrate handler widens the columns; this class, swapped in on the model's field at
    start-up, makes Django treat the field as 64-bit too. It still deconstructs as AutoField, so
    the auth app's migrations see no change.
    """

    def deconstruct(self) -> Any:
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.AutoField", args, kwargs


def _user_pk_widen(sender: type[models.Model], **kwargs: Any) -> None:
    if sender._meta.label_lower != settings.AUTH_USER_MODEL.lower():
        return
    pk = sender._meta.pk
    if pk is not None and type(pk) is models.AutoField:
        pk.__class__ = NodeRangedUserId  # type: ignore[assignment]
        pk.__dict__.pop("validators", None)  # recomputed with the 64-bit range


# --- Wiring (the service functions are imported lazily: apps.sync.accounts imports this module) --


def _user_saved(sender: Any, instance: Any, created: bool, raw: bool, using: str, **kwargs: Any) -> None:
    # A signal, not a service call: users are saved by Django's own auth code (createsuperuser,
    # set_password + save in the password views, the admin), which no Haunt service wraps.
    from apps.sync.accounts import account_mirror

    account_mirror(user=instance, using=using, raw=raw, update_fields=kwargs.get("update_fields"))


def _user_deleted(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    from apps.sync.accounts import account_deactivate

    account_deactivate(user_id=instance.pk, using=using)


def _post_migrate(sender: Any, app_config: Any, using: str = "default", **kwargs: Any) -> None:
    if app_config.label != "sync":  # once per migrate (and flush), after every app's migrations
        return
    from apps.sync.accounts import user_ids_init

    user_ids_init(using=using)


def _users_apply(*, using: str, written: list[str], deleted: list[str]) -> None:
    from apps.sync.accounts import users_apply

    users_apply(using=using, written=written, deleted=deleted)


def _node_range_check(**kwargs: Any) -> list[checks.CheckMessage]:
    from apps.sync.accounts import node_range_check

    return node_range_check(databases=kwargs.get("databases"))


class_prepared.connect(_user_pk_widen, dispatch_uid="sync-user-pk-widen")
_user_model = django_apps.all_models.get(settings.AUTH_USER_MODEL.split(".")[0].lower(), {}).get(
    settings.AUTH_USER_MODEL.split(".")[1].lower()
)
if _user_model is not None:  # prepared before this module was imported (auth comes first)
    _user_pk_widen(_user_model)
post_save.connect(_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="sync-account-mirror")
post_delete.connect(_user_deleted, sender=settings.AUTH_USER_MODEL, dispatch_uid="sync-account-deactivate")
post_migrate.connect(_post_migrate, dispatch_uid="sync-user-id-range")
register_post_apply("sync.account", _users_apply)
checks.register(_node_range_check, checks.Tags.database)
