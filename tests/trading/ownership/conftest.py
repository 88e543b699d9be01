"""Fixtures of the home-node tests: a portfolio of the caller homed on another node of the mesh,
and a switch that makes this process act as another node (to build that node's rows through
the services)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User

from apps.trading.models import Portfolio
from tests.trading.ownership.rows import ELSEWHERE

AsNode = Callable[[str], AbstractContextManager[None]]


@pytest.fixture
def foreign(seeded: None, user: User) -> Portfolio:
    """The caller's second portfolio, funded like `portfolio` but homed on node "elsewhere"."""
    return Portfolio.objects.create(
        user=user,
        name="abroad",
        cash=Decimal("100000"),
        initial_cash=Decimal("100000"),
        home_node=ELSEWHERE,
    )


@pytest.fixture
def as_node(settings: Any) -> AsNode:
    """`with as_node("elsewhere"):` runs the services as that node (HAUNT_NODE_ID)."""

    @contextmanager
    def _as(node: str) -> Iterator[None]:
        previous = settings.HAUNT_NODE_ID
        settings.HAUNT_NODE_ID = node
        try:
            yield
        finally:
            settings.HAUNT_NODE_ID = previous

    return _as
