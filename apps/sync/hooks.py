"""Post-apply hooks: code that must run when rows of a replicated entity arrive from a peer.

A hook runs inside batch_apply's transaction, right after that entity's rows of the page were
written (rows the database refused are not passed), before the next entity of the page and before
the deferred foreign-key checks at commit. It gets the ids written and the ids deleted, and reads
the rows it needs itself. Hooks write set-based, without going through replicated managers (what
they write is derived from rows that already replicate). Entities with a hook are applied first
within a page, so rows of other entities that depend on what a hook writes (a portfolio on its
auth user) find it.

    register_post_apply("sync.account", users_apply)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol

__all__ = ["PostApplyHook", "apply_order", "has_post_apply", "register_post_apply", "run_post_apply"]


class PostApplyHook(Protocol):
    def __call__(self, *, using: str, written: list[str], deleted: list[str]) -> None: ...


_hooks: dict[str, list[PostApplyHook]] = {}
_lock = threading.Lock()


def register_post_apply(model_label: str, fn: PostApplyHook) -> None:
    """Run `fn` after rows of `model_label` ("app_label.modelname") from a peer are written.
    Registering the same function twice has no effect."""
    label = model_label.lower()
    with _lock:
        hooks = _hooks.setdefault(label, [])
        if fn not in hooks:
            hooks.append(fn)


def has_post_apply(model_label: str) -> bool:
    return bool(_hooks.get(model_label.lower()))


def apply_order(model_label: str) -> int:
    """Sort key for the entities of a page: those with hooks first."""
    return 0 if has_post_apply(model_label) else 1


def run_post_apply(*, model_label: str, using: str, written: Iterable[str], deleted: Iterable[str]) -> None:
    hooks = _hooks.get(model_label.lower())
    if not hooks:
        return
    written, deleted = list(written), list(deleted)
    if not written and not deleted:
        return
    for fn in hooks:
        fn(using=using, written=written, deleted=deleted)
