"""Automatic garbage collection held off while a feed page is built, decoded or applied.

A 5,000-row page is a few hundred thousand short-lived objects. Allocating them triggers the
cyclic collector over and over, and its older-generation passes walk everything alive: measured
here, a fifth of the time to apply 20,000 updates (2.4 s with it, 1.9 s without) went to the
collector, and none of it freed anything (the page's objects are freed by reference counting).
Cycles made meanwhile are collected once no page is in progress, or every COLLECT_EVERY_S while
pages follow each other without a gap.
"""

from __future__ import annotations

import functools
import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

COLLECT_EVERY_S = 10.0

_lock = threading.Lock()
_holders = 0
_was_enabled = False
_held_since = 0.0

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def gc_held() -> Iterator[None]:
    """No automatic collection inside (re-entrant, shared by threads)."""
    global _holders, _was_enabled, _held_since
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            _held_since = time.monotonic()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        collect = False
        with _lock:
            _holders -= 1
            if _holders == 0:
                if _was_enabled:
                    gc.enable()
            elif _was_enabled and time.monotonic() - _held_since > COLLECT_EVERY_S:
                _held_since = time.monotonic()
                collect = True
        if collect:
            gc.collect()


def gc_held_during(function: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with gc_held():
            return function(*args, **kwargs)

    return wrapper
