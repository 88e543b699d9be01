"""The cyclic collector is held off while a page is built, decoded or applied, and back after."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest

from apps.sync import gcpause
from apps.sync.gcpause import gc_held


@pytest.fixture(autouse=True)
def collector_on() -> Any:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_held_inside_nested_holds_and_back_on_after_the_outermost() -> None:
    with gc_held():
        assert not gc.isenabled()
        with gc_held():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_hold_left_by_an_exception_still_turns_it_back_on() -> None:
    with pytest.raises(ZeroDivisionError), gc_held():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_it_stays_off_until_the_last_thread_lets_go() -> None:
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gc_held():
            entered.set()
            release.wait(5)

    other = threading.Thread(target=hold)
    other.start()
    entered.wait(5)
    with gc_held():
        pass
    assert not gc.isenabled()  # the other thread still holds it
    release.set()
    other.join(5)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with gc_held():
        pass
    assert not gc.isenabled()


def test_pages_back_to_back_still_collect_cycles_every_so_often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gcpause, "COLLECT_EVERY_S", 0.0)
    collected: list[int] = []
    monkeypatch.setattr(gcpause.gc, "collect", lambda *args: collected.append(1) or 0)
    with gc_held(), gc_held():
        pass  # an inner hold ends while the outer one still holds: it collects

    assert collected == [1]


def test_applying_a_page_runs_with_the_collector_held(monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.sync import apply

    seen: list[bool] = []

    def spy(**kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        raise RuntimeError("stop here")

    monkeypatch.setattr(apply, "_check_drift", lambda rows, using: spy())
    page = {"node": "a", "lane": 0, "since": 0, "next": 1, "head": 1, "rows": []}
    with pytest.raises(RuntimeError):
        apply.batch_apply(peer="a", lane=0, page=page, verified=True)

    assert seen == [False]
    assert gc.isenabled()
